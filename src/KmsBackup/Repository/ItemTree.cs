// Over 400 lines: building, reading and seeking the tree share its boundary rule and node format; one file keeps them from drifting apart.
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace KmsBackup.Repository;

/// <summary>
/// A content-defined tree over a snapshot's sorted items (a "prolly tree"): leaves end after an item
/// whose keyed name hash hits a boundary, branches end after a child whose ID does, so the same
/// items always make the same objects and a change rewrites only the leaf that holds it and the
/// branches above it. Unchanged parts are shared by every recovery point that contains them.
/// </summary>
internal static partial class ItemTree
{
    /// <summary>Average items per leaf (a power of two).</summary>
    public const int LeafTarget = 32;

    /// <summary>
    /// Average children per branch (a power of two). Small branches keep an incremental's cost close to
    /// its leaves': each change also rewrites the branches above its leaf, and on a large instance those
    /// are not shared with other changes.
    /// </summary>
    public const int BranchTarget = 32;

    /// <summary>
    /// The most bytes of items one leaf holds: a leaf also ends after the item that brings it to this size, so
    /// that a leaf (one object, held whole while it is sealed and packed) stays small even when its items are
    /// large. Ordinary keys and secrets never reach it: 32 items of a few KiB each.
    /// </summary>
    public const int MaximumLeafBytes = 8 * 1024 * 1024;

    /// <summary>
    /// The size a leaf buffer jumps to once it outgrows <see cref="RecordWriter.DoublingLimit"/>: the most bytes of items
    /// a leaf holds, plus one item as large as a backup file may carry, plus the leaf's count. A larger item still fits
    /// (the buffer grows to what it needs).
    /// </summary>
    private const int LeafCeiling = MaximumLeafBytes + (1024 * 1024) + Builder.CountRoom;

    private const int MaximumLeaf = LeafTarget * 8;
    private const int MaximumBranch = BranchTarget * 8;

    /// <summary>
    /// A buffer for leaves: pinned (leaves hold key material and secret values), doubling while small and then taking
    /// the largest leaf's size at once, so that large leaves leave no series of outgrown buffers behind.
    /// </summary>
    public static RecordWriter CreateLeafBuffer() => new(64 * 1024, pinned: true, ceiling: LeafCeiling);

