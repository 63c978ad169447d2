using System.Numerics;
using System.Runtime.Intrinsics;
using System.Text;

namespace KmsBackup.Domain;

/// <summary>
/// A snapshot's items in columns: every name in UTF-8 in one buffer, in <see cref="ItemNameComparer"/>
/// order, and a 64-bit content stamp per item. Diffing two indexes is one merge over contiguous
/// memory that allocates nothing per unchanged item (rule D5; the diff budget of the design).
/// </summary>
internal sealed class ItemIndex
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
    /// share of a few vectorized block comparisons and no allocation.
    /// </summary>
    /// <param name="before">The older index.</param>
    /// <param name="after">The newer index.</param>
    /// <param name="onDifference">Called for each item added (−1, j), deleted (i, −1) or changed (i, j), in name order.</param>
    public static void Merge(ItemIndex before, ItemIndex after, Action<int, int> onDifference)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        ArgumentNullException.ThrowIfNull(onDifference);

        var a = new Columns(before._names, before._offsets, before._stamps);
        var b = new Columns(after._names, after._offsets, after._stamps);
        int i = 0, j = 0, countA = a.Stamps.Length, countB = b.Stamps.Length;
        while (i < countA && j < countB)
        {
            // Most items are unchanged: skip the run of equal items that starts here in blocks, and merge
            // item by item only at a difference.
            var equal = EqualRun(a, i, b, j);
            if (equal > 0)
            {
                i += equal;
                j += equal;
                continue;
            }

            var order = a.Name(i).SequenceCompareTo(b.Name(j));
            if (order == 0)
            {
                // Same name: the run stopped here, so the stamps differ (checked again all the same).
                if (a.Stamps[i] != b.Stamps[j])
                {
                    onDifference(i, j);
                }

                i++;
                j++;
            }
            else if (order < 0)
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

    /// <summary>Items per block of <see cref="EqualRun"/>: small enough that a block's columns stay in cache between its three comparisons.</summary>
    internal const int MergeBlock = 1024;

    /// <summary>
    /// How many items from <paramref name="i"/> in <paramref name="a"/> equal, one for one, those from
    /// <paramref name="j"/> in <paramref name="b"/>: same stamp, same name length and same name bytes.
    /// </summary>
    /// <remarks>
    /// Item m of a run is equal iff its stamp, its length (the step between its offsets) and its bytes are.
    /// Per block: the common prefix of the stamps bounds the run; the lengths are compared next, up to
    /// that bound (equal lengths mean the items start at the same place relative to the block, so the
    /// offsets of both sides differ by one constant); then the name bytes of those items, compared as one
    /// span each. Lengths must be checked: "ab","c" and "a","bc" have the same bytes. The items wholly
    /// inside the common bytes are equal; the first reaching past them is not.
    /// </remarks>
    private static int EqualRun(in Columns a, int i, in Columns b, int j)
    {
        var run = 0;
        while (true)
        {
            int ai = i + run, bj = j + run;
            var k = Math.Min(MergeBlock, Math.Min(a.Stamps.Length - ai, b.Stamps.Length - bj));
            if (k == 0)
            {
                return run;
            }

            var p = a.Stamps.Slice(ai, k).CommonPrefixLength(b.Stamps.Slice(bj, k));
            if (p > 0)
            {
                p = EqualLengthCount(a.Offsets.Slice(ai, p + 1), b.Offsets.Slice(bj, p + 1));
            }

            if (p == 0)
            {
                return run;
            }

            int startA = a.Offsets[ai], endA = a.Offsets[ai + p];
            var common = a.Names[startA..endA].CommonPrefixLength(b.Names[b.Offsets[bj]..b.Offsets[bj + p]]);
            if (common < endA - startA)
            {
                return run + ItemsWithin(a.Offsets.Slice(ai + 1, p), startA + common);
            }

            run += p;
            if (p < k)
            {
                return run;
            }
        }
    }

    /// <summary>
    /// With <paramref name="a"/> and <paramref name="b"/> the offsets of n + 1 item boundaries from one
    /// item on each side, how many of the n items have equal lengths before the first that does not:
    /// the first m ≥ 1 where <c>a[m] − b[m]</c> leaves <c>a[0] − b[0]</c>, minus one.
    /// </summary>
    private static int EqualLengthCount(ReadOnlySpan<int> a, ReadOnlySpan<int> b)
    {
        var shift = a[0] - b[0];
        var m = 1;
        if (Vector256.IsHardwareAccelerated)
        {
            var expected = Vector256.Create(shift);
            for (; m + Vector256<int>.Count <= a.Length; m += Vector256<int>.Count)
            {
                var same = Vector256.Equals(Vector256.Create(a.Slice(m, Vector256<int>.Count)) - Vector256.Create(b.Slice(m, Vector256<int>.Count)), expected);
                if (same != Vector256<int>.AllBitsSet)
                {
                    return m - 1 + BitOperations.TrailingZeroCount(~same.ExtractMostSignificantBits());
                }
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            var expected = Vector128.Create(shift);
            for (; m + Vector128<int>.Count <= a.Length; m += Vector128<int>.Count)
            {
                var same = Vector128.Equals(Vector128.Create(a.Slice(m, Vector128<int>.Count)) - Vector128.Create(b.Slice(m, Vector128<int>.Count)), expected);
                if (same != Vector128<int>.AllBitsSet)
                {
                    return m - 1 + BitOperations.TrailingZeroCount(~same.ExtractMostSignificantBits());
                }
            }
        }

        for (; m < a.Length; m++)
        {
            if (a[m] - b[m] != shift)
            {
                return m - 1;
            }
        }

        return a.Length - 1;
    }

    /// <summary>How many of the items whose ends are <paramref name="ends"/> (increasing) end at or before <paramref name="limit"/>.</summary>
    private static int ItemsWithin(ReadOnlySpan<int> ends, int limit)
    {
        int lo = 0, hi = ends.Length;
        while (lo < hi)
        {
            var mid = (int)((uint)(lo + hi) >> 1);
            if (ends[mid] <= limit)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    /// <summary>An index's three columns as spans, for the merge.</summary>
    private readonly ref struct Columns(ReadOnlySpan<byte> names, ReadOnlySpan<int> offsets, ReadOnlySpan<long> stamps)
    {
        public readonly ReadOnlySpan<byte> Names = names;
        public readonly ReadOnlySpan<int> Offsets = offsets;
        public readonly ReadOnlySpan<long> Stamps = stamps;

        public ReadOnlySpan<byte> Name(int index) => Names[Offsets[index]..Offsets[index + 1]];
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
