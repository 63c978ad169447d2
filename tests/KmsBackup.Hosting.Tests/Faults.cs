using System.Runtime.CompilerServices;

namespace KmsBackup.Hosting.Tests;

/// <summary>A store that fails every write while <see cref="FailWrites"/> is set, as a full or unreachable disk would.</summary>
public sealed class FlakyStore(BackupStore inner) : BackupStore
{
    private volatile bool _failWrites;
    private int _writes;

    public bool FailWrites
    {
        get => _failWrites;
        set => _failWrites = value;
    }

    public int Writes => Volatile.Read(ref _writes);

    protected override Task<bool> TryCreateCoreAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        if (_failWrites)
        {
            throw new BackupException(new Refusal(BackupErrorCode.StoreUnavailable, $"object '{key}'", "The test store refuses writes.", "Wait for the store to come back."));
        }

        Interlocked.Increment(ref _writes);
        return inner.TryCreateAsync(key, content, cancellationToken);
    }

    protected override Task<byte[]?> TryReadCoreAsync(string key, CancellationToken cancellationToken) => inner.TryReadAsync(key, cancellationToken);

    protected override async IAsyncEnumerable<StoreObject> ListCoreAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var item in inner.ListAsync(prefix, cancellationToken))
        {
            yield return item;
        }
    }

    protected override Task<bool> DeleteCoreAsync(string key, CancellationToken cancellationToken) => inner.DeleteAsync(key, cancellationToken);

    public override Task<StoreLease> AcquireLeaseAsync(string leaseName, string holder, TimeSpan duration, CancellationToken cancellationToken = default) =>
        inner.AcquireLeaseAsync(leaseName, holder, duration, cancellationToken);
}

/// <summary>A gateway that fails to read the instances named in <see cref="Broken"/>, and passes everything else through.</summary>
public sealed class BrokenInstanceGateway(InstanceGateway inner) : InstanceGateway
{
    public HashSet<string> Broken { get; } = new(StringComparer.Ordinal);

    public InstanceGateway Inner => inner;

    public override bool SupportsChangeFeed => inner.SupportsChangeFeed;

    public override Task<InstanceDescription?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken = default) => inner.GetInstanceAsync(instanceId, cancellationToken);

    public override IAsyncEnumerable<InstanceDescription> ListInstancesAsync(string? region = null, CancellationToken cancellationToken = default) => inner.ListInstancesAsync(region, cancellationToken);

    public override Task<SnapshotRead> ReadSnapshotAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        ThrowIfBroken(instanceId);
        return inner.ReadSnapshotAsync(instanceId, cancellationToken);
    }

    public override Task<InstanceChanges> ReadChangesAsync(string instanceId, string cursor, CancellationToken cancellationToken = default)
    {
        ThrowIfBroken(instanceId);
        return inner.ReadChangesAsync(instanceId, cursor, cancellationToken);
    }

    public override Task<IReadOnlyList<NameInUse>> FindNamesInUseAsync(string region, ItemType type, IReadOnlyCollection<string> names, CancellationToken cancellationToken = default) =>
        inner.FindNamesInUseAsync(region, type, names, cancellationToken);

    public override Task<IReadOnlySet<string>> FindKeyIdsAsync(string instanceId, IReadOnlyCollection<string> keyIds, CancellationToken cancellationToken = default) =>
        inner.FindKeyIdsAsync(instanceId, keyIds, cancellationToken);

    public override Task<bool> CreateKeyAsync(string instanceId, KeyRecord key, string operationId, CancellationToken cancellationToken = default) =>
        inner.CreateKeyAsync(instanceId, key, operationId, cancellationToken);

    public override Task<bool> CreateSecretAsync(string instanceId, SecretRecord secret, string operationId, CancellationToken cancellationToken = default) =>
        inner.CreateSecretAsync(instanceId, secret, operationId, cancellationToken);

    public override Task<bool> DeleteRestoredItemAsync(string instanceId, ItemType type, string name, string operationId, CancellationToken cancellationToken = default) =>
        inner.DeleteRestoredItemAsync(instanceId, type, name, operationId, cancellationToken);

    private void ThrowIfBroken(string instanceId)
    {
        if (Broken.Contains(instanceId))
        {
            throw new IOException($"The test gateway cannot reach instance {instanceId}.");
        }
    }
}
