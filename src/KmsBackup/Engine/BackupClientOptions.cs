using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace KmsBackup;

/// <summary>Options of a <see cref="BackupClient"/>. Validated once, when the client opens.</summary>
/// <remarks>
/// Configuration binds every plain setting (the time zone from its ID, the schedule, the cutoffs, the lease and
/// clock bounds, the upload limits); a host registered with <c>AddKmsBackup</c> sets these options as
/// <c>KmsBackupOptions.Client</c>, section <c>Client</c>. <see cref="TimeProvider"/>, <see cref="LoggerFactory"/>
/// and <see cref="MeterFactory"/> are objects, not settings: a host's service container supplies them.
/// </remarks>
public sealed class BackupClientOptions
{
    /// <summary>Where time comes from. Default <see cref="TimeProvider.System"/>; tests use a fake one.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>The time zone new backups count their days in (rule W1). Default UTC.</summary>
    public BackupTimeZone TimeZone { get; set; } = BackupTimeZone.Utc;

    /// <summary>When backups run (rules S2, S3, S6). Default: fulls at 00:00, incrementals every 5 minutes.</summary>
    public BackupSchedulePolicy Schedule { get; set; } = new();

    /// <summary>Which instances get an automatic backup when enabled (rule K4). Default: the seed's cutoffs, 2024-04-26 for software and 2026-04-01 for hardware instances (UTC).</summary>
    public AutomaticBackupCutoffs AutomaticBackupCutoffs { get; set; } = new();

    /// <summary>How this writer is named to a second writer that finds a backup's lease held. Default: machine name and process ID.</summary>
    public string LeaseHolder { get; set; } = $"{Environment.MachineName}:{Environment.ProcessId}";

