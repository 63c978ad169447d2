using System.Runtime.CompilerServices;

namespace KmsBackup.Benchmarks.Workload;

/// <summary>
/// Workload infrastructure, not a product store: a <see cref="BackupStore"/> in memory that counts the
/// bytes stored under each top-level prefix (<c>packs/</c>, <c>index/</c>, <c>points/</c>, ...), so the
/// storage budgets can be read off exactly. Reads return a copy, as a real store hands out fresh bytes.
/// It implements only the four primitives: its leases are <see cref="BackupStore"/>'s, kept as records under
/// <c>leases/</c> (not counted under any prefix the budgets read) and expiring by the engine's <see cref="TimeProvider"/>.
/// </summary>
internal sealed class CountingMemoryStore(TimeProvider time) : BackupStore(time)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, byte[]> _objects = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _keys = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _bytesByPrefix = new(StringComparer.Ordinal);
    private long _reads;
    private long _listings;
    private long _listed;

    /// <summary>Object reads (whole or ranged) since the last <see cref="ResetCounts"/>.</summary>
    public long Reads => Interlocked.Read(ref _reads);

    /// <summary>Listings since the last <see cref="ResetCounts"/>.</summary>
    public long Listings => Interlocked.Read(ref _listings);

    /// <summary>Objects the listings returned since the last <see cref="ResetCounts"/>.</summary>
    public long ListedObjects => Interlocked.Read(ref _listed);

    /// <summary>Starts counting reads and listings again from zero.</summary>
    public void ResetCounts()
    {
        Interlocked.Exchange(ref _reads, 0);
        Interlocked.Exchange(ref _listings, 0);
        Interlocked.Exchange(ref _listed, 0);
    }

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

    /// <summary>Every object stored now, copied: what <see cref="Restore"/> puts back.</summary>
    public IReadOnlyDictionary<string, byte[]> Snapshot()
    {
        lock (_gate)
        {
            return _objects.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal);
        }
    }

    /// <summary>Replaces every object with those of <paramref name="snapshot"/> (from <see cref="Snapshot"/>), so that a destructive measurement starts from the same store each time.</summary>
    public void Restore(IReadOnlyDictionary<string, byte[]> snapshot)
    {
        lock (_gate)
        {
            _objects.Clear();
            _keys.Clear();
            _bytesByPrefix.Clear();
            foreach (var (key, content) in snapshot)
            {
                _objects[key] = content.ToArray();
                _keys.Add(key);
                _bytesByPrefix[PrefixOf(key)] = _bytesByPrefix.GetValueOrDefault(PrefixOf(key)) + content.Length;
            }
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

    protected override Task<bool> TryCreateCoreAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
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

    protected override Task<byte[]?> TryReadCoreAsync(string key, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _reads);
        lock (_gate)
        {
            return Task.FromResult(_objects.TryGetValue(key, out var content) ? content.ToArray() : null);
        }
    }

    /// <summary>A ranged read copies only the range, as a file seek or an HTTP range request fetches only it.</summary>
    protected override Task<byte[]?> TryReadRangeCoreAsync(string key, long offset, int length, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _reads);
        lock (_gate)
        {
            if (!_objects.TryGetValue(key, out var content))
            {
                return Task.FromResult<byte[]?>(null);
            }

            var available = Math.Max(0, content.Length - offset);
            return Task.FromResult<byte[]?>(content.AsSpan((int)Math.Min(offset, content.Length), (int)Math.Min(length, available)).ToArray());
        }
    }

    protected override Task<int?> TryReadRangeIntoCoreAsync(string key, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _reads);
        lock (_gate)
        {
            if (!_objects.TryGetValue(key, out var content))
            {
                return Task.FromResult<int?>(null);
            }

            var available = content.AsSpan((int)Math.Min(offset, content.Length));
            var count = Math.Min(destination.Length, available.Length);
            available[..count].CopyTo(destination.Span);
            return Task.FromResult<int?>(count);
        }
    }

    protected override async IAsyncEnumerable<StoreObject> ListCoreAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        StoreObject[] listed;
        lock (_gate)
        {
            var view = prefix.Length == 0 ? _keys : _keys.GetViewBetween(prefix, prefix + char.MaxValue);
            listed = view.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Select(k => new StoreObject(k, _objects[k].Length)).ToArray();
        }

        Interlocked.Increment(ref _listings);
        Interlocked.Add(ref _listed, listed.Length);
        foreach (var entry in listed)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return entry;
        }

        await Task.CompletedTask;
    }

    protected override Task<bool> DeleteCoreAsync(string key, CancellationToken cancellationToken)
    {
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

    private static string PrefixOf(string key) => key.IndexOf('/', StringComparison.Ordinal) is var slash and >= 0 ? key[..(slash + 1)] : key;
}
