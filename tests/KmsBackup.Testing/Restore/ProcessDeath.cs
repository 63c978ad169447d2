using System.Runtime.CompilerServices;

namespace KmsBackup.Testing;

/// <summary>
/// One process's death, shared by its gateway and store wrappers: once it has died, every later call
/// of that process fails, so no rollback, journal write or lease release of its can run.
/// </summary>
public sealed class ProcessDeath
{
    private volatile bool _dead;

    public bool IsDead => _dead;

    public IOException Die()
    {
        _dead = true;
        return Killed();
    }

    public void ThrowIfDead()
    {
        if (_dead)
        {
            throw Killed();
        }
    }

    private static IOException Killed() => new("The process died (injected).");
}

/// <summary>An instance gateway whose process dies right after its k-th create lands (the create is in the target, the reply never comes).</summary>
public sealed class DyingGateway(InstanceGateway inner, ProcessDeath death, int dieAfterCreate) : InstanceGateway
{
    private int _creates;

    public override bool SupportsChangeFeed => inner.SupportsChangeFeed;

    public override Task<InstanceDescription?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken = default) => Alive(() => inner.GetInstanceAsync(instanceId, cancellationToken));

    public override IAsyncEnumerable<InstanceDescription> ListInstancesAsync(string? region = null, CancellationToken cancellationToken = default)
    {
        death.ThrowIfDead();
        return inner.ListInstancesAsync(region, cancellationToken);
    }

    public override Task<SnapshotRead> ReadSnapshotAsync(string instanceId, CancellationToken cancellationToken = default) => Alive(() => inner.ReadSnapshotAsync(instanceId, cancellationToken));

    public override Task<InstanceChanges> ReadChangesAsync(string instanceId, string cursor, CancellationToken cancellationToken = default) => Alive(() => inner.ReadChangesAsync(instanceId, cursor, cancellationToken));

    public override Task<IReadOnlyList<NameInUse>> FindNamesInUseAsync(string region, ItemType type, IReadOnlyCollection<string> names, CancellationToken cancellationToken = default) =>
        Alive(() => inner.FindNamesInUseAsync(region, type, names, cancellationToken));

    public override Task<IReadOnlySet<string>> FindKeyIdsAsync(string instanceId, IReadOnlyCollection<string> keyIds, CancellationToken cancellationToken = default) =>
        Alive(() => inner.FindKeyIdsAsync(instanceId, keyIds, cancellationToken));

    public override Task<bool> CreateKeyAsync(string instanceId, KeyRecord key, string operationId, CancellationToken cancellationToken = default) =>
        CreateAsync(() => inner.CreateKeyAsync(instanceId, key, operationId, cancellationToken));

    public override Task<bool> CreateSecretAsync(string instanceId, SecretRecord secret, string operationId, CancellationToken cancellationToken = default) =>
        CreateAsync(() => inner.CreateSecretAsync(instanceId, secret, operationId, cancellationToken));

    public override Task<bool> DeleteRestoredItemAsync(string instanceId, ItemType type, string name, string operationId, CancellationToken cancellationToken = default) =>
        Alive(() => inner.DeleteRestoredItemAsync(instanceId, type, name, operationId, cancellationToken));

    private async Task<T> Alive<T>(Func<Task<T>> call)
    {
        death.ThrowIfDead();
        return await call();
    }

    private async Task<bool> CreateAsync(Func<Task<bool>> create)
    {
        death.ThrowIfDead();
        var created = await create();
        if (Interlocked.Increment(ref _creates) == dieAfterCreate)
        {
            throw death.Die();
        }

        return created;
    }
}

/// <summary>A store whose every call, lease calls included, fails once its process has died; a dead process releases no lease.</summary>
public sealed class DyingStore(BackupStore inner, ProcessDeath death) : BackupStore
{
    protected override async Task<bool> TryCreateCoreAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        death.ThrowIfDead();
        return await inner.TryCreateAsync(key, content, cancellationToken);
    }

    protected override async Task<byte[]?> TryReadCoreAsync(string key, CancellationToken cancellationToken)
    {
        death.ThrowIfDead();
        return await inner.TryReadAsync(key, cancellationToken);
    }

    protected override async IAsyncEnumerable<StoreObject> ListCoreAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        death.ThrowIfDead();
        await foreach (var entry in inner.ListAsync(prefix, cancellationToken))
        {
            death.ThrowIfDead();
            yield return entry;
        }
    }

    protected override async Task<bool> DeleteCoreAsync(string key, CancellationToken cancellationToken)
    {
        death.ThrowIfDead();
        return await inner.DeleteAsync(key, cancellationToken);
    }

    public override async Task<StoreLease> AcquireLeaseAsync(string leaseName, string holder, TimeSpan duration, CancellationToken cancellationToken = default)
    {
        death.ThrowIfDead();
        return new DyingLease(await inner.AcquireLeaseAsync(leaseName, holder, duration, cancellationToken), death);
    }

    private sealed class DyingLease(StoreLease inner, ProcessDeath death) : StoreLease(inner.Name, inner.Holder, inner.ExpiresAt)
    {
        public override async Task RenewAsync(CancellationToken cancellationToken = default)
        {
            death.ThrowIfDead();
            await inner.RenewAsync(cancellationToken);
            ExpiresAt = inner.ExpiresAt;
        }

        public override async Task EnsureHeldAsync(CancellationToken cancellationToken = default)
        {
            death.ThrowIfDead();
            await inner.EnsureHeldAsync(cancellationToken);
        }

        public override ValueTask DisposeAsync() => death.IsDead ? ValueTask.CompletedTask : inner.DisposeAsync();
    }
}