    /// <summary>How long a backup's lease lasts unless renewed. Default 5 minutes; 1 second to 1 hour.</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long after a prune marks an unreferenced pack a later prune may delete it. Default 1 hour; at least <see cref="LeaseDuration"/>.</summary>
    public TimeSpan PruneGracePeriod { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// The fraction of the packs' bytes that may be unused (no recovery point refers to them) before a prune repacks: when
    /// the unused bytes reach it, the prune copies the live objects of the packs with the largest unused fraction into new
    /// packs, until less than this fraction stays unused, and marks those packs, so a later prune (after
    /// <see cref="PruneGracePeriod"/>) deletes them. Once it has, the packs take less than 1 / (1 − threshold) times the
    /// bytes the recovery points refer to (<see cref="RepositoryVerification.ReferencedBytes"/>). Lower means less space
    /// and more copying. Default 0.2 (at most 1.25 times); from 0.05 to 1, where 1 turns repacking off (wholly unused
    /// packs are still deleted).
    /// </summary>
    public double PruneRepackThreshold { get; set; } = 0.2;

    /// <summary>
    /// How often <see cref="BackupClient.RunDueBackupsAsync"/> lists the gateway's instances to learn enables the host did
    /// not report through <see cref="BackupClient.OnInstanceEnabledAsync"/>: each enabled instance that is eligible
    /// (rule K4) and has no automatic backup gets one, with its first full at once, so a host that forgets an event
    /// loses no backup (releases are learned on every tick from each backup's instance). Hosts sharing a store that learn
    /// of one enable at once create one backup: its ID is derived from the instance's. Default 5 minutes; from 1 minute
    /// to 1 day; <see langword="null"/> turns it off, for a host that reports every enable and whose gateway lists
    /// instances slowly. Each listing reads every instance of the gateway once (<see cref="InstanceGateway.ListInstancesAsync"/>).
    /// </summary>
    public TimeSpan? InstanceDiscoveryInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How far this host's clock may run ahead of the latest time the store has seen before every deletion
    /// (retention, release, prune) is held until an operator confirms the time with
    /// <see cref="BackupClient.ConfirmClockAsync"/>. Backups keep running meanwhile. Default 48 hours; from
    /// 1 minute to 365 days.
    /// </summary>
    public TimeSpan MaximumClockLead { get; set; } = TimeSpan.FromHours(48);

    /// <summary>
    /// How far this host's clock may run behind the latest time the store has seen and still commit. Hosts
    /// sharing a store need clocks in sync well within this. Default 2 minutes; from 1 second to 1 hour.
    /// </summary>
    public TimeSpan MaximumClockLag { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// The largest backup file <see cref="BackupClient.UploadAsync"/> accepts, in bytes. A larger file (or one that
    /// turns out larger while it is read) is refused with <see cref="BackupErrorCode.FileTooLarge"/> before anything
    /// is written. Default 4 GiB; at least 1 KiB. Upload memory does not grow with this limit nor with the file: the
    /// items wait in <see cref="UploadTemporaryFolder"/> (see the README, "Download and upload").
    /// </summary>
    public long MaximumUploadSize { get; set; } = 4L * 1024 * 1024 * 1024;

    /// <summary>
    /// The folder where <see cref="BackupClient.UploadAsync"/> keeps an uploaded day's items while it checks them and
    /// writes them: about the file's size, in a file created for the current user only, sealed page by page under
    /// a key that only the upload holds, and deleted when the upload ends (on Linux and macOS its name is unlinked at
    /// once, so not even a crash leaves it). Default <see langword="null"/>: the system's temporary folder.
    /// </summary>
    public string? UploadTemporaryFolder { get; set; }

    /// <summary>
    /// How many bytes the client's cache of what it read from the store may hold, by estimate: the point list of each
    /// backup, point manifests, and the last point's digest of each backup (names and stamps, which let an incremental
    /// compare without reading the last point). Least recently used entries are dropped first; a dropped entry is read
    /// again when needed. Nothing in it is key material or a secret value. 0 turns the cache off. Default 256 MiB;
    /// at most 64 GiB. Metrics: <see cref="Diagnostics.KmsBackupDiagnostics.CacheSizeInstrument"/> and the hit, miss and
    /// eviction counters.
    /// </summary>
    public long CacheSize { get; set; } = 256L * 1024 * 1024;

    /// <summary>
    /// Where the client's logs go (category <c>KmsBackup.BackupClient</c>). Default
    /// <see cref="NullLoggerFactory.Instance"/>: no logs. No log message holds a secret value, key material or a key.
    /// </summary>
    public ILoggerFactory LoggerFactory { get; set; } = NullLoggerFactory.Instance;

    /// <summary>
    /// Creates the <c>KmsBackup</c> meter (see <see cref="Diagnostics.KmsBackupDiagnostics"/>). Default
    /// <see langword="null"/>: one process-wide meter. A host's factory keeps its measurements apart.
    /// </summary>
    public IMeterFactory? MeterFactory { get; set; }

    /// <summary>Throws when an option is out of range.</summary>
    /// <exception cref="BackupException">A schedule option is out of range (<see cref="BackupErrorCode.InvalidScheduleOption"/>).</exception>
    /// <exception cref="ArgumentException">Another option is missing or out of range.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(TimeProvider);
        ArgumentNullException.ThrowIfNull(TimeZone);
        ArgumentNullException.ThrowIfNull(Schedule);
        ArgumentNullException.ThrowIfNull(AutomaticBackupCutoffs);
        ArgumentNullException.ThrowIfNull(LoggerFactory);
        ArgumentException.ThrowIfNullOrWhiteSpace(LeaseHolder);
        Schedule.ThrowIfInvalid();
        BackupStore.ValidateLeaseDuration(LeaseDuration, nameof(LeaseDuration));

        if (MaximumClockLead < TimeSpan.FromMinutes(1) || MaximumClockLead > TimeSpan.FromDays(365))
        {
            throw new ArgumentOutOfRangeException(nameof(MaximumClockLead), MaximumClockLead, "The maximum clock lead is from 1 minute to 365 days.");
        }

        if (MaximumClockLag < TimeSpan.FromSeconds(1) || MaximumClockLag > TimeSpan.FromHours(1))
        {
            throw new ArgumentOutOfRangeException(nameof(MaximumClockLag), MaximumClockLag, "The maximum clock lag is from 1 second to 1 hour.");
        }

        if (UploadTemporaryFolder is not null && string.IsNullOrWhiteSpace(UploadTemporaryFolder))
        {
            throw new ArgumentException("The upload temporary folder is a folder's path, or null for the system's temporary folder.", nameof(UploadTemporaryFolder));
        }

        if (MaximumUploadSize < 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(MaximumUploadSize), MaximumUploadSize, "The maximum upload size is at least 1 KiB.");
        }

        if (CacheSize is < 0 or > 64L * 1024 * 1024 * 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(CacheSize), CacheSize, "The cache size is from 0 (no cache) to 64 GiB.");
        }

        if (PruneGracePeriod < LeaseDuration)
        {
            throw new ArgumentOutOfRangeException(nameof(PruneGracePeriod), PruneGracePeriod, "The prune grace period must be at least the lease duration.");
        }

        if (InstanceDiscoveryInterval is { } discovery && (discovery < TimeSpan.FromMinutes(1) || discovery > TimeSpan.FromDays(1)))
        {
            throw new ArgumentOutOfRangeException(nameof(InstanceDiscoveryInterval), discovery, "The instance discovery interval is from 1 minute to 1 day, or null to turn discovery off.");
        }

        if (!(PruneRepackThreshold is >= 0.05 and <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(PruneRepackThreshold), PruneRepackThreshold, "The repack threshold is a fraction from 0.05 to 1 (1 turns repacking off).");
        }
    }

    internal BackupClientOptions Clone() => (BackupClientOptions)MemberwiseClone();
}
