namespace KmsBackup.Domain;

/// <summary>What a caller can ask of a backup. Which ones a kind allows is in <see cref="BackupKindPolicy.AllowedOperations"/>.</summary>
[Flags]
#pragma warning disable CA1714 // Flags enums should have plural names: each value is one operation.
internal enum BackupOperation
#pragma warning restore CA1714
{
    /// <summary>No operation.</summary>
    None = 0,

    /// <summary>Bind the backup to an instance and start backing it up.</summary>
    Enable = 1 << 0,

    /// <summary>View a date's backed-up data.</summary>
    View = 1 << 1,

    /// <summary>Restore keys and secrets from a date's data.</summary>
    Restore = 1 << 2,

    /// <summary>Download a date's data as an encrypted backup file.</summary>
    Download = 1 << 3,

    /// <summary>Increase the viewable days.</summary>
    Extend = 1 << 4,

    /// <summary>Delete all backed-up data and unbind the backup.</summary>
    Reset = 1 << 5,

    /// <summary>Extend a purchased backup's term, or reactivate it after expiry.</summary>
    Renew = 1 << 6,

    /// <summary>Delete the backup itself (uploaded backups only).</summary>
    Delete = 1 << 7,
}
