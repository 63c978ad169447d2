namespace KmsBackup.Domain;

/// <summary>How an item changed between two snapshots (rule D5). An item can be both rotated and changed in metadata.</summary>
[Flags]
#pragma warning disable CA1714 // Flags enums should have plural names: each value is one kind of change.
internal enum ChangeKind
#pragma warning restore CA1714
{
    /// <summary>No change.</summary>
    None = 0,

    /// <summary>The item is new.</summary>
    Added = 1 << 0,

    /// <summary>The item is gone.</summary>
    Deleted = 1 << 1,

    /// <summary>The item has a new version (a key rotation or a new secret value).</summary>
    Rotated = 1 << 2,

    /// <summary>The item's metadata (description, spec, creator, ...) changed.</summary>
    MetadataChanged = 1 << 3,
}

/// <summary>One item that changed.</summary>
/// <param name="Type">Key or secret.</param>
/// <param name="Name">The item's name.</param>
/// <param name="Kind">How it changed.</param>
internal readonly record struct ItemChange(ItemType Type, string Name, ChangeKind Kind);

/// <summary>The differences between two snapshots of one instance (rule D5), keys first, each in name order.</summary>
internal sealed class SnapshotDiff
{
    private SnapshotDiff(IReadOnlyList<ItemChange> changes) => Changes = changes;

    /// <summary>Every change, keys first, then secrets, each by name.</summary>
    public IReadOnlyList<ItemChange> Changes { get; }

    /// <summary>Whether nothing changed.</summary>
    public bool IsEmpty => Changes.Count == 0;

    /// <summary>The changes of one type having every flag of <paramref name="kind"/>.</summary>
    /// <param name="type">Key or secret.</param>
    /// <param name="kind">The change, e.g. <see cref="ChangeKind.Rotated"/>.</param>
    public IEnumerable<ItemChange> Of(ItemType type, ChangeKind kind) => Changes.Where(c => c.Type == type && (c.Kind & kind) == kind);

    /// <summary>Compares two snapshots by a merge over their sorted items.</summary>
    /// <param name="before">The older snapshot.</param>
    /// <param name="after">The newer snapshot.</param>
    public static SnapshotDiff Compare(InstanceSnapshot before, InstanceSnapshot after)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        var changes = new List<ItemChange>();
        ItemIndex.Merge(before.KeyIndex, after.KeyIndex, (i, j) =>
            AddIfChanged(changes, Classify(ItemType.Key, i < 0 ? null : before.Keys[i], j < 0 ? null : after.Keys[j], k => k.Name, (a, b) => a.SameVersions(b), (a, b) => a.SameMetadata(b))));
        ItemIndex.Merge(before.SecretIndex, after.SecretIndex, (i, j) =>
            AddIfChanged(changes, Classify(ItemType.Secret, i < 0 ? null : before.Secrets[i], j < 0 ? null : after.Secrets[j], s => s.Name, (a, b) => a.SameVersions(b), (a, b) => a.SameMetadata(b))));
        return new SnapshotDiff(changes);
    }

    /// <summary>The diff in one line.</summary>
    public override string ToString() => $"{Changes.Count} changes";

    private static void AddIfChanged(List<ItemChange> changes, ItemChange change)
    {
        if (change.Kind != ChangeKind.None)
        {
            changes.Add(change);
        }
    }

    private static ItemChange Classify<T>(ItemType type, T? before, T? after, Func<T, string> nameOf, Func<T, T, bool> sameVersions, Func<T, T, bool> sameMetadata)
        where T : class
    {
        if (before is null)
        {
            return new ItemChange(type, nameOf(after!), ChangeKind.Added);
        }

        if (after is null)
        {
            return new ItemChange(type, nameOf(before), ChangeKind.Deleted);
        }

        var kind = ChangeKind.None;
        if (!sameVersions(before, after))
        {
            kind |= ChangeKind.Rotated;
        }

        if (!sameMetadata(before, after))
        {
            kind |= ChangeKind.MetadataChanged;
        }

        // Equal stamps were skipped by the merge; unequal stamps with equal content cannot happen for
        // well-formed records, but report nothing rather than a change that is not there.
        return new ItemChange(type, nameOf(after), kind);
    }
}
