using System.Runtime.CompilerServices;

namespace KmsBackup;

/// <summary>
/// The HSM clusters behind hardware key management instances, as the engine sees them: cluster info
/// (cluster ID, primary HSM, HSMs and zones, mode, region, state), HSM backup images, restore of an
/// image into a new cluster, and whether a key's material is present (rules H2–H7).
/// </summary>
/// <remarks>
/// Key material never crosses this port: the engine asks only whether a key's material is present, by
/// key ID. Implementations are thread-safe; every method takes a <see cref="CancellationToken"/> last.
/// </remarks>
public abstract class HsmClusterGateway
{
    /// <summary>For subclasses.</summary>
    protected HsmClusterGateway()
    {
    }

    /// <summary>Describes the cluster <paramref name="clusterId"/>, or returns <see langword="null"/> if there is none.</summary>
    /// <param name="clusterId">The cluster ID.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public abstract Task<HsmClusterInfo?> GetClusterAsync(string clusterId, CancellationToken cancellationToken = default);

    /// <summary>Lists the clusters, of one region or of all.</summary>
    /// <param name="region">A region, or <see langword="null"/> for all.</param>
    /// <param name="cancellationToken">Cancels the listing.</param>
    public abstract IAsyncEnumerable<HsmClusterInfo> ListClustersAsync(string? region = null, CancellationToken cancellationToken = default);

    /// <summary>The cluster the hardware instance <paramref name="instanceId"/> is (or was last) connected to, or <see langword="null"/>.</summary>
    /// <param name="instanceId">The hardware instance.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual async Task<HsmClusterInfo?> FindClusterOfInstanceAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        await foreach (var cluster in ListClustersAsync(null, cancellationToken).ConfigureAwait(false))
        {
            if (string.Equals(cluster.ConnectedInstanceId, instanceId, StringComparison.Ordinal))
            {
                return cluster;
            }
        }

        return null;
    }

    /// <summary>
    /// Connects a hardware instance to a cluster (the console's "Connect to HSM" when the instance is
    /// enabled): the cluster becomes enabled and in use, serving that instance.
    /// </summary>
    /// <param name="clusterId">The cluster.</param>
    /// <param name="instanceId">The hardware instance.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The cluster as it is now.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such cluster; <see cref="BackupErrorCode.ClusterInUse"/>: it serves another instance.</exception>
    public abstract Task<HsmClusterInfo> ConnectInstanceAsync(string clusterId, string instanceId, CancellationToken cancellationToken = default);

    /// <summary>Lists the HSM backup images of a cluster, oldest first.</summary>
    /// <param name="clusterId">The cluster the images were taken from.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such cluster.</exception>
    public abstract Task<IReadOnlyList<HsmBackupImage>> ListBackupImagesAsync(string clusterId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Restores an image into a new cluster: its keys are unwrapped inside the target's HSMs. The caller
    /// checks the target first (rule H5: <see cref="BackupClient.CheckHsmRestoreTargetAsync"/>); implementations refuse a
    /// target that holds keys.
    /// </summary>
    /// <param name="imageId">The image.</param>
    /// <param name="targetClusterId">The new cluster.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The target cluster as it is now.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.HsmImageNotFound"/>, <see cref="BackupErrorCode.NotFound"/> or <see cref="BackupErrorCode.ClusterInUse"/>.</exception>
    public abstract Task<HsmClusterInfo> RestoreImageAsync(string imageId, string targetClusterId, CancellationToken cancellationToken = default);

    /// <summary>Whether the material of the key <paramref name="keyId"/> is present in the cluster (in every HSM of it).</summary>
    /// <param name="clusterId">The cluster.</param>
    /// <param name="keyId">The key ID.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such cluster.</exception>
    public abstract Task<bool> IsKeyMaterialPresentAsync(string clusterId, string keyId, CancellationToken cancellationToken = default);

    /// <summary>Which of <paramref name="keyIds"/> have their material in the cluster. The default asks <see cref="IsKeyMaterialPresentAsync"/> for each.</summary>
    /// <param name="clusterId">The cluster.</param>
    /// <param name="keyIds">The key IDs.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual async Task<IReadOnlySet<string>> FindPresentKeysAsync(string clusterId, IEnumerable<string> keyIds, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(keyIds);
        var present = new HashSet<string>(StringComparer.Ordinal);
        foreach (var keyId in keyIds)
        {
            if (await IsKeyMaterialPresentAsync(clusterId, keyId, cancellationToken).ConfigureAwait(false))
            {
                present.Add(keyId);
            }
        }

        return present;
    }

    /// <summary>A helper for implementations: an async sequence of a list.</summary>
    /// <param name="items">The items.</param>
    /// <param name="cancellationToken">Cancels the enumeration.</param>
    protected static async IAsyncEnumerable<HsmClusterInfo> AsAsync(IEnumerable<HsmClusterInfo> items, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(items);
        foreach (var item in items)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return item;
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }
}
