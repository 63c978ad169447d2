namespace KmsBackup;

/// <summary>The four kinds of backup (rule K1), each with its own viewable days, cost, deletion policy and allowed operations.</summary>
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
