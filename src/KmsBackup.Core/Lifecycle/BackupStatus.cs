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
