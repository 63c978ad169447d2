using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace KmsBackup.Repository;

/// <summary>
/// The repository a backup engine writes into a <see cref="BackupStore"/>: a config holding the wrapped
/// master secret, packs of encrypted content-addressed objects with their indexes, a manifest per
/// recovery point, and a catalog of backup states. See docs/repository-format.md.
/// </summary>
internal sealed class BackupRepository : IDisposable
{
    public const string ConfigKey = "config";
    public const string PruneMarkerPrefix = "prune/";
    private static readonly byte[] s_configMagic = "KBREPO01"u8.ToArray();

    private readonly BackupStore _store;
    private readonly RepositoryCrypto _crypto;

    private BackupRepository(BackupStore store, RepositoryCrypto crypto, string repositoryId)
    {
        _store = store;
        _crypto = crypto;
        RepositoryId = repositoryId;
        Objects = new ObjectStore(store, crypto);
    }

    public string RepositoryId { get; }

    public ObjectStore Objects { get; }

    public BackupStore Store => _store;

    public RepositoryCrypto Crypto => _crypto;

    /// <summary>Opens the repository in <paramref name="store"/>, creating it first if the store is empty.</summary>
    public static async Task<BackupRepository> OpenOrInitializeAsync(BackupStore store, RepositoryKeyProvider keys, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(keys);
        var config = await store.TryReadAsync(ConfigKey, cancellationToken).ConfigureAwait(false);
        if (config is null)
        {
            var master = RandomNumberGenerator.GetBytes(RepositoryCrypto.MasterSecretSize);
            try
            {
                var wrapped = await keys.WrapAsync(master, cancellationToken).ConfigureAwait(false);
                var w = new RecordWriter();
                w.WriteRaw(s_configMagic);
                w.WriteVarUInt(1);
                w.WriteString(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)));
                w.WriteString(keys.KeyId);
                w.WriteBytes(wrapped);
                await store.TryCreateAsync(ConfigKey, w.ToArray(), cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(master);
            }

            // Whoever won the race to create the config, everyone opens the one stored.
            config = await store.TryReadAsync(ConfigKey, cancellationToken).ConfigureAwait(false)
                ?? throw RepositoryErrors.Integrity("config", "it vanished right after it was created");
        }

