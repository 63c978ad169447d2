using KmsBackup.Repository;

namespace KmsBackup;

/// <summary>Hardware instances (rules H2–H7): protection, jointly restorable dates, HSM image restores and their checks, through the HSM cluster gateway.</summary>
internal sealed class HardwareOperations
{
    private readonly BackupCatalog _catalog;
    private readonly BackupDataReader _data;
    private readonly BackupRepository _repository;
    private readonly InstanceGateway _instances;
    private readonly BackupClientOptions _options;

    internal HardwareOperations(BackupCatalog catalog, BackupDataReader data)
    {
        _catalog = catalog;
        _data = data;
        _repository = catalog.Repository;
        _instances = catalog.Instances;
        _options = catalog.Options;
    }

    internal HsmClusterGateway Hsm => _catalog.HsmClusters ?? throw new BackupException(new Refusal(
        BackupErrorCode.OperationNotSupported, "HSM cluster gateway",
        "No HSM cluster gateway is configured, so the client cannot see the HSM clusters of hardware instances.",
        "Open the client with the gateway of your HSM clusters (BackupClient.OpenAsync's hsmClusters, for example the PKCS#11 one)."));

    internal async Task<InstanceProtection> GetProtectionAsync(string callerAccount, string instanceId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(callerAccount);
        var instance = await _catalog.GetInstanceAsync(instanceId, cancellationToken).ConfigureAwait(false);
        ThrowIfNotInstanceOwner(callerAccount, instance);
        var now = _catalog.Clock.GetUtcNow();
        int? viewableDays = null;
        foreach (var entry in (await _repository.LoadStatesAsync(cancellationToken).ConfigureAwait(false)).States)
        {
            var state = BackupLifecycle.Advance(entry.State, now).State;
            if (state.Status == BackupStatus.Enabled && string.Equals(state.Instance?.Id, instanceId, StringComparison.Ordinal))
            {
                viewableDays = Math.Max(viewableDays ?? 0, state.ViewableDays);
            }
        }

        var cluster = instance.Info.Kind == InstanceKind.Hardware
            ? await Hsm.FindClusterOfInstanceAsync(instanceId, cancellationToken).ConfigureAwait(false)
            : null;
        return HardwareRules.AssessProtection(instance.Info, viewableDays, cluster);
    }

    internal async Task<IReadOnlyList<DateOnly>> GetJointlyRestorableDatesAsync(string callerAccount, string backupId, CancellationToken cancellationToken = default)
    {
        var (entry, cluster) = await LoadHardwareBackupAsync(callerAccount, backupId, cancellationToken).ConfigureAwait(false);
        var state = entry.State;
        var window = state.WindowAt(_catalog.Clock.GetUtcNow());
        var kmsDates = (await _catalog.PointsAsync(state, cancellationToken).ConfigureAwait(false))
            .Select(p => p.Date)
            .Where(d => window is { } w && w.Contains(d));
        var images = await Hsm.ListBackupImagesAsync(cluster.ClusterId, cancellationToken).ConfigureAwait(false);
        return HardwareRules.JointlyRestorableDates(kmsDates, images.Select(i => state.TimeZone.DateOf(i.TakenAt)));
    }

    internal async Task<HsmBackupImage> RestoreHsmImageAsync(
        string callerAccount, string backupId, string targetClusterId, string? region = null, CancellationToken cancellationToken = default)
    {
        var (entry, source) = await LoadHardwareBackupAsync(callerAccount, backupId, cancellationToken).ConfigureAwait(false);
        var refusals = await CheckHsmRestoreTargetAsync(callerAccount, targetClusterId, region ?? entry.State.Instance!.Region, cancellationToken).ConfigureAwait(false);
        if (refusals.Count > 0)
        {
            throw refusals[0].ToException();
        }

        var images = await Hsm.ListBackupImagesAsync(source.ClusterId, cancellationToken).ConfigureAwait(false);
        var image = HardwareRules.SelectImageForRestore(images) ?? throw new BackupException(new Refusal(
            BackupErrorCode.HsmImageNotFound, $"cluster '{source.ClusterId}'",
            $"The HSM cluster '{source.ClusterId}' has no backup image of type Auto Create to restore.",
            "Enable data backup and recovery on the HSM cluster and wait for its first scheduled image."));
        await Hsm.RestoreImageAsync(image.ImageId, targetClusterId, cancellationToken).ConfigureAwait(false);
        return image;
    }

    internal async Task<IReadOnlyList<Refusal>> CheckHsmRestoreTargetAsync(string callerAccount, string targetClusterId, string region, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(callerAccount);
        ArgumentException.ThrowIfNullOrWhiteSpace(targetClusterId);
        var target = await Hsm.GetClusterAsync(targetClusterId, cancellationToken).ConfigureAwait(false);

        // Another account's cluster reads as a missing one: its facts would tell one tenant about another (DESIGN.md §4).
        return target is null || !string.Equals(target.OwnerAccount, callerAccount, StringComparison.Ordinal)
            ? [ClusterNotFound(callerAccount, targetClusterId)]
            : HardwareRules.CheckRestoreCluster(target, region);
    }

