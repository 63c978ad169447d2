using KmsBackup.Diagnostics;

namespace KmsBackup;

/// <summary>
/// The client's one cache of what it read from the store (point lists, point manifests, the last point's digest of
/// each backup): least recently used first out, bounded by an estimate of the bytes each entry holds
/// (<see cref="BackupClientOptions.CacheSize"/>), and observable in metrics (hits, misses, evictions and bytes held,
/// by kind of entry). Every entry is metadata (names, stamps, tree roots, counts), never key material or a secret
/// value, and every entry can be dropped at any time: a miss reads the store again. Thread-safe.
/// </summary>
internal sealed class BoundedCache
{
    private readonly long _capacity;
    private readonly BackupTelemetry _telemetry;
    private readonly Lock _gate = new();
    private readonly Dictionary<(string Kind, object Key), LinkedListNode<Entry>> _entries = [];
    private readonly LinkedList<Entry> _recency = new(); // most recently used first
    private long _bytes;

    public BoundedCache(long capacity, BackupTelemetry telemetry)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        _capacity = capacity;
        _telemetry = telemetry;
    }

    /// <summary>The bytes the entries are estimated to hold; never more than the capacity.</summary>
    public long Bytes
    {
        get
        {
            lock (_gate)
            {
                return _bytes;
            }
        }
    }

    /// <summary>How many entries the cache holds.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>The entry of <paramref name="kind"/> and <paramref name="key"/>, made the most recently used; counts a hit or a miss.</summary>
    public bool TryGet<TKey, TValue>(string kind, TKey key, out TValue value)
        where TKey : notnull
    {
        lock (_gate)
        {
            if (_entries.TryGetValue((kind, key), out var node))
            {
                _recency.Remove(node);
                _recency.AddFirst(node);
                value = (TValue)node.Value.Value;
                _telemetry.CacheHit(kind);
                return true;
            }
        }

        _telemetry.CacheMiss(kind);
        value = default!;
        return false;
    }

    /// <summary>
    /// Keeps <paramref name="value"/>, estimated at <paramref name="size"/> bytes, in place of any entry of the same
    /// kind and key, then drops the least recently used entries until the cache fits its capacity. An entry larger
    /// than the whole capacity is not kept.
    /// </summary>
    public void Set<TKey, TValue>(string kind, TKey key, TValue value, long size)
        where TKey : notnull
        where TValue : notnull
    {
        lock (_gate)
        {
            RemoveLocked((kind, key), evicted: false);
            if (size > _capacity)
            {
                return;
            }

            var node = _recency.AddFirst(new Entry(kind, key, value, size));
            _entries[(kind, key)] = node;
            Resize(kind, size);
            while (_bytes > _capacity && _recency.Last is { } oldest)
            {
                RemoveLocked((oldest.Value.Kind, oldest.Value.Key), evicted: true);
            }
        }
    }

    /// <summary>
    /// The entry of <paramref name="kind"/> and <paramref name="key"/> for the cache's own bookkeeping (is this still
    /// the entry I think it is?): neither a hit nor a miss, and its place in the eviction order is left as it was.
    /// </summary>
    public bool TryPeek<TKey, TValue>(string kind, TKey key, out TValue value)
        where TKey : notnull
    {
        lock (_gate)
        {
            if (_entries.TryGetValue((kind, key), out var node))
            {
                value = (TValue)node.Value.Value;
                return true;
            }
        }

        value = default!;
        return false;
    }

    /// <summary>Drops the entry of <paramref name="kind"/> and <paramref name="key"/>, if any.</summary>
    public void Remove<TKey>(string kind, TKey key)
        where TKey : notnull => TryRemove<TKey, object>(kind, key, out _);

    /// <summary>Drops the entry of <paramref name="kind"/> and <paramref name="key"/>, if any, and returns it.</summary>
    public bool TryRemove<TKey, TValue>(string kind, TKey key, out TValue value)
        where TKey : notnull
    {
        lock (_gate)
        {
            if (_entries.TryGetValue((kind, key), out var node))
            {
                value = (TValue)node.Value.Value;
                RemoveLocked((kind, key), evicted: false);
                return true;
            }
        }

        value = default!;
        return false;
    }

    /// <summary>Drops every entry of <paramref name="kind"/> whose key <paramref name="match"/> accepts.</summary>
    public void RemoveWhere<TKey>(string kind, Func<TKey, bool> match)
    {
        lock (_gate)
        {
            foreach (var entry in _recency.Where(e => e.Kind == kind && match((TKey)e.Key)).ToList())
            {
                RemoveLocked((entry.Kind, entry.Key), evicted: false);
            }
        }
    }

    private void RemoveLocked((string Kind, object Key) key, bool evicted)
    {
        if (_entries.Remove(key, out var node))
        {
            _recency.Remove(node);
            Resize(key.Kind, -node.Value.Size);
            if (evicted)
            {
                _telemetry.CacheEvicted(key.Kind);
            }
        }
    }

    private void Resize(string kind, long delta)
    {
        _bytes += delta;
        _telemetry.CacheResized(kind, delta);
    }

    private sealed record Entry(string Kind, object Key, object Value, long Size);
}
