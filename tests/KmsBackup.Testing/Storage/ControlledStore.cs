using System.Runtime.CompilerServices;

namespace KmsBackup.Testing.Storage;

/// <summary>What a <see cref="ControlledStore"/> call does.</summary>
public enum StoreCallKind
{
    /// <summary><see cref="BackupStore.TryCreateAsync"/>.</summary>
    Create,

    /// <summary><see cref="BackupStore.TryReadAsync"/>.</summary>
    Read,

    /// <summary><see cref="BackupStore.ListAsync"/>.</summary>
    List,

    /// <summary><see cref="BackupStore.DeleteAsync"/>.</summary>
    Delete,

    /// <summary><see cref="BackupStore.AcquireLeaseAsync"/>.</summary>
    AcquireLease,

    /// <summary><see cref="StoreLease.RenewAsync"/>.</summary>
    RenewLease,

    /// <summary><see cref="StoreLease.EnsureHeldAsync"/>.</summary>
    EnsureLease,

    /// <summary><see cref="StoreLease.DisposeAsync"/>.</summary>
    ReleaseLease,
}

/// <summary>One call a <see cref="ControlledStore"/> is about to pass on.</summary>
/// <param name="Kind">What it does.</param>
/// <param name="Key">The object key, prefix or lease name.</param>
public readonly record struct StoreCall(StoreCallKind Kind, string Key)
{
    /// <summary>
    /// The caller's cancellation token (none for a lease release), so that a hook that pauses the call can give up
    /// when its caller does: a lease keeper's renewal is cancelled when the run it guards ends, and the run waits
    /// for its keeper to stop.
    /// </summary>
    public CancellationToken CancellationToken { get; init; }

    /// <summary>Whether the call changes the store.</summary>
    public bool IsWrite => Kind is StoreCallKind.Create or StoreCallKind.Delete or StoreCallKind.AcquireLease or StoreCallKind.RenewLease or StoreCallKind.ReleaseLease;

    /// <summary>The call in one line.</summary>
    public override string ToString() => $"{Kind} {Key}";
}

/// <summary>
/// A store that hands every call (lease calls included) to <see cref="Before"/> before passing it on, so that
/// a test can pause a writer at a chosen call, interleave several clients call by call, or make a process
/// "die" at a call (throw from <see cref="Before"/>, and keep throwing: a dead process writes nothing more,
/// not even the lease release of its <c>finally</c> blocks).
/// </summary>
public sealed class ControlledStore(BackupStore inner) : BackupStore
{
    /// <summary>Runs before each call; may wait (pause the caller) or throw (fail or kill it).</summary>
    public Func<StoreCall, Task>? Before { get; set; }

    /// <summary>The store calls are passed to.</summary>
    public BackupStore Inner => inner;

    private Task BeforeAsync(StoreCallKind kind, string key, CancellationToken cancellationToken = default) =>
        Before?.Invoke(new StoreCall(kind, key) { CancellationToken = cancellationToken }) ?? Task.CompletedTask;

    /// <inheritdoc />
    protected override async Task<bool> TryCreateCoreAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        await BeforeAsync(StoreCallKind.Create, key, cancellationToken);
        return await inner.TryCreateAsync(key, content, cancellationToken);
    }

    /// <inheritdoc />
    protected override async Task<byte[]?> TryReadCoreAsync(string key, CancellationToken cancellationToken)
    {
        await BeforeAsync(StoreCallKind.Read, key, cancellationToken);
        return await inner.TryReadAsync(key, cancellationToken);
    }

    /// <inheritdoc />
    protected override async IAsyncEnumerable<StoreObject> ListCoreAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await BeforeAsync(StoreCallKind.List, prefix, cancellationToken);

        // A listing is one call: taken whole, so that a pause never falls in the middle of an enumeration.
        var items = new List<StoreObject>();
        await foreach (var item in inner.ListAsync(prefix, cancellationToken))
        {
            items.Add(item);
        }

        foreach (var item in items)
        {
            yield return item;
        }
    }

    /// <inheritdoc />
    protected override async Task<bool> DeleteCoreAsync(string key, CancellationToken cancellationToken)
    {
        await BeforeAsync(StoreCallKind.Delete, key, cancellationToken);
        return await inner.DeleteAsync(key, cancellationToken);
    }

    /// <inheritdoc />
    public override async Task<StoreLease> AcquireLeaseAsync(string leaseName, string holder, TimeSpan duration, CancellationToken cancellationToken = default)
    {
        await BeforeAsync(StoreCallKind.AcquireLease, leaseName, cancellationToken);
        return new ControlledLease(this, await inner.AcquireLeaseAsync(leaseName, holder, duration, cancellationToken));
    }

    private sealed class ControlledLease(ControlledStore store, StoreLease lease) : StoreLease(lease.Name, lease.Holder, lease.ExpiresAt)
    {
        public override async Task RenewAsync(CancellationToken cancellationToken = default)
        {
            await store.BeforeAsync(StoreCallKind.RenewLease, Name, cancellationToken);
            await lease.RenewAsync(cancellationToken);
            ExpiresAt = lease.ExpiresAt;
        }

        public override async Task EnsureHeldAsync(CancellationToken cancellationToken = default)
        {
            await store.BeforeAsync(StoreCallKind.EnsureLease, Name, cancellationToken);
            await lease.EnsureHeldAsync(cancellationToken);
        }

        public override async ValueTask DisposeAsync()
        {
            await store.BeforeAsync(StoreCallKind.ReleaseLease, Name);
            await lease.DisposeAsync();
        }
    }
}
