using System.Globalization;
using System.Text;

namespace KmsBackup.Repository;
// Recovery points: manifests, their item trees, and the commit of a point with its pins and references.
internal sealed partial class BackupRepository
{
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
    public Task<InstanceSnapshot> ReadSnapshotAsync(PointManifest manifest, bool withValues, CancellationToken cancellationToken) =>
        AssembleSnapshotAsync(manifest, () => ReadKeysAsync(manifest, withValues, cancellationToken), () => ReadSecretsAsync(manifest, withValues, cancellationToken));

    /// <summary>
    /// Reads the keys and secrets of a recovery point that have the given names (names it does not hold are left out),
    /// seeking each through the trees: a few items of a large point cost their paths, not the point. See
    /// <see cref="ReadSnapshotAsync(PointManifest, bool, CancellationToken)"/> for <paramref name="withValues"/>.
    /// </summary>
    public Task<InstanceSnapshot> ReadItemsAsync(
        PointManifest manifest, IEnumerable<string> keyNames, IEnumerable<string> secretNames, bool withValues, CancellationToken cancellationToken) =>
        AssembleSnapshotAsync(manifest, () => FindKeysAsync(manifest, keyNames, withValues, cancellationToken), () => FindSecretsAsync(manifest, secretNames, withValues, cancellationToken));

    /// <summary>The keys of a recovery point that have the given names, in name order; see <see cref="ReadItemsAsync"/>.</summary>
    public Task<List<KeyRecord>> FindKeysAsync(PointManifest manifest, IEnumerable<string> names, bool withValues, CancellationToken cancellationToken) =>
        ItemTree.FindAsync(Objects, manifest.KeyRoot, TreeNames(names), (ref RecordReader r) => ItemCodec.ReadKey(ref r, withValues), cancellationToken, SensitiveValues.Clear);

    /// <summary>The secrets of a recovery point that have the given names, in name order; see <see cref="ReadItemsAsync"/>.</summary>
    public Task<List<SecretRecord>> FindSecretsAsync(PointManifest manifest, IEnumerable<string> names, bool withValues, CancellationToken cancellationToken) =>
        ItemTree.FindAsync(Objects, manifest.SecretRoot, TreeNames(names), (ref RecordReader r) => ItemCodec.ReadSecret(ref r, withValues), cancellationToken, SensitiveValues.Clear);

    /// <summary>How many keys of a recovery point have names (ordinal) before <paramref name="name"/>: the position of the first at or after it.</summary>
    public Task<long> RankKeyAsync(PointManifest manifest, string name, CancellationToken cancellationToken) =>
        ItemTree.RankAsync(Objects, manifest.KeyRoot, Encoding.UTF8.GetBytes(name), (ref RecordReader r) => ItemCodec.ReadKey(ref r, withValues: false), SensitiveValues.Clear, cancellationToken);

    /// <summary>How many secrets of a recovery point have names (ordinal) before <paramref name="name"/>: the position of the first at or after it.</summary>
    public Task<long> RankSecretAsync(PointManifest manifest, string name, CancellationToken cancellationToken) =>
        ItemTree.RankAsync(Objects, manifest.SecretRoot, Encoding.UTF8.GetBytes(name), (ref RecordReader r) => ItemCodec.ReadSecret(ref r, withValues: false), SensitiveValues.Clear, cancellationToken);

    /// <summary>Names as a tree seeks them: UTF-8, in name order, each once; a name that is not valid UTF-16 (no item can have it) is left out.</summary>
    private static List<byte[]> TreeNames(IEnumerable<string> names)
    {
        var strict = new UTF8Encoding(false, true);
        var utf8 = new List<byte[]>();
        foreach (var name in names.Distinct(StringComparer.Ordinal))
        {
            try
            {
                utf8.Add(strict.GetBytes(name));
            }
            catch (EncoderFallbackException)
            {
            }
        }

        utf8.Sort((a, b) => a.AsSpan().SequenceCompareTo(b));
        return utf8;
    }

