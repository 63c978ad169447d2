using System.Security.Cryptography;

namespace KmsBackup.Repository;

// Updating a tree in place of rebuilding it, and finding items by name: both descend by the last names the branches
// record, so their cost grows with the names asked for, not with the tree.
internal static partial class ItemTree
{
    /// <summary>Most leaves read from the store in one batch while an update walks them.</summary>
    private const int LeafBatch = 256;

    /// <summary>
    /// Writes the tree of the items under <paramref name="root"/> with <paramref name="changes"/> applied, and returns
    /// its root: the same root <see cref="WriteAsync"/> gives for the changed items, reading and writing only the
    /// leaves and branches on the changed paths. Each changed name is found by the names the branches record; its
    /// leaf is rebuilt with the changes merged in, and so is each leaf after it until a leaf boundary falls where the
    /// old tree had one (from there on the two trees are the same); then each level of branches likewise, up to the
    /// root. Unchanged subtrees are referred to, not read: the caller must make sure they stay stored (the point they
    /// come from stays until the new point is committed).
    /// </summary>
    /// <param name="objects">The repository's objects.</param>
    /// <param name="root">The old tree.</param>
    /// <param name="leafRole">The role of the tree's leaves.</param>
    /// <param name="changes">The changes, in name order, one per name: an item to add or replace, or a name to delete.</param>
    /// <param name="write">Writes an item's leaf encoding.</param>
    /// <param name="readOld">Reads an old item (metadata only is enough) for <paramref name="before"/>.</param>
    /// <param name="before">Receives, in name order, the old item of each changed name the old tree held.</param>
    /// <param name="writer">Writes the new objects.</param>
    /// <param name="salt">The chunking salt.</param>
    /// <param name="leafBuffer">The buffer leaves are built in; left zeroed.</param>
    /// <param name="cancellationToken">Cancels the update.</param>
    public static async Task<TreeRoot> UpdateAsync<T>(
        ObjectStore objects, TreeRoot root, byte leafRole, IReadOnlyList<TreeChange<T>> changes, Action<RecordWriter, T> write,
        ReadItem<T> readOld, List<T> before, PackWriter writer, ulong salt, RecordWriter leafBuffer, CancellationToken cancellationToken)
        where T : class
    {
        before.Clear();
        for (var i = 1; i < changes.Count; i++)
        {
            if (changes[i - 1].Name.AsSpan().SequenceCompareTo(changes[i].Name) >= 0)
            {
                throw new ArgumentException("Changes must be in name order, one per name.", nameof(changes));
            }
        }

        if (root.Count == 0)
        {
            // Nothing to keep: the tree of the added items.
            var added = changes.Where(c => c.Item is not null).Select(c => c.Item!).ToList();
            return await WriteAsync(added, write, leafRole, writer, salt, cancellationToken, leafBuffer).ConfigureAwait(false);
        }

        if (changes.Count == 0)
        {
            return root;
        }

        var tree = new OldTree(objects, root);
        try
        {
            var affected = await FindLeavesAsync(tree, changes.Select(c => c.Name).ToList(), cancellationToken).ConfigureAwait(false);
            var regions = await RebuildLeavesAsync(tree, affected, changes, write, readOld, before, leafRole, writer, salt, leafBuffer, cancellationToken).ConfigureAwait(false);
            for (var level = 0; ; level++)
            {
                // The new nodes of this level are the old ones outside the regions and the regions' new ones.
                if (regions is [{ OldStart: 0 } only] && only.OldEnd == root.Count)
                {
                    return await CompleteLevelsAsync(only.Refs, level, leafRole, writer, salt, leafBuffer, cancellationToken).ConfigureAwait(false);
                }

                if (regions.All(r => r.Refs.Count == 0) && await SoleOldNodeAsync(tree, regions, level, cancellationToken).ConfigureAwait(false) is { } sole)
                {
                    return new TreeRoot(sole.Id, (byte)level, sole.Count);
                }

                regions = await RebuildBranchesAsync(tree, regions, (byte)(level + 1), writer, salt, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            leafBuffer.Clear();
        }
    }

    /// <summary>
    /// Reads the items named <paramref name="names"/> (UTF-8, in name order, distinct) from the tree under
    /// <paramref name="root"/>, in name order; names it does not hold are left out. It reads the leaves that would hold
    /// the names and the branches above them: a few items of a large tree cost their paths, not the tree. Leaves are
    /// checked and zeroed as in <see cref="ReadAsync"/>; items read but not asked for go to <paramref name="discard"/>.
    /// </summary>
    public static async Task<List<T>> FindAsync<T>(
        ObjectStore objects, TreeRoot root, IReadOnlyList<byte[]> names, ReadItem<T> read, CancellationToken cancellationToken, Action<T>? discard = null)
    {
        for (var i = 1; i < names.Count; i++)
        {
            if (names[i - 1].AsSpan().SequenceCompareTo(names[i]) >= 0)
            {
                throw new ArgumentException("Names must be in name order, each once.", nameof(names));
            }
        }

        var found = new List<T>();
        if (root.Count == 0 || names.Count == 0)
        {
            return found;
        }

        var leaves = await FindLeavesAsync(new OldTree(objects, root), names, cancellationToken).ConfigureAwait(false);
        var plain = await objects.ReadObjectsAsync(leaves.Select(l => l.Leaf.Id).Distinct().ToList(), cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var (leaf, from, to) in leaves)
            {
                PickFromLeaf(plain[leaf.Id], leaf, names, from, to, read, found, discard);
            }
        }
        catch when (discard is not null)
        {
            found.ForEach(discard);
            throw;
        }
        finally
        {
            foreach (var bytes in plain.Values)
            {
                CryptographicOperations.ZeroMemory(bytes);
            }
        }

        return found;
    }

    /// <summary>Adds to <paramref name="found"/> the items of one leaf named among <paramref name="names"/>[<paramref name="from"/>..<paramref name="to"/>), checking the leaf against its parent's record.</summary>
    private static void PickFromLeaf<T>(byte[] plain, Node leaf, IReadOnlyList<byte[]> names, int from, int to, ReadItem<T> read, List<T> found, Action<T>? discard)
    {
        var k = from;
        foreach (var (offset, _, item) in SplitLeaf(plain, leaf, read, discard))
        {
            var name = ItemCodec.NameOf(plain.AsSpan(offset));
            while (k < to && names[k].AsSpan().SequenceCompareTo(name) < 0)
            {
                k++;
            }

            if (k < to && names[k].AsSpan().SequenceEqual(name))
            {
                found.Add(item);
            }
            else
            {
                discard?.Invoke(item);
            }
        }
    }

    /// <summary>Finds the leaf that holds (or would hold) each name, by the last names the branches record; one descent for all.</summary>
    private static async Task<List<(Node Leaf, int From, int To)>> FindLeavesAsync(OldTree tree, IReadOnlyList<byte[]> names, CancellationToken cancellationToken)
    {
        var frontier = new List<(Node Node, int From, int To)> { (new Node(tree.Root.Id, 0, tree.Root.Count, null), 0, names.Count) };
        for (var depth = tree.Root.Level; depth > 0; depth--)
        {
            await tree.LoadBranchesAsync(frontier.Select(f => f.Node).ToList(), depth, cancellationToken).ConfigureAwait(false);
            var next = new List<(Node Node, int From, int To)>();
            foreach (var (node, from, to) in frontier)
            {
                var children = await tree.BranchAsync(node, depth, cancellationToken).ConfigureAwait(false);
                var k = from;
                var start = node.Start;
                for (var c = 0; c < children.Count && k < to; c++)
                {
                    // A child takes the names up to its last one; the last child of a node also takes the names after it
                    // (only the rightmost path is given any: a parent gives a node no name after its last).
                    var child = children[c];
                    var end = k;
                    while (end < to && (c == children.Count - 1 || names[end].AsSpan().SequenceCompareTo(child.LastName) <= 0))
                    {
                        end++;
                    }

                    if (end > k)
                    {
                        next.Add((new Node(child.Id, start, child.Count, child.LastName), k, end));
                    }

                    k = end;
                    start += child.Count;
                }
            }

            frontier = next;
        }

        return frontier;
    }

    /// <summary>
    /// Rebuilds the leaves that hold changes, each run of them from its first leaf (which starts where the old tree
    /// has a boundary) until the new leaves end where an old one ended, past the run's changes.
    /// </summary>
    private static async Task<List<Region>> RebuildLeavesAsync<T>(
        OldTree tree, List<(Node Leaf, int From, int To)> affected, IReadOnlyList<TreeChange<T>> changes, Action<RecordWriter, T> write,
        ReadItem<T> readOld, List<T> before, byte leafRole, PackWriter writer, ulong salt, RecordWriter leafBuffer, CancellationToken cancellationToken)
        where T : class
    {
        var regions = new List<Region>();
        var loaded = new Dictionary<ObjectId, byte[]>();
        try
        {
            var a = 0;
            while (a < affected.Count)
            {
                var regionStart = affected[a].Leaf.Start;
                var refs = new List<ChildRef>();
                var builder = new Builder(leafRole, writer, salt, leafBuffer, refs);
                var position = regionStart;
                while (true)
                {
                    Node leaf;
                    int from = 0, to = 0;
                    if (a < affected.Count && affected[a].Leaf.Start == position)
                    {
                        (leaf, from, to) = affected[a];
                        if (!loaded.ContainsKey(leaf.Id))
                        {
                            var batch = affected.Skip(a).Take(LeafBatch).Select(x => x.Leaf.Id).Where(id => !loaded.ContainsKey(id)).Distinct().ToList();
                            foreach (var (id, plain) in await tree.Objects.ReadObjectsAsync(batch, cancellationToken).ConfigureAwait(false))
                            {
                                loaded[id] = plain;
                            }
                        }

                        a++;
                    }
                    else
                    {
                        leaf = await tree.NodeAtAsync(0, position, cancellationToken).ConfigureAwait(false);
                        if (!loaded.ContainsKey(leaf.Id))
                        {
                            loaded[leaf.Id] = (await tree.Objects.ReadObjectsAsync([leaf.Id], cancellationToken).ConfigureAwait(false))[leaf.Id];
                        }
                    }

                    // Each leaf is merged once (two leaves of one tree never hold the same items, so never share an object):
                    // its plaintext, key material and secret ciphertexts, is zeroed at once.
                    await MergeLeafAsync(builder, leaf, loaded[leaf.Id], changes, from, to, write, readOld, before, cancellationToken).ConfigureAwait(false);
                    CryptographicOperations.ZeroMemory(loaded[leaf.Id]);
                    loaded.Remove(leaf.Id);

                    position = leaf.End;
                    if (position == tree.Root.Count)
                    {
                        if (builder.HasPendingItems)
                        {
                            await builder.WriteLeafAsync(cancellationToken).ConfigureAwait(false);
                        }

                        break;
                    }

                    if (!builder.HasPendingItems && (a == affected.Count || affected[a].Leaf.Start > position))
                    {
                        break;
                    }
                }

                regions.Add(new Region(regionStart, position, refs));
            }
        }
        finally
        {
            foreach (var plain in loaded.Values)
            {
                CryptographicOperations.ZeroMemory(plain);
            }
        }

        return regions;
    }

    /// <summary>Gives the builder the items of one old leaf with the changes <paramref name="from"/> to <paramref name="to"/> merged in, writing each leaf that ends.</summary>
    private static async Task MergeLeafAsync<T>(
        Builder builder, Node leaf, byte[] plain, IReadOnlyList<TreeChange<T>> changes, int from, int to, Action<RecordWriter, T> write,
        ReadItem<T> readOld, List<T> before, CancellationToken cancellationToken)
        where T : class
    {
        var items = SplitLeaf(plain, leaf, readOld, discard: null);
        var k = from;
        foreach (var (offset, length, old) in items)
        {
            var encoded = plain.AsMemory(offset, length);
            var (nameOffset, nameLength) = ItemCodec.NameRange(encoded.Span);
            var itemName = encoded.Slice(nameOffset, nameLength);
            while (k < to && changes[k].Name.AsSpan().SequenceCompareTo(itemName.Span) < 0)
            {
                await AddChangeAsync(builder, changes[k++], write, cancellationToken).ConfigureAwait(false);
            }

            if (k < to && changes[k].Name.AsSpan().SequenceEqual(itemName.Span))
            {
                before.Add(old);
                await AddChangeAsync(builder, changes[k++], write, cancellationToken).ConfigureAwait(false);
                continue;
            }

            builder.Leaf.WriteRaw(encoded.Span);
            if (builder.EndItem())
            {
                await builder.WriteLeafAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        while (k < to)
        {
            await AddChangeAsync(builder, changes[k++], write, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task AddChangeAsync<T>(Builder builder, TreeChange<T> change, Action<RecordWriter, T> write, CancellationToken cancellationToken)
        where T : class
    {
        if (change.Item is not { } item)
        {
            return; // a deletion
        }

        write(builder.Leaf, item);
        if (builder.EndItem())
        {
            await builder.WriteLeafAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Each item of a leaf: where its encoding lies, and the item as <paramref name="read"/> reads it. Checks the leaf
    /// against its parent's record (its item count, and its last item's name); when a check fails, the items read so far
    /// go to <paramref name="discard"/>.
    /// </summary>
    private static List<(int Offset, int Length, T Item)> SplitLeaf<T>(byte[] plain, Node leaf, ReadItem<T> read, Action<T>? discard)
    {
        var items = new List<(int Offset, int Length, T Item)>();
        try
        {
            var reader = new RecordReader(plain, $"leaf {leaf.Id.Short}");
            var held = reader.ReadCount(MaximumLeaf);
            if (held != leaf.Count)
            {
                throw RepositoryErrors.Integrity($"leaf {leaf.Id.Short}", $"it holds {held} items where its parent says {leaf.Count}");
            }

            for (var i = 0; i < held; i++)
            {
                var start = reader.Position;
                var item = read(ref reader);
                items.Add((start, reader.Position - start, item));
            }

            reader.ExpectEnd();
            if (leaf.LastName is { } lastName && (held == 0 || !ItemCodec.NameOf(plain.AsSpan(items[^1].Offset)).SequenceEqual(lastName)))
            {
                throw RepositoryErrors.Integrity($"leaf {leaf.Id.Short}", "its last item is not the one its parent names");
            }

            return items;
        }
        catch when (discard is not null)
        {
            items.ForEach(i => discard(i.Item));
            throw;
        }
    }

    /// <summary>
    /// Rebuilds the branches of <paramref name="level"/> over the regions of the level below: from the old branch that
    /// holds a region's start, with each region's new children in place of its old ones, until a branch ends where an
    /// old one ended past the regions begun.
    /// </summary>
    private static async Task<List<Region>> RebuildBranchesAsync(OldTree tree, List<Region> below, byte level, PackWriter writer, ulong salt, CancellationToken cancellationToken)
    {
        var regions = new List<Region>();
        var r = 0;
        while (r < below.Count)
        {
            var node = await tree.NodeAtAsync(level, below[r].OldStart, cancellationToken).ConfigureAwait(false);
            var regionStart = node.Start;
            var refs = new List<ChildRef>();
            var pending = new List<ChildRef>();
            long position;
            while (true)
            {
                var p = node.Start;
                foreach (var child in await tree.BranchAsync(node, level, cancellationToken).ConfigureAwait(false))
                {
                    if (r < below.Count && p >= below[r].OldStart)
                    {
                        // An old child the region below replaces; its new children come in place of its first.
                        if (p == below[r].OldStart)
                        {
                            foreach (var replacement in below[r].Refs)
                            {
                                await AddBranchChildAsync(pending, replacement, refs, level, writer, salt, cancellationToken).ConfigureAwait(false);
                            }
                        }

                        if (p + child.Count > below[r].OldEnd)
                        {
                            throw new InvalidOperationException("A region of a tree update does not end at a node boundary.");
                        }

                        if (p + child.Count == below[r].OldEnd)
                        {
                            r++;
                        }
                    }
                    else
                    {
                        await AddBranchChildAsync(pending, child, refs, level, writer, salt, cancellationToken).ConfigureAwait(false);
                    }

                    p += child.Count;
                }

                position = node.End;
                if (position == tree.Root.Count)
                {
                    if (pending.Count > 0)
                    {
                        refs.Add(await WriteBranchAsync(pending, level, writer, cancellationToken).ConfigureAwait(false));
                    }

                    break;
                }

                if (pending.Count == 0 && (r == below.Count || below[r].OldStart > position))
                {
                    break;
                }

                node = await tree.NodeAtAsync(level, position, cancellationToken).ConfigureAwait(false);
            }

            regions.Add(new Region(regionStart, position, refs));
        }

        return regions;
    }

    private static async Task AddBranchChildAsync(List<ChildRef> pending, ChildRef child, List<ChildRef> into, byte level, PackWriter writer, ulong salt, CancellationToken cancellationToken)
    {
        pending.Add(child);
        if (EndsBranch(child, pending.Count, salt))
        {
            into.Add(await WriteBranchAsync(pending, level, writer, cancellationToken).ConfigureAwait(false));
            pending.Clear();
        }
    }

    /// <summary>The levels above a level whose new nodes are all known: branches over it until one node remains, the root.</summary>
    private static async Task<TreeRoot> CompleteLevelsAsync(
        List<ChildRef> nodes, int level, byte leafRole, PackWriter writer, ulong salt, RecordWriter leafBuffer, CancellationToken cancellationToken)
    {
        if (nodes.Count == 0)
        {
            // Every item deleted: the tree of no items, one empty leaf.
            return await new Builder(leafRole, writer, salt, leafBuffer).CompleteAsync(cancellationToken).ConfigureAwait(false);
        }

        while (nodes.Count > 1)
        {
            level++;
            var parents = new List<ChildRef>();
            var pending = new List<ChildRef>();
            foreach (var node in nodes)
            {
                await AddBranchChildAsync(pending, node, parents, (byte)level, writer, salt, cancellationToken).ConfigureAwait(false);
            }

            if (pending.Count > 0)
            {
                parents.Add(await WriteBranchAsync(pending, (byte)level, writer, cancellationToken).ConfigureAwait(false));
            }

            nodes = parents;
        }

        return new TreeRoot(nodes[0].Id, (byte)level, nodes[0].Count);
    }

    /// <summary>
    /// When the regions leave exactly one old node of <paramref name="level"/> and replace the rest with nothing, that
    /// node (the new root); otherwise <see langword="null"/>.
    /// </summary>
    private static async Task<Node?> SoleOldNodeAsync(OldTree tree, List<Region> regions, int level, CancellationToken cancellationToken)
    {
        var gaps = new List<(long Start, long End)>();
        var at = 0L;
        foreach (var region in regions)
        {
            if (region.OldStart > at)
            {
                gaps.Add((at, region.OldStart));
            }

            at = region.OldEnd;
        }

        if (at < tree.Root.Count)
        {
            gaps.Add((at, tree.Root.Count));
        }

        if (gaps is not [var (start, end)])
        {
            return null;
        }

        var node = await tree.NodeAtAsync(level, start, cancellationToken).ConfigureAwait(false);
        return node.Start == start && node.End == end ? node : null;
    }

    /// <summary>One change of a tree update: the item to add or replace under <paramref name="Name"/> (UTF-8), or <see langword="null"/> to delete it.</summary>
    internal readonly record struct TreeChange<T>(byte[] Name, T? Item)
        where T : class;

    /// <summary>A node of the old tree: its object, the position of its first item, its item count, and its last item's name (unknown for the root).</summary>
    private readonly record struct Node(ObjectId Id, long Start, long Count, byte[]? LastName)
    {
        public long End => Start + Count;
    }

    /// <summary>A run of old nodes of one level (the items from <paramref name="OldStart"/> to <paramref name="OldEnd"/>) and the new nodes that replace them.</summary>
    private sealed record Region(long OldStart, long OldEnd, List<ChildRef> Refs);

    /// <summary>The old tree, read as the update needs it: branches are read once and kept, checked against their parent's record.</summary>
    private sealed class OldTree(ObjectStore objects, TreeRoot root)
    {
        private readonly Dictionary<ObjectId, List<ChildRef>> _branches = [];

        public ObjectStore Objects => objects;

        public TreeRoot Root => root;

        /// <summary>Reads the branches among <paramref name="nodes"/> not read yet, in one batch.</summary>
        public async Task LoadBranchesAsync(List<Node> nodes, int level, CancellationToken cancellationToken)
        {
            var missing = nodes.Where(n => !_branches.ContainsKey(n.Id)).ToList();
            if (missing.Count == 0)
            {
                return;
            }

            var read = await objects.ReadObjectsAsync(missing.Select(n => n.Id).Distinct().ToList(), cancellationToken).ConfigureAwait(false);
            foreach (var node in missing)
            {
                Decode(node, level, read[node.Id]);
            }
        }

        /// <summary>The children of the old branch <paramref name="node"/> at <paramref name="level"/>.</summary>
        public async Task<List<ChildRef>> BranchAsync(Node node, int level, CancellationToken cancellationToken)
        {
            if (!_branches.TryGetValue(node.Id, out var children))
            {
                await LoadBranchesAsync([node], level, cancellationToken).ConfigureAwait(false);
                children = _branches[node.Id];
            }

            return children;
        }

        /// <summary>The old node of <paramref name="level"/> that holds the item at <paramref name="position"/>.</summary>
        public async Task<Node> NodeAtAsync(int level, long position, CancellationToken cancellationToken)
        {
            var node = new Node(root.Id, 0, root.Count, null);
            for (var depth = root.Level; depth > level; depth--)
            {
                var start = node.Start;
                Node? next = null;
                foreach (var child in await BranchAsync(node, depth, cancellationToken).ConfigureAwait(false))
                {
                    if (position < start + child.Count)
                    {
                        next = new Node(child.Id, start, child.Count, child.LastName);
                        break;
                    }

                    start += child.Count;
                }

                node = next ?? throw new ArgumentOutOfRangeException(nameof(position), "The position is past the tree's items.");
            }

            return node;
        }

        private void Decode(Node node, int level, byte[] plain)
        {
            if (_branches.ContainsKey(node.Id))
            {
                return;
            }

            var children = DecodeBranch(plain, node.Id, (byte)level);
            var held = children.Sum(c => c.Count);
            if (held != node.Count)
            {
                throw RepositoryErrors.Integrity($"branch {node.Id.Short}", $"its children hold {held} items where its parent says {node.Count}");
            }

            if (node.LastName is { } lastName && !children[^1].LastName.AsSpan().SequenceEqual(lastName))
            {
                throw RepositoryErrors.Integrity($"branch {node.Id.Short}", "its last item is not the one its parent names");
            }

            _branches[node.Id] = children;
        }
    }
}
