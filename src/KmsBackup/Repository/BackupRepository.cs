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

    /// <summary>
    /// The repository format this SDK writes and reads. Version 3 seals every object under keys derived per
    /// pack and per object from rotatable key generations; version 2 sealed each recovery point to its date as
    /// well as its backup and sequence. Versions 1 and 2 were pre-releases and are refused.
    /// </summary>
    public const int FormatVersion = 3;

    /// <summary>The prefix of key generation records (<c>keys/&lt;sequence:D20&gt;-&lt;ID:x8&gt;</c>): the repository's keys after the first (<see cref="RotateKeyAsync"/>).</summary>
    public const string KeysPrefix = "keys/";

    private static readonly byte[] s_keyRecordMagic = "KBKEYG01"u8.ToArray();

    /// <summary>How many times a writer rewrites objects a concurrent prune put at risk before it gives up.</summary>
    private const int RescueAttempts = 5;

    private readonly BackupStore _store;
    private readonly RepositoryCrypto _crypto;
    private readonly StoreClock _storeClock;
    private readonly RepositoryKeyProvider _keys;
    private readonly SemaphoreSlim _keysGate = new(1, 1);

    private BackupRepository(BackupStore store, RepositoryCrypto crypto, string repositoryId, StoreClockPolicy clockPolicy, RepositoryKeyProvider keys)
    {
        _store = store;
        _crypto = crypto;
        _keys = keys;
        RepositoryId = repositoryId;
        Objects = new ObjectStore(store, crypto);
        Objects.RefreshKeys = async token => await RefreshKeysAsync(token).ConfigureAwait(false);
        ClockPolicy = clockPolicy;
        _storeClock = new StoreClock(store, crypto, Objects);
    }

    public StoreClockPolicy ClockPolicy { get; }

    public string RepositoryId { get; }

    public ObjectStore Objects { get; }

    public BackupStore Store => _store;

    public RepositoryCrypto Crypto => _crypto;

    /// <summary>Opens the repository in <paramref name="store"/>, creating it first if the store is empty.</summary>
    public static async Task<BackupRepository> OpenOrInitializeAsync(BackupStore store, RepositoryKeyProvider keys, StoreClockPolicy clockPolicy, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(keys);
        var config = await store.TryReadAsync(ConfigKey, cancellationToken).ConfigureAwait(false);
        if (config is null)
        {
            // Pinned: held across awaits, and a compacting GC would leave copies of a movable array behind.
            var master = GC.AllocateArray<byte>(RepositoryCrypto.MasterSecretSize, pinned: true);
            RandomNumberGenerator.Fill(master);
            try
            {
                var wrapped = await keys.WrapAsync(master, cancellationToken).ConfigureAwait(false);
                var w = new RecordWriter();
                w.WriteRaw(s_configMagic);
                w.WriteVarUInt(FormatVersion);
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
            var repository = new BackupRepository(store, new RepositoryCrypto(masterSecret.Span), repositoryId, clockPolicy, keys);
            await repository.RefreshKeysAsync(cancellationToken).ConfigureAwait(false);
            await repository.Objects.RefreshIndexAsync(cancellationToken).ConfigureAwait(false);
            return repository;
        }
        finally
        {
            masterSecret.Clear();
        }
    }

    // --- key generations ---

    /// <summary>
    /// Reads the key generation records this process does not know yet and adds their keys. A record that does not
    /// authenticate under the repository's keyring key (planted, damaged, or of another repository) is returned, not
    /// thrown: the objects sealed under it cannot be opened (each read says so), everything else can. A record that
    /// authenticates but does not unwrap (the key provider fails, or is not the one that wrapped it) is thrown: this
    /// host must not carry on without a key the other hosts use.
    /// </summary>
    /// <returns>The records that could not be used, each with why.</returns>
    public async Task<IReadOnlyList<(string Key, string Problem)>> RefreshKeysAsync(CancellationToken cancellationToken)
    {
        var unusable = new List<(string, string)>();
        await _keysGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await foreach (var entry in _store.ListAsync(KeysPrefix, cancellationToken).ConfigureAwait(false))
            {
                if (!TryParseKeyRecordName(entry.Key, out var sequence, out var generation))
                {
                    unusable.Add((entry.Key, "its name is not that of a key generation record"));
                    continue;
                }

                if (_crypto.SequenceOf(generation) != 0)
                {
                    continue;
                }

                var bytes = await _store.TryReadAsync(entry.Key, cancellationToken).ConfigureAwait(false);
                if (bytes is null)
                {
                    unusable.Add((entry.Key, "it vanished while it was read"));
                    continue;
                }

                byte[] wrapped;
                try
                {
                    wrapped = DecodeKeyRecord(entry.Key, sequence, generation, bytes);
                }
                catch (BackupIntegrityException e)
                {
                    unusable.Add((entry.Key, e.Message));
                    continue;
                }

                var secret = await _keys.UnwrapAsync(wrapped, cancellationToken).ConfigureAwait(false);
                try
                {
                    if (secret.Length != RepositoryCrypto.MasterSecretSize)
                    {
                        throw RepositoryErrors.Integrity($"key generation {sequence}", "its secret has the wrong length");
                    }

                    _crypto.AddGeneration(generation, sequence, secret.Span);
                }
                finally
                {
                    secret.Clear();
                }
            }
        }
        finally
        {
            _keysGate.Release();
        }

        return unusable;
    }

    /// <summary>
    /// Adds a key generation: a new random secret, wrapped by the key provider, stored as
    /// <c>keys/&lt;sequence&gt;-&lt;ID&gt;</c> with the next sequence number and a random ID. Objects name the ID, so a
    /// generation is never mistaken for another: two hosts rotating at once make two generations of one sequence
    /// (every host then seals under the one with the higher ID), and a deleted record makes its objects unreadable
    /// rather than its number reusable. Objects written from then on are sealed under it; older objects stay
    /// readable under their own generation until a rekey rewrites them.
    /// </summary>
    /// <returns>The new generation's ID and sequence number.</returns>
    public async Task<(uint Generation, ulong Sequence)> RotateKeyAsync(CancellationToken cancellationToken)
    {
        await RefreshKeysAsync(cancellationToken).ConfigureAwait(false);
        var sequence = checked(_crypto.HighestSequence + 1);
        var secret = GC.AllocateArray<byte>(RepositoryCrypto.MasterSecretSize, pinned: true);
        RandomNumberGenerator.Fill(secret);
        try
        {
            var wrapped = await _keys.WrapAsync(secret, cancellationToken).ConfigureAwait(false);
            for (var attempt = 0; ; attempt++)
            {
                var generation = BitConverter.ToUInt32(RandomNumberGenerator.GetBytes(4));
                if (generation <= RepositoryCrypto.FirstGeneration || _crypto.SequenceOf(generation) != 0)
                {
                    continue;
                }

                var key = KeyRecordKey(sequence, generation);
                var w = new RecordWriter();
                w.WriteRaw(s_keyRecordMagic);
                w.WriteVarUInt(sequence);
                w.WriteVarUInt(generation);
                w.WriteString(RepositoryId);
                w.WriteString(_keys.KeyId);
                w.WriteBytes(wrapped);
                w.WriteRaw(_crypto.KeyRecordMac(w.WrittenSpan));
                if (await _store.TryCreateAsync(key, w.ToArray(), cancellationToken).ConfigureAwait(false))
                {
                    _crypto.AddGeneration(generation, sequence, secret);
                    return (generation, sequence);
                }

                if (attempt >= 3)
                {
                    throw RepositoryErrors.Integrity("key generation records", $"'{key}' and the names tried before it exist already");
                }
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    private static string KeyRecordKey(ulong sequence, uint generation) =>
        string.Create(CultureInfo.InvariantCulture, $"{KeysPrefix}{sequence:D20}-{generation:x8}");

    private static bool TryParseKeyRecordName(string key, out ulong sequence, out uint generation)
    {
        sequence = 0;
        generation = 0;
        var name = key.AsSpan(KeysPrefix.Length);
        return name.Length == 29 && name[20] == '-' &&
            ulong.TryParse(name[..20], NumberStyles.None, CultureInfo.InvariantCulture, out sequence) && sequence >= 2 &&
            uint.TryParse(name[21..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out generation) &&
            generation > RepositoryCrypto.FirstGeneration && !name[21..].ContainsAnyInRange('A', 'F');
    }

    private byte[] DecodeKeyRecord(string key, ulong sequence, uint generation, byte[] bytes)
    {
        var what = $"key generation {sequence}";
        if (bytes.Length < 32 || !CryptographicOperations.FixedTimeEquals(_crypto.KeyRecordMac(bytes.AsSpan(0, bytes.Length - 32)), bytes.AsSpan(bytes.Length - 32)))
        {
            throw RepositoryErrors.Integrity(what, $"'{key}' does not authenticate under this repository's keys (it was changed, damaged, or planted)");
        }

        var r = new RecordReader(bytes.AsSpan(0, bytes.Length - 32), what);
        if (!r.ReadRaw(s_keyRecordMagic.Length).SequenceEqual(s_keyRecordMagic) || r.ReadVarUInt() != sequence || r.ReadVarUInt() != generation)
        {
            throw r.Malformed("it is not the record its name says");
        }

        if (!string.Equals(r.ReadRequiredString(), RepositoryId, StringComparison.Ordinal))
        {
            throw r.Malformed("it belongs to another repository");
        }

        var keyId = r.ReadRequiredString();
        var wrapped = r.ReadBytes().ToArray();
        r.ExpectEnd();
        if (!string.Equals(keyId, _keys.KeyId, StringComparison.Ordinal))
        {
            // Authentic, but this host's key provider cannot unwrap it: a configuration error, not damage.
            throw new BackupException(new Refusal(
                BackupErrorCode.IntegrityViolation, what,
                $"The repository's key generation {sequence} is wrapped by the key '{keyId}', but the key provider offers '{_keys.KeyId}'.",
                "Configure the repository key provider with the key the repository's keys are wrapped by."));
        }

        return wrapped;
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
            ?? throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, $"recovery point {key.BackupId}#{key.Sequence}",
                string.Create(CultureInfo.InvariantCulture, $"Recovery point {key.Sequence} of backup '{key.BackupId}' ({key.Date:yyyy-MM-dd}) was deleted while it was being read: a reset, a release or a prune by another writer ran meanwhile."),
                "Retry: the backup's data is read again as it is now."));
        var plain = await Objects.WithKeysAsync(() => _crypto.Open(bytes, PointManifest.AssociatedData(key.BackupId, key.Date, key.Sequence), $"recovery point {key.BackupId}#{key.Sequence} of {key.Date:yyyy-MM-dd}"), cancellationToken).ConfigureAwait(false);
        return PointManifest.Decode(plain, key.BackupId, key.Sequence);
    }

    /// <summary>Commits a recovery point. Its objects must be written already. Fails if the sequence is taken (another writer).</summary>
    public async Task WritePointAsync(PointManifest manifest, DateOnly date, CancellationToken cancellationToken)
    {
        await CheckClockAsync(commit: true, cancellationToken).ConfigureAwait(false);
        var key = new PointKey(manifest.BackupId, date, manifest.Sequence);
        var sealedBytes = _crypto.Seal(manifest.Encode(), PointManifest.AssociatedData(manifest.BackupId, date, manifest.Sequence));
        if (!await _store.TryCreateAsync(key.StoreKey, sealedBytes, cancellationToken).ConfigureAwait(false))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.LeaseLost, $"backup '{manifest.BackupId}'",
                string.Create(CultureInfo.InvariantCulture, $"Recovery point {manifest.Sequence} of backup '{manifest.BackupId}' was written by another writer meanwhile."),
                "Make sure only one writer runs each backup (the lease does this); retry the run."));
        }
    }

    public Task<bool> DeletePointAsync(PointKey key, CancellationToken cancellationToken) => _store.DeleteAsync(key.StoreKey, cancellationToken);

    /// <summary>
    /// Reads the keys and secrets of a recovery point. With <paramref name="withValues"/>, their key material and secret
    /// ciphertexts come along, and the caller zeroes them (<see cref="SensitiveValues"/>) once done; without, none is
    /// copied out of the leaves (for what shows metadata only).
    /// </summary>
    public async Task<InstanceSnapshot> ReadSnapshotAsync(PointManifest manifest, bool withValues, CancellationToken cancellationToken)
    {
        var keys = await ReadKeysAsync(manifest, withValues, cancellationToken).ConfigureAwait(false);
        List<SecretRecord> secrets;
        try
        {
            secrets = await ReadSecretsAsync(manifest, withValues, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            keys.ForEach(SensitiveValues.Clear);
            throw;
        }

        try
        {
            return InstanceSnapshot.Create(manifest.Source, manifest.TakenAt, keys, secrets);
        }
        catch (ArgumentException e)
        {
            keys.ForEach(SensitiveValues.Clear);
            secrets.ForEach(SensitiveValues.Clear);
            throw RepositoryErrors.Integrity($"recovery point {manifest.BackupId}#{manifest.Sequence}", $"its items are inconsistent ({e.ParamName})");
        }
    }

    /// <summary>The keys of a recovery point in name order; see <see cref="ReadSnapshotAsync"/> for <paramref name="withValues"/>.</summary>
    public Task<List<KeyRecord>> ReadKeysAsync(PointManifest manifest, bool withValues, CancellationToken cancellationToken) =>
        ItemTree.ReadAsync(Objects, manifest.KeyRoot, ObjectRole.KeyLeaf, (ref RecordReader r) => ItemCodec.ReadKey(ref r, withValues), cancellationToken, SensitiveValues.Clear);

    /// <summary>The secrets of a recovery point in name order; see <see cref="ReadSnapshotAsync"/> for <paramref name="withValues"/>.</summary>
    public Task<List<SecretRecord>> ReadSecretsAsync(PointManifest manifest, bool withValues, CancellationToken cancellationToken) =>
        ItemTree.ReadAsync(Objects, manifest.SecretRoot, ObjectRole.SecretLeaf, (ref RecordReader r) => ItemCodec.ReadSecret(ref r, withValues), cancellationToken, SensitiveValues.Clear);

    public async Task<(TreeRoot Keys, TreeRoot Secrets)> WriteTreesAsync(InstanceSnapshot snapshot, PackWriter writer, CancellationToken cancellationToken)
    {
        // One pinned leaf buffer for both trees, zeroed between leaves and when done.
        var leaf = new RecordWriter(64 * 1024, pinned: true);
        var keys = await ItemTree.WriteAsync(snapshot.Keys, ItemCodec.Write, ObjectRole.KeyLeaf, writer, _crypto.BoundarySalt, cancellationToken, leaf).ConfigureAwait(false);
        var secrets = await ItemTree.WriteAsync(snapshot.Secrets, ItemCodec.Write, ObjectRole.SecretLeaf, writer, _crypto.BoundarySalt, cancellationToken, leaf).ConfigureAwait(false);
        await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        return (keys, secrets);
    }

    /// <summary>
    /// Commits a recovery point of <paramref name="snapshot"/> so that no prune can take its objects away
    /// (docs/repository-format.md, "Writers and maintenance"): the index is brought up to date and packs a
    /// prune has marked are not relied on; the trees are written; every object they refer to is checked to
    /// live in a pack that still has its index and is not marked (rewritten into a new pack otherwise);
    /// <paramref name="fence"/> runs (the caller's lease and state checks); the manifest is written; and the
    /// same check runs once more, because a prune may have marked or deleted a pack between the check and
    /// the manifest. A manifest whose objects cannot be made safe is deleted again and the commit fails.
    /// </summary>
    /// <param name="snapshot">What the point holds.</param>
    /// <param name="manifestOf">Builds the manifest from the tree roots.</param>
    /// <param name="date">The point's date.</param>
    /// <param name="fence">Runs right before the manifest is written; throws to abandon the commit.</param>
    /// <param name="cancellationToken">Cancels the commit.</param>
    public Task<CommittedPoint> CommitPointAsync(
        InstanceSnapshot snapshot, Func<TreeRoot, TreeRoot, PointManifest> manifestOf, DateOnly date,
        Func<CancellationToken, Task> fence, CancellationToken cancellationToken) =>
        CommitPointAsync((writer, token) => WriteTreesAsync(snapshot, writer, token), snapshot.Source.InstanceId, manifestOf, date, fence, cancellationToken);

    /// <summary>
    /// Commits a recovery point whose trees <paramref name="writeTrees"/> writes (and writes again, to the same
    /// roots, when objects must be rescued), with the protocol of
    /// <see cref="CommitPointAsync(InstanceSnapshot, Func{TreeRoot, TreeRoot, PointManifest}, DateOnly, Func{CancellationToken, Task}, CancellationToken)"/>.
    /// </summary>
    /// <param name="writeTrees">Writes the key and secret trees through the writer and flushes it; returns their roots.</param>
    /// <param name="instanceId">The instance the point is of, for messages.</param>
    /// <param name="manifestOf">Builds the manifest from the tree roots.</param>
    /// <param name="date">The point's date.</param>
    /// <param name="fence">Runs right before the manifest is written; throws to abandon the commit.</param>
    /// <param name="cancellationToken">Cancels the commit.</param>
    public async Task<CommittedPoint> CommitPointAsync(
        Func<PackWriter, CancellationToken, Task<(TreeRoot Keys, TreeRoot Secrets)>> writeTrees, string instanceId,
        Func<TreeRoot, TreeRoot, PointManifest> manifestOf, DateOnly date,
        Func<CancellationToken, Task> fence, CancellationToken cancellationToken)
    {
        using var writer = Objects.CreateWriter();
        var pins = new List<string>();
        try
        {
            var (keys, secrets) = await writeTrees(writer, cancellationToken).ConfigureAwait(false);
            var pinnedAt = ClockPolicy.Time.GetUtcNow();
            await MakeReferencesSafeAsync(writeTrees, instanceId, writer, keys, secrets, pins, cancellationToken).ConfigureAwait(false);
            await fence(cancellationToken).ConfigureAwait(false);
            if (ClockPolicy.Time.GetUtcNow() - pinnedAt > PinLifetime / 2)
            {
                throw new BackupException(new Refusal(
                    BackupErrorCode.LeaseLost, $"recovery point of {instanceId}",
                    "The run paused so long between pinning its packs and committing that prunes may no longer honour its pins; it committed nothing.",
                    "Nothing to do: the next scheduled run backs the instance up again."));
            }

            var manifest = manifestOf(keys, secrets);
            await WritePointAsync(manifest, date, cancellationToken).ConfigureAwait(false);
            try
            {
                await MakeReferencesSafeAsync(writeTrees, instanceId, writer, keys, secrets, pins, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.IntegrityViolation)
            {
                await DeletePointAsync(new PointKey(manifest.BackupId, date, manifest.Sequence), CancellationToken.None).ConfigureAwait(false);
                throw;
            }

            return new CommittedPoint(manifest, writer.BytesWritten, writer.ObjectsWritten);
        }
        finally
        {
            // Once the manifest is listed, every later prune sees what it refers to: the pins have done their work.
            // Deleting them is clean-up: one that fails (or a crash) leaves a pin that lapses after PinLifetime, so a
            // failure here neither stops the other deletions nor turns a committed point into a failed commit.
            foreach (var pin in pins)
            {
                try
                {
                    await _store.DeleteAsync(pin, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                }
            }
        }
    }

    /// <summary>
    /// Writes the trees of an uploaded point from the day's spill file, in name order, and flushes the writer: the
    /// same objects <see cref="WriteTreesAsync"/> writes for the same items.
    /// </summary>
    public async Task<(TreeRoot Keys, TreeRoot Secrets)> WriteUploadedTreesAsync(UploadedDay day, UploadedSnapshot snapshot, PackWriter writer, CancellationToken cancellationToken)
    {
        var keyRoot = await day.WriteTreeAsync(snapshot.Keys, ObjectRole.KeyLeaf, writer, _crypto.BoundarySalt, cancellationToken).ConfigureAwait(false);
        var secretRoot = await day.WriteTreeAsync(snapshot.Secrets, ObjectRole.SecretLeaf, writer, _crypto.BoundarySalt, cancellationToken).ConfigureAwait(false);
        await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        return (keyRoot, secretRoot);
    }

    /// <summary>
    /// Refreshes the index and the prune markers, and rewrites every object the trees refer to that lives
    /// only in marked packs or in packs whose index is gone. Content addressing makes the rewritten trees
    /// the same trees: the roots cannot change.
    /// </summary>
    private async Task MakeReferencesSafeAsync(
        Func<PackWriter, CancellationToken, Task<(TreeRoot Keys, TreeRoot Secrets)>> writeTrees, string instanceId,
        PackWriter writer, TreeRoot keys, TreeRoot secrets, List<string> pins, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            // Pin first, check after: a prune that has not read this pin has not yet read its markers or the
            // index either, so whatever it marks or deletes later, the check below (or the next one) sees.
            pins.Add(await WritePinAsync(writer.ReferencedPacks, cancellationToken).ConfigureAwait(false));

            // Markers before the index: a prune deletes a pack's index before its marker, so a marker found gone
            // here means the index listing below sees what that prune deleted (the other order can miss both).
            var markers = await ReadPruneMarkersAsync(cancellationToken).ConfigureAwait(false);
            await Objects.RefreshIndexAsync(cancellationToken).ConfigureAwait(false);
            Objects.ExcludePacks(markers.MarkedPacks);
            // A pack relied on that a prune has marked since, or whose index is gone: the objects referred to in it
            // may have no other copy. The trees are written again, relying only on usable packs.
            var atRisk = writer.ReferencedPacks.Count(p => !Objects.IsUsablePack(p));
            if (atRisk == 0)
            {
                return;
            }

            if (attempt > RescueAttempts)
            {
                throw RepositoryErrors.Integrity(
                    $"recovery point of {instanceId}",
                    $"{atRisk} of the packs it relies on kept being marked or deleted by prunes, after {RescueAttempts} rewrites");
            }

            writer.ReferencedPacks.Clear();
            var (k, s) = await writeTrees(writer, cancellationToken).ConfigureAwait(false);
            if (k != keys || s != secrets)
            {
                throw new InvalidOperationException("Rewriting a snapshot's trees gave other roots; content addressing is broken.");
            }
        }
    }

    // --- store time ---

    /// <summary>
    /// Compares this host's clock with the latest time the store has seen. For a commit, a clock behind it by
    /// more than the allowed lag is refused, and a clock that is neither behind nor too far ahead records
    /// its time (at most once a minute). Reads pass <paramref name="commit"/> false and write nothing.
    /// </summary>
    public async Task<StoreClockReading> CheckClockAsync(bool commit, CancellationToken cancellationToken)
    {
        var now = ClockPolicy.Time.GetUtcNow();
        var storeTime = await _storeClock.ReadAsync(cancellationToken).ConfigureAwait(false);
        if (storeTime is { } seen && commit && now < seen - ClockPolicy.MaximumLag)
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.ClockBehindStore, "clock",
                string.Create(CultureInfo.InvariantCulture,
                    $"This host's clock reads {now:yyyy-MM-ddTHH:mm:ssZ}, {(seen - now).TotalMinutes:0.#} minutes behind {seen:yyyy-MM-ddTHH:mm:ssZ}, the latest time a writer of this store has seen; it may lag by at most {ClockPolicy.MaximumLag.TotalMinutes:0.#} minutes."),
                "Synchronise this host's clock (NTP) with the other hosts of the store, then retry. If the store's time is wrong instead, confirm this clock with ConfirmClockAsync (kmsbackup clock confirm)."));
        }

        var held = storeTime is { } known && now - known > ClockPolicy.MaximumLead;
        if (commit && !held && (storeTime is null || now - storeTime.Value >= StoreClockPolicy.RecordEvery))
        {
            try
            {
                await _storeClock.RecordAsync(now, discardLater: false, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.StoreUnavailable)
            {
                // Recording the time is a courtesy to the other hosts: the commit that follows reports the store's failure itself.
            }
        }

        return new StoreClockReading(now, storeTime, held);
    }

    /// <summary>Records this host's clock as the store's time, discarding any later time: an operator has confirmed it.</summary>
    public async Task<StoreClockReading> ConfirmClockAsync(CancellationToken cancellationToken)
    {
        var now = ClockPolicy.Time.GetUtcNow();
        await _storeClock.RecordAsync(now, discardLater: true, cancellationToken).ConfigureAwait(false);
        return new StoreClockReading(now, now, DeletionsHeld: false);
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
                var plain = await Objects.WithKeysAsync(() => _crypto.Open(bytes, CatalogCodec.AssociatedData(backupId, versions[i]), $"catalog entry of backup '{backupId}'"), cancellationToken).ConfigureAwait(false);
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
        await CheckClockAsync(commit: true, cancellationToken).ConfigureAwait(false);
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

    /// <summary>
    /// Loads the latest state of every backup in the catalog. A damaged entry stays local: it is reported
    /// apart, with its previous version when that one still opens (it names the owner), and every other backup
    /// loads as usual.
    /// </summary>
    public async Task<CatalogListing> LoadStatesAsync(CancellationToken cancellationToken)
    {
        var versions = new Dictionary<string, List<long>>(StringComparer.Ordinal);
        await foreach (var entry in _store.ListAsync("catalog/", cancellationToken).ConfigureAwait(false))
        {
            var parts = entry.Key.Split('/');
            if (parts.Length == 3 && long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var version))
            {
                if (!versions.TryGetValue(parts[1], out var list))
                {
                    versions[parts[1]] = list = [];
                }

                list.Add(version);
            }
        }

        var states = new List<CatalogEntry>(versions.Count);
        var damaged = new List<DamagedCatalogEntry>();
        foreach (var (backupId, list) in versions.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            list.Sort();
            var latest = list[^1];
            try
            {
                if (await TryReadStateAsync(backupId, latest, cancellationToken).ConfigureAwait(false) is { } state)
                {
                    states.Add(state);
                }
            }
            catch (BackupIntegrityException e)
            {
                CatalogEntry? previous = null;
                if (list.Count > 1)
                {
                    try
                    {
                        previous = await TryReadStateAsync(backupId, list[^2], cancellationToken).ConfigureAwait(false);
                    }
                    catch (BackupIntegrityException)
                    {
                        // Both damaged: no owner is known; verify still names the backup.
                    }
                }

                damaged.Add(new DamagedCatalogEntry(backupId, previous, e));
            }
        }

        return new CatalogListing(states, damaged);
    }

    private async Task<CatalogEntry?> TryReadStateAsync(string backupId, long version, CancellationToken cancellationToken)
    {
        var bytes = await _store.TryReadAsync(CatalogCodec.KeyOf(backupId, version), cancellationToken).ConfigureAwait(false);
        if (bytes is null)
        {
            return null;
        }

        var plain = await Objects.WithKeysAsync(() => _crypto.Open(bytes, CatalogCodec.AssociatedData(backupId, version), $"catalog entry of backup '{backupId}'"), cancellationToken).ConfigureAwait(false);
        return CatalogCodec.Decode(plain, backupId) with { Version = version };
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

    /// <summary>
    /// Reads the pending prune markers: packs a prune has marked for deletion, and when. A marker that does
    /// not open is set apart: no prune can act on it either, so its packs stay (verify names it).
    /// </summary>
    public async Task<PruneMarkers> ReadPruneMarkersAsync(CancellationToken cancellationToken)
    {
        var markers = new List<PruneMarker>();
        var unreadable = new List<(string Key, string Problem)>();
        await foreach (var entry in _store.ListAsync(PruneMarkerPrefix, cancellationToken).ConfigureAwait(false))
        {
            var bytes = await _store.TryReadAsync(entry.Key, cancellationToken).ConfigureAwait(false);
            if (bytes is null)
            {
                continue;
            }

            try
            {
                var plain = await Objects.WithKeysAsync(() => _crypto.Open(bytes, entry.Key, $"prune marker '{entry.Key}'"), cancellationToken).ConfigureAwait(false);
                var r = new RecordReader(plain, $"prune marker '{entry.Key}'");
                var markedAt = r.ReadInstant();
                var count = r.ReadCount(10_000_000);
                var packs = new HashSet<string>(StringComparer.Ordinal);
                var points = new HashSet<string>(StringComparer.Ordinal);
                for (var i = 0; i < count; i++)
                {
                    // A marker names packs by ID and abandoned recovery points by key; only keys have slashes.
                    var marked = r.ReadRequiredString();
                    (marked.StartsWith(PointKey.AreaPrefix, StringComparison.Ordinal) ? points : packs).Add(marked);
                }

                r.ExpectEnd();
                markers.Add(new PruneMarker(entry.Key, markedAt, packs, points));
            }
            catch (BackupIntegrityException e)
            {
                unreadable.Add((entry.Key, e.Message));
            }
        }

        return new PruneMarkers(markers, unreadable);
    }

    /// <summary>How long a writer's pin protects its packs from deletion; a pin older than this is a crashed writer's, and prune removes it.</summary>
    public static readonly TimeSpan PinLifetime = TimeSpan.FromHours(24);

    /// <summary>The prefix of pins: packs a writer relies on until its recovery point is committed.</summary>
    public const string PinPrefix = "pins/";

    private async Task<string> WritePinAsync(HashSet<string> packs, CancellationToken cancellationToken)
    {
        var now = ClockPolicy.Time.GetUtcNow();
        var key = string.Create(CultureInfo.InvariantCulture, $"{PinPrefix}{now.UtcTicks:D20}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}");
        var w = new RecordWriter();
        w.WriteInstant(now);
        w.WriteVarUInt((ulong)packs.Count);
        foreach (var pack in packs.Order(StringComparer.Ordinal))
        {
            w.WriteString(pack);
        }

        await _store.TryCreateAsync(key, _crypto.Seal(w.WrittenSpan, Encoding.UTF8.GetBytes(key), RepositoryCrypto.FirstGeneration), cancellationToken).ConfigureAwait(false);
        return key;
    }

    /// <summary>
    /// Reads the pins: the packs writers rely on now. Pins older than <see cref="PinLifetime"/> (by the time in
    /// their name) are returned apart, to be deleted. A pin that does not open and has not lapsed makes the
    /// result <see langword="null"/>: what it protects is unknown, so nothing may be deleted.
    /// </summary>
    public async Task<(HashSet<string> Pinned, List<string> Lapsed)?> ReadPinsAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var pinned = new HashSet<string>(StringComparer.Ordinal);
        var lapsed = new List<string>();
        await foreach (var entry in _store.ListAsync(PinPrefix, cancellationToken).ConfigureAwait(false))
        {
            var name = entry.Key[PinPrefix.Length..];
            if (name.Length > 20 && long.TryParse(name.AsSpan(0, 20), NumberStyles.None, CultureInfo.InvariantCulture, out var ticks) &&
                ticks <= DateTimeOffset.MaxValue.UtcTicks && now - new DateTimeOffset(ticks, TimeSpan.Zero) > PinLifetime)
            {
                lapsed.Add(entry.Key);
                continue;
            }

            var bytes = await _store.TryReadAsync(entry.Key, cancellationToken).ConfigureAwait(false);
            if (bytes is null)
            {
                continue; // its writer committed and removed it meanwhile
            }

            try
            {
                var r = new RecordReader(await Objects.WithKeysAsync(() => _crypto.Open(bytes, entry.Key, $"pin '{entry.Key}'"), cancellationToken).ConfigureAwait(false), $"pin '{entry.Key}'");
                r.ReadInstant();
                for (var count = r.ReadCount(10_000_000); count > 0; count--)
                {
                    pinned.Add(r.ReadRequiredString());
                }

                r.ExpectEnd();
            }
            catch (BackupIntegrityException)
            {
                return null;
            }
        }

        return (pinned, lapsed);
    }

    /// <summary>Writes a prune marker naming <paramref name="packs"/> (by ID) and abandoned recovery points (by store key).</summary>
    public async Task WritePruneMarkerAsync(DateTimeOffset now, IReadOnlyCollection<string> packs, IReadOnlyCollection<string> points, CancellationToken cancellationToken)
    {
        var key = string.Create(CultureInfo.InvariantCulture, $"{PruneMarkerPrefix}{now.UtcTicks:D20}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}");
        var w = new RecordWriter();
        w.WriteInstant(now);
        w.WriteVarUInt((ulong)(packs.Count + points.Count));
        foreach (var marked in packs.Concat(points))
        {
            w.WriteString(marked);
        }

        await _store.TryCreateAsync(key, _crypto.Seal(w.WrittenSpan, Encoding.UTF8.GetBytes(key), RepositoryCrypto.FirstGeneration), cancellationToken).ConfigureAwait(false);
    }

    private static (string RepositoryId, string KeyId, byte[] WrappedMaster) DecodeConfig(byte[] config)
    {
        var r = new RecordReader(config, "config");
        if (!r.ReadRaw(s_configMagic.Length).SequenceEqual(s_configMagic))
        {
            throw r.Malformed("it is not a KmsBackup repository config");
        }

        if (r.ReadVarUInt() is var version && version != FormatVersion)
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.IntegrityViolation, "config",
                string.Create(CultureInfo.InvariantCulture, $"The repository is in format version {version}; this SDK reads version {FormatVersion} only{(version < FormatVersion ? " (versions 1 and 2 were written by pre-releases)" : string.Empty)}."),
                version < FormatVersion
                    ? "Create a new repository in an empty store and back up again; copy data out of the old one with the SDK version that wrote it."
                    : "Use a newer version of the SDK."));
        }

        var repositoryId = r.ReadRequiredString();
        var keyId = r.ReadRequiredString();
        var wrapped = r.ReadBytes().ToArray();
        r.ExpectEnd();
        return (repositoryId, keyId, wrapped);
    }

    public void Dispose()
    {
        _crypto.Dispose();
        _keysGate.Dispose();
    }
}

