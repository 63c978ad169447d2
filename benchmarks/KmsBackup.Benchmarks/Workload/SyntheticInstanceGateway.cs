using System.Globalization;
using System.Runtime.CompilerServices;

namespace KmsBackup.Benchmarks.Workload;

/// <summary>
/// Workload generator, not a product gateway: one software instance of N items (three keys to one secret,
/// named like <c>app/orders/key-0000123</c>), generated deterministically from a seed, with a change feed.
/// <see cref="MakeChanges"/> adds, rotates and deletes items at random positions, so that each backup run
/// sees exactly the changes a benchmark asks for. Restore-target members are not needed and throw.
/// </summary>
internal sealed class SyntheticInstanceGateway : InstanceGateway
{
    public const string InstanceId = "kst-bench-1";
    public const string Owner = "owner-1";
    private const string Region = "cn-hangzhou";
    private static readonly string[] Services = ["billing", "identity", "inventory", "orders", "payments", "search", "shipping", "users"];
    private static readonly DateTimeOffset CreatedAt = new(2025, 6, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly TimeProvider _time;
    private readonly Random _random;
    private readonly Dictionary<string, KeyRecord> _keys = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SecretRecord> _secrets = new(StringComparer.Ordinal);
    private readonly List<string> _keyNames = [];
    private readonly List<string> _secretNames = [];
    private readonly List<(ItemType Type, string Name)> _log = [];
    private readonly Dictionary<string, int> _keyIds = new(StringComparer.Ordinal); // how many keys have each ID (later items reuse a number)
    private int _nextNumber;
    private readonly int _initialItems;

    public SyntheticInstanceGateway(int items, TimeProvider time, int seed = 20260101)
    {
        _time = time;
        _random = new Random(seed);
        for (var n = 0; n < items; n++)
        {
            AddItem(isSecret: n % 4 == 3);
        }

        _initialItems = items;
    }

    public static SnapshotSource Source { get; } = new(InstanceId, InstanceKind.Software, Region, Owner);

    public int ItemCount => _keys.Count + _secrets.Count;

    /// <summary>The keys, in ordinal name order (for an export).</summary>
    public IEnumerable<KeyRecord> KeysByName => _keys.Values.OrderBy(k => k.Name, StringComparer.Ordinal);

    /// <summary>The secrets, in ordinal name order (for an export).</summary>
    public IEnumerable<SecretRecord> SecretsByName => _secrets.Values.OrderBy(s => s.Name, StringComparer.Ordinal);

    public override bool SupportsChangeFeed => true;

    /// <summary>
    /// Makes <paramref name="count"/> changes: a third each added, rotated (a new version) and deleted items
    /// (rounding goes to rotations), keys and secrets in proportion, at random names.
    /// </summary>
    public void MakeChanges(int count)
    {
        var added = count / 3;
        var deleted = count / 3;
        for (var c = 0; c < count; c++)
        {
            var isSecret = _random.Next(4) == 3;
            if (c < added)
            {
                AddItem(isSecret);
            }
            else if (c < added + deleted)
            {
                DeleteItem(isSecret);
            }
            else
            {
                RotateItem(isSecret);
            }
        }
    }

    public override Task<InstanceDescription?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken = default) =>
        Task.FromResult(instanceId == InstanceId ? Describe() : null);

    public override async IAsyncEnumerable<InstanceDescription> ListInstancesAsync(string? region = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await Task.CompletedTask;
        if (region is null or Region)
        {
            yield return Describe();
        }
    }