    internal async Task<IReadOnlyList<Refusal>> CheckHardwareRestoreAsync(
        string callerAccount, string backupId, DateTimeOffset at, string targetInstanceId, CancellationToken cancellationToken = default)
    {
        var entry = await _catalog.LoadOwnedAsync(callerAccount, backupId, cancellationToken).ConfigureAwait(false);
        var source = entry.State.Instance ?? throw NotHardware(backupId);
        if (source.Kind != InstanceKind.Hardware)
        {
            throw NotHardware(backupId);
        }

        var target = await GetOwnInstanceAsync(entry.OwnerAccount, targetInstanceId, cancellationToken).ConfigureAwait(false);
        var refusals = new List<Refusal>(HardwareRules.CheckRestoreInstance(source.Id, target.Info));
        if (refusals.Count > 0)
        {
            return refusals;
        }

        var cluster = await Hsm.FindClusterOfInstanceAsync(targetInstanceId, cancellationToken).ConfigureAwait(false);
        if (cluster is null)
        {
            refusals.Add(new Refusal(
                BackupErrorCode.NotFound, $"instance '{targetInstanceId}'",
                $"The hardware instance '{targetInstanceId}' is connected to no HSM cluster, so its keys' material cannot be checked.",
                "Connect the new hardware instance to the HSM cluster into which the most recent Auto Create image was restored."));
            return refusals;
        }

        var (_, snapshot) = await _data.StateAtAsync(callerAccount, backupId, at, withValues: false, cancellationToken).ConfigureAwait(false);
        var keys = snapshot.Keys.Select(k => (k.Name, k.Id)).ToList();
        var present = await Hsm.FindPresentKeysAsync(cluster.ClusterId, keys.Select(k => k.Id), cancellationToken).ConfigureAwait(false);
        refusals.AddRange(HardwareRules.CheckKeyMaterial(cluster.ClusterId, keys, present));
        return refusals;
    }

    /// <summary>Adds the HSM info of a hardware instance's backup to its details (rule H6), when an HSM gateway is configured and reachable.</summary>
    internal async Task<BackupDetails> WithHsmAsync(BackupDetails details, CancellationToken cancellationToken)
    {
        if (details.Instance is not { Kind: InstanceKind.Hardware } instance || _catalog.HsmClusters is not { } gateway)
        {
            return details;
        }

        HsmClusterInfo? cluster;
        try
        {
            cluster = await gateway.FindClusterOfInstanceAsync(instance.Id, cancellationToken).ConfigureAwait(false);
        }
        catch (BackupException e) when (e.Code == BackupErrorCode.HsmLibraryNotFound || e.Code == BackupErrorCode.HsmTokenNotFound ||
                                        e.Code == BackupErrorCode.HsmLoginFailed || e.Code == BackupErrorCode.HsmOperationFailed)
        {
            // An unreachable HSM must not make the backup itself unreadable: its details come without the HSM info.
            return details;
        }

        return cluster is null ? details : details with { Hsm = new HsmClusterReference(cluster.ClusterId, cluster.PrimaryHsmId ?? (cluster.Hsms.Count > 0 ? cluster.Hsms[0].HsmId : "none")) };
    }

    internal async Task<(CatalogEntry Entry, HsmClusterInfo Cluster)> LoadHardwareBackupAsync(string callerAccount, string backupId, CancellationToken cancellationToken)
    {
        var entry = await _catalog.LoadOwnedForAsync(callerAccount, backupId, BackupOperation.View, date: null, cancellationToken).ConfigureAwait(false);

        var instance = entry.State.Instance;
        if (instance is not { Kind: InstanceKind.Hardware })
        {
            throw NotHardware(backupId);
        }

        var cluster = await Hsm.FindClusterOfInstanceAsync(instance.Id, cancellationToken).ConfigureAwait(false)
            ?? throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, $"instance '{instance.Id}'",
                $"No HSM cluster is known for the hardware instance '{instance.Id}' of backup '{backupId}'.",
                "Check that the HSM cluster gateway serves the cluster the instance was connected to."));
        return (entry, cluster);
    }

    internal static void ThrowIfNotInstanceOwner(string callerAccount, InstanceDescription instance)
    {
        if (!string.Equals(instance.OwnerAccount, callerAccount, StringComparison.Ordinal))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.AccessDenied, $"instance '{instance.Info.Id}'",
                $"The account '{callerAccount}' does not own the instance '{instance.Info.Id}'.",
                "Act as the account that owns the instance."));
        }
    }

    internal static BackupException NotHardware(string backupId) => new(new Refusal(
        BackupErrorCode.InstanceKindMismatch, $"backup '{backupId}'",
        $"The backup '{backupId}' does not back up a hardware instance.",
        "Use a backup of a hardware instance; software backups need no HSM."));

    /// <summary>An instance of <paramref name="ownerAccount"/>; one that is missing and one of another account are refused alike.</summary>
    internal async Task<InstanceDescription> GetOwnInstanceAsync(string ownerAccount, string instanceId, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        var instance = await _instances.GetInstanceAsync(instanceId, cancellationToken).ConfigureAwait(false);
        if (instance is null || !string.Equals(instance.OwnerAccount, ownerAccount, StringComparison.Ordinal))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, $"instance '{instanceId}'",
                $"There is no instance '{instanceId}' of the account '{ownerAccount}': it does not exist, or it belongs to another account.",
                "Check the instance ID, or create the instance first."));
        }

        return instance;
    }

    // Missing, another account's and assigned to no account read the same, to the letter: the caller learns only that it cannot use it.
    internal static Refusal ClusterNotFound(string callerAccount, string clusterId) => new(
        BackupErrorCode.NotFound, $"cluster '{clusterId}'",
        $"There is no HSM cluster '{clusterId}' of the account '{callerAccount}': it does not exist, or it belongs to another account.",
        "Check the cluster ID, or purchase an HSM instance in cluster mode in the region of the restore and use its cluster ID.");
}