/// <summary>A recovery point just committed, and what writing it cost.</summary>
internal sealed record CommittedPoint(PointManifest Manifest, long BytesWritten, int ObjectsWritten);

/// <summary>This host's clock against the store's time.</summary>
/// <param name="Now">This host's clock.</param>
/// <param name="StoreTime">The latest time a writer recorded; <see langword="null"/> when none has.</param>
/// <param name="DeletionsHeld">Whether this clock is so far ahead that deletions are held.</param>
internal readonly record struct StoreClockReading(DateTimeOffset Now, DateTimeOffset? StoreTime, bool DeletionsHeld);

/// <summary>The catalog: every backup's latest state, and the entries that did not open.</summary>
internal sealed record CatalogListing(List<CatalogEntry> States, List<DamagedCatalogEntry> Damaged);

/// <summary>A backup whose latest catalog entry did not open, with the version before it when that one opens (it names the owner).</summary>
internal sealed record DamagedCatalogEntry(string BackupId, CatalogEntry? Previous, BackupIntegrityException Error);

/// <summary>A prune marker: packs, and recovery points of backups without a catalog entry (an abandoned upload's), marked for deletion by a later prune, and when.</summary>
internal sealed record PruneMarker(string Key, DateTimeOffset MarkedAt, HashSet<string> Packs, HashSet<string> Points);

/// <summary>The pending prune markers, and those that did not open.</summary>
internal sealed record PruneMarkers(List<PruneMarker> Markers, List<(string Key, string Problem)> Unreadable)
{
    public HashSet<string> MarkedPacks => Markers.SelectMany(m => m.Packs).ToHashSet(StringComparer.Ordinal);

    /// <summary>Whether any marker names the recovery point stored under <paramref name="storeKey"/>.</summary>
    public bool MarksPoint(string storeKey) => Markers.Any(m => m.Points.Contains(storeKey));
}

/// <summary>Where a recovery point is stored: <c>points/&lt;backup&gt;/&lt;date&gt;/&lt;sequence&gt;</c>.</summary>
internal readonly record struct PointKey(string BackupId, DateOnly Date, long Sequence)
{
    /// <summary>Where recovery points are stored.</summary>
    public const string AreaPrefix = "points/";

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
