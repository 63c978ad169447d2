using System.Text;

namespace KmsBackup.Repository;

/// <summary>
/// A change feed's changes as a tree update takes them: for keys and for secrets, one change per name in tree order (a
/// name deleted and added again in one read is added), and, once the trees are updated, the items they replaced.
/// </summary>
internal sealed class PointChanges
{
    private PointChanges(List<ItemTree.TreeChange<KeyRecord>> keys, List<ItemTree.TreeChange<SecretRecord>> secrets)
    {
        Keys = keys;
        Secrets = secrets;
    }

    public List<ItemTree.TreeChange<KeyRecord>> Keys { get; }

    public List<ItemTree.TreeChange<SecretRecord>> Secrets { get; }

    /// <summary>The old key of each changed key name the previous point held, in name order (filled by the update).</summary>
    public List<KeyRecord> KeysBefore { get; } = [];

    /// <summary>The old secret of each changed secret name the previous point held, in name order (filled by the update).</summary>
    public List<SecretRecord> SecretsBefore { get; } = [];

    /// <summary>How many items change.</summary>
    public int Count => Keys.Count + Secrets.Count;

    public static PointChanges Of(InstanceChanges changes) => new(
        TreeChangesOf(changes.DeletedKeys, changes.UpsertedKeys, k => k.Name),
        TreeChangesOf(changes.DeletedSecrets, changes.UpsertedSecrets, s => s.Name));

    /// <summary>
    /// The point's changes since the previous one, as its manifest records them (keys first, then secrets, each in name
    /// order): what <see cref="SnapshotDigest.ChangesSince"/> gives for the two whole snapshots. Call after the update.
    /// </summary>
    public List<ItemChange> ItemChanges()
    {
        var changes = new List<ItemChange>();
        Classify(ItemType.Key, Keys, KeysBefore, k => k.Name, SnapshotDigest.KindOf, changes);
        Classify(ItemType.Secret, Secrets, SecretsBefore, s => s.Name, SnapshotDigest.KindOf, changes);
        return changes;
    }

    private static void Classify<T>(
        ItemType type, List<ItemTree.TreeChange<T>> tree, List<T> before, Func<T, string> nameOf, Func<T, T, ChangeKind> kindOf, List<ItemChange> into)
        where T : class
    {
        var old = before.ToDictionary(nameOf, StringComparer.Ordinal);
        foreach (var change in tree)
        {
            var name = Encoding.UTF8.GetString(change.Name);
            var had = old.TryGetValue(name, out var previous);
            var kind = (change.Item, had) switch
            {
                (null, true) => ChangeKind.Deleted,
                (null, false) => ChangeKind.None,
                (_, false) => ChangeKind.Added,
                ({ } item, true) => kindOf(previous!, item),
            };
            if (kind != ChangeKind.None)
            {
                into.Add(new ItemChange(type, name, kind));
            }
        }
    }

    private static List<ItemTree.TreeChange<T>> TreeChangesOf<T>(IEnumerable<string> deleted, IEnumerable<T> upserted, Func<T, string> nameOf)
        where T : class
    {
        var byName = new Dictionary<string, T?>(StringComparer.Ordinal);
        foreach (var name in deleted)
        {
            byName[name] = null;
        }

        foreach (var item in upserted)
        {
            byName[nameOf(item)] = item;
        }

        var changes = byName.Select(p => new ItemTree.TreeChange<T>(Encoding.UTF8.GetBytes(p.Key), p.Value)).ToList();
        changes.Sort((a, b) => a.Name.AsSpan().SequenceCompareTo(b.Name));
        return changes;
    }
}
