using System.Globalization;

namespace KmsBackup.Domain;

/// <summary>
/// The rules of hardware (HSM-backed) instances as pure functions (rules H1–H5, H7 and R3): facts in,
/// refusals and warnings out. The engine gathers the facts from its ports.
/// </summary>
internal static class HardwareRules
{
    /// <summary>How many days an HSM image lags the KMS metadata it completes: the image of date D+1 holds the material of the keys of date D (rules H3, H7).</summary>
    public const int HsmLagDays = 1;

    /// <summary>Rule H1: a hardware instance can be backed up only with image version 3.9.1 or later.</summary>
    /// <param name="instance">The instance to back up.</param>
    /// <returns>The refusal, or <see langword="null"/> when the instance may be backed up (software instances always may).</returns>
    public static Refusal? CheckImageVersion(InstanceInfo instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        if (instance.Kind != InstanceKind.Hardware ||
            (instance.ImageVersion is { } version && version >= InstanceInfo.MinimumHardwareImageVersion))
        {
            return null;
        }

        var shown = instance.ImageVersion?.ToString() ?? "unknown";
        return new Refusal(
            BackupErrorCode.ImageVersionTooOld, $"instance '{instance.Id}'",
            $"The hardware instance '{instance.Id}' has image version {shown}; backup needs {InstanceInfo.MinimumHardwareImageVersion} or later.",
            $"Upgrade the instance's image version to {InstanceInfo.MinimumHardwareImageVersion} or later, then enable the backup.");
    }

    /// <summary>
    /// Rule H2 (with H3 and H4): an instance's protection. A software instance is fully protected by an
    /// enabled KMS backup. A hardware instance needs both the KMS backup and the HSM backup of its
    /// cluster; "metadata only: HSM backup disabled" is a warning, as are an HSM backup offset other than
    /// one day (H3) and mirror images other than the viewable days (H4).
    /// </summary>
    /// <param name="instance">The instance.</param>
    /// <param name="kmsViewableDays">The viewable days of the enabled KMS backup of the instance (the largest, when several), or <see langword="null"/> when none is enabled.</param>
    /// <param name="cluster">The HSM cluster the hardware instance is connected to; <see langword="null"/> for a software instance or when unknown.</param>
    public static InstanceProtection AssessProtection(InstanceInfo instance, int? kmsViewableDays, HsmClusterInfo? cluster)
    {
        ArgumentNullException.ThrowIfNull(instance);
        var kms = kmsViewableDays is not null;
        var warnings = new List<HardwareWarning>();
        var item = $"instance '{instance.Id}'";
        if (!kms)
        {
            warnings.Add(new HardwareWarning(
                BackupErrorCode.KmsBackupDisabled, item,
                $"No enabled KMS backup backs up the instance '{instance.Id}': its keys' metadata and its secrets are not protected.",
                "Enable a default or purchased backup for the instance (hardware instances created on or after 2026-04-01 get an automatic one)."));
        }

        if (instance.Kind == InstanceKind.Software)
        {
            return new InstanceProtection
            {
                InstanceId = instance.Id, Kind = instance.Kind, KmsBackupEnabled = kms, HsmBackupEnabled = false,
                Level = kms ? ProtectionLevel.Full : ProtectionLevel.Unprotected, Warnings = warnings,
            };
        }

        var hsm = cluster?.Backup.Enabled == true;
        if (cluster is null)
        {
            warnings.Add(new HardwareWarning(
                BackupErrorCode.HsmBackupDisabled, item,
                $"The hardware instance '{instance.Id}' is connected to no known HSM cluster: metadata only, its key material is not backed up.",
                "Connect the instance to its HSM cluster and enable data backup and recovery on the cluster."));
        }
        else if (!hsm)
        {
            warnings.Add(new HardwareWarning(
                BackupErrorCode.HsmBackupDisabled, $"cluster '{cluster.ClusterId}'",
                $"Metadata only: HSM backup disabled. The HSM cluster '{cluster.ClusterId}' of the hardware instance '{instance.Id}' does not back up its key material.",
                "Enable data backup and recovery on the HSM cluster, with as many mirror images as the KMS backup's viewable days."));
        }
        else
        {
            if (CheckBackupOffset(cluster.ClusterId, cluster.Backup.OffsetFromKmsBackup) is { } offset)
            {
                warnings.Add(offset);
            }

            if (kmsViewableDays is { } days && CheckMirrorImages(cluster.ClusterId, cluster.Backup.MirrorImages, days) is { } mirrors)
            {
                warnings.Add(mirrors);
            }
        }

        var level = (kms, hsm) switch
        {
            (true, true) => ProtectionLevel.Full,
            (true, false) => ProtectionLevel.MetadataOnly,
            (false, true) => ProtectionLevel.KeyMaterialOnly,
            _ => ProtectionLevel.Unprotected,
        };
        return new InstanceProtection
        {
            InstanceId = instance.Id, Kind = instance.Kind, KmsBackupEnabled = kms, HsmBackupEnabled = hsm, Level = level, Warnings = warnings,
        };
    }

