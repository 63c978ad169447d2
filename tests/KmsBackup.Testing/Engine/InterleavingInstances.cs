// Over 400 lines: the schedules' key management service and the oracle that knows every version it held.
using System.Collections.Immutable;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;

namespace KmsBackup.Testing.Engine;

/// <summary>
/// The key management service of an interleaving schedule: a few source instances whose every version is kept, and
/// restore targets. Each source instance's content is a pure function of its version number (the history of changes
/// the scheduler made), and every version holds a marker key whose description is that number, so that whatever a
/// recovery point holds can be compared with exactly what the instance held when the run read it. Deterministic: IDs,
/// material and times come from the version history, never from a random source.
/// </summary>
/// <remarks>Thread-safe. Every read returns fresh records, since the engine clears key material it is done with.</remarks>
internal sealed class InterleavingInstances(TimeProvider clock, string owner, string region) : InstanceGateway
{
    /// <summary>The name of the key whose description is the instance's version.</summary>
    public const string MarkerName = "zz-marker";

    private const string Spec = "AES_256";
    private readonly object _lock = new();
    private readonly Dictionary<string, List<(InstanceContent Content, long Step)>> _sources = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RestoreTarget> _targets = new(StringComparer.Ordinal);
    // Before the automatic-backup cutoff (rule K4): every tick's instance discovery lists these instances and creates
    // nothing, since the schedules' backups are the default and purchased ones that the oracle models.
    private readonly DateTimeOffset _createdAt = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private int _names;

    /// <summary>The source instances, by ID.</summary>
    public IReadOnlyList<string> SourceIds
    {
        get
        {
            lock (_lock)
            {
                return [.. _sources.Keys.Order(StringComparer.Ordinal)];
            }
        }
    }

    /// <summary>Adds a source instance with a few keys and a secret, at version 0.</summary>
    public void AddSource(string instanceId, long step)
    {
        var now = clock.GetUtcNow();
        var keys = ImmutableSortedDictionary.Create<string, ItemEntry>(StringComparer.Ordinal);
        for (var i = 0; i < 3; i++)
        {
            keys = keys.Add(NextName("k"), new ItemEntry(Id: $"{instanceId}-{NextName("id")}", CreatedAt: now, Versions: [now], KeyId: null));
        }

        var secrets = ImmutableSortedDictionary.Create<string, ItemEntry>(StringComparer.Ordinal)
            .Add(NextName("s"), new ItemEntry(Id: string.Empty, CreatedAt: now, Versions: [now], KeyId: keys.Values.First().Id));
        lock (_lock)
        {
            _sources.Add(instanceId, [(new InstanceContent(keys, secrets), step)]);
        }
    }

    /// <summary>Adds an empty restore target in a region of its own (so that no name is in use there).</summary>
    public void AddTarget(string instanceId, string targetRegion)
    {
        lock (_lock)
        {
            _targets.Add(instanceId, new RestoreTarget(targetRegion));
        }
    }

    /// <summary>Changes a source instance (adds, rotates or deletes a key, adds or rotates a secret) and returns what it did.</summary>
    public string Change(string instanceId, Random random, long step)
    {
        var now = clock.GetUtcNow();
        lock (_lock)
        {
            var history = _sources[instanceId];
            var (keys, secrets) = history[^1].Content;
            string what;
            var choice = random.Next(6);
            if (choice == 0 || keys.Count == 0)
            {
                var name = NextName("k");
                keys = keys.Add(name, new ItemEntry($"{instanceId}-{NextName("id")}", now, [now], null));
                what = $"add key {name}";
            }
            else if (choice is 1 or 2)
            {
                var (name, entry) = keys.ElementAt(random.Next(keys.Count));
                keys = keys.SetItem(name, entry with { Versions = entry.Versions.Add(now) });
                what = $"rotate key {name}";
            }
            else if (choice == 3 && keys.Count > 1)
            {
                var (name, _) = keys.ElementAt(random.Next(keys.Count));
                keys = keys.Remove(name);
                what = $"delete key {name}";
            }
            else if (choice == 4 || secrets.Count == 0)
            {
                var name = NextName("s");
                secrets = secrets.Add(name, new ItemEntry(string.Empty, now, [now], keys.Values.ElementAt(random.Next(keys.Count)).Id));
                what = $"add secret {name}";
            }
            else
            {
                var (name, entry) = secrets.ElementAt(random.Next(secrets.Count));
                secrets = secrets.SetItem(name, entry with { Versions = entry.Versions.Add(now) });
                what = $"rotate secret {name}";
            }

            history.Add((new InstanceContent(keys, secrets), step));
            return $"{instanceId} v{history.Count - 1}: {what}";
        }
    }