    /// <summary>
    /// Writes the tree of <paramref name="items"/> (sorted by name) and returns its root. <paramref name="write"/>
    /// writes an item's leaf encoding, which starts with its name. A caller that writes several trees of large
    /// items passes <paramref name="leafBuffer"/> to keep one buffer, grown once, for all of them; it is left zeroed.
    /// </summary>
    public static async Task<TreeRoot> WriteAsync<T>(
        IReadOnlyList<T> items, Action<RecordWriter, T> write, byte leafRole,
        PackWriter writer, ulong salt, CancellationToken cancellationToken, RecordWriter? leafBuffer = null)
    {
        var builder = new Builder(leafRole, writer, salt, leafBuffer);
        try
        {
            foreach (var item in items)
            {
                write(builder.Leaf, item);
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

    /// <summary>
    /// Builds a tree from items given one at a time, in name order, holding only the leaf being filled and one
    /// unfinished branch per level: its memory does not grow with the number of items. A leaf ends after an item
    /// whose keyed name hash hits a boundary, at <see cref="MaximumLeaf"/> items or at <see cref="MaximumLeafBytes"/>;
    /// a branch after a child whose ID hits a boundary or at <see cref="MaximumBranch"/> children; a level of one
    /// node is the root. The same items always make the same objects, given one at a time or all at once.
    /// </summary>
    internal sealed class Builder
    {
        // A leaf is its item count (a variable-length integer, 1 or 2 bytes up to MaximumLeaf) and its items. The
        // items are written after room for the longest count, and the count right before them when the leaf is
        // written, so the leaf is handed to the pack writer in place: one buffer of key material, not two.
        internal const int CountRoom = 2;

        private readonly byte _leafRole;
        private readonly PackWriter _writer;
        private readonly ulong _salt;
        private readonly List<Level> _levels = [new()];
        private readonly List<ChildRef>? _leafRefs;
        private int _itemStart;
        private int _leafCount;
        private int _lastNameOffset;
        private int _lastNameLength;

        public Builder(byte leafRole, PackWriter writer, ulong salt, RecordWriter? leafBuffer)
            : this(leafRole, writer, salt, leafBuffer, leafRefs: null)
        {
        }

        /// <summary>
        /// A builder of leaves only: each leaf written is appended to <paramref name="leafRefs"/> instead of being
        /// grouped into branches (an incremental update groups them itself).
        /// </summary>
        internal Builder(byte leafRole, PackWriter writer, ulong salt, RecordWriter? leafBuffer, List<ChildRef>? leafRefs)
        {
            _leafRole = leafRole;
            _writer = writer;
            _salt = salt;
            _leafRefs = leafRefs;
            Leaf = leafBuffer ?? CreateLeafBuffer();
            StartLeaf();
        }

        /// <summary>Whether items were given since the last leaf was written.</summary>
        public bool HasPendingItems => _leafCount > 0;

        /// <summary>Where the next item's leaf encoding (name first) is written; then call <see cref="EndItem"/>.</summary>
        public RecordWriter Leaf { get; }

        /// <summary>Counts the item just written to <see cref="Leaf"/>; true when its leaf ends here (call <see cref="WriteLeafAsync"/>).</summary>
        public bool EndItem()
        {
            var (offset, length) = ItemCodec.NameRange(Leaf.WrittenSpan[_itemStart..]);
            var name = Leaf.WrittenSpan.Slice(_itemStart + offset, length);
            _lastNameOffset = _itemStart + offset;
            _lastNameLength = length;
            _itemStart = Leaf.Length;
            _leafCount++;
            return (Hash(_salt, name) & (LeafTarget - 1)) == 0 || _leafCount >= MaximumLeaf || Leaf.Length - CountRoom >= MaximumLeafBytes;
        }

        /// <summary>Writes the leaf of the items given since the last one.</summary>
        public async Task WriteLeafAsync(CancellationToken cancellationToken)
        {
            var count = _leafCount;
            var countLength = count < 0x80 ? 1 : 2;
            var leaf = MemoryMarshal.AsMemory(Leaf.WrittenMemory)[(CountRoom - countLength)..];
            if (countLength == 1)
            {
                leaf.Span[0] = (byte)count;
            }
            else
            {
                leaf.Span[0] = (byte)(count | 0x80);
                leaf.Span[1] = (byte)(count >> 7);
            }

            // The leaf is handed over in place: AddAsync reads it before it awaits anything, and a copy would be one
            // more buffer of key material and secret ciphertexts that nothing zeroes.
            var lastName = Leaf.WrittenSpan.Slice(_lastNameOffset, _lastNameLength).ToArray();
            var id = await _writer.AddAsync(_leafRole, leaf, cancellationToken).ConfigureAwait(false);
            StartLeaf();
            var child = new ChildRef(id, count, lastName);
            if (_leafRefs is not null)
            {
                _leafRefs.Add(child);
            }
            else
            {
                await AddChildAsync(0, child, cancellationToken).ConfigureAwait(false);
            }
        }

        /// <summary>Writes what is left (the last leaf, the last branch of each level) and returns the root.</summary>
        public async Task<TreeRoot> CompleteAsync(CancellationToken cancellationToken)
        {
            if (_leafCount > 0 || _levels[0].Total == 0)
            {
                // The last items' leaf; a tree of no items is one empty leaf.
                await WriteLeafAsync(cancellationToken).ConfigureAwait(false);
            }

            for (var depth = 0; ; depth++)
            {
                var level = _levels[depth];
                if (level.Total == 1)
                {
                    var only = level.Deferred?[0] ?? level.Pending[0];
                    return new TreeRoot(only.Id, (byte)depth, only.Count);
                }

                if (level.Pending.Count > 0)
                {
                    var last = level.Pending;
                    level.Pending = [];
                    await EmitAsync(depth, last, cancellationToken).ConfigureAwait(false);
                }
            }
        }

        /// <summary>Zeroes the leaf buffer: it held key material and secret ciphertexts.</summary>
        public void Clear() => Leaf.Clear();

        private void StartLeaf()
        {
            Leaf.Clear();
            Leaf.Append(CountRoom);
            _itemStart = CountRoom;
            _leafCount = 0;
            _lastNameOffset = CountRoom;
            _lastNameLength = 0;
        }

        private async Task AddChildAsync(int depth, ChildRef child, CancellationToken cancellationToken)
        {
            if (_levels.Count == depth)
            {
                _levels.Add(new Level());
            }

            var level = _levels[depth];
            if (level.Deferred is { } deferred)
            {
                // A second child: the level is more than its first node, which is written now.
                level.Deferred = null;
                await EmitAsync(depth, deferred, cancellationToken).ConfigureAwait(false);
            }

            level.Pending.Add(child);
            level.Total++;
            if (EndsBranch(child, level.Pending.Count, _salt))
            {
                var group = level.Pending;
                level.Pending = [];
                if (level.Total == 1)
                {
                    // A level's first child ends a node: a branch only if another child follows; else it is the root.
                    level.Deferred = group;
                }
                else
                {
                    await EmitAsync(depth, group, cancellationToken).ConfigureAwait(false);
                }
            }
        }

        private async Task EmitAsync(int depth, List<ChildRef> children, CancellationToken cancellationToken)
        {
            var parent = await WriteBranchAsync(children, (byte)(depth + 1), _writer, cancellationToken).ConfigureAwait(false);
            await AddChildAsync(depth + 1, parent, cancellationToken).ConfigureAwait(false);
        }

        private sealed class Level
        {
            public List<ChildRef> Pending { get; set; } = [];

            public long Total { get; set; }

            public List<ChildRef>? Deferred { get; set; }
        }
    }

    /// <summary>
    /// Reads every item of the tree under <paramref name="root"/>, in name order, checking each object. The leaves'
    /// plaintext (key material, secret ciphertexts) is zeroed once decoded: what <paramref name="read"/> keeps is all that remains,
    /// and if reading fails, <paramref name="discard"/> is called on each item read so far.
    /// </summary>
    public static async Task<List<T>> ReadAsync<T>(ObjectStore objects, TreeRoot root, byte leafRole, ReadItem<T> read, CancellationToken cancellationToken, Action<T>? discard = null)
    {
        if (root.Count > int.MaxValue)
        {
            throw RepositoryErrors.Integrity($"tree {root.Id.Short}", $"its manifest says it holds {root.Count} items");
        }

        // The whole range: every node is read, and each node's item count is checked against its parent's record.
        var items = await ReadRangeAsync(objects, root, leafRole, 0, (int)root.Count, read, cancellationToken, discard).ConfigureAwait(false);
        if (items.Count != root.Count)
        {
            items.ForEach(discard ?? (static _ => { }));
            throw RepositoryErrors.Integrity($"tree {root.Id.Short}", $"it holds {items.Count} items where its manifest says {root.Count}");
        }

        return items;
    }

    /// <summary>
    /// Reads the items at positions <paramref name="skip"/> to <paramref name="skip"/> + <paramref name="take"/> - 1 of
    /// the tree under <paramref name="root"/> (fewer at its end), in name order, descending only into the subtrees that
    /// hold them by the item counts the branches record: a read costs the tree's depth plus the leaves of the range,
    /// not the tree's size. Leaves are checked and zeroed as in <see cref="ReadAsync"/>.
    /// </summary>
    public static async Task<List<T>> ReadRangeAsync<T>(
        ObjectStore objects, TreeRoot root, byte leafRole, long skip, int take, ReadItem<T> read, CancellationToken cancellationToken, Action<T>? discard = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(skip);
        ArgumentOutOfRangeException.ThrowIfNegative(take);
        var end = Math.Min(root.Count, skip + take);
        var items = new List<T>((int)Math.Clamp(end - skip, 0, 50_000_000));
        if (skip >= end)
        {
            return items;
        }

        // The nodes that hold the range, level by level, each with the position of its first item and what its parent
        // records of it (item count, last name), which ChildrenOf and SplitLeaf check it against.
        var frontier = new List<Node> { new(root.Id, 0, root.Count, null) };
        for (var depth = root.Level; depth > 0; depth--)
        {
            var nodes = await objects.ReadObjectsAsync(frontier.Select(n => n.Id).Distinct().ToList(), cancellationToken).ConfigureAwait(false);
            frontier = [.. frontier.SelectMany(node => ChildrenOf(node, depth, nodes[node.Id])).Where(child => child.Start < end && child.End > skip)];
        }

        var leaves = await objects.ReadObjectsAsync(frontier.Select(n => n.Id).Distinct().ToList(), cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var leaf in frontier)
            {
                var position = leaf.Start;
                foreach (var (_, _, item) in SplitLeaf(leaves[leaf.Id], leaf, read, discard))
                {
                    if (position >= skip && position < end)
                    {
                        items.Add(item);
                    }
                    else
                    {
                        discard?.Invoke(item);
                    }

                    position++;
                }
            }
        }
        catch when (discard is not null)
        {
            items.ForEach(discard);
            throw;
        }
        finally
        {
            foreach (var plaintext in leaves.Values)
            {
                CryptographicOperations.ZeroMemory(plaintext);
            }
        }

        return items;
    }

    /// <summary>
    /// Adds every object ID the tree under <paramref name="root"/> refers to, the root included, to
    /// <paramref name="into"/>; subtrees whose root is there already are not read again.
    /// </summary>
    public static async Task CollectAsync(ObjectStore objects, TreeRoot root, ISet<ObjectId> into, CancellationToken cancellationToken)
    {
        if (!into.Add(root.Id))
        {
            return;
        }

        var level = new List<ObjectId> { root.Id };
        for (var depth = root.Level; depth > 0; depth--)
        {
            var unseen = level.Distinct().ToList();
            var nodes = await objects.ReadObjectsAsync(unseen, cancellationToken).ConfigureAwait(false);
            var next = new List<ObjectId>();
            foreach (var id in unseen)
            {
                foreach (var child in DecodeBranch(nodes[id], id, (byte)depth))
                {
                    if (into.Add(child.Id) && depth > 1)
                    {
                        next.Add(child.Id);
                    }
                }
            }

            level = next;
        }
    }

    /// <summary>
    /// Adds every object ID under <paramref name="root"/> with <paramref name="add"/> (which says whether the ID is new),
    /// walking branches that are already open (verify has opened every object once); a branch missing from
    /// <paramref name="branches"/> is added but not walked, and reported missing by the caller.
    /// </summary>
    public static void CollectFrom(TreeRoot root, IReadOnlyDictionary<ObjectId, byte[]> branches, Func<ObjectId, bool> add)
    {
        if (!add(root.Id))
        {
            return;
        }

        var level = new List<ObjectId> { root.Id };
        for (var depth = root.Level; depth > 0 && level.Count > 0; depth--)
        {
            var next = new List<ObjectId>();
            foreach (var id in level)
            {
                if (!branches.TryGetValue(id, out var plain))
                {
                    continue;
                }

                foreach (var child in DecodeBranch(plain, id, (byte)depth))
                {
                    if (add(child.Id) && depth > 1)
                    {
                        next.Add(child.Id);
                    }
                }
            }

            level = next;
        }
    }

    public delegate T ReadItem<T>(ref RecordReader reader);

    /// <summary>Whether a branch ends after <paramref name="child"/>, its <paramref name="count"/>th child.</summary>
    private static bool EndsBranch(ChildRef child, int count, ulong salt) =>
        ((child.Id.A ^ salt) & (BranchTarget - 1)) == 0 || count >= MaximumBranch;

    private static async Task<ChildRef> WriteBranchAsync(List<ChildRef> children, byte level, PackWriter writer, CancellationToken cancellationToken)
    {
        var branch = new RecordWriter(64 + (children.Count * 96));
        branch.WriteByte(level);
        branch.WriteVarUInt((ulong)children.Count);
        long total = 0;
        Span<byte> id = stackalloc byte[ObjectId.Size];
        var previous = ReadOnlySpan<byte>.Empty;
        foreach (var child in children)
        {
            child.Id.Write(id);
            branch.WriteRaw(id);
            branch.WriteVarUInt((ulong)child.Count);

            // The last name front-coded: the bytes it shares with the child before's, then the rest. Sorted names share
            // long prefixes, and every change rewrites a branch per level, so this keeps an incremental's bytes down.
            var shared = previous.CommonPrefixLength(child.LastName);
            branch.WriteVarUInt((ulong)shared);
            branch.WriteBytes(child.LastName.AsSpan(shared));
            previous = child.LastName;
            total += child.Count;
        }

        var branchId = await writer.AddAsync(ObjectRole.Branch, branch.ToArray(), cancellationToken).ConfigureAwait(false);
        return new ChildRef(branchId, total, children[^1].LastName);
    }

    private static List<ChildRef> DecodeBranch(byte[] plain, ObjectId id, byte expectedLevel)
    {
        var reader = new RecordReader(plain, $"branch {id.Short}");
        if (reader.ReadByte() != expectedLevel)
        {
            throw reader.Malformed("its level is not where the tree puts it");
        }

        var count = reader.ReadCount(MaximumBranch);
        var children = new List<ChildRef>(count);
        for (var i = 0; i < count; i++)
        {
            var childId = ObjectId.Read(reader.ReadRaw(ObjectId.Size));
            var childCount = (long)reader.ReadVarUInt();
            var shared = reader.ReadVarUInt();
            var previous = i == 0 ? [] : children[^1].LastName;
            if (shared > (ulong)previous.Length)
            {
                throw reader.Malformed("a child's name shares more bytes with the one before than that one has");
            }

            var suffix = reader.ReadBytes();
            var lastName = new byte[(int)shared + suffix.Length];
            previous.AsSpan(0, (int)shared).CopyTo(lastName);
            suffix.CopyTo(lastName.AsSpan((int)shared));
            if (childCount == 0 || (i > 0 && lastName.AsSpan().SequenceCompareTo(children[^1].LastName) <= 0))
            {
                throw reader.Malformed("its children are empty or not in name order");
            }

            children.Add(new ChildRef(childId, childCount, lastName));
        }

        reader.ExpectEnd();
        return children;
    }

    private static ulong Hash(ulong salt, ReadOnlySpan<byte> utf8Name)
    {
        // A keyed FNV-1a over the UTF-8 name, finished with a 64-bit mixer: cheap, stable across
        // processes, and (through the secret salt) revealing nothing about names from the boundaries.
        var hash = 14695981039346656037UL ^ salt;
        foreach (var b in utf8Name)
        {
            hash = unchecked((hash ^ b) * 1099511628211UL);
        }

        hash ^= hash >> 33;
        hash = unchecked(hash * 0xff51afd7ed558ccdUL);
        hash ^= hash >> 33;
        return hash;
    }

    /// <summary>A child of a branch: its object, how many items it holds, and the UTF-8 name of its last item.</summary>
    internal readonly record struct ChildRef(ObjectId Id, long Count, byte[] LastName);
}

/// <summary>The root of an item tree: its object, its height and how many items it holds.</summary>
internal readonly record struct TreeRoot(ObjectId Id, byte Level, long Count);