    /// <summary>Rule H3: the HSM backup should run exactly one day after the KMS backup, so that each day's image holds the material of every key of the day before.</summary>
    /// <param name="clusterId">The HSM cluster.</param>
    /// <param name="offsetFromKmsBackup">The HSM backup time minus the KMS backup time.</param>
    /// <returns>A warning, or <see langword="null"/> when the offset is one day.</returns>
    public static HardwareWarning? CheckBackupOffset(string clusterId, TimeSpan offsetFromKmsBackup)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(clusterId);
        if (offsetFromKmsBackup == HsmBackupPolicy.RecommendedOffset)
        {
            return null;
        }

        var why = offsetFromKmsBackup < HsmBackupPolicy.RecommendedOffset
            ? "an image may be taken before the keys of the KMS backup's day exist, so restored metadata may name keys whose material no image holds"
            : "each image lags the KMS backup by more than a day, so the newest KMS dates have no image that holds their keys' material";
        return new HardwareWarning(
            BackupErrorCode.HsmBackupOffset, $"cluster '{clusterId}'",
            string.Create(CultureInfo.InvariantCulture, $"The HSM backup of cluster '{clusterId}' runs {Describe(offsetFromKmsBackup)} after the KMS backup, not one day: {why}."),
            "Set the HSM backup time one day later than the KMS backup time.");
    }

    /// <summary>Rule H4: the number of HSM mirror images should equal the KMS backup's viewable days, otherwise the backup may be incomplete.</summary>
    /// <param name="clusterId">The HSM cluster.</param>
    /// <param name="mirrorImages">The mirror images the cluster keeps.</param>
    /// <param name="viewableDays">The KMS backup's viewable days.</param>
    /// <returns>A warning, or <see langword="null"/> when they are equal.</returns>
    public static HardwareWarning? CheckMirrorImages(string clusterId, int mirrorImages, int viewableDays)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(clusterId);
        ArgumentOutOfRangeException.ThrowIfNegative(mirrorImages);
        ArgumentOutOfRangeException.ThrowIfLessThan(viewableDays, 1);
        if (mirrorImages == viewableDays)
        {
            return null;
        }

        var message = mirrorImages < viewableDays
            ? string.Create(CultureInfo.InvariantCulture, $"The HSM cluster '{clusterId}' keeps {mirrorImages} mirror images but the KMS backup has {viewableDays} viewable days: the backup may be incomplete, as the oldest {viewableDays - mirrorImages} viewable dates have no image that holds their keys' material.")
            : string.Create(CultureInfo.InvariantCulture, $"The HSM cluster '{clusterId}' keeps {mirrorImages} mirror images but the KMS backup has {viewableDays} viewable days: {mirrorImages - viewableDays} images complete no viewable date.");
        return new HardwareWarning(
            BackupErrorCode.MirrorImagesMismatch, $"cluster '{clusterId}'", message,
            string.Create(CultureInfo.InvariantCulture, $"Keep the number of mirror images equal to the viewable days: {viewableDays}."));
    }

    /// <summary>
    /// Rule H5: the checks on the HSM cluster a hardware instance is restored into. It must be in the
    /// region of the restore, in cluster mode, with at least two HSMs across at least two availability
    /// zones, not enabled and not in use. Each violation is one refusal.
    /// </summary>
    /// <param name="target">The target cluster.</param>
    /// <param name="region">The region the hardware instance is restored into.</param>
    /// <returns>Every violation; empty when the cluster may take the restore.</returns>
    public static IReadOnlyList<Refusal> CheckRestoreCluster(HsmClusterInfo target, string region)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentException.ThrowIfNullOrWhiteSpace(region);
        var item = $"cluster '{target.ClusterId}'";
        var refusals = new List<Refusal>();
        if (!string.Equals(target.Region, region, StringComparison.Ordinal))
        {
            refusals.Add(new Refusal(
                BackupErrorCode.RegionMismatch, item,
                $"The HSM cluster '{target.ClusterId}' is in region '{target.Region}', not in '{region}' where the hardware instance is restored.",
                $"Purchase an HSM instance in '{region}', the region where you want to restore the hardware key management instance."));
        }

        if (target.Mode != HsmClusterMode.Cluster)
        {
            refusals.Add(new Refusal(
                BackupErrorCode.ClusterNotInClusterMode, item,
                $"The HSM instance '{target.ClusterId}' is not deployed in cluster mode; backup management supports only HSMs in cluster mode.",
                "Purchase an HSM instance in cluster mode, with at least two HSMs across two availability zones."));
        }

        if (target.Hsms.Count < 2 || target.ZoneCount < 2)
        {
            refusals.Add(new Refusal(
                BackupErrorCode.ClusterTooFewHsms, item,
                string.Create(CultureInfo.InvariantCulture, $"The HSM cluster '{target.ClusterId}' has {target.Hsms.Count} {(target.Hsms.Count == 1 ? "HSM" : "HSMs")} in {target.ZoneCount} availability {(target.ZoneCount == 1 ? "zone" : "zones")}; a restore target needs at least two HSMs across at least two zones."),
                "Purchase an HSM cluster with at least two HSMs across dual availability zones."));
        }

        if (target.IsEnabled)
        {
            refusals.Add(new Refusal(
                BackupErrorCode.ClusterEnabled, item,
                $"The HSM cluster '{target.ClusterId}' is already enabled; an image can be restored only into a cluster that was never enabled.",
                "Do not enable the HSM instance after the purchase; if it is enabled, contact technical support to disable and reset it first."));
        }

        if (target.IsInUse)
        {
            var by = target.ConnectedInstanceId is null ? "holds keys" : $"serves the instance '{target.ConnectedInstanceId}'";
            refusals.Add(new Refusal(
                BackupErrorCode.ClusterInUse, item,
                $"The HSM cluster '{target.ClusterId}' is in use (it {by}); restoring an image into it would overwrite its keys.",
                "Contact technical support to disable and reset the HSM instance first, or purchase a new one."));
        }

        return refusals;
    }

    /// <summary>
    /// Rule R3 (with H5): a hardware instance's data restores only into a new hardware instance, never
    /// into the original one.
    /// </summary>
    /// <param name="sourceInstanceId">The hardware instance the backup backs up.</param>
    /// <param name="target">The instance to restore into.</param>
    /// <returns>Every violation; empty when the target may take the restore.</returns>
    public static IReadOnlyList<Refusal> CheckRestoreInstance(string sourceInstanceId, InstanceInfo target)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sourceInstanceId);
        ArgumentNullException.ThrowIfNull(target);
        var refusals = new List<Refusal>();
        var item = $"instance '{target.Id}'";
        if (string.Equals(sourceInstanceId, target.Id, StringComparison.Ordinal))
        {
            refusals.Add(new Refusal(
                BackupErrorCode.RestoreTargetNotAllowed, item,
                $"The hardware instance '{target.Id}' is the instance the backup was taken from; a hardware instance's data cannot be restored to the original instance.",
                "Restore into a new hardware instance connected to a new HSM cluster into which the most recent Auto Create HSM image was restored."));
        }

        if (target.Kind != InstanceKind.Hardware)
        {
            refusals.Add(new Refusal(
                BackupErrorCode.InstanceKindMismatch, item,
                $"The instance '{target.Id}' is a software instance; a hardware instance's keys hold metadata only and restore only into a hardware instance.",
                "Create and enable a new hardware instance connected to the restored HSM cluster, and restore into it."));
        }

        return refusals;
    }

    /// <summary>Rule H5: the image to restore into the new cluster, the most recent of type <c>Auto Create</c>.</summary>
    /// <param name="images">The images of the original cluster.</param>
    /// <returns>The image, or <see langword="null"/> when there is no <c>Auto Create</c> image.</returns>
    public static HsmBackupImage? SelectImageForRestore(IEnumerable<HsmBackupImage> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        return images.Where(i => i.Type == HsmBackupImageType.AutoCreate)
            .OrderByDescending(i => i.TakenAt)
            .ThenByDescending(i => i.ImageId, StringComparer.Ordinal)
            .FirstOrDefault();
    }

    /// <summary>
    /// Rule H7: the jointly restorable dates of a hardware instance: the dates with KMS metadata whose
    /// keys' material is held by an HSM image taken <paramref name="lagDays"/> later (the HSM lags a day).
    /// </summary>
    /// <param name="kmsDates">The dates with KMS metadata (recovery points) that can be restored.</param>
    /// <param name="imageDates">The dates (in the backup's time zone) on which HSM images were taken.</param>
    /// <param name="lagDays">How many days an image lags the metadata it completes; default <see cref="HsmLagDays"/>.</param>
    /// <returns>The jointly restorable dates, ascending, each once.</returns>
    public static IReadOnlyList<DateOnly> JointlyRestorableDates(IEnumerable<DateOnly> kmsDates, IEnumerable<DateOnly> imageDates, int lagDays = HsmLagDays)
    {
        ArgumentNullException.ThrowIfNull(kmsDates);
        ArgumentNullException.ThrowIfNull(imageDates);
        ArgumentOutOfRangeException.ThrowIfNegative(lagDays);
        var images = imageDates.ToHashSet();
        return kmsDates
            .Distinct()
            .Where(d => d.DayNumber + lagDays <= DateOnly.MaxValue.DayNumber && images.Contains(d.AddDays(lagDays)))
            .Order()
            .ToList();
    }

    /// <summary>
    /// Rule H7: the keys whose material is missing from an HSM cluster, each as a refusal naming the
    /// key, found before anything is restored.
    /// </summary>
    /// <param name="clusterId">The cluster the keys' material should be in.</param>
    /// <param name="keys">The keys (name and key ID) about to be restored.</param>
    /// <param name="presentKeyIds">The key IDs whose material the cluster holds.</param>
    /// <returns>One refusal per key whose material is missing, by key name.</returns>
    public static IReadOnlyList<Refusal> CheckKeyMaterial(string clusterId, IEnumerable<(string Name, string KeyId)> keys, IReadOnlySet<string> presentKeyIds)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(clusterId);
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(presentKeyIds);
        return keys
            .Where(k => !presentKeyIds.Contains(k.KeyId))
            .OrderBy(k => k.Name, StringComparer.Ordinal)
            .Select(k => new Refusal(
                BackupErrorCode.KeyMaterialMissing, $"key '{k.Name}'",
                $"The material of key '{k.Name}' ({k.KeyId}) is not in the HSM cluster '{clusterId}': restoring its metadata would give a key that cannot encrypt or decrypt.",
                "Restore a more recent Auto Create HSM image into the cluster, or restore from an earlier date whose keys the image holds; otherwise leave the key out of the restore."))
            .ToList();
    }

    private static string Describe(TimeSpan offset) =>
        offset == TimeSpan.Zero ? "at the same time" :
        offset.Ticks % TimeSpan.TicksPerDay == 0 ? string.Create(CultureInfo.InvariantCulture, $"{offset.Days} days") :
        offset.ToString("c", CultureInfo.InvariantCulture);
}
