using System.Security.Cryptography;

namespace KmsBackup.Repository;

// Finding items by name: a descent by the last names the branches record, shared with the tree update, so that a
// few names cost their paths, not the tree.
internal static partial class ItemTree
{
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

    /// <summary>
    /// How many items of the tree under <paramref name="root"/> have names (UTF-8, ordinal) before <paramref name="name"/>:
    /// the position of the first item at or after it. Reads the one leaf that would hold the name and the branches above
    /// it (the branches record each child's item count); the leaf is checked and zeroed as in <see cref="ReadAsync"/>.
    /// </summary>
    public static async Task<long> RankAsync<T>(ObjectStore objects, TreeRoot root, byte[] name, ReadItem<T> read, Action<T> discard, CancellationToken cancellationToken)
    {
        if (root.Count == 0)
        {
            return 0;
        }

        var (leaf, _, _) = (await FindLeavesAsync(new OldTree(objects, root), [name], cancellationToken).ConfigureAwait(false))[0];
        var plain = (await objects.ReadObjectsAsync([leaf.Id], cancellationToken).ConfigureAwait(false))[leaf.Id];
        try
        {
            var before = 0;
            foreach (var (offset, _, item) in SplitLeaf(plain, leaf, read, discard))
            {
                if (ItemCodec.NameOf(plain.AsSpan(offset)).SequenceCompareTo(name) < 0)
                {
                    before++;
                }

                discard(item);
            }

            return leaf.Start + before;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
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
            var held = CheckedLeafCount(ref reader, leaf);
            for (var i = 0; i < held; i++)
            {
                var start = reader.Position;
                var item = read(ref reader);
                items.Add((start, reader.Position - start, item));
            }

            reader.ExpectEnd();
            CheckLeafLastName(plain, leaf, held == 0 ? null : items[^1].Offset);
            return items;
        }
        catch when (discard is not null)
        {
            items.ForEach(i => discard(i.Item));
            throw;
        }
    }

    /// <summary>Reads a leaf's item count and checks it against its parent's record.</summary>
    private static int CheckedLeafCount(ref RecordReader reader, Node leaf)
    {
        var held = reader.ReadCount(MaximumLeaf);
        if (held != leaf.Count)
        {
            throw RepositoryErrors.Integrity($"leaf {leaf.Id.Short}", $"it holds {held} items where its parent says {leaf.Count}");
        }

        return held;
    }

    /// <summary>Checks a leaf's last item (at <paramref name="lastItem"/>, none if the leaf is empty) against the name its parent records.</summary>
    private static void CheckLeafLastName(ReadOnlySpan<byte> plain, Node leaf, int? lastItem)
    {
        if (leaf.LastName is { } lastName && (lastItem is not { } offset || !ItemCodec.NameOf(plain[offset..]).SequenceEqual(lastName)))
        {
            throw RepositoryErrors.Integrity($"leaf {leaf.Id.Short}", "its last item is not the one its parent names");
        }
    }

    /// <summary>A node of the old tree: its object, the position of its first item, its item count, and its last item's name (unknown for the root).</summary>
    private readonly record struct Node(ObjectId Id, long Start, long Count, byte[]? LastName)
    {
        public long End => Start + Count;
    }

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
