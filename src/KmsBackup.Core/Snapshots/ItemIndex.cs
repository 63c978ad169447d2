using System.Text;

namespace KmsBackup;

/// <summary>
/// A snapshot's items in columns: every name in UTF-8 in one buffer, in <see cref="ItemNameComparer"/>
/// order, and a 64-bit content stamp per item. Diffing two indexes is one merge over contiguous
/// memory that allocates nothing per unchanged item (rule D5; the diff budget of the design).
/// </summary>
public sealed class ItemIndex
{
    private readonly byte[] _names;
    private readonly int[] _offsets;
    private readonly long[] _stamps;

    private ItemIndex(byte[] names, int[] offsets, long[] stamps)
    {
        _names = names;
        _offsets = offsets;
        _stamps = stamps;
    }

    /// <summary>An index with no item.</summary>
    public static ItemIndex Empty { get; } = new([], [0], []);

    /// <summary>The number of items.</summary>
    public int Count => _stamps.Length;

    /// <summary>The bytes the index holds: names plus 8 bytes of stamp per item.</summary>
    public long ByteCount => _names.Length + (8L * _stamps.Length);

    /// <summary>The UTF-8 name of item <paramref name="index"/>.</summary>
    /// <param name="index">From 0 to <see cref="Count"/> − 1.</param>
    public ReadOnlySpan<byte> NameUtf8(int index) => _names.AsSpan(_offsets[index], _offsets[index + 1] - _offsets[index]);

    /// <summary>The name of item <paramref name="index"/>.</summary>
    /// <param name="index">From 0 to <see cref="Count"/> − 1.</param>
    public string Name(int index) => Encoding.UTF8.GetString(NameUtf8(index));

    /// <summary>The content stamp of item <paramref name="index"/>: equal stamps mean (with overwhelming likelihood) equal items.</summary>
    /// <param name="index">From 0 to <see cref="Count"/> − 1.</param>
    public long Stamp(int index) => _stamps[index];

    /// <summary>The raw name buffer, for benchmarks and serialisation.</summary>
    public ReadOnlyMemory<byte> NameBytes => _names;

    /// <summary>The stamps, in item order.</summary>
    public ReadOnlyMemory<long> Stamps => _stamps;

    /// <summary>Builds an index from names already in <see cref="ItemNameComparer"/> order, with their stamps.</summary>
    /// <param name="names">The names, strictly increasing.</param>
    /// <param name="stamps">One stamp per name.</param>
    /// <exception cref="ArgumentException">The counts differ, or the names are not strictly increasing.</exception>
    public static ItemIndex Build(IReadOnlyList<string> names, IReadOnlyList<long> stamps)
    {
        ArgumentNullException.ThrowIfNull(names);
        ArgumentNullException.ThrowIfNull(stamps);
        if (names.Count != stamps.Count)
        {
            throw new ArgumentException("Every name needs one stamp.", nameof(stamps));
        }

        var total = 0;
        for (var i = 0; i < names.Count; i++)
        {
            if (i > 0 && ItemNameComparer.Instance.Compare(names[i - 1], names[i]) >= 0)
            {
                throw new ArgumentException($"Names must be unique and sorted; '{names[i]}' follows '{names[i - 1]}'.", nameof(names));
            }

            total = checked(total + Encoding.UTF8.GetByteCount(names[i]));
        }

        var buffer = new byte[total];
        var offsets = new int[names.Count + 1];
        var stampArray = new long[names.Count];
        var position = 0;
        for (var i = 0; i < names.Count; i++)
        {
            offsets[i] = position;
            position += Encoding.UTF8.GetBytes(names[i], buffer.AsSpan(position));
            stampArray[i] = stamps[i];
        }

        offsets[names.Count] = position;
        return new ItemIndex(buffer, offsets, stampArray);
    }

    /// <summary>
    /// Merges <paramref name="before"/> and <paramref name="after"/> and reports each item that differs:
    /// <c>(beforeIndex, afterIndex)</c>, with −1 on the side that lacks the item. Unchanged items cost a
    /// name and stamp comparison and no allocation.
    /// </summary>
    /// <param name="before">The older index.</param>
    /// <param name="after">The newer index.</param>
    /// <param name="onDifference">Called for each item added (−1, j), deleted (i, −1) or changed (i, j), in name order.</param>
    public static void Merge(ItemIndex before, ItemIndex after, Action<int, int> onDifference)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        ArgumentNullException.ThrowIfNull(onDifference);

        ReadOnlySpan<byte> namesA = before._names, namesB = after._names;
        ReadOnlySpan<int> offA = before._offsets, offB = after._offsets;
        ReadOnlySpan<long> stampA = before._stamps, stampB = after._stamps;
        int i = 0, j = 0, countA = stampA.Length, countB = stampB.Length;
        while (i < countA && j < countB)
        {
            var nameA = namesA[offA[i]..offA[i + 1]];
            var nameB = namesB[offB[j]..offB[j + 1]];
            if (nameA.SequenceEqual(nameB))
            {
                if (stampA[i] != stampB[j])
                {
                    onDifference(i, j);
                }

                i++;
                j++;
            }
            else if (nameA.SequenceCompareTo(nameB) < 0)
            {
                onDifference(i++, -1);
            }
            else
            {
                onDifference(-1, j++);
            }
        }

        while (i < countA)
        {
            onDifference(i++, -1);
        }

        while (j < countB)
        {
            onDifference(-1, j++);
        }
    }
}

/// <summary>A 64-bit FNV-1a fingerprint builder: deterministic across processes and machines, for content stamps (not for security).</summary>
internal struct Fingerprint
{
    private const ulong Prime = 1099511628211UL;
    private ulong _hash;

    public Fingerprint() => _hash = 14695981039346656037UL;

    public readonly long Value => unchecked((long)_hash);

    public void Add(string? text)
    {
        if (text is null)
        {
            Add(-1L);
            return;
        }

        Add(text.Length);
        foreach (var c in text)
        {
            Mix((byte)c);
            Mix((byte)(c >> 8));
        }
    }

    public void Add(long value)
    {
        for (var shift = 0; shift < 64; shift += 8)
        {
            Mix((byte)(value >> shift));
        }
    }

    private void Mix(byte b) => _hash = unchecked((_hash ^ b) * Prime);
}
