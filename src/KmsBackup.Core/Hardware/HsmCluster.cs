namespace KmsBackup;

/// <summary>How an HSM instance is deployed. Backup management supports only <see cref="Cluster"/> (rule H5).</summary>
public enum HsmClusterMode
{
    /// <summary>One HSM on its own.</summary>
    Standalone = 1,

    /// <summary>Several HSMs whose keys are kept in step.</summary>
    Cluster = 2,
}

/// <summary>Where an HSM backup image came from.</summary>
public enum HsmBackupImageType
{
    /// <summary>Made by the HSM backup schedule; the console labels it <c>Auto Create</c>. Hardware restore uses the most recent one (rule H5).</summary>
    AutoCreate = 1,

    /// <summary>Made by hand.</summary>
    Manual = 2,
}

/// <summary>One HSM of a cluster and the availability zone it is in.</summary>
/// <param name="HsmId">The HSM's ID.</param>
/// <param name="Zone">Its availability zone.</param>
public sealed record HsmInfo(string HsmId, string Zone);

/// <summary>The HSM backup ("data backup and recovery") configured for a cluster (rules H2–H4).</summary>
/// <param name="Enabled">Whether HSM backup is enabled.</param>
/// <param name="MirrorImages">How many mirror images are kept (one per day); should equal the KMS backup's viewable days (H4).</param>
/// <param name="OffsetFromKmsBackup">The HSM backup time minus the KMS backup time; should be exactly one day (H3).</param>
public sealed record HsmBackupPolicy(bool Enabled, int MirrorImages, TimeSpan OffsetFromKmsBackup)
{
    /// <summary>The offset the seed asks for: the HSM backup runs one day after the KMS backup.</summary>
    public static TimeSpan RecommendedOffset { get; } = TimeSpan.FromDays(1);

    /// <summary>No HSM backup.</summary>
    public static HsmBackupPolicy Disabled { get; } = new(false, 0, TimeSpan.Zero);
}

/// <summary>An HSM cluster as the rules see it: ID, region, mode, HSMs and zones, state, and its HSM backup.</summary>
public sealed record HsmClusterInfo
{
    /// <summary>The cluster ID.</summary>
    public required string ClusterId { get; init; }

    /// <summary>The region the cluster is in.</summary>
    public required string Region { get; init; }

    /// <summary>Cluster or standalone.</summary>
    public required HsmClusterMode Mode { get; init; }

    /// <summary>The cluster's HSMs with their zones.</summary>
    public required IReadOnlyList<HsmInfo> Hsms { get; init; }

    /// <summary>The primary HSM's ID (rule H6); <see langword="null"/> when the cluster has no HSM.</summary>
    public string? PrimaryHsmId { get; init; }

    /// <summary>Whether the cluster has been enabled (a restore target must not be, rule H5).</summary>
    public bool IsEnabled { get; init; }

    /// <summary>Whether the cluster is in use: holds keys or serves an instance (a restore target must not be, rule H5).</summary>
    public bool IsInUse { get; init; }

    /// <summary>The hardware key management instance connected to the cluster, if any.</summary>
    public string? ConnectedInstanceId { get; init; }

    /// <summary>
    /// The account that owns the cluster (the account that purchased the HSM instance); <see langword="null"/>, the
    /// default, when the gateway assigns the cluster to no account.
    /// </summary>
    /// <remarks>
    /// Only the owner may check the cluster as the target of a hardware restore or restore an image into it
    /// (<c>BackupClient.CheckHsmRestoreTargetAsync</c>, <c>RestoreHsmImageAsync</c>); to any other account, and to
    /// every account when there is no owner, the cluster is refused exactly as a cluster that does not exist. A
    /// gateway that serves one account sets that account on each cluster.
    /// </remarks>
    public string? OwnerAccount { get; init; }

    /// <summary>The cluster's HSM backup.</summary>
    public HsmBackupPolicy Backup { get; init; } = HsmBackupPolicy.Disabled;

    /// <summary>How many distinct availability zones the HSMs are in.</summary>
    public int ZoneCount => Hsms.Select(h => h.Zone).Distinct(StringComparer.Ordinal).Count();
}

/// <summary>One HSM backup image: the cluster's keys, wrapped, at one instant.</summary>
/// <param name="ImageId">The image ID.</param>
/// <param name="ClusterId">The cluster it was taken from.</param>
/// <param name="Type"><c>Auto Create</c> or manual.</param>
/// <param name="TakenAt">When it was taken.</param>
public sealed record HsmBackupImage(string ImageId, string ClusterId, HsmBackupImageType Type, DateTimeOffset TakenAt)
{
    /// <summary>How many keys the image holds.</summary>
    public int KeyCount { get; init; }

    /// <summary>The console's label of <see cref="Type"/>: <c>Auto Create</c> or <c>Manual</c>.</summary>
    public string TypeLabel => Type == HsmBackupImageType.AutoCreate ? "Auto Create" : "Manual";
}
