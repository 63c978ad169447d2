namespace KmsBackup.Diagnostics;

/// <summary>
/// The names under which KmsBackup.Sdk reports what it does: one <see cref="System.Diagnostics.Metrics.Meter"/>
/// and one <see cref="System.Diagnostics.ActivitySource"/>, both named <see cref="MeterName"/>, and the
/// instruments, spans and tags below. Subscribe with OpenTelemetry's <c>AddMeter</c> and <c>AddSource</c>,
/// or with a <see cref="System.Diagnostics.Metrics.MeterListener"/> and <see cref="System.Diagnostics.ActivityListener"/>.
/// </summary>
/// <remarks>
/// Nothing reported here ever holds a secret value, key material, a data key or a repository key: tags
/// carry backup IDs, kinds, reasons, counts and error codes only.
/// </remarks>
public static class KmsBackupDiagnostics
{
    /// <summary>The meter's name: <c>KmsBackup</c>.</summary>
    public const string MeterName = "KmsBackup";

    /// <summary>The activity source's name: <c>KmsBackup</c>.</summary>
    public const string ActivitySourceName = "KmsBackup";

    /// <summary>Counter of backup runs that committed a recovery point (tags: backup kind, run kind, reason).</summary>
    public const string RunsInstrument = "kmsbackup.backup.runs";

    /// <summary>Counter of backup runs that failed (tags: backup kind, run kind when known, <c>error.type</c>).</summary>
    public const string FailuresInstrument = "kmsbackup.backup.run.failures";

    /// <summary>Histogram of how long a backup run took, in seconds (tags: backup kind, run kind, and <c>error.type</c> when it failed).</summary>
    public const string DurationInstrument = "kmsbackup.backup.run.duration";

    /// <summary>Histogram of the items (keys and secrets) a committed recovery point holds (tags: backup kind, run kind).</summary>
    public const string ItemsInstrument = "kmsbackup.backup.run.items";

    /// <summary>Counter of bytes that backup runs wrote to the store, in bytes (tags: backup kind, run kind).</summary>
    public const string BytesInstrument = "kmsbackup.backup.run.bytes";

    /// <summary>Histogram of how late a run started after it was due, in seconds: the lag behind schedule (tags: backup kind, run kind, reason).</summary>
    public const string LagInstrument = "kmsbackup.backup.run.lag";

    /// <summary>Counter of lookups the client's cache answered (<c>{lookup}</c>), tagged with <see cref="CacheKindTag"/>.</summary>
    public const string CacheHitsInstrument = "kmsbackup.cache.hits";

    /// <summary>Counter of lookups the client's cache could not answer, so that the store was read (<c>{lookup}</c>), tagged with <see cref="CacheKindTag"/>.</summary>
    public const string CacheMissesInstrument = "kmsbackup.cache.misses";

    /// <summary>Counter of entries the client's cache dropped to stay within <see cref="BackupClientOptions.CacheSize"/> (<c>{entry}</c>), tagged with <see cref="CacheKindTag"/>.</summary>
    public const string CacheEvictionsInstrument = "kmsbackup.cache.evictions";

    /// <summary>Up-down counter of the bytes the clients' caches hold, as estimated (<c>By</c>), tagged with <see cref="CacheKindTag"/>.</summary>
    public const string CacheSizeInstrument = "kmsbackup.cache.size";

    /// <summary>The span of one backup run.</summary>
    public const string BackupRunActivity = "kmsbackup.backup.run";

    /// <summary>The span of a restore (planning and, for a restore that runs, its execution).</summary>
    public const string RestoreActivity = "kmsbackup.restore";

    /// <summary>The span of a restore plan made without restoring.</summary>
    public const string RestorePlanActivity = "kmsbackup.restore.plan";

    /// <summary>The span of a backup file download.</summary>
    public const string DownloadActivity = "kmsbackup.download";

    /// <summary>The span of a backup file upload.</summary>
    public const string UploadActivity = "kmsbackup.upload";

    /// <summary>The activity of a recovery drill (<see cref="BackupClient.DrillAsync"/>).</summary>
    public const string DrillActivity = "kmsbackup.drill";

    /// <summary>The span of a repository key rotation.</summary>
    public const string RotateKeyActivity = "kmsbackup.repository.rotate_key";

    /// <summary>The span of a rekey (re-encryption of data under the current key generation).</summary>
    public const string RekeyActivity = "kmsbackup.repository.rekey";

    /// <summary>Tag: the backup's ID.</summary>
    public const string BackupIdTag = "kmsbackup.backup.id";

    /// <summary>Tag: the backup's kind, in lower case (<c>automatic</c>, <c>default</c>, <c>purchased</c>, <c>uploaded</c>).</summary>
    public const string BackupKindTag = "kmsbackup.backup.kind";

    /// <summary>Tag: the run's kind, <c>full</c> or <c>incremental</c>.</summary>
    public const string RunKindTag = "kmsbackup.run.kind";

    /// <summary>Tag: why the run ran (<c>first_full</c>, <c>daily_full</c>, <c>catch_up_full</c>, <c>incremental</c>, <c>catch_up_incremental</c>).</summary>
    public const string RunReasonTag = "kmsbackup.run.reason";

    /// <summary>Tag: the failure, as a stable error code (<see cref="BackupErrorCode"/>) or an exception type name (OpenTelemetry's <c>error.type</c>).</summary>
    public const string ErrorTypeTag = "error.type";

    /// <summary>Tag: the target instance of a restore.</summary>
    public const string TargetInstanceTag = "kmsbackup.restore.target_instance";

    /// <summary>Tag: the number of items a restore created.</summary>
    public const string RestoredItemsTag = "kmsbackup.restore.items";

    /// <summary>Tag: the backup date of a downloaded or uploaded file.</summary>
    public const string BackupDateTag = "kmsbackup.backup.date";

    /// <summary>Tag of the cache instruments: what the entry is (<c>point_list</c>, <c>manifest</c> or <c>last_point</c>).</summary>
    public const string CacheKindTag = "kmsbackup.cache.kind";
}
