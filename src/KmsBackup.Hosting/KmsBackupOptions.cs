using System.ComponentModel.DataAnnotations;
using System.IO.Abstractions;
using Microsoft.Extensions.Options;

namespace KmsBackup.Hosting;

/// <summary>
/// Options of a KmsBackup instance registered with
/// <see cref="Microsoft.Extensions.DependencyInjection.KmsBackupServiceCollectionExtensions.AddKmsBackup(Microsoft.Extensions.DependencyInjection.IServiceCollection, string, Action{KmsBackupOptions})"/>:
/// plain values that configuration can bind, validated once when the host starts (a host with an invalid
/// value does not start, and the error names the option).
/// </summary>
public sealed class KmsBackupOptions : IValidatableObject
{
    /// <summary>
    /// The IANA (or Windows) ID of the time zone new backups count their days in (rule W1). Default <c>UTC</c>.
    /// </summary>
    [Required]
    public string TimeZone { get; set; } = "UTC";

    /// <summary>When backups run (rules S2, S3, S6).</summary>
    [Required]
    [ValidateObjectMembers]
    public KmsBackupScheduleOptions Schedule { get; set; } = new();

    /// <summary>Software instances created at or after this instant get an automatic backup when enabled (rule K4). Default 2024-04-26 00:00 UTC.</summary>
    public DateTimeOffset SoftwareAutomaticBackupCutoff { get; set; } = AutomaticBackupCutoffs.Default.SoftwareCreatedOnOrAfter;

    /// <summary>Hardware instances created at or after this instant get an automatic backup when enabled (rule K4). Default 2026-04-01 00:00 UTC.</summary>
    public DateTimeOffset HardwareAutomaticBackupCutoff { get; set; } = AutomaticBackupCutoffs.Default.HardwareCreatedOnOrAfter;

    /// <summary>How this host is named to another host that finds a backup's lease held. Default: machine name and process ID.</summary>
    [Required]
    [MaxLength(256)]
    public string LeaseHolder { get; set; } = $"{Environment.MachineName}:{Environment.ProcessId}";

    /// <summary>How long a backup's lease lasts unless renewed: 1 second to 1 hour. Default 5 minutes.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How far this host's clock may run ahead of the latest time the store has seen before every deletion is
    /// held until an operator confirms the clock (<see cref="BackupClient.ConfirmClockAsync"/>, <c>kmsbackup clock
    /// confirm</c>): 1 minute to 365 days. Default 48 hours. The health check reports a hold as degraded.
    /// </summary>
    [Range(typeof(TimeSpan), "00:01:00", "365.00:00:00")]
    public TimeSpan MaximumClockLead { get; set; } = TimeSpan.FromHours(48);

    /// <summary>How far this host's clock may run behind the latest time the store has seen and still commit: 1 second to 1 hour. Default 2 minutes.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan MaximumClockLag { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// The folder of the embedded defaults: the file-system store in <c>store/</c>, the repository key file
    /// <c>keys/repository.key</c> and the embedded key management service in <c>kms/</c>. Default: the folder
    /// <c>KmsBackup/&lt;name&gt;</c> (<c>default</c> for the unnamed instance) in the user's local application data folder.
    /// </summary>
    public string? DataPath { get; set; }

    /// <summary>The file-system store's folder, a local disk or a share several hosts mount; default <c>store/</c> in <see cref="DataPath"/>.</summary>
    public string? StorePath { get; set; }

    /// <summary>The repository key file (created with a fresh key, mode 0600, when missing); default <c>keys/repository.key</c> in <see cref="DataPath"/>. Keep it apart from the store.</summary>
    public string? KeyFilePath { get; set; }

    /// <summary>The hosted scheduler.</summary>
    [Required]
    [ValidateObjectMembers]
    public KmsBackupSchedulerOptions Scheduler { get; set; } = new();

    /// <summary>When the health check reports a backup degraded or unhealthy.</summary>
    [Required]
    [ValidateObjectMembers]
    public KmsBackupHealthOptions Health { get; set; } = new();