    public override Task<SnapshotRead> ReadSnapshotAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        // Copies, as the gateway contract asks: the engine zeroes the key material and ciphertexts it read once its run
        // is done, so handing out the instance's own records would wipe the instance (a later full would then see other
        // items than the first, and store them all again).
        var snapshot = InstanceSnapshot.Create(Source, _time.GetUtcNow(), _keys.Values.Select(Copy), _secrets.Values.Select(Copy));
        return Task.FromResult(new SnapshotRead(snapshot, Cursor(_log.Count)));
    }

    public override Task<InstanceChanges> ReadChangesAsync(string instanceId, string cursor, CancellationToken cancellationToken = default)
    {
        var since = int.Parse(cursor, NumberStyles.None, CultureInfo.InvariantCulture);
        var changed = _log.Skip(since).Distinct().ToList();
        return Task.FromResult(new InstanceChanges
        {
            ReadAt = _time.GetUtcNow(),
            Cursor = Cursor(_log.Count),
            UpsertedKeys = changed.Where(c => c.Type == ItemType.Key && _keys.ContainsKey(c.Name)).Select(c => Copy(_keys[c.Name])).ToList(),
            DeletedKeys = changed.Where(c => c.Type == ItemType.Key && !_keys.ContainsKey(c.Name)).Select(c => c.Name).ToList(),
            UpsertedSecrets = changed.Where(c => c.Type == ItemType.Secret && _secrets.ContainsKey(c.Name)).Select(c => Copy(_secrets[c.Name])).ToList(),
            DeletedSecrets = changed.Where(c => c.Type == ItemType.Secret && !_secrets.ContainsKey(c.Name)).Select(c => c.Name).ToList(),
        });
    }

    /// <summary>The plan of a restore into this instance asks which names are in use: a lookup per name, as a service would answer.</summary>
    public override Task<IReadOnlyList<NameInUse>> FindNamesInUseAsync(string region, ItemType type, IReadOnlyCollection<string> names, CancellationToken cancellationToken = default)
    {
        IReadOnlyList<NameInUse> used = region != Region ? [] :
            [.. names.Where(n => type == ItemType.Key ? _keys.ContainsKey(n) : _secrets.ContainsKey(n)).Select(n => new NameInUse(type, n, InstanceId) { OwnerAccount = Owner })];
        return Task.FromResult(used);
    }

    /// <summary>A lookup per key ID, as a service would answer (the default reads a whole snapshot).</summary>
    public override Task<IReadOnlySet<string>> FindKeyIdsAsync(string instanceId, IReadOnlyCollection<string> keyIds, CancellationToken cancellationToken = default)
    {
        var wanted = keyIds.ToHashSet(StringComparer.Ordinal);
        IReadOnlySet<string> found = instanceId != InstanceId ? new HashSet<string>() : wanted.Where(_keyIds.ContainsKey).ToHashSet(StringComparer.Ordinal);
        return Task.FromResult(found);
    }

    public override Task<bool> CreateKeyAsync(string instanceId, KeyRecord key, string operationId, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("The benchmark workload is never a restore target.");

    public override Task<bool> CreateSecretAsync(string instanceId, SecretRecord secret, string operationId, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("The benchmark workload is never a restore target.");

    public override Task<bool> DeleteRestoredItemAsync(string instanceId, ItemType type, string name, string operationId, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("The benchmark workload is never a restore target.");

    private static KeyRecord Copy(KeyRecord key) =>
        new(key.Id, key.Name, key.Spec, key.CreatorAccount, key.CreatedAt, [.. key.Versions.Select(v => v with { Material = v.Material is { } m ? SensitiveBytes.Copy(m.Span) : null })])
        {
            Description = key.Description,
        };

    private static SecretRecord Copy(SecretRecord secret) =>
        new(secret.Name, secret.EncryptionKeyId, secret.CreatorAccount, secret.CreatedAt, [.. secret.Versions.Select(v => v with { Ciphertext = SensitiveBytes.Copy(v.Ciphertext.Span) })])
        {
            Description = secret.Description,
        };

    private static string Cursor(int position) => position.ToString(CultureInfo.InvariantCulture);

    private InstanceDescription Describe() => new(new InstanceInfo(InstanceId, InstanceKind.Software, Region, CreatedAt), Owner)
    {
        KeyQuota = int.MaxValue,
        SecretQuota = int.MaxValue,
        KeyCount = _keys.Count,
        SecretCount = _secrets.Count,
    };

    private void AddItem(bool isSecret)
    {
        // The instance's first items are numbered in order; a later one follows a random first item in name
        // order ("key-0001234-7"), so that added items land anywhere, as new names do, not at the end.
        var number = _initialItems == 0 ? _nextNumber++ : _random.Next(_initialItems);
        var kind = isSecret ? "secret" : "key";
        var name = _initialItems == 0
            ? string.Create(CultureInfo.InvariantCulture, $"app/{Services[number % Services.Length]}/{kind}-{number:D7}")
            : string.Create(CultureInfo.InvariantCulture, $"app/{Services[number % Services.Length]}/{kind}-{number:D7}-{_nextNumber++}");

        var at = CreatedAt.AddSeconds(number);
        if (isSecret)
        {
            _secrets[name] = new SecretRecord(name, $"key-{number & ~3:x8}", Owner, at, [new SecretVersion("s1", at, Bytes(48))]);
            _secretNames.Add(name);
            _log.Add((ItemType.Secret, name));
        }
        else
        {
            _keys[name] = new KeyRecord($"key-{number:x8}", name, "Aliyun_AES_256", Owner, at, [new KeyVersion("v1", at, Bytes(32))]);
            _keyIds[_keys[name].Id] = _keyIds.GetValueOrDefault(_keys[name].Id) + 1;
            _keyNames.Add(name);
            _log.Add((ItemType.Key, name));
        }
    }

    private void DeleteItem(bool isSecret)
    {
        var names = isSecret ? _secretNames : _keyNames;
        var index = _random.Next(names.Count);
        var name = names[index];
        names[index] = names[^1];
        names.RemoveAt(names.Count - 1);
        if (isSecret)
        {
            _secrets.Remove(name);
        }
        else if (_keys.Remove(name, out var key) && --_keyIds[key.Id] == 0)
        {
            _keyIds.Remove(key.Id);
        }

        _log.Add((isSecret ? ItemType.Secret : ItemType.Key, name));
    }

    private void RotateItem(bool isSecret)
    {
        var names = isSecret ? _secretNames : _keyNames;
        var name = names[_random.Next(names.Count)];
        var now = _time.GetUtcNow();
        if (isSecret)
        {
            var s = _secrets[name];
            _secrets[name] = new SecretRecord(s.Name, s.EncryptionKeyId, s.CreatorAccount, s.CreatedAt, [.. s.Versions, new SecretVersion($"s{s.Versions.Length + 1}", now, Bytes(48))]);
        }
        else
        {
            var k = _keys[name];
            _keys[name] = new KeyRecord(k.Id, k.Name, k.Spec, k.CreatorAccount, k.CreatedAt, [.. k.Versions, new KeyVersion($"v{k.Versions.Length + 1}", now, Bytes(32))]);
        }

        _log.Add((isSecret ? ItemType.Secret : ItemType.Key, name));
    }

    private SensitiveBytes Bytes(int length)
    {
        var bytes = new byte[length];
        _random.NextBytes(bytes);
        return SensitiveBytes.Own(bytes);
    }
}
