namespace KmsBackup.Domain;

/// <summary>Whether a backup kind is charged for (rule K3). The SDK records purchases; it prices nothing.</summary>
internal enum BackupCost
{
    /// <summary>No charge.</summary>
    Free = 1,

    /// <summary>Charged by purchase duration and viewable days.</summary>
    Paid = 2,
}
