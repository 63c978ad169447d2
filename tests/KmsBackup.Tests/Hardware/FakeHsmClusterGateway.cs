using System.Collections.Concurrent;

namespace KmsBackup.Tests.Hardware;

/// <summary>An in-memory HSM cluster gateway: clusters, their keys' material by key ID, and images of them.</summary>
public sealed class FakeHsmClusterGateway : HsmClusterGateway
{
    private readonly ConcurrentDictionary<string, HsmClusterInfo> _clusters = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Dictionary<string, byte[]>> _material = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (HsmBackupImage Image, Dictionary<string, byte[]> Keys)> _images = new(StringComparer.Ordinal);

    public static HsmClusterInfo NewCluster(string id, string region = EngineHarnessRegion.Region, string? owner = EngineHarnessRegion.Owner) => new()
    {
        ClusterId = id,
        Region = region,
        Mode = HsmClusterMode.Cluster,
        Hsms = [new HsmInfo($"{id}-hsm-a", $"{region}-h"), new HsmInfo($"{id}-hsm-b", $"{region}-i")],
        PrimaryHsmId = $"{id}-hsm-a",
        OwnerAccount = owner,
    };

    /// <summary>Every call the engine made, with the cluster or instance it concerned.</summary>
    public ConcurrentQueue<string> Calls { get; } = new();

    public void Add(HsmClusterInfo cluster)
    {
        _clusters[cluster.ClusterId] = cluster;
        _material.TryAdd(cluster.ClusterId, new Dictionary<string, byte[]>(StringComparer.Ordinal));
    }

    public void Update(string clusterId, Func<HsmClusterInfo, HsmClusterInfo> change) => _clusters[clusterId] = change(_clusters[clusterId]);

    public void PutKey(string clusterId, string keyId, byte[] material)
    {
        _material[clusterId][keyId] = material;
        Update(clusterId, c => c with { IsInUse = true });
    }

    public void RemoveKey(string clusterId, string keyId) => _material[clusterId].Remove(keyId);

    public HsmBackupImage TakeImage(string clusterId, string imageId, DateTimeOffset at, HsmBackupImageType type = HsmBackupImageType.AutoCreate)
    {
        var keys = new Dictionary<string, byte[]>(_material[clusterId], StringComparer.Ordinal);
        var image = new HsmBackupImage(imageId, clusterId, type, at) { KeyCount = keys.Count };
        _images[imageId] = (image, keys);
        return image;
    }

    public override Task<HsmClusterInfo?> GetClusterAsync(string clusterId, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue($"get {clusterId}");
        return Task.FromResult(_clusters.TryGetValue(clusterId, out var c) ? c : null);
    }

    public override Task<HsmClusterInfo?> FindClusterOfInstanceAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue($"cluster-of {instanceId}");
        return base.FindClusterOfInstanceAsync(instanceId, cancellationToken);
    }

    /// <summary>When set, listing clusters fails with it, as an unreachable HSM does.</summary>
    public BackupException? Failure { get; set; }

    public override IAsyncEnumerable<HsmClusterInfo> ListClustersAsync(string? region = null, CancellationToken cancellationToken = default) =>
        Failure is { } failure ? throw failure : AsAsync(_clusters.Values.Where(c => region is null || c.Region == region).OrderBy(c => c.ClusterId, StringComparer.Ordinal).ToList(), cancellationToken);

    public override Task<HsmClusterInfo> ConnectInstanceAsync(string clusterId, string instanceId, CancellationToken cancellationToken = default)
    {
        Update(clusterId, c => c with { IsEnabled = true, IsInUse = true, ConnectedInstanceId = instanceId });
        return Task.FromResult(_clusters[clusterId]);
    }

    public override Task<IReadOnlyList<HsmBackupImage>> ListBackupImagesAsync(string clusterId, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<HsmBackupImage>>(_images.Values.Select(i => i.Image).Where(i => i.ClusterId == clusterId).OrderBy(i => i.TakenAt).ToList());

    public override Task<HsmClusterInfo> RestoreImageAsync(string imageId, string targetClusterId, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue($"restore {imageId} {targetClusterId}");
        var (_, keys) = _images[imageId];
        foreach (var (id, material) in keys)
        {
            _material[targetClusterId][id] = material;
        }

        Update(targetClusterId, c => c with { IsInUse = true });
        return Task.FromResult(_clusters[targetClusterId]);
    }

    public override Task<bool> IsKeyMaterialPresentAsync(string clusterId, string keyId, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue($"material {clusterId}");
        return Task.FromResult(_material.TryGetValue(clusterId, out var keys) && keys.ContainsKey(keyId));
    }
}

internal static class EngineHarnessRegion
{
    public const string Region = "cn-hangzhou";
    public const string Owner = "acct-owner";
}
