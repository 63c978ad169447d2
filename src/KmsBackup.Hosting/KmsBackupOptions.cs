using System.ComponentModel.DataAnnotations;
using System.Diagnostics.Metrics;
using System.IO.Abstractions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
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
    /// The client's settings, written once for the SDK and its hosting: the time zone (bound from its IANA ID),
    /// the schedule, the automatic-backup cutoffs, the lease and clock bounds and the upload limits. Configuration
    /// binds them from the section <c>Client</c>, for instance <c>KmsBackup:Client:TimeZone</c> or
    /// <c>KmsBackup:Client:Schedule:IncrementalInterval</c>. Validated when the host starts with
    /// <see cref="BackupClientOptions.Validate"/>. The host's service container supplies the
    /// <see cref="BackupClientOptions.TimeProvider"/>, <see cref="BackupClientOptions.LoggerFactory"/> and
    /// <see cref="BackupClientOptions.MeterFactory"/>; setting them here stops the host at start, saying so.
    /// </summary>
    [Required]
    public BackupClientOptions Client { get; set; } = new();

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

    /// <summary>Copies of every new recovery point into a second store (<see cref="BackupClient.CopyToAsync"/>), run by the hosted scheduler.</summary>
    [Required]
    [ValidateObjectMembers]
    public KmsBackupCopyOptions Copy { get; set; } = new();

    /// <summary>Checks what attributes cannot: the client's settings, and that no path is blank.</summary>
    /// <param name="validationContext">The validation context.</param>
    /// <returns>The problems found.</returns>
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Client is not null && ValidateClient(Client) is { } problem)
        {
            yield return problem;
        }

        if (Copy?.ToInstance is { } target && string.IsNullOrWhiteSpace(target))
        {
            yield return new ValidationResult(
                "Copy.ToInstance is blank: leave it unset for no copies, or name the registered KmsBackup instance whose store and key receive the copies.",
                [nameof(Copy) + "." + nameof(KmsBackupCopyOptions.ToInstance)]);
        }

        foreach (var (path, name) in new[] { (DataPath, nameof(DataPath)), (StorePath, nameof(StorePath)), (KeyFilePath, nameof(KeyFilePath)) })
        {
            if (path is not null && string.IsNullOrWhiteSpace(path))
            {
                yield return new ValidationResult($"{name} is blank: leave it unset for the default, or name a folder.", [name]);
            }
        }
    }

    private static ValidationResult? ValidateClient(BackupClientOptions client)
    {
        const string Prefix = nameof(Client) + ".";
        if (client.TimeProvider != TimeProvider.System || client.LoggerFactory != NullLoggerFactory.Instance || client.MeterFactory is not null)
        {
            return new ValidationResult(
                "Client.TimeProvider, Client.LoggerFactory and Client.MeterFactory come from the host's service container: " +
                "register a TimeProvider, ILoggerFactory or IMeterFactory there instead of setting them in the options.",
                [Prefix + nameof(client.TimeProvider), Prefix + nameof(client.LoggerFactory), Prefix + nameof(client.MeterFactory)]);
        }

        if (client.Schedule?.Validate() is { } refusal)
        {
            // The schedule's one bounded setting is the incremental interval; the refusal names the value and the remedy.
            const string Option = Prefix + nameof(client.Schedule) + "." + nameof(BackupSchedulePolicy.IncrementalInterval);
            return new ValidationResult($"{Option}: {refusal.Message} {refusal.Remedy}", [Option]);
        }

        try
        {
            client.Validate();
            return null;
        }
        catch (ArgumentException error)
        {
            var option = Prefix + error.ParamName;
            return new ValidationResult($"{option}: {error.Message}", [option]);
        }
    }

    /// <summary>
    /// The options the client of this instance opens with: <see cref="Client"/>, copied, with the host's clock,
    /// loggers and meters.
    /// </summary>
    internal BackupClientOptions ToClientOptions(TimeProvider timeProvider, ILoggerFactory? loggerFactory, IMeterFactory? meterFactory)
    {
        var options = Client.Clone();
        options.TimeProvider = timeProvider;
        options.LoggerFactory = loggerFactory ?? options.LoggerFactory;
        options.MeterFactory = meterFactory;
        return options;
    }

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

/// <summary>
/// Copies to a second store on a schedule: every <see cref="Interval"/>, after its tick's backups, the hosted scheduler
/// copies what the instance <see cref="ToInstance"/> lacks into it (<see cref="BackupClient.CopyToAsync"/>): every new
/// recovery point, each backup's state, under that instance's leases. The copy is resumable, so a failed or interrupted
/// copy is finished by the next.
/// </summary>
/// <remarks>
/// The destination is another KmsBackup instance registered in the same host (<c>AddKmsBackup("copy", ...)</c> with its own
/// store, for instance Azure Blob Storage in another region, and its own repository key). Turn its own scheduler off
/// (<c>Scheduler.Enabled = false</c>): a copy repository is written by copies only.
/// </remarks>
public sealed class KmsBackupCopyOptions
{
    /// <summary>The name of the registered instance that receives the copies; <see langword="null"/> (the default) for no copies.</summary>
    public string? ToInstance { get; set; }

    /// <summary>How often the scheduler copies: 1 minute to 7 days. Default 1 hour. A copy runs at the first tick once the interval has passed.</summary>
    [Range(typeof(TimeSpan), "00:01:00", "7.00:00:00")]
    public TimeSpan Interval { get; set; } = TimeSpan.FromHours(1);
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
