using System.Collections.Immutable;

namespace KmsBackup.DevelopmentKms;

/// <summary>A key as the embedded service holds it, with the restore operation that created it (if any and unchanged since).</summary>
internal sealed record StoredKey(KeyRecord Record, string? RestoredBy);

/// <summary>A secret as the embedded service holds it, with the restore operation that created it (if any and unchanged since).</summary>
internal sealed record StoredSecret(SecretRecord Record, string? RestoredBy);

/// <summary>One entry of an instance's change log: item <see cref="Name"/> changed at <see cref="Sequence"/>; whether it existed just before.</summary>
internal readonly record struct ChangeEntry(long Sequence, ItemType Type, string Name, bool ExistedBefore);

/// <summary>
/// The whole state of one embedded instance, immutable: a change builds a new state, which is written
/// to disk before it replaces the old one, so that a failed write changes nothing.
/// </summary>
internal sealed record InstanceState
{
    public static ImmutableSortedDictionary<string, StoredKey> NoKeys { get; } = ImmutableSortedDictionary.Create<string, StoredKey>(StringComparer.Ordinal);

    public static ImmutableSortedDictionary<string, StoredSecret> NoSecrets { get; } = ImmutableSortedDictionary.Create<string, StoredSecret>(StringComparer.Ordinal);

    public required string Id { get; init; }

    public required InstanceKind Kind { get; init; }

    public required string Region { get; init; }

    public required string OwnerAccount { get; init; }

    public required ImmutableArray<string> SharedWith { get; init; }

    public required int KeyQuota { get; init; }

    public required int SecretQuota { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    public required bool IsEnabled { get; init; }

    public DateTimeOffset? ReleasedAt { get; init; }

    public Version? ImageVersion { get; init; }

    /// <summary>A random ID of this instance's change log, so that a cursor of another instance (or of an instance of the same ID created anew) is told apart.</summary>
    public required string Epoch { get; init; }

    /// <summary>Keys by name.</summary>
    public ImmutableSortedDictionary<string, StoredKey> Keys { get; init; } = NoKeys;

    /// <summary>Key names by key ID.</summary>
    public ImmutableDictionary<string, string> KeyNamesById { get; init; } = ImmutableDictionary.Create<string, string>(StringComparer.Ordinal);

    /// <summary>Secrets by name.</summary>
    public ImmutableSortedDictionary<string, StoredSecret> Secrets { get; init; } = NoSecrets;

    /// <summary>The sequence number of the last change (0 before any).</summary>
    public long Sequence { get; init; }

    /// <summary>The sequence number of the last change dropped from <see cref="Log"/> (0 when none was).</summary>
    public long TrimmedThrough { get; init; }

    /// <summary>The newest changes, oldest first.</summary>
    public ImmutableList<ChangeEntry> Log { get; init; } = [];

    public bool IsReleased => ReleasedAt is not null;

    public bool IsUsable => IsEnabled && !IsReleased;

    public string Cursor => $"{Epoch}.{Sequence}";

    public bool MayCreate(string account) =>
        string.Equals(account, OwnerAccount, StringComparison.Ordinal) || SharedWith.Contains(account, StringComparer.Ordinal);

    public StoredKey? FindKeyById(string keyId) =>
        KeyNamesById.TryGetValue(keyId, out var name) && Keys.TryGetValue(name, out var key) ? key : null;

    public bool Holds(ItemType type, string name) => type == ItemType.Key ? Keys.ContainsKey(name) : Secrets.ContainsKey(name);

    public string? RestoredBy(ItemType type, string name) =>
        type == ItemType.Key ? Keys.GetValueOrDefault(name)?.RestoredBy : Secrets.GetValueOrDefault(name)?.RestoredBy;

    public InstanceState WithKey(StoredKey key, int logCapacity)
    {
        var existed = Keys.TryGetValue(key.Record.Name, out var old);
        var ids = existed ? KeyNamesById.Remove(old!.Record.Id) : KeyNamesById;
        return (this with { Keys = Keys.SetItem(key.Record.Name, key), KeyNamesById = ids.SetItem(key.Record.Id, key.Record.Name) })
            .Logged(ItemType.Key, key.Record.Name, existed, logCapacity);
    }

    public InstanceState WithoutKey(string name, int logCapacity)
    {
        var key = Keys[name];
        return (this with { Keys = Keys.Remove(name), KeyNamesById = KeyNamesById.Remove(key.Record.Id) })
            .Logged(ItemType.Key, name, existedBefore: true, logCapacity);
    }

    public InstanceState WithSecret(StoredSecret secret, int logCapacity)
    {
        var existed = Secrets.ContainsKey(secret.Record.Name);
        return (this with { Secrets = Secrets.SetItem(secret.Record.Name, secret) }).Logged(ItemType.Secret, secret.Record.Name, existed, logCapacity);
    }

    public InstanceState WithoutSecret(string name, int logCapacity) =>
        (this with { Secrets = Secrets.Remove(name) }).Logged(ItemType.Secret, name, existedBefore: true, logCapacity);

    /// <summary>
    /// The items changed after <paramref name="sequence"/>, each once, with whether it existed at
    /// <paramref name="sequence"/>; <see langword="null"/> when the log no longer reaches back that far.
    /// </summary>
    public IReadOnlyList<(ItemType Type, string Name, bool ExistedAtCursor)>? ChangedSince(long sequence)
    {
        if (sequence < TrimmedThrough || sequence > Sequence)
        {
            return null;
        }

        // Walk forward from the first entry after the cursor: the first entry of each item says
        // whether it existed at the cursor.
        var first = Log.Count;
        while (first > 0 && Log[first - 1].Sequence > sequence)
        {
            first--;
        }

        var seen = new HashSet<(ItemType, string)>();
        var changed = new List<(ItemType, string, bool)>();
        for (var i = first; i < Log.Count; i++)
        {
            var entry = Log[i];
            if (seen.Add((entry.Type, entry.Name)))
            {
                changed.Add((entry.Type, entry.Name, entry.ExistedBefore));
            }
        }

        return changed;
    }

    public InstanceDescription Describe() =>
        new(new InstanceInfo(Id, Kind, Region, CreatedAt) { IsEnabled = IsUsable, ImageVersion = ImageVersion }, OwnerAccount)
        {
            SharedWith = SharedWith,
            KeyQuota = KeyQuota,
            SecretQuota = SecretQuota,
            KeyCount = Keys.Count,
            SecretCount = Secrets.Count,
            ReleasedAt = ReleasedAt,
        };

    public override string ToString() => $"instance '{Id}' ({Kind}, {Region}): {Keys.Count} keys, {Secrets.Count} secrets, change {Sequence}";

    private InstanceState Logged(ItemType type, string name, bool existedBefore, int logCapacity)
    {
        var sequence = Sequence + 1;
        var log = Log.Add(new ChangeEntry(sequence, type, name, existedBefore));
        var trimmedThrough = TrimmedThrough;
        if (log.Count > logCapacity)
        {
            var drop = log.Count - logCapacity;
            trimmedThrough = log[drop - 1].Sequence;
            log = log.RemoveRange(0, drop);
        }

        return this with { Sequence = sequence, Log = log, TrimmedThrough = trimmedThrough };
    }
}
