namespace KmsBackup;

/// <summary>
/// What a client remembers of a backup's last recovery point between runs: each item's name and two content stamps,
/// one of its versions (IDs and times) and one of its metadata. No key material and no secret value: a cache that
/// outlives the run holds nothing a memory dump could give away. Enough to tell what changed since (rule D5): an item
/// is rotated when its versions differ, and changed in metadata when its metadata does, as <see cref="SnapshotDiff"/>
/// classifies them, except that the bytes of a version's material or ciphertext are not compared (a version is
/// identified by its ID and time; new material always comes with a new version).
/// </summary>
internal sealed class SnapshotDigest
{
    private readonly Part _keys;
    private readonly Part _secrets;

    private SnapshotDigest(Part keys, Part secrets)
    {
        _keys = keys;
        _secrets = secrets;
    }

    /// <summary>The digest of <paramref name="snapshot"/>; it keeps no reference to the snapshot or its records.</summary>
    public static SnapshotDigest Of(InstanceSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        return new SnapshotDigest(
            Part.Of(snapshot.Keys, k => k.Name, VersionStamp, MetadataStamp),
            Part.Of(snapshot.Secrets, s => s.Name, VersionStamp, MetadataStamp));
    }

    /// <summary>About how many bytes the digest holds: its names, and three stamps or offsets per item.</summary>
    public long EstimatedBytes => _keys.EstimatedBytes + _secrets.EstimatedBytes;

    /// <summary>What changed from <paramref name="before"/> to this digest: keys first, then secrets, each in name order.</summary>
    public IReadOnlyList<ItemChange> ChangesSince(SnapshotDigest before)
    {
        ArgumentNullException.ThrowIfNull(before);
        var changes = new List<ItemChange>();
        Part.Compare(ItemType.Key, before._keys, _keys, changes);
        Part.Compare(ItemType.Secret, before._secrets, _secrets, changes);
        return changes;
    }

    /// <summary>How <paramref name="after"/> differs from <paramref name="before"/> (a key of the same name), as <see cref="ChangesSince"/> tells it.</summary>
    public static ChangeKind KindOf(KeyRecord before, KeyRecord after) =>
        (VersionStamp(before) != VersionStamp(after) ? ChangeKind.Rotated : ChangeKind.None) |
        (MetadataStamp(before) != MetadataStamp(after) ? ChangeKind.MetadataChanged : ChangeKind.None);

    /// <summary>How <paramref name="after"/> differs from <paramref name="before"/> (a secret of the same name), as <see cref="ChangesSince"/> tells it.</summary>
    public static ChangeKind KindOf(SecretRecord before, SecretRecord after) =>
        (VersionStamp(before) != VersionStamp(after) ? ChangeKind.Rotated : ChangeKind.None) |
        (MetadataStamp(before) != MetadataStamp(after) ? ChangeKind.MetadataChanged : ChangeKind.None);

    private static long VersionStamp(KeyRecord key) => VersionStamp(key.Versions.Select(v => (v.VersionId, v.CreatedAt)), key.Versions.Length);

    private static long MetadataStamp(KeyRecord key)
    {
        var f = new Fingerprint();
        f.Add(key.Id);
        f.Add(key.Spec);
        f.Add(key.CreatorAccount);
        f.Add(key.CreatedAt.UtcTicks);
        f.Add(key.Description);
        return f.Value;
    }

    private static long VersionStamp(SecretRecord secret) => VersionStamp(secret.Versions.Select(v => (v.VersionId, v.CreatedAt)), secret.Versions.Length);

    /// <summary>The stamp of an item's versions: their count, and each one's ID and creation time, in order.</summary>
    private static long VersionStamp(IEnumerable<(string VersionId, DateTimeOffset CreatedAt)> versions, int count)
    {
        var f = new Fingerprint();
        f.Add(count);
        foreach (var (versionId, createdAt) in versions)
        {
            f.Add(versionId);
            f.Add(createdAt.UtcTicks);
        }

        return f.Value;
    }

    private static long MetadataStamp(SecretRecord secret)
    {
        var f = new Fingerprint();
        f.Add(secret.EncryptionKeyId);
        f.Add(secret.CreatorAccount);
        f.Add(secret.CreatedAt.UtcTicks);
        f.Add(secret.Description);
        return f.Value;
    }

    /// <summary>The items of one type: names and a stamp of both halves in columns (for the merge), and each half's stamp.</summary>
    private sealed class Part(ItemIndex index, long[] versions, long[] metadata)
    {
        public static Part Of<T>(IReadOnlyList<T> items, Func<T, string> nameOf, Func<T, long> versionStamp, Func<T, long> metadataStamp)
        {
            var names = new string[items.Count];
            var both = new long[items.Count];
            var versions = new long[items.Count];
            var metadata = new long[items.Count];
            for (var i = 0; i < items.Count; i++)
            {
                names[i] = nameOf(items[i]);
                versions[i] = versionStamp(items[i]);
                metadata[i] = metadataStamp(items[i]);
                var f = new Fingerprint();
                f.Add(versions[i]);
                f.Add(metadata[i]);
                both[i] = f.Value;
            }

            return new Part(ItemIndex.Build(names, both), versions, metadata);
        }

        public static void Compare(ItemType type, Part before, Part after, List<ItemChange> changes) =>
            ItemIndex.Merge(before.Index, after.Index, (i, j) =>
            {
                if (i < 0)
                {
                    changes.Add(new ItemChange(type, after.Index.Name(j), ChangeKind.Added));
                }
                else if (j < 0)
                {
                    changes.Add(new ItemChange(type, before.Index.Name(i), ChangeKind.Deleted));
                }
                else
                {
                    var kind = (before.Versions[i] != after.Versions[j] ? ChangeKind.Rotated : ChangeKind.None) |
                               (before.Metadata[i] != after.Metadata[j] ? ChangeKind.MetadataChanged : ChangeKind.None);
                    if (kind != ChangeKind.None)
                    {
                        changes.Add(new ItemChange(type, after.Index.Name(j), kind));
                    }
                }
            });

        public ItemIndex Index { get; } = index;

        public long[] Versions { get; } = versions;

        public long[] Metadata { get; } = metadata;

        public long EstimatedBytes => 64 + Index.NameBytes.Length + (Index.Count * 12L) + (Versions.Length * 8L) + (Metadata.Length * 8L);
    }
}
