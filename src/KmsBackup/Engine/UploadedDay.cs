using System.Security.Cryptography;
using System.Text;
using KmsBackup.Repository;

namespace KmsBackup;

/// <summary>Where one encoded item lies in an <see cref="EncodedItems"/>.</summary>
internal readonly record struct ItemRef(int Chunk, int Offset, int Length);

/// <summary>
/// Items (keys or secrets) kept in the encoding their tree leaves use (<see cref="ItemCodec"/>), back to back
/// in large chunks: an uploaded day held for its import costs its encoded bytes and 12 bytes per item, instead of
/// the several hundred bytes per item that decoded records with their strings and arrays would take. Holds key
/// material and secret ciphertexts: <see cref="Clear"/> zeroes every chunk.
/// </summary>
internal sealed class EncodedItems
{
    private const int FirstChunk = 64 * 1024;
    private const int LargestChunk = 16 * 1024 * 1024;

    private readonly List<byte[]> _chunks = [];
    private int _used;

    /// <summary>The bytes the chunks take, used or not.</summary>
    public long AllocatedBytes { get; private set; }

    public ReadOnlySpan<byte> this[ItemRef item] => _chunks[item.Chunk].AsSpan(item.Offset, item.Length);

    /// <summary>The buffer every tree of these items is written through: grown once to the largest leaf, not once per tree.</summary>
    public RecordWriter LeafBuffer { get; } = new(64 * 1024, pinned: true);

    public ItemRef Add(ReadOnlySpan<byte> item)
    {
        if (_chunks.Count == 0 || _chunks[^1].Length - _used < item.Length)
        {
            // Chunks grow with the day, so that a small upload takes little and a large one few chunks.
            var size = _chunks.Count == 0 ? FirstChunk : Math.Min(LargestChunk, _chunks[^1].Length * 2);
            // Pinned: the chunks hold key material and secret ciphertexts until Clear, and a compacting GC would leave copies of a movable array behind.
            _chunks.Add(GC.AllocateUninitializedArray<byte>(Math.Max(size, item.Length), pinned: true));
            AllocatedBytes += _chunks[^1].Length;
            _used = 0;
        }

        item.CopyTo(_chunks[^1].AsSpan(_used));
        var added = new ItemRef(_chunks.Count - 1, _used, item.Length);
        _used += item.Length;
        return added;
    }

    /// <summary>The UTF-8 bytes of an item's name: its first field, a string.</summary>
    public ReadOnlySpan<byte> NameOf(ItemRef item) => LeadingString(this[item]);

    /// <summary>The UTF-8 bytes of a key's ID: its second field.</summary>
    public ReadOnlySpan<byte> KeyIdOf(ItemRef item)
    {
        var bytes = this[item];
        var name = LeadingString(bytes);
        var skipped = bytes[(int)(name.Length + VarUIntLength((ulong)name.Length + 1))..];
        return LeadingString(skipped);
    }

    public string NameStringOf(ItemRef item) => Encoding.UTF8.GetString(NameOf(item));

    /// <summary>Zeroes and drops every chunk.</summary>
    public void Clear()
    {
        foreach (var chunk in _chunks)
        {
            CryptographicOperations.ZeroMemory(chunk);
        }

        _chunks.Clear();
        LeafBuffer.Wipe();
        AllocatedBytes = 0;
        _used = 0;
    }

    /// <summary>The UTF-8 bytes of the string an encoded item starts with. Items were encoded by this process from validated records, so the string is well formed.</summary>
    public static ReadOnlySpan<byte> LeadingString(ReadOnlySpan<byte> bytes)
    {
        ulong tagged = 0;
        var i = 0;
        for (var shift = 0; ; shift += 7, i++)
        {
            tagged |= (ulong)(bytes[i] & 0x7F) << shift;
            if (bytes[i] < 0x80)
            {
                break;
            }
        }

        return bytes.Slice(i + 1, (int)tagged - 1);
    }

    private static int VarUIntLength(ulong value)
    {
        var length = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            length++;
        }

        return length;
    }
}

/// <summary>One recovery point of an uploaded day: where it was taken, and its items in name order.</summary>
internal sealed record UploadedSnapshot(SnapshotSource Source, DateTimeOffset TakenAt, SegmentedList<ItemRef> Keys, SegmentedList<ItemRef> Secrets);

/// <summary>
/// A list that grows in fixed segments instead of by copying into ever larger arrays: a million items cost their
/// own size and no garbage of the arrays they outgrew.
/// </summary>
internal sealed class SegmentedList<T> : IReadOnlyList<T>
{
    private const int SegmentSize = 8192;

    private readonly List<T[]> _segments = [];

    public int Count { get; private set; }

    public T this[int index] => (uint)index < (uint)Count
        ? _segments[index / SegmentSize][index % SegmentSize]
        : throw new ArgumentOutOfRangeException(nameof(index));

    public void Add(T item)
    {
        if (Count % SegmentSize == 0)
        {
            _segments.Add(new T[SegmentSize]);
        }

        _segments[^1][Count % SegmentSize] = item;
        Count++;
    }

    public IEnumerator<T> GetEnumerator()
    {
        for (var i = 0; i < Count; i++)
        {
            yield return this[i];
        }
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>
/// A whole uploaded day, parsed and validated (docs/backup-file-format.md, "The payload") before anything is
/// written: the day's full backup, its last recovery point (sharing the full's bytes for every item that did
/// not change), and the changes between them. Dispose it to zero the key material and secret ciphertexts.
/// </summary>
internal sealed class UploadedDay : IDisposable
{
    public required string SourceBackupId { get; init; }

    public required DateOnly Date { get; init; }

    public required BackupTimeZone TimeZone { get; init; }

    public required UploadedSnapshot Full { get; init; }

    public required UploadedSnapshot Last { get; init; }

    public required IReadOnlyList<ItemChange> Changes { get; init; }

    public required EncodedItems Items { get; init; }

    public void Dispose() => Items.Clear();
}
