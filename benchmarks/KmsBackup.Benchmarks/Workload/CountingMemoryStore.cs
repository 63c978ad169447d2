using System.Runtime.CompilerServices;

namespace KmsBackup.Benchmarks.Workload;

/// <summary>
/// Workload infrastructure, not a product store: a <see cref="BackupStore"/> in memory that counts the
/// bytes stored under each top-level prefix (<c>packs/</c>, <c>index/</c>, <c>points/</c>, ...), so the
/// storage budgets can be read off exactly. Reads return a copy, as a real store hands out fresh bytes.
/// Leases are kept in memory against the engine's <see cref="TimeProvider"/>.
/// </summary>
internal sealed class CountingMemoryStore(TimeProvider time) : BackupStore
{
    private readonly TimeProvider _time = time;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, byte[]> _objects = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _keys = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Holder, DateTimeOffset ExpiresAt)> _leases = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _bytesByPrefix = new(StringComparer.Ordinal);

    /// <summary>Bytes of the objects stored now.</summary>
    public long BytesStored
    {
        get
        {
            lock (_gate)
            {
                return _bytesByPrefix.Values.Sum();
            }
        }
    }

    /// <summary>Bytes of the objects stored now whose keys start with <paramref name="prefix"/> (a top-level prefix such as <c>packs/</c>, or <c>config</c>).</summary>
    public long BytesStoredUnder(string prefix)
    {
        lock (_gate)
        {
            return _bytesByPrefix.GetValueOrDefault(prefix);
        }
    }

    /// <summary>How many objects are stored now under <paramref name="prefix"/>.</summary>
    public int CountUnder(string prefix)
    {
        lock (_gate)
        {
            return _keys.Count(k => k.StartsWith(prefix, StringComparison.Ordinal));
        }
    }

    /// <summary>Bytes of the objects stored now that recovery points are made of: packs, their indexes and point manifests.</summary>
    public long RecoveryPointBytes => BytesStoredUnder("packs/") + BytesStoredUnder("index/") + BytesStoredUnder("points/");

    public override Task<bool> TryCreateAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default)
    {
        ValidateKey(key);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            if (_objects.ContainsKey(key))
            {
                return Task.FromResult(false);
            }

            _objects[key] = content.ToArray();
            _keys.Add(key);
            _bytesByPrefix[PrefixOf(key)] = _bytesByPrefix.GetValueOrDefault(PrefixOf(key)) + content.Length;
            return Task.FromResult(true);
        }
    }

    public override Task<byte[]?> TryReadAsync(string key, CancellationToken cancellationToken = default)
    {
        ValidateKey(key);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            return Task.FromResult(_objects.TryGetValue(key, out var content) ? content.ToArray() : null);
        }
    }

    public override async IAsyncEnumerable<StoreObject> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prefix); // a prefix may end in "/", which a key may not
        StoreObject[] listed;
        lock (_gate)
        {
            var view = prefix.Length == 0 ? _keys : _keys.GetViewBetween(prefix, prefix + char.MaxValue);
            listed = view.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Select(k => new StoreObject(k, _objects[k].Length)).ToArray();
        }

        foreach (var entry in listed)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return entry;
        }

        await Task.CompletedTask;
    }

    public override Task<bool> DeleteAsync(string key, CancellationToken cancellationToken = default)
    {
        ValidateKey(key);
        lock (_gate)
        {
            if (!_objects.Remove(key, out var content))
            {
                return Task.FromResult(false);
            }

            _keys.Remove(key);
            _bytesByPrefix[PrefixOf(key)] -= content.Length;
            return Task.FromResult(true);
        }
    }

    public override Task<StoreLease> AcquireLeaseAsync(string leaseName, string holder, TimeSpan duration, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            if (_leases.TryGetValue(leaseName, out var held) && held.ExpiresAt > now && held.Holder != holder)
            {
                throw new BackupException(new Refusal(
                    BackupErrorCode.LeaseHeld, $"lease '{leaseName}'",
                    $"The lease '{leaseName}' is held by '{held.Holder}' until {held.ExpiresAt:O}.",
                    "Wait for the other writer to finish."));
            }

            _leases[leaseName] = (holder, now + duration);
            return Task.FromResult<StoreLease>(new MemoryLease(this, leaseName, holder, duration, now + duration));
        }
    }

    private static string PrefixOf(string key) => key.IndexOf('/', StringComparison.Ordinal) is var slash and >= 0 ? key[..(slash + 1)] : key;

    private sealed class MemoryLease(CountingMemoryStore store, string name, string holder, TimeSpan duration, DateTimeOffset expiresAt)
        : StoreLease(name, holder, expiresAt)
    {
        public override Task RenewAsync(CancellationToken cancellationToken = default)
        {
            lock (store._gate)
            {
                ThrowIfLost();
                ExpiresAt = store._time.GetUtcNow() + duration;
                store._leases[Name] = (Holder, ExpiresAt);
                return Task.CompletedTask;
            }
        }

        public override Task EnsureHeldAsync(CancellationToken cancellationToken = default)
        {
            lock (store._gate)
            {
                ThrowIfLost();
                return Task.CompletedTask;
            }
        }

        public override ValueTask DisposeAsync()
        {
            lock (store._gate)
            {
                if (store._leases.TryGetValue(Name, out var held) && held.Holder == Holder)
                {
                    store._leases.Remove(Name);
                }
            }

            return ValueTask.CompletedTask;
        }

        private void ThrowIfLost()
        {
            if (!store._leases.TryGetValue(Name, out var held) || held.Holder != Holder || held.ExpiresAt <= store._time.GetUtcNow())
            {
                throw new BackupException(new Refusal(
                    BackupErrorCode.LeaseLost, $"lease '{Name}'", $"The lease '{Name}' is no longer held by '{Holder}'.", "Retry the run."));
            }
        }
    }
}
