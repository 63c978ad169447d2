namespace KmsBackup;

/// <summary>The four kinds of backup (rule K1). <see cref="BackupKindPolicy.For"/> gives each kind's policy.</summary>
public enum BackupKind
{
    /// <summary>Created by the service when an eligible instance is enabled; labelled <c>System Created</c>.</summary>
    Automatic = 1,

    /// <summary>A free manual backup with 7 fixed viewable days; labelled <c>Default</c>.</summary>
    Default = 2,

    /// <summary>A paid manual backup with 7 to 600 viewable days and an expiry; labelled <c>Paid</c>.</summary>
    Purchased = 3,

    /// <summary>A backup imported from a downloaded backup file; labelled <c>Upload</c>.</summary>
    Uploaded = 4,
}

/// <summary>The kind of key management instance a backup backs up.</summary>
public enum InstanceKind
{
    /// <summary>A software key management instance: keys' metadata, key material and secrets are backed up.</summary>
    Software = 1,

    /// <summary>A hardware key management instance: only key metadata is backed up; the HSM cluster backs up key material.</summary>
    Hardware = 2,
}

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

/// <summary>Whether a backup kind is charged for (rule K3). The SDK records purchases; it prices nothing.</summary>
internal enum BackupCost
{
    /// <summary>No charge.</summary>
    Free = 1,

    /// <summary>Charged by purchase duration and viewable days.</summary>
    Paid = 2,
}
