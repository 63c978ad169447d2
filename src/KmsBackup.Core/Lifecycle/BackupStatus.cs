namespace KmsBackup;

/// <summary>Where a backup is in its lifecycle (rule L1).</summary>
public enum BackupStatus
{
    /// <summary>Unbound: not backing up any instance and holding no data. Shown as <c>Disabled</c>.</summary>
    Disabled = 1,

    /// <summary>Bound to an instance and backing it up (or, for an uploaded backup, holding its file's data).</summary>
    Enabled = 2,

    /// <summary>A purchased backup past its expiry: nothing but renewal is possible until it is released.</summary>
    Expired = 3,

    /// <summary>Deleted with all its data. Final.</summary>
    Released = 4,
}

/// <summary>What the engine must do after a lifecycle transition, besides storing the new state.</summary>
internal enum LifecycleEffect
{
    /// <summary>Run a full backup now (the first run after enabling, rule S1).</summary>
    RunFullBackup = 1,

    /// <summary>Permanently delete all data the backup holds (reset, release, deletion).</summary>
    DeleteAllData = 2,

    /// <summary>Record a charge for the purchase, extension or renewal (the SDK records; it prices nothing).</summary>
    RecordCharge = 3,
}