    /// <summary>The latest version of a source instance.</summary>
    public int VersionOf(string instanceId)
    {
        lock (_lock)
        {
            return _sources[instanceId].Count - 1;
        }
    }

    /// <summary>Names of the keys a source instance holds now.</summary>
    public IReadOnlyList<string> KeyNames(string instanceId)
    {
        lock (_lock)
        {
            return [.. _sources[instanceId][^1].Content.Keys.Keys];
        }
    }

    /// <summary>Whether <paramref name="version"/> of the instance was its latest at some step in [<paramref name="from"/>, <paramref name="to"/>].</summary>
    public bool WasCurrentBetween(string instanceId, int version, long from, long to)
    {
        lock (_lock)
        {
            if (!_sources.TryGetValue(instanceId, out var history) || version < 0 || version >= history.Count)
            {
                return false;
            }

            var madeAt = history[version].Step;
            var replacedAt = version + 1 < history.Count ? history[version + 1].Step : long.MaxValue;
            return madeAt <= to && replacedAt >= from;
        }
    }

    /// <summary>The keys and secrets of a source instance at a version, as fresh records.</summary>
    public (List<KeyRecord> Keys, List<SecretRecord> Secrets)? ContentAt(string instanceId, int version)
    {
        lock (_lock)
        {
            if (!_sources.TryGetValue(instanceId, out var history) || version < 0 || version >= history.Count)
            {
                return null;
            }

            return (KeysOf(instanceId, version, history[version].Content), SecretsOf(instanceId, history[version].Content));
        }
    }

    /// <summary>The source instance a marker key ID belongs to.</summary>
    public static string? SourceOfMarker(KeyRecord marker) =>
        marker.Id.StartsWith("marker-", StringComparison.Ordinal) ? marker.Id["marker-".Length..] : null;

