using System.Numerics;

namespace KmsBackup.Repository;

/// <summary>
/// What verify keeps per object, compactly: the objects it opened intact (ID and sealed length, in one array sorted by
/// ID, 40 bytes each and no object per entry), and which of them recovery points refer to (one bit each, by position
/// in that array). Referenced objects that no intact pack holds are kept apart, in the order they were found; there are
/// none in an intact store.
/// </summary>
/// <remarks>
/// It grows with the repository's objects (about 40 bytes each: 2.5 MB for 64,000 objects), where the dictionaries it
/// replaces took about 110 bytes per object, plus their copies while they grew.
/// </remarks>
internal sealed class ObjectCensus
{
    private Entry[] _entries = new Entry[256];
    private int _count;
    private ulong[]? _referenced;
    private readonly HashSet<ObjectId> _missing = [];
    private readonly List<ObjectId> _missingInOrder = [];

    /// <summary>Distinct intact objects (after <see cref="Seal"/>).</summary>
    public int IntactCount => _count;

    /// <summary>Referenced objects that no intact pack holds, in the order they were first referred to.</summary>
    public IReadOnlyList<ObjectId> Missing => _missingInOrder;

    /// <summary>Adds an object that opened intact, with the length of its sealed bytes; a second copy of an ID is kept once.</summary>
    public void AddIntact(ObjectId id, int sealedLength)
    {
        if (_referenced is not null)
        {
            throw new InvalidOperationException("The census is sealed: intact objects are added before references.");
        }

        if (_count == _entries.Length)
        {
            Array.Resize(ref _entries, _entries.Length * 2);
        }

        _entries[_count++] = new Entry(id, sealedLength);
    }

    /// <summary>Ends the intact objects: sorts them by ID and drops second copies. References may be added after.</summary>
    public void Seal()
    {
        var entries = _entries.AsSpan(0, _count);
        entries.Sort(static (x, y) => Compare(x.Id, y.Id));
        var kept = 0;
        for (var i = 0; i < entries.Length; i++)
        {
            if (kept == 0 || entries[kept - 1].Id != entries[i].Id)
            {
                entries[kept++] = entries[i];
            }
        }

        _count = kept;
        if (_entries.Length > _count + (_count / 8) + 256)
        {
            Array.Resize(ref _entries, _count); // the doubling's slack, given back
        }

        _referenced = new ulong[(_count + 63) / 64];
    }

    /// <summary>Whether <paramref name="id"/> opened intact.</summary>
    public bool IsIntact(ObjectId id) => Find(id) >= 0;

    /// <summary>Marks <paramref name="id"/> referenced; whether it was not yet (so the caller walks below it).</summary>
    public bool AddReferenced(ObjectId id)
    {
        var referenced = _referenced ?? throw new InvalidOperationException("The census is not sealed yet.");
        var position = Find(id);
        if (position < 0)
        {
            if (!_missing.Add(id))
            {
                return false;
            }

            _missingInOrder.Add(id);
            return true;
        }

        var bit = 1UL << (position & 63);
        ref var word = ref referenced[position >> 6];
        if ((word & bit) != 0)
        {
            return false;
        }

        word |= bit;
        return true;
    }

    /// <summary>Intact objects no recovery point refers to.</summary>
    public int UnreferencedCount
    {
        get
        {
            var referenced = 0;
            foreach (var word in _referenced ?? [])
            {
                referenced += BitOperations.PopCount(word);
            }

            return _count - referenced;
        }
    }

    /// <summary>The sealed bytes of the intact objects recovery points refer to, one copy each.</summary>
    public long ReferencedBytes
    {
        get
        {
            var bytes = 0L;
            for (var i = 0; i < _count; i++)
            {
                if (IsReferenced(i))
                {
                    bytes += _entries[i].SealedLength;
                }
            }

            return bytes;
        }
    }

    /// <summary>The intact objects recovery points refer to.</summary>
    public IEnumerable<ObjectId> ReferencedIntact()
    {
        for (var i = 0; i < _count; i++)
        {
            if (IsReferenced(i))
            {
                yield return _entries[i].Id;
            }
        }
    }

    private bool IsReferenced(int position) => _referenced is { } referenced && (referenced[position >> 6] & (1UL << (position & 63))) != 0;

    private int Find(ObjectId id)
    {
        var low = 0;
        var high = _count - 1;
        while (low <= high)
        {
            var middle = low + ((high - low) >> 1);
            var order = Compare(_entries[middle].Id, id);
            if (order == 0)
            {
                return middle;
            }

            if (order < 0)
            {
                low = middle + 1;
            }
            else
            {
                high = middle - 1;
            }
        }

        return -1;
    }

    private static int Compare(ObjectId x, ObjectId y)
    {
        var order = x.A.CompareTo(y.A);
        if (order == 0)
        {
            order = x.B.CompareTo(y.B);
        }

        if (order == 0)
        {
            order = x.C.CompareTo(y.C);
        }

        return order == 0 ? x.D.CompareTo(y.D) : order;
    }

    private readonly record struct Entry(ObjectId Id, int SealedLength);
}
