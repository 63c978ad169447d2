using System.Runtime.CompilerServices;

namespace KmsBackup.Repository;

// Walking a whole tree leaf by leaf, in memory bounded by a batch of leaves however large the tree.
internal static partial class ItemTree
{
    /// <summary>Most leaves read from the store in one batch while a walk goes through them.</summary>
    private const int WalkBatch = 64;

    /// <summary>
    /// Every leaf of the tree under <paramref name="root"/>, in name order, as the bytes of its items (each item's leaf
    /// encoding, one after another; the leaf's count left out), checked as <see cref="ReadAsync"/> checks them (each
    /// node's item count and last name against its parent's record). It holds the branches on the path to the current
    /// leaves and one batch of leaves, not the tree. A leaf's plaintext (key material, secret ciphertexts) is zeroed
    /// once the caller moves past its batch, or stops. <paramref name="skip"/> reads an item, to find where it ends.
    /// </summary>
    public static async IAsyncEnumerable<ReadOnlyMemory<byte>> LeavesAsync<T>(
        ObjectStore objects, TreeRoot root, ReadItem<T> skip, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // Each batch of leaves is opened into this one buffer, cleared (zeroed) before the next.
        using var buffer = new PlaintextBuffer();
        var top = new Node(root.Id, 0, root.Count, null);
        if (root.Level == 0)
        {
            await foreach (var leaf in LeafBatchAsync(objects, buffer, [top], skip, cancellationToken).ConfigureAwait(false))
            {
                yield return leaf;
            }

            yield break;
        }

        var plain = (await objects.ReadObjectsAsync([root.Id], cancellationToken).ConfigureAwait(false))[root.Id];
        await foreach (var leaf in WalkBranchAsync(objects, buffer, top, root.Level, plain, skip, cancellationToken).ConfigureAwait(false))
        {
            yield return leaf;
        }
    }

    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> WalkBranchAsync<T>(
        ObjectStore objects, PlaintextBuffer buffer, Node node, int level, byte[] plain, ReadItem<T> skip, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var children = ChildrenOf(node, level, plain);
        if (level == 1)
        {
            for (var i = 0; i < children.Count; i += WalkBatch)
            {
                await foreach (var leaf in LeafBatchAsync(objects, buffer, children.GetRange(i, Math.Min(WalkBatch, children.Count - i)), skip, cancellationToken).ConfigureAwait(false))
                {
                    yield return leaf;
                }
            }

            yield break;
        }

        // The branches below, read together (a branch holds at most 256 children).
        var below = await objects.ReadObjectsAsync(children.Select(c => c.Id).Distinct().ToList(), cancellationToken).ConfigureAwait(false);
        foreach (var child in children)
        {
            await foreach (var leaf in WalkBranchAsync(objects, buffer, child, level - 1, below[child.Id], skip, cancellationToken).ConfigureAwait(false))
            {
                yield return leaf;
            }
        }
    }

    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> LeafBatchAsync<T>(
        ObjectStore objects, PlaintextBuffer buffer, List<Node> leaves, ReadItem<T> skip, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await objects.ReadObjectsAsync(leaves.Select(l => l.Id).Distinct().ToList(), buffer, cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var leaf in leaves)
            {
                yield return ItemsOf(buffer[leaf.Id], leaf, skip);
            }
        }
        finally
        {
            buffer.Clear();
        }
    }

    /// <summary>The children of a branch with their positions, checked against the branch's own record in its parent.</summary>
    private static List<Node> ChildrenOf(Node node, int level, byte[] plain)
    {
        var children = DecodeBranch(plain, node.Id, (byte)level);
        var nodes = new List<Node>(children.Count);
        var position = node.Start;
        foreach (var child in children)
        {
            nodes.Add(new Node(child.Id, position, child.Count, child.LastName));
            position += child.Count;
        }

        if (position - node.Start != node.Count)
        {
            throw RepositoryErrors.Integrity($"branch {node.Id.Short}", $"its children hold {position - node.Start} items where its parent says {node.Count}");
        }

        if (node.LastName is { } lastName && !children[^1].LastName.AsSpan().SequenceEqual(lastName))
        {
            throw RepositoryErrors.Integrity($"branch {node.Id.Short}", "its last item is not the one its parent names");
        }

        return nodes;
    }

    /// <summary>
    /// A leaf's items, after its count, checked against the parent's record as <see cref="SplitLeaf"/> checks them (its
    /// item count, each item read to its end, nothing after the last, and the last item's name).
    /// </summary>
    private static ReadOnlyMemory<byte> ItemsOf<T>(Memory<byte> plain, Node leaf, ReadItem<T> skip)
    {
        var reader = new RecordReader(plain.Span, $"leaf {leaf.Id.Short}");
        var held = CheckedLeafCount(ref reader, leaf);
        var first = reader.Position;
        var last = first;
        for (var i = 0; i < held; i++)
        {
            last = reader.Position;
            skip(ref reader);
        }

        reader.ExpectEnd();
        CheckLeafLastName(plain.Span, leaf, held == 0 ? null : last);
        return held == 0 ? ReadOnlyMemory<byte>.Empty : plain[first..];
    }
}