        var (repositoryId, keyId, wrappedMaster) = DecodeConfig(config);
        if (!string.Equals(keyId, keys.KeyId, StringComparison.Ordinal))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.IntegrityViolation, "repository key",
                $"The repository was created with the key '{keyId}', but the key provider offers '{keys.KeyId}'.",
                "Configure the repository key provider with the key the repository was created with."));
        }

        var masterSecret = await keys.UnwrapAsync(wrappedMaster, cancellationToken).ConfigureAwait(false);
        try
        {
            var repository = new BackupRepository(store, new RepositoryCrypto(masterSecret.Span), repositoryId);
            await repository.Objects.LoadIndexAsync(cancellationToken).ConfigureAwait(false);
            return repository;
        }
        finally
        {
            masterSecret.Clear();
        }
    }

    // --- recovery points ---

    /// <summary>Lists the stored recovery points of a backup (date and sequence, oldest first) without reading them.</summary>
    public Task<List<PointKey>> ListPointsAsync(string backupId, CancellationToken cancellationToken) =>
        ListPointsAsync(backupId, null, cancellationToken);

    /// <summary>Lists the stored recovery points of a backup of one date, or of all dates, oldest first.</summary>
    public async Task<List<PointKey>> ListPointsAsync(string backupId, DateOnly? date, CancellationToken cancellationToken)
    {
        var points = new List<PointKey>();
        var prefix = PointManifest.Prefix(backupId);
        var listed = date is { } d ? prefix + d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) + "/" : prefix;
        await foreach (var entry in _store.ListAsync(listed, cancellationToken).ConfigureAwait(false))
        {
            if (PointKey.TryParse(backupId, entry.Key[prefix.Length..], out var key))
            {
                points.Add(key);
            }
        }

        points.Sort((a, b) => a.Sequence.CompareTo(b.Sequence));
        return points;
    }

    public async Task<PointManifest> ReadPointAsync(PointKey key, CancellationToken cancellationToken)
    {
        var storeKey = key.StoreKey;
        var bytes = await _store.TryReadAsync(storeKey, cancellationToken).ConfigureAwait(false)
            ?? throw RepositoryErrors.Integrity($"recovery point {key.BackupId}#{key.Sequence}", "it is missing from the store");
        var plain = _crypto.Open(bytes, PointManifest.AssociatedData(key.BackupId, key.Sequence), $"recovery point {key.BackupId}#{key.Sequence}");
        return PointManifest.Decode(plain, key.BackupId, key.Sequence);
    }

    /// <summary>Commits a recovery point. Its objects must be written already. Fails if the sequence is taken (another writer).</summary>
    public async Task WritePointAsync(PointManifest manifest, DateOnly date, CancellationToken cancellationToken)
    {
        var key = new PointKey(manifest.BackupId, date, manifest.Sequence);
        var sealedBytes = _crypto.Seal(manifest.Encode(), PointManifest.AssociatedData(manifest.BackupId, manifest.Sequence));
        if (!await _store.TryCreateAsync(key.StoreKey, sealedBytes, cancellationToken).ConfigureAwait(false))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.LeaseLost, $"backup '{manifest.BackupId}'",
                string.Create(CultureInfo.InvariantCulture, $"Recovery point {manifest.Sequence} of backup '{manifest.BackupId}' was written by another writer meanwhile."),
                "Make sure only one writer runs each backup (the lease does this); retry the run."));
        }
    }

    public Task<bool> DeletePointAsync(PointKey key, CancellationToken cancellationToken) => _store.DeleteAsync(key.StoreKey, cancellationToken);

    public async Task<InstanceSnapshot> ReadSnapshotAsync(PointManifest manifest, CancellationToken cancellationToken)
    {
        var keys = await ItemTree.ReadAsync(Objects, manifest.KeyRoot, ObjectRole.KeyLeaf, ItemCodec.ReadKey, cancellationToken).ConfigureAwait(false);
        var secrets = await ItemTree.ReadAsync(Objects, manifest.SecretRoot, ObjectRole.SecretLeaf, ItemCodec.ReadSecret, cancellationToken).ConfigureAwait(false);
        try
        {
            return InstanceSnapshot.Create(manifest.Source, manifest.TakenAt, keys, secrets);
        }
        catch (ArgumentException e)
        {
            throw RepositoryErrors.Integrity($"recovery point {manifest.BackupId}#{manifest.Sequence}", $"its items are inconsistent ({e.ParamName})");
        }
    }

    public async Task<(TreeRoot Keys, TreeRoot Secrets)> WriteTreesAsync(InstanceSnapshot snapshot, PackWriter writer, CancellationToken cancellationToken)
    {
        var keys = await ItemTree.WriteAsync(snapshot.Keys, k => k.Name, ItemCodec.Write, ObjectRole.KeyLeaf, writer, _crypto.BoundarySalt, cancellationToken).ConfigureAwait(false);
        var secrets = await ItemTree.WriteAsync(snapshot.Secrets, s => s.Name, ItemCodec.Write, ObjectRole.SecretLeaf, writer, _crypto.BoundarySalt, cancellationToken).ConfigureAwait(false);
        await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        return (keys, secrets);
    }

    // --- catalog ---

    /// <summary>Loads the latest state of one backup, or null when the catalog has none.</summary>
    public async Task<CatalogEntry?> LoadStateAsync(string backupId, CancellationToken cancellationToken)
    {
        var versions = await ListCatalogVersionsAsync(backupId, cancellationToken).ConfigureAwait(false);
        for (var i = versions.Count - 1; i >= 0; i--)
        {
            var bytes = await _store.TryReadAsync(CatalogCodec.KeyOf(backupId, versions[i]), cancellationToken).ConfigureAwait(false);
            if (bytes is not null)
            {
                var plain = _crypto.Open(bytes, CatalogCodec.AssociatedData(backupId, versions[i]), $"catalog entry of backup '{backupId}'");
                return CatalogCodec.Decode(plain, backupId) with { Version = versions[i] };
            }
        }

        return null;
    }

    /// <summary>
    /// Stores the next version of a backup's state: version <see cref="CatalogEntry.Version"/> + 1, created
    /// only if absent, so that a writer working from a stale state fails instead of overwriting a newer one.
    /// </summary>
    public async Task<CatalogEntry> SaveStateAsync(CatalogEntry entry, CancellationToken cancellationToken)
    {
        var state = entry.State;
        var next = entry.Version + 1;
        var sealedBytes = _crypto.Seal(CatalogCodec.Encode(entry), CatalogCodec.AssociatedData(state.Id, next));
        if (!await _store.TryCreateAsync(CatalogCodec.KeyOf(state.Id, next), sealedBytes, cancellationToken).ConfigureAwait(false))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.LeaseLost, $"backup '{state.Id}'",
                $"The state of backup '{state.Id}' was changed by another writer meanwhile.",
                "Reload the backup and retry the operation."));
        }

        // Versions before the previous one are history only; keep one as a fallback.
        if (next > 2)
        {
            await _store.DeleteAsync(CatalogCodec.KeyOf(state.Id, next - 2), cancellationToken).ConfigureAwait(false);
        }

        return entry with { Version = next };
    }

    /// <summary>Loads the latest state of every backup in the catalog.</summary>
    public async Task<List<CatalogEntry>> LoadStatesAsync(CancellationToken cancellationToken)
    {
        var latest = new Dictionary<string, long>(StringComparer.Ordinal);
        await foreach (var entry in _store.ListAsync("catalog/", cancellationToken).ConfigureAwait(false))
        {
            var parts = entry.Key.Split('/');
            if (parts.Length == 3 && long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var version))
            {
                latest[parts[1]] = Math.Max(latest.GetValueOrDefault(parts[1]), version);
            }
        }

        var states = new List<CatalogEntry>(latest.Count);
        foreach (var (backupId, version) in latest.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            var bytes = await _store.TryReadAsync(CatalogCodec.KeyOf(backupId, version), cancellationToken).ConfigureAwait(false);
            if (bytes is null)
            {
                continue;
            }

            var plain = _crypto.Open(bytes, CatalogCodec.AssociatedData(backupId, version), $"catalog entry of backup '{backupId}'");
            states.Add(CatalogCodec.Decode(plain, backupId) with { Version = version });
        }

        return states;
    }

    private async Task<List<long>> ListCatalogVersionsAsync(string backupId, CancellationToken cancellationToken)
    {
        var versions = new List<long>();
        var prefix = CatalogCodec.Prefix(backupId);
        await foreach (var entry in _store.ListAsync(prefix, cancellationToken).ConfigureAwait(false))
        {
            if (long.TryParse(entry.Key[prefix.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var version))
            {
                versions.Add(version);
            }
        }

        versions.Sort();
        return versions;
    }

    // --- prune markers ---

    /// <summary>Reads the pending prune markers: packs a prune has marked for deletion, and when.</summary>
    public async Task<List<(string Key, DateTimeOffset MarkedAt, HashSet<string> Packs)>> ReadPruneMarkersAsync(CancellationToken cancellationToken)
    {
        var markers = new List<(string, DateTimeOffset, HashSet<string>)>();
        await foreach (var entry in _store.ListAsync(PruneMarkerPrefix, cancellationToken).ConfigureAwait(false))
        {
            var bytes = await _store.TryReadAsync(entry.Key, cancellationToken).ConfigureAwait(false);
            if (bytes is null)
            {
                continue;
            }

            var plain = _crypto.Open(bytes, entry.Key, $"prune marker '{entry.Key}'");
            var r = new RecordReader(plain, $"prune marker '{entry.Key}'");
            var markedAt = r.ReadInstant();
            var count = r.ReadCount(10_000_000);
            var packs = new HashSet<string>(StringComparer.Ordinal);
            for (var i = 0; i < count; i++)
            {
                packs.Add(r.ReadRequiredString());
            }

            r.ExpectEnd();
            markers.Add((entry.Key, markedAt, packs));
        }

        return markers;
    }

    public async Task WritePruneMarkerAsync(DateTimeOffset now, IReadOnlyCollection<string> packs, CancellationToken cancellationToken)
    {
        var key = string.Create(CultureInfo.InvariantCulture, $"{PruneMarkerPrefix}{now.UtcTicks:D20}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}");
        var w = new RecordWriter();
        w.WriteInstant(now);
        w.WriteVarUInt((ulong)packs.Count);
        foreach (var pack in packs)
        {
            w.WriteString(pack);
        }

        await _store.TryCreateAsync(key, _crypto.Seal(w.WrittenSpan, Encoding.UTF8.GetBytes(key)), cancellationToken).ConfigureAwait(false);
    }

    private static (string RepositoryId, string KeyId, byte[] WrappedMaster) DecodeConfig(byte[] config)
    {
        var r = new RecordReader(config, "config");
        if (!r.ReadRaw(s_configMagic.Length).SequenceEqual(s_configMagic))
        {
            throw r.Malformed("it is not a KmsBackup repository config");
        }

        if (r.ReadVarUInt() != 1)
        {
            throw r.Malformed("its format version is not supported by this SDK");
        }

        var repositoryId = r.ReadRequiredString();
        var keyId = r.ReadRequiredString();
        var wrapped = r.ReadBytes().ToArray();
        r.ExpectEnd();
        return (repositoryId, keyId, wrapped);
    }

    public void Dispose() => _crypto.Dispose();
}

/// <summary>Where a recovery point is stored: <c>points/&lt;backup&gt;/&lt;date&gt;/&lt;sequence&gt;</c>.</summary>
internal readonly record struct PointKey(string BackupId, DateOnly Date, long Sequence)
{
    public string StoreKey => string.Create(CultureInfo.InvariantCulture, $"points/{BackupId}/{Date:yyyy-MM-dd}/{Sequence:D12}");

    public static bool TryParse(string backupId, string rest, out PointKey key)
    {
        key = default;
        var parts = rest.Split('/');
        if (parts.Length != 2 ||
            !DateOnly.TryParseExact(parts[0], "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date) ||
            !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var sequence))
        {
            return false;
        }

        key = new PointKey(backupId, date, sequence);
        return true;
    }
}
