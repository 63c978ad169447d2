using System.Security.Cryptography;

namespace KmsBackup.Repository;
// The items in which two trees of one repository differ, found without reading what they share.
internal static partial class ItemTree
{
    /// <summary>
    /// The items of the tree under <paramref name="root"/> that lie in leaves the tree under <paramref name="other"/> does
    /// not refer to, in name order. Object IDs are keyed MACs of content, so a subtree both trees refer to holds the same
    /// items in both: it is skipped unread. Costs the branches of <paramref name="other"/> plus the paths to the differing
    /// leaves of <paramref name="root"/>. Leaves are checked and zeroed as in <see cref="ReadAsync"/>.
    /// </summary>
    public static async Task<List<T>> ItemsNotInAsync<T>(
        ObjectStore objects, TreeRoot root, TreeRoot other, ReadItem<T> read, CancellationToken cancellationToken, Action<T>? discard = null)
    {
        var shared = new HashSet<ObjectId>();
        await CollectAsync(objects, other, shared, cancellationToken).ConfigureAwait(false);
        var items = new List<T>();
        if (shared.Contains(root.Id))
        {
            return items;
        }

        var frontier = new List<Node> { new(root.Id, 0, root.Count, null) };
        for (var depth = root.Level; depth > 0 && frontier.Count > 0; depth--)
        {
            var nodes = await objects.ReadObjectsAsync(frontier.Select(n => n.Id).Distinct().ToList(), cancellationToken).ConfigureAwait(false);
            frontier = [.. frontier.SelectMany(node => ChildrenOf(node, depth, nodes[node.Id])).Where(child => !shared.Contains(child.Id))];
        }

        var leaves = await objects.ReadObjectsAsync(frontier.Select(n => n.Id).Distinct().ToList(), cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var leaf in frontier)
            {
                foreach (var (_, _, item) in SplitLeaf(leaves[leaf.Id], leaf, read, discard))
                {
                    items.Add(item);
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
}
