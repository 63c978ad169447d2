using System.Collections.Immutable;

namespace KmsBackup;

/// <summary>The instance a snapshot was read from.</summary>
/// <param name="InstanceId">The instance ID.</param>
/// <param name="Kind">Software or hardware: a hardware snapshot carries no key material (rule D1).</param>
/// <param name="Region">The instance's region.</param>
/// <param name="OwnerAccount">The account that owns the instance.</param>
public sealed record SnapshotSource(string InstanceId, InstanceKind Kind, string Region, string OwnerAccount);

/// <summary>
/// The keys and secrets of an instance at one instant, each list sorted by name
/// (<see cref="ItemNameComparer"/>) with unique names. Immutable.
/// </summary>
public sealed class InstanceSnapshot
{
    private ItemIndex? _keyIndex;
    private ItemIndex? _secretIndex;

    private InstanceSnapshot(SnapshotSource source, DateTimeOffset takenAt, ImmutableArray<KeyRecord> keys, ImmutableArray<SecretRecord> secrets)
    {
        Source = source;
        TakenAt = takenAt;
        Keys = keys;
        Secrets = secrets;
    }

    /// <summary>The instance the snapshot was read from.</summary>
    public SnapshotSource Source { get; }

    /// <summary>When the snapshot was read.</summary>
    public DateTimeOffset TakenAt { get; }

    /// <summary>The keys, by name.</summary>
    public ImmutableArray<KeyRecord> Keys { get; }

    /// <summary>The secrets, by name.</summary>
    public ImmutableArray<SecretRecord> Secrets { get; }

    /// <summary>The keys in columns, for diffing.</summary>
    internal ItemIndex KeyIndex => _keyIndex ??= ItemIndex.Build(Keys.Select(k => k.Name).ToArray(), Keys.Select(StampOf).ToArray());

    /// <summary>The secrets in columns, for diffing.</summary>
    internal ItemIndex SecretIndex => _secretIndex ??= ItemIndex.Build(Secrets.Select(s => s.Name).ToArray(), Secrets.Select(StampOf).ToArray());

    /// <summary>
    /// Makes a snapshot, sorting keys and secrets by name. For a hardware instance every key must come
    /// without material (rule D1).
    /// </summary>
    /// <param name="source">The instance.</param>
    /// <param name="takenAt">When it was read.</param>
    /// <param name="keys">The keys, in any order.</param>
    /// <param name="secrets">The secrets, in any order.</param>
    /// <exception cref="ArgumentException">Two keys or two secrets share a name, or a hardware key carries material.</exception>
    public static InstanceSnapshot Create(SnapshotSource source, DateTimeOffset takenAt, IEnumerable<KeyRecord> keys, IEnumerable<SecretRecord> secrets)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(secrets);
        var sortedKeys = keys.OrderBy(k => k.Name, ItemNameComparer.Instance).ToImmutableArray();
        var sortedSecrets = secrets.OrderBy(s => s.Name, ItemNameComparer.Instance).ToImmutableArray();
        ThrowIfDuplicate(sortedKeys, k => k.Name, "key", nameof(keys));
        ThrowIfDuplicate(sortedSecrets, s => s.Name, "secret", nameof(secrets));
        if (source.Kind == InstanceKind.Hardware && sortedKeys.FirstOrDefault(k => k.HasMaterial) is { } withMaterial)
        {
            throw new ArgumentException($"The hardware instance '{source.InstanceId}' has its key material in its HSM cluster; {withMaterial} must carry none.", nameof(keys));
        }

        return new InstanceSnapshot(source, takenAt, sortedKeys, sortedSecrets);
    }

    /// <summary>The key named <paramref name="name"/>, or <see langword="null"/>.</summary>
    /// <param name="name">A key name.</param>
    public KeyRecord? FindKey(string name) => Find(Keys, name, k => k.Name);

    /// <summary>The secret named <paramref name="name"/>, or <see langword="null"/>.</summary>
    /// <param name="name">A secret name.</param>
    public SecretRecord? FindSecret(string name) => Find(Secrets, name, s => s.Name);

    /// <summary>The snapshot in one line, without any secret.</summary>
    public override string ToString() => $"{Source.InstanceId} at {ViewableWindow.Iso(TakenAt)}: {Keys.Length} keys, {Secrets.Length} secrets";

    /// <summary>The content stamp of a key: its metadata and version IDs and times (not its material).</summary>
    /// <param name="key">A key.</param>
    internal static long StampOf(KeyRecord key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var f = new Fingerprint();
        f.Add(key.Id);
        f.Add(key.Spec);
        f.Add(key.CreatorAccount);
        f.Add(key.CreatedAt.UtcTicks);
        f.Add(key.Description);
        f.Add(key.Versions.Length);
        foreach (var version in key.Versions)
        {
            f.Add(version.VersionId);
            f.Add(version.CreatedAt.UtcTicks);
            f.Add(version.Material?.Length ?? -1);
        }

        return f.Value;
    }

    /// <summary>The content stamp of a secret: its metadata and version IDs and times (not its values).</summary>
    /// <param name="secret">A secret.</param>
    internal static long StampOf(SecretRecord secret)
    {
        ArgumentNullException.ThrowIfNull(secret);
        var f = new Fingerprint();
        f.Add(secret.EncryptionKeyId);
        f.Add(secret.CreatorAccount);
        f.Add(secret.CreatedAt.UtcTicks);
        f.Add(secret.Description);
        f.Add(secret.Versions.Length);
        foreach (var version in secret.Versions)
        {
            f.Add(version.VersionId);
            f.Add(version.CreatedAt.UtcTicks);
        }

        return f.Value;
    }

    private static T? Find<T>(ImmutableArray<T> items, string name, Func<T, string> nameOf)
        where T : class
    {
        int lo = 0, hi = items.Length - 1;
        while (lo <= hi)
        {
            var mid = lo + ((hi - lo) / 2);
            var c = ItemNameComparer.Instance.Compare(nameOf(items[mid]), name);
            if (c == 0)
            {
                return items[mid];
            }

            if (c < 0)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return null;
    }

    private static void ThrowIfDuplicate<T>(ImmutableArray<T> sorted, Func<T, string> nameOf, string what, string parameter)
    {
        for (var i = 1; i < sorted.Length; i++)
        {
            if (string.Equals(nameOf(sorted[i - 1]), nameOf(sorted[i]), StringComparison.Ordinal))
            {
                throw new ArgumentException($"Two {what}s are named '{nameOf(sorted[i])}'; names are unique in an instance.", parameter);
            }
        }
    }
}