    /// <summary>The version a marker key names, or -1.</summary>
    public static int VersionOfMarker(KeyRecord? marker) =>
        marker?.Description is { } d && d.StartsWith('v') && int.TryParse(d.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : -1;

    /// <summary>The keys a restore created in a target, by name.</summary>
    public IReadOnlyDictionary<string, KeyRecord> RestoredKeys(string targetId)
    {
        lock (_lock)
        {
            return _targets[targetId].Keys.ToDictionary(k => k.Key, k => Copy(k.Value.Record), StringComparer.Ordinal);
        }
    }

    public override Task<InstanceDescription?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            return Task.FromResult(DescribeLocked(instanceId));
        }
    }

    public override async IAsyncEnumerable<InstanceDescription> ListInstancesAsync(string? region = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        List<InstanceDescription> all;
        lock (_lock)
        {
            all = [.. _sources.Keys.Concat(_targets.Keys).Order(StringComparer.Ordinal).Select(id => DescribeLocked(id)!)];
        }

        foreach (var description in all.Where(d => region is null || d.Info.Region == region))
        {
            await Task.Yield();
            yield return description;
        }
    }

    public override Task<SnapshotRead> ReadSnapshotAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        var now = clock.GetUtcNow();
        lock (_lock)
        {
            if (!_sources.TryGetValue(instanceId, out var history))
            {
                throw NotFound(instanceId);
            }

            var version = history.Count - 1;
            var content = history[version].Content;
            var snapshot = InstanceSnapshot.Create(SourceOf(instanceId), now, KeysOf(instanceId, version, content), SecretsOf(instanceId, content));
            return Task.FromResult(new SnapshotRead(snapshot, Cursor(instanceId, version)));
        }
    }

    public override bool SupportsChangeFeed => true;

    /// <summary>The changes between the cursor's version and the latest; a cursor more than 4 versions old has expired, so that both paths run.</summary>
    public override Task<InstanceChanges> ReadChangesAsync(string instanceId, string cursor, CancellationToken cancellationToken = default)
    {
        var now = clock.GetUtcNow();
        lock (_lock)
        {
            if (!_sources.TryGetValue(instanceId, out var history))
            {
                throw NotFound(instanceId);
            }

            var latest = history.Count - 1;
            var parts = cursor.Split('@');
            if (parts.Length != 2 || parts[0] != instanceId || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var since) || since > latest || latest - since > 4)
            {
                return Task.FromResult(new InstanceChanges { ReadAt = now, Cursor = Cursor(instanceId, latest), CursorExpired = true });
            }

            var before = history[since].Content;
            var after = history[latest].Content;
            var keysBefore = KeysOf(instanceId, since, before).ToDictionary(k => k.Name, StringComparer.Ordinal);
            var secretsBefore = SecretsOf(instanceId, before).ToDictionary(s => s.Name, StringComparer.Ordinal);
            var keysAfter = KeysOf(instanceId, latest, after);
            var secretsAfter = SecretsOf(instanceId, after);
            return Task.FromResult(new InstanceChanges
            {
                ReadAt = now,
                Cursor = Cursor(instanceId, latest),
                UpsertedKeys = [.. keysAfter.Where(k => !keysBefore.TryGetValue(k.Name, out var old) || !old.Equals(k))],
                UpsertedSecrets = [.. secretsAfter.Where(s => !secretsBefore.TryGetValue(s.Name, out var old) || !old.Equals(s))],
                DeletedKeys = [.. keysBefore.Keys.Where(n => !after.Keys.ContainsKey(n) && n != MarkerName)],
                DeletedSecrets = [.. secretsBefore.Keys.Where(n => !after.Secrets.ContainsKey(n))],
            });
        }
    }

    public override Task<IReadOnlyList<NameInUse>> FindNamesInUseAsync(string region, ItemType type, IReadOnlyCollection<string> names, CancellationToken cancellationToken = default)
    {
        var found = new List<NameInUse>();
        lock (_lock)
        {
            if (string.Equals(region, RegionOfSources, StringComparison.Ordinal))
            {
                foreach (var (id, history) in _sources)
                {
                    var content = history[^1].Content;
                    found.AddRange(names.Where(n => type == ItemType.Key ? content.Keys.ContainsKey(n) || n == MarkerName : content.Secrets.ContainsKey(n)).Select(n => new NameInUse(type, n, id)));
                }
            }

            foreach (var (id, target) in _targets.Where(t => t.Value.Region == region))
            {
                var items = type == ItemType.Key ? target.Keys.ToDictionary(k => k.Key, k => k.Value.OperationId) : target.Secrets.ToDictionary(s => s.Key, s => s.Value.OperationId);
                found.AddRange(names.Where(items.ContainsKey).Select(n => new NameInUse(type, n, id) { RestoredByOperation = items[n] }));
            }
        }

        return Task.FromResult<IReadOnlyList<NameInUse>>(found);
    }

    public override Task<IReadOnlySet<string>> FindKeyIdsAsync(string instanceId, IReadOnlyCollection<string> keyIds, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            var held = _targets.TryGetValue(instanceId, out var target)
                ? target.Keys.Values.Select(k => k.Record.Id).ToHashSet(StringComparer.Ordinal)
                : _sources.TryGetValue(instanceId, out var history)
                    ? history[^1].Content.Keys.Values.Select(k => k.Id).Append($"marker-{instanceId}").ToHashSet(StringComparer.Ordinal)
                    : throw NotFound(instanceId);
            return Task.FromResult<IReadOnlySet<string>>(keyIds.Where(held.Contains).ToHashSet(StringComparer.Ordinal));
        }
    }

    public override Task<bool> CreateKeyAsync(string instanceId, KeyRecord key, string operationId, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            var target = TargetLocked(instanceId);
            if (target.Keys.TryGetValue(key.Name, out var existing))
            {
                return existing.OperationId == operationId ? Task.FromResult(false) : throw Conflict(key.Name, instanceId);
            }

            target.Keys.Add(key.Name, (Copy(key), operationId));
            return Task.FromResult(true);
        }
    }

    public override Task<bool> CreateSecretAsync(string instanceId, SecretRecord secret, string operationId, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            var target = TargetLocked(instanceId);
            if (target.Secrets.TryGetValue(secret.Name, out var existing))
            {
                return existing.OperationId == operationId ? Task.FromResult(false) : throw Conflict(secret.Name, instanceId);
            }

            if (!target.Keys.Values.Any(k => k.Record.Id == secret.EncryptionKeyId))
            {
                throw new BackupException(new Refusal(
                    BackupErrorCode.EncryptionKeyMissing, $"secret '{secret.Name}'", $"The key '{secret.EncryptionKeyId}' is not in '{instanceId}'.", "Restore the key first."));
            }

            target.Secrets.Add(secret.Name, (secret, operationId));
            return Task.FromResult(true);
        }
    }

    public override Task<bool> DeleteRestoredItemAsync(string instanceId, ItemType type, string name, string operationId, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            var target = TargetLocked(instanceId);
            var deleted = type == ItemType.Key
                ? target.Keys.TryGetValue(name, out var key) && key.OperationId == operationId && target.Keys.Remove(name)
                : target.Secrets.TryGetValue(name, out var secret) && secret.OperationId == operationId && target.Secrets.Remove(name);
            return Task.FromResult(deleted);
        }
    }

    private string RegionOfSources => region;

    private string NextName(string prefix) => $"{prefix}{Interlocked.Increment(ref _names):D3}";

    private static string Cursor(string instanceId, int version) => $"{instanceId}@{version.ToString(CultureInfo.InvariantCulture)}";

    private SnapshotSource SourceOf(string instanceId) => new(instanceId, InstanceKind.Software, region, owner);

    private List<KeyRecord> KeysOf(string instanceId, int version, InstanceContent content)
    {
        var keys = content.Keys.Select(k => new KeyRecord(
            k.Value.Id, k.Key, Spec, owner, k.Value.CreatedAt,
            k.Value.Versions.Select((at, i) => new KeyVersion($"{k.Value.Id}-v{i + 1}", at, SensitiveBytes.Own(Material(k.Value.Id, i))))))
            .ToList();
        keys.Add(new KeyRecord($"marker-{instanceId}", MarkerName, Spec, owner, _createdAt, [new KeyVersion($"marker-{instanceId}-v1", _createdAt, SensitiveBytes.Own(Material(instanceId, 0)))])
        {
            Description = $"v{version.ToString(CultureInfo.InvariantCulture)}",
        });
        return keys;
    }

    private List<SecretRecord> SecretsOf(string instanceId, InstanceContent content) =>
        [.. content.Secrets.Select(s => new SecretRecord(
            s.Key, s.Value.KeyId!, owner, s.Value.CreatedAt,
            s.Value.Versions.Select((at, i) => new SecretVersion($"{instanceId}-{s.Key}-v{i + 1}", at, SensitiveBytes.Own(Material($"{instanceId}/{s.Key}", i))))))];

    private static byte[] Material(string item, int version) => SHA256.HashData(Encoding.UTF8.GetBytes($"{item}#{version.ToString(CultureInfo.InvariantCulture)}"));

    private static KeyRecord Copy(KeyRecord key) =>
        new(key.Id, key.Name, key.Spec, key.CreatorAccount, key.CreatedAt,
            key.Versions.Select(v => v with { Material = v.Material is null ? null : SensitiveBytes.Copy(v.Material.Span) }))
        {
            Description = key.Description,
        };

    private InstanceDescription? DescribeLocked(string instanceId)
    {
        if (_sources.TryGetValue(instanceId, out var history))
        {
            var content = history[^1].Content;
            return new InstanceDescription(new InstanceInfo(instanceId, InstanceKind.Software, region, _createdAt), owner)
            {
                KeyQuota = 1000, SecretQuota = 1000, KeyCount = content.Keys.Count + 1, SecretCount = content.Secrets.Count,
            };
        }

        if (_targets.TryGetValue(instanceId, out var target))
        {
            return new InstanceDescription(new InstanceInfo(instanceId, InstanceKind.Software, target.Region, _createdAt), owner)
            {
                KeyQuota = 1000, SecretQuota = 1000, KeyCount = target.Keys.Count, SecretCount = target.Secrets.Count,
            };
        }

        return null;
    }

    private RestoreTarget TargetLocked(string instanceId) =>
        _targets.TryGetValue(instanceId, out var target) ? target : throw NotFound(instanceId);

    private static BackupException NotFound(string instanceId) =>
        new(new Refusal(BackupErrorCode.NotFound, $"instance '{instanceId}'", $"There is no instance '{instanceId}'.", "Check the instance ID."));

    private static BackupException Conflict(string name, string instanceId) =>
        new(new Refusal(BackupErrorCode.NameConflict, $"'{name}'", $"'{name}' is in use in '{instanceId}'.", "Choose another target."));

    private sealed record ItemEntry(string Id, DateTimeOffset CreatedAt, ImmutableArray<DateTimeOffset> Versions, string? KeyId);

    private sealed record InstanceContent(ImmutableSortedDictionary<string, ItemEntry> Keys, ImmutableSortedDictionary<string, ItemEntry> Secrets);

    private sealed class RestoreTarget(string region)
    {
        public string Region { get; } = region;

        public Dictionary<string, (KeyRecord Record, string OperationId)> Keys { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, (SecretRecord Record, string OperationId)> Secrets { get; } = new(StringComparer.Ordinal);
    }
}
