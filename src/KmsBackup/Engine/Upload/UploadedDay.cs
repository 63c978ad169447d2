using System.Text;
using KmsBackup.Repository;

namespace KmsBackup;

/// <summary>Items of one kind of one uploaded point in a <see cref="SpillFile"/>: back to back from <see cref="Start"/>, each its length and its leaf encoding, in name order.</summary>
internal readonly record struct SpilledItems(long Start, long Count);

/// <summary>One recovery point of an uploaded day: where it was taken, and where its items lie in the day's spill file.</summary>
internal sealed record UploadedSnapshot(SnapshotSource Source, DateTimeOffset TakenAt, SpilledItems Keys, SpilledItems Secrets);

/// <summary>
/// The changes of an uploaded day in the encoding a point manifest stores them in, back to back: a day's changes
/// cost their encoded bytes and 4 bytes each, not an object and a string each. Read as <see cref="ItemChange"/>
/// records one at a time.
/// </summary>
internal sealed class EncodedChanges : IReadOnlyList<ItemChange>
{
    private readonly RecordWriter _bytes = new(4096);
    private readonly List<int> _offsets = [];

    public int Count => _offsets.Count;

    public ItemChange this[int index]
    {
        get
        {
            var bytes = _bytes.WrittenSpan[_offsets[index]..];
            return new ItemChange(TypeOf(index), Encoding.UTF8.GetString(ItemCodec.NameOf(bytes[2..])), KindOf(index));
        }
    }

    public void Add(ItemType type, ChangeKind kind, string name)
    {
        _offsets.Add(_bytes.Length);
        _bytes.WriteByte((byte)type);
        _bytes.WriteByte((byte)kind);
        _bytes.WriteString(name);
    }

    public ItemType TypeOf(int index) => (ItemType)_bytes.WrittenSpan[_offsets[index]];

    public ChangeKind KindOf(int index) => (ChangeKind)_bytes.WrittenSpan[_offsets[index] + 1];

    /// <summary>The UTF-8 bytes of change <paramref name="index"/>'s item name.</summary>
    public ReadOnlySpan<byte> NameOf(int index) => ItemCodec.NameOf(_bytes.WrittenSpan[(_offsets[index] + 2)..]);

    public IEnumerator<ItemChange> GetEnumerator()
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
/// written: the day's full backup, its last recovery point and the changes between them. The points' items wait
/// in an encrypted spill file, so that the day costs the same memory however many items it holds; dispose the
/// day to close the file (and with it the only key that opens it).
/// </summary>
internal sealed class UploadedDay : IDisposable
{
    public required string SourceBackupId { get; init; }

    public required DateOnly Date { get; init; }

    public required BackupTimeZone TimeZone { get; init; }

    public required UploadedSnapshot Full { get; init; }

    public required UploadedSnapshot Last { get; init; }

    public required EncodedChanges Changes { get; init; }

    public required SpillFile Items { get; init; }

    /// <summary>The leaf buffer of every tree the upload writes (two points, and rewrites): grown once to the largest leaf, pinned, zeroed at the end.</summary>
    private readonly RecordWriter _leaf = ItemTree.CreateLeafBuffer();

    /// <summary>
    /// Writes the tree of spilled <paramref name="items"/>, reading them once, in order: the same objects a backup
    /// run writes for the same items. Memory: the leaf being filled (in a buffer shared by every tree of the day),
    /// one branch per level, one spill page.
    /// </summary>
    public async Task<TreeRoot> WriteTreeAsync(SpilledItems items, byte leafRole, PackWriter writer, ulong salt, CancellationToken cancellationToken)
    {
        var builder = new ItemTree.Builder(leafRole, writer, salt, _leaf);
        using var cursor = Items.OpenCursor(items.Start);
        try
        {
            for (long i = 0; i < items.Count; i++)
            {
                var length = checked((int)cursor.ReadVarUInt());
                cursor.Read(builder.Leaf.Append(length).Span);
                if (builder.EndItem())
                {
                    await builder.WriteLeafAsync(cancellationToken).ConfigureAwait(false);
                }
            }

            return await builder.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            builder.Clear();
        }
    }

    public void Dispose()
    {
        _leaf.Wipe();
        Items.Dispose();
    }
}
