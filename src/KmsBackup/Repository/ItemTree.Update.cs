using System.Security.Cryptography;

namespace KmsBackup.Repository;

// Updating a tree in place of rebuilding it: the cost of an incremental grows with its changes, not with the tree. It
// finds the changed names' leaves by the descent of ItemTree.Find.cs.
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

    /// <summary>A run of old nodes of one level (the items from <paramref name="OldStart"/> to <paramref name="OldEnd"/>) and the new nodes that replace them.</summary>
    private sealed record Region(long OldStart, long OldEnd, List<ChildRef> Refs);
}