    private static async Task<InstanceSnapshot> AssembleSnapshotAsync(PointManifest manifest, Func<Task<List<KeyRecord>>> readKeys, Func<Task<List<SecretRecord>>> readSecrets)
    {
        var keys = await readKeys().ConfigureAwait(false);
        List<SecretRecord> secrets;
        try
        {
            secrets = await readSecrets().ConfigureAwait(false);
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

    /// <summary>The keys at positions <paramref name="skip"/> onwards of a recovery point, at most <paramref name="take"/>, in name order, without key material.</summary>
    public Task<List<KeyRecord>> ReadKeyRangeAsync(PointManifest manifest, long skip, int take, CancellationToken cancellationToken) =>
        ItemTree.ReadRangeAsync(Objects, manifest.KeyRoot, ObjectRole.KeyLeaf, skip, take, (ref RecordReader r) => ItemCodec.ReadKey(ref r, withValues: false), cancellationToken);

    /// <summary>The secrets at positions <paramref name="skip"/> onwards of a recovery point, at most <paramref name="take"/>, in name order, without values.</summary>
    public Task<List<SecretRecord>> ReadSecretRangeAsync(PointManifest manifest, long skip, int take, CancellationToken cancellationToken) =>
        ItemTree.ReadRangeAsync(Objects, manifest.SecretRoot, ObjectRole.SecretLeaf, skip, take, (ref RecordReader r) => ItemCodec.ReadSecret(ref r, withValues: false), cancellationToken);

    public async Task<(TreeRoot Keys, TreeRoot Secrets)> WriteTreesAsync(InstanceSnapshot snapshot, PackWriter writer, CancellationToken cancellationToken)
    {
        // One pinned leaf buffer for both trees, zeroed between leaves and when done.
        var leaf = ItemTree.CreateLeafBuffer();
        var keys = await ItemTree.WriteAsync(snapshot.Keys, ItemCodec.Write, ObjectRole.KeyLeaf, writer, _crypto.BoundarySalt, cancellationToken, leaf).ConfigureAwait(false);
        var secrets = await ItemTree.WriteAsync(snapshot.Secrets, ItemCodec.Write, ObjectRole.SecretLeaf, writer, _crypto.BoundarySalt, cancellationToken, leaf).ConfigureAwait(false);
        await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        return (keys, secrets);
    }

    /// <summary>
    /// Writes into this repository the trees of <paramref name="manifest"/>, a point of another repository whose objects
    /// are <paramref name="source"/>, leaf by leaf: each source leaf is opened and checked (in batches, as a download
    /// walks them) and its items are appended, in their leaf encoding, to this repository's tree builders. The same
    /// objects <see cref="WriteTreesAsync"/> writes for the same items, in memory bounded by a batch of leaves and one
    /// leaf, not the point. A read of the source that finds it gone or damaged is thrown as <paramref name="sourceFailed"/> makes it.
    /// </summary>
    public async Task<(TreeRoot Keys, TreeRoot Secrets)> CopyTreesAsync(
        ObjectStore source, PointManifest manifest, PackWriter writer, Func<BackupException, Exception> sourceFailed, CancellationToken cancellationToken)
    {
        var leaf = ItemTree.CreateLeafBuffer();
        try
        {
            var keys = await CopyTreeAsync(source, manifest.KeyRoot, ObjectRole.KeyLeaf, ItemCodec.SkipKey, writer, leaf, sourceFailed, cancellationToken).ConfigureAwait(false);
            var secrets = await CopyTreeAsync(source, manifest.SecretRoot, ObjectRole.SecretLeaf, ItemCodec.SkipSecret, writer, leaf, sourceFailed, cancellationToken).ConfigureAwait(false);
            await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
            return (keys, secrets);
        }
        finally
        {
            leaf.Wipe();
        }
    }

    private async Task<TreeRoot> CopyTreeAsync(
        ObjectStore source, TreeRoot root, byte leafRole, ItemTree.ReadItem<int> skip, PackWriter writer, RecordWriter leaf,
        Func<BackupException, Exception> sourceFailed, CancellationToken cancellationToken)
    {
        var builder = new ItemTree.Builder(leafRole, writer, _crypto.BoundarySalt, leaf);
        var leaves = ItemTree.LeavesAsync(source, root, skip, cancellationToken).GetAsyncEnumerator(cancellationToken);
        try
        {
            while (true)
            {
                try
                {
                    if (!await leaves.MoveNextAsync().ConfigureAwait(false))
                    {
                        break;
                    }
                }
                catch (BackupException e) when (e.Code == BackupErrorCode.NotFound || e is BackupIntegrityException)
                {
                    throw sourceFailed(e);
                }

                var items = leaves.Current;
                for (var offset = 0; offset < items.Length;)
                {
                    var length = ItemLength(items.Span[offset..], skip);
                    items.Span.Slice(offset, length).CopyTo(builder.Leaf.Append(length).Span);
                    offset += length;
                    if (builder.EndItem())
                    {
                        await builder.WriteLeafAsync(cancellationToken).ConfigureAwait(false);
                    }
                }
            }

            return await builder.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            builder.Clear();
            await leaves.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The length of the item at the start of <paramref name="items"/> (the walk has checked that it reads to its end).</summary>
    private static int ItemLength(ReadOnlySpan<byte> items, ItemTree.ReadItem<int> skip)
    {
        var reader = new RecordReader(items, "an item of a copied leaf");
        skip(ref reader);
        return reader.Position;
    }

    /// <summary>
    /// Writes the trees of the point that is <paramref name="previous"/> with <paramref name="changes"/> applied, updating
    /// the previous trees on the changed paths only (<see cref="ItemTree.UpdateAsync"/>), and flushes the writer; fills
    /// the changes' old items. The same roots <see cref="WriteTreesAsync"/> gives for the changed snapshot. The new trees
    /// share the previous point's unchanged subtrees without reading them: commit with
    /// <see cref="ConfirmPointAsync"/> after the manifest, so that the point they come from is known to have stayed.
    /// </summary>
    public async Task<(TreeRoot Keys, TreeRoot Secrets)> UpdateTreesAsync(PointManifest previous, PointChanges changes, PackWriter writer, CancellationToken cancellationToken)
    {
        var leaf = ItemTree.CreateLeafBuffer();
        var keys = await ItemTree.UpdateAsync(
            Objects, previous.KeyRoot, ObjectRole.KeyLeaf, changes.Keys, ItemCodec.Write, (ref RecordReader r) => ItemCodec.ReadKey(ref r, withValues: false),
            changes.KeysBefore, writer, _crypto.BoundarySalt, leaf, cancellationToken).ConfigureAwait(false);
        var secrets = await ItemTree.UpdateAsync(
            Objects, previous.SecretRoot, ObjectRole.SecretLeaf, changes.Secrets, ItemCodec.Write, (ref RecordReader r) => ItemCodec.ReadSecret(ref r, withValues: false),
            changes.SecretsBefore, writer, _crypto.BoundarySalt, leaf, cancellationToken).ConfigureAwait(false);
        await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        return (keys, secrets);
    }

    /// <summary>
    /// Checks that the point <paramref name="key"/> is still stored as <paramref name="expected"/> (its trees), read from
    /// the store, not a cache. A point whose trees were updated from another relies on it: while that point stays, every
    /// prune counts its objects live, so the subtrees the new trees share with it were never at risk. Throws
    /// <see cref="BackupErrorCode.LeaseLost"/> when it is gone or changed.
    /// </summary>
    public async Task ConfirmPointAsync(PointKey key, PointManifest expected, CancellationToken cancellationToken)
    {
        PointManifest? stored;
        try
        {
            stored = await ReadPointAsync(key, cancellationToken).ConfigureAwait(false);
        }
        catch (BackupException e) when (e.Code == BackupErrorCode.NotFound)
        {
            stored = null;
        }

        if (stored is null || stored.KeyRoot != expected.KeyRoot || stored.SecretRoot != expected.SecretRoot)
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.LeaseLost, $"backup '{key.BackupId}'",
                string.Create(CultureInfo.InvariantCulture, $"Recovery point {key.Sequence} of backup '{key.BackupId}', which this incremental was built on, was deleted or replaced while the run was in flight (a reset, a release, or a writer whose lease had lapsed); the run committed nothing."),
                "Nothing to do: the next scheduled run backs the instance up again."));
        }
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
    /// <param name="afterManifest">
    /// Runs once the manifest is written and its references checked again; when it throws (or the commit is cancelled
    /// meanwhile), the manifest is deleted again. For trees that rely on another point staying (<see cref="ConfirmPointAsync"/>).
    /// </param>
    public async Task<CommittedPoint> CommitPointAsync(
        Func<PackWriter, CancellationToken, Task<(TreeRoot Keys, TreeRoot Secrets)>> writeTrees, string instanceId,
        Func<TreeRoot, TreeRoot, PointManifest> manifestOf, DateOnly date,
        Func<CancellationToken, Task> fence, CancellationToken cancellationToken, Func<CancellationToken, Task>? afterManifest = null)
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

            if (afterManifest is not null)
            {
                try
                {
                    await afterManifest(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is BackupException or OperationCanceledException)
                {
                    await DeletePointAsync(new PointKey(manifest.BackupId, date, manifest.Sequence), CancellationToken.None).ConfigureAwait(false);
                    throw;
                }
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
}