    /// <summary>Checks what attributes cannot: that the time zone is known and the schedule is valid.</summary>
    /// <param name="validationContext">The validation context.</param>
    /// <returns>The problems found.</returns>
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!string.IsNullOrWhiteSpace(TimeZone) && !BackupTimeZone.TryFromId(TimeZone, out _, out _))
        {
            yield return new ValidationResult(
                $"The time zone '{TimeZone}' is not known on this machine: use an IANA ID such as 'UTC' or 'Asia/Shanghai'.", [nameof(TimeZone)]);
        }

        if (Schedule is not null && Schedule.ToPolicy().Validate() is { } refusal)
        {
            yield return new ValidationResult(refusal.Message, [nameof(Schedule)]);
        }

        foreach (var (path, name) in new[] { (DataPath, nameof(DataPath)), (StorePath, nameof(StorePath)), (KeyFilePath, nameof(KeyFilePath)) })
        {
            if (path is not null && string.IsNullOrWhiteSpace(path))
            {
                yield return new ValidationResult($"{name} is blank: leave it unset for the default, or name a folder.", [name]);
            }
        }
    }

    /// <summary>The client options these options stand for.</summary>
    internal BackupClientOptions ToClientOptions() => new()
    {
        TimeZone = BackupTimeZone.FromId(TimeZone),
        Schedule = Schedule.ToPolicy(),
        AutomaticBackupCutoffs = new AutomaticBackupCutoffs
        {
            SoftwareCreatedOnOrAfter = SoftwareAutomaticBackupCutoff,
            HardwareCreatedOnOrAfter = HardwareAutomaticBackupCutoff,
        },
        LeaseHolder = LeaseHolder,
        LeaseDuration = LeaseDuration,
        MaximumClockLead = MaximumClockLead,
        MaximumClockLag = MaximumClockLag,
    };

    internal string ResolveDataPath(IFileSystem fileSystem, string name)
    {
        if (DataPath is not null)
        {
            return fileSystem.Path.GetFullPath(DataPath);
        }

        var local = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.DoNotVerify);
        var folder = name.Length == 0 ? "default" : name;
        return string.IsNullOrEmpty(local)
            ? fileSystem.Path.GetFullPath(fileSystem.Path.Combine("kmsbackup-data", folder))
            : fileSystem.Path.Combine(local, "KmsBackup", folder);
    }

    internal string ResolveStorePath(IFileSystem fileSystem, string name) =>
        StorePath is not null ? fileSystem.Path.GetFullPath(StorePath) : fileSystem.Path.Combine(ResolveDataPath(fileSystem, name), "store");

    internal string ResolveKeyFilePath(IFileSystem fileSystem, string name) =>
        KeyFilePath is not null ? fileSystem.Path.GetFullPath(KeyFilePath) : fileSystem.Path.Combine(ResolveDataPath(fileSystem, name), "keys", "repository.key");

    internal string ResolveEmbeddedServicePath(IFileSystem fileSystem, string name) =>
        fileSystem.Path.Combine(ResolveDataPath(fileSystem, name), "kms");
}

/// <summary>When backups run (rules S2, S3, S6).</summary>
public sealed class KmsBackupScheduleOptions
{
    /// <summary>How often an incremental runs after each full: 1 second to 12 hours. Default 5 minutes.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "12:00:00")]
    public TimeSpan IncrementalInterval { get; set; } = BackupSchedulePolicy.Default.IncrementalInterval;

    /// <summary>The local time of day of the daily full, in the backup's zone. Default 00:00.</summary>
    public TimeOnly DailyFullTime { get; set; } = BackupSchedulePolicy.Default.DailyFullTime;

    internal BackupSchedulePolicy ToPolicy() => new() { IncrementalInterval = IncrementalInterval, DailyFullTime = DailyFullTime };
}

/// <summary>The hosted scheduler (<see cref="BackupSchedulerService"/>).</summary>
public sealed class KmsBackupSchedulerOptions
{
    /// <summary>Whether the hosted scheduler runs this instance's due backups. Default <see langword="true"/>.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// How often the scheduler looks for due backups: 1 second to 1 hour. Default 1 minute, so that a run
    /// starts at most a minute after it is due. Ticks come from the host's <see cref="TimeProvider"/>.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan Tick { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// After a repository key rotation, how many packs of older key generations each tick re-encrypts under the
    /// new one (<see cref="BackupClient.RekeyAsync"/>), after the tick's due backups: the rekey runs in the
    /// background until nothing is left, then costs nothing until the next rotation. 0 turns it off (call
    /// <see cref="BackupClient.RekeyAsync"/> yourself). 0 to 10,000; default 4 (up to about 32 MiB a tick).
    /// </summary>
    [Range(0, 10_000)]
    public int RekeyPacksPerTick { get; set; } = 4;
}

/// <summary>When <see cref="KmsBackupHealthCheck"/> reports a backup degraded or unhealthy.</summary>
public sealed class KmsBackupHealthOptions
{
    /// <summary>Failures in a row after which a backup is unhealthy (one or more make it degraded): 1 to 1000. Default 3.</summary>
    [Range(1, 1000)]
    public int UnhealthyAfterFailures { get; set; } = 3;

    /// <summary>How far behind schedule a backup may fall before it is unhealthy: up to 1 day. Default 15 minutes.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan MaximumLag { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>How long before a purchased backup expires it is reported degraded: up to 365 days. Default 7 days.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "365.00:00:00")]
    public TimeSpan ExpiryWarning { get; set; } = TimeSpan.FromDays(7);
}

/// <summary>The source-generated validator of <see cref="KmsBackupOptions"/> (DataAnnotations and <see cref="IValidatableObject"/>), run at host start.</summary>
[OptionsValidator]
internal sealed partial class KmsBackupOptionsValidator : IValidateOptions<KmsBackupOptions>
{
}
