
namespace KmsBackup.Repository;

/// <summary>Verify, garbage collection and rekey of a <see cref="BackupRepository"/>; this file holds the garbage collection.</summary>
internal static partial class RepositoryMaintenance
{

    /// <summary>
    /// Two-phase garbage collection (docs/repository-format.md, "Writers and maintenance"). The pending
    /// markers are read first; then the backups that have a catalog entry are listed; then the live set is
    /// computed from every recovery point listed after that, counting a pack live if any copy of a live object
    /// is in it. Phase 2 deletes, for each marker at least <paramref name="grace"/> old, the packs it names that
    /// are still dead (index first, then pack) and the recovery points it names whose backup still has no
    /// catalog entry (an upload that died before its catalog entry), then the marker; phase 1 marks the dead
    /// packs and the recovery points without a catalog entry that no marker names yet. Writers never rely on
    /// marked packs and check again after their manifest is written, and an upload checks that no marker names
    /// its points before it writes its catalog entry, so nothing committed is ever deleted. When any recovery
    /// point or object it refers to cannot be read, nothing is deleted or marked: what is unreadable cannot be
    /// proven dead.
    /// </summary>
    /// <param name="repository">The repository.</param>
    /// <param name="now">The instant checked against the store's time: markers older than <paramref name="grace"/> by it are acted on.</param>
    /// <param name="grace">How long a marker waits before its packs and points are deleted.</param>
    /// <param name="repackThreshold">The unused fraction of a live pack's bytes that makes this prune repack it (<see cref="RepackAsync"/>); 1 turns repacking off.</param>
    /// <param name="cancellationToken">Cancels the prune.</param>
    public static async Task<PruneResult> CollectGarbageAsync(BackupRepository repository, DateTimeOffset now, TimeSpan grace, double repackThreshold, CancellationToken cancellationToken)
    {
        var store = repository.Store;
        var objects = repository.Objects;

        // Markers before the catalog and the points: a marker acted on below existed before the listings that
        // prove its packs dead and its points abandoned.
        var markers = await repository.ReadPruneMarkersAsync(cancellationToken).ConfigureAwait(false);

        // Pins after markers, before the index and the points: a writer that pinned after this read checks the
        // markers and the index after its pin, and so sees whatever this prune marks or deletes.
        if (await repository.ReadPinsAsync(now, cancellationToken).ConfigureAwait(false) is not { } pins)
        {
            return new PruneResult(0, 0, 0, "a writer's pin cannot be read, so which packs writers rely on is unknown");
        }

        var unusableIndexes = await objects.RefreshIndexAsync(cancellationToken).ConfigureAwait(false);
        var catalogued = await ListCataloguedBackupsAsync(store, cancellationToken).ConfigureAwait(false);
        // A marker naming a pack a writer has pinned waits for a later prune, points and packs alike.
        var due = markers.Markers.Where(m => now - m.MarkedAt >= grace && !m.Packs.Any(pins.Pinned.Contains)).ToList();
        var dueAbandoned = due.SelectMany(m => m.Points).ToHashSet(StringComparer.Ordinal);

        var live = new HashSet<ObjectId>();
        var abandoned = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            await foreach (var entry in store.ListAsync(PointKey.AreaPrefix, cancellationToken).ConfigureAwait(false))
            {
                var parts = entry.Key.Split('/');
                if (parts.Length == 4 && PointKey.TryParse(parts[1], $"{parts[2]}/{parts[3]}", out var key))
                {
                    if (!catalogued.Contains(key.BackupId))
                    {
                        abandoned.Add(entry.Key);
                        if (dueAbandoned.Contains(entry.Key))
                        {
                            continue; // deleted below: what only it refers to is dead
                        }
                    }

                    PointManifest manifest;
                    try
                    {
                        manifest = await repository.ReadPointAsync(key, cancellationToken).ConfigureAwait(false);
                    }
                    catch (BackupException e) when (e.Code == BackupErrorCode.NotFound)
                    {
                        continue; // deleted since it was listed: nothing of it is live
                    }

                    await ItemTree.CollectAsync(objects, manifest.KeyRoot, live, cancellationToken).ConfigureAwait(false);
                    await ItemTree.CollectAsync(objects, manifest.SecretRoot, live, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (BackupIntegrityException e)
        {
            return new PruneResult(0, 0, 0, $"{e.Item}: {e.Refusal.Message}");
        }

        var livePacks = objects.PacksHolding(live);
        var unlocated = live.Count(id => !objects.TryGetLocation(id, out _));
        if (unlocated > 0)
        {
            return new PruneResult(0, 0, 0, $"{unlocated} objects that recovery points refer to are in no pack with a readable index");
        }

        // A pack whose index exists but does not open may hold live objects: never collect it.
        var unreadable = unusableIndexes.Select(u => u.Key[ObjectStore.IndexPrefix.Length..]).ToHashSet(StringComparer.Ordinal);
        var allPacks = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var entry in store.ListAsync(ObjectStore.PackPrefix, cancellationToken).ConfigureAwait(false))
        {
            var packId = entry.Key[(entry.Key.LastIndexOf('/') + 1)..];
            if (ObjectStore.IsPackId(packId))
            {
                allPacks.Add(packId);
            }
        }

        var deadPacks = allPacks.Where(p => !livePacks.Contains(p) && !unreadable.Contains(p)).ToHashSet(StringComparer.Ordinal);

        // A marked pack that still holds live objects may go when each of them has a copy in a pack no marker names
        // (a rekey copied them under the current key): this prune deletes no unmarked pack, writers do not rely on
        // marked ones, and a marker written after the markers were read names only packs a later prune deletes
        // (after its own check). A reader that located an object in the deleted pack reads the index again and
        // finds the copy.
        var anyMarked = markers.Markers.SelectMany(m => m.Packs).ToHashSet(StringComparer.Ordinal);
        bool IsSuperseded(string pack) =>
            allPacks.Contains(pack) && !unreadable.Contains(pack) &&
            objects.EntriesOf(pack).Where(e => live.Contains(e.Id)).All(e =>
                objects.PacksOf(e.Id).Any(other => !string.Equals(other, pack, StringComparison.Ordinal) && !anyMarked.Contains(other) && allPacks.Contains(other)));

        // Phase 2: delete what an old enough mark named and is still dead or abandoned, unless a writer has pinned one of its packs.
        var deleted = new HashSet<string>(StringComparer.Ordinal);
        var pointsDeleted = 0;
        foreach (var marker in due)
        {
            foreach (var point in marker.Points.Where(abandoned.Contains))
            {
                if (await store.DeleteAsync(point, cancellationToken).ConfigureAwait(false))
                {
                    pointsDeleted++;
                }
            }

            foreach (var pack in marker.Packs.Where(p => deadPacks.Contains(p) || IsSuperseded(p)))
            {
                await store.DeleteAsync(ObjectStore.IndexKey(pack), cancellationToken).ConfigureAwait(false);
                await store.DeleteAsync(ObjectStore.PackKey(pack), cancellationToken).ConfigureAwait(false);
                deleted.Add(pack);
            }

            await store.DeleteAsync(marker.Key, cancellationToken).ConfigureAwait(false);
        }

        // Repack the live packs that are partly unused: their live objects are copied, and they are marked below, after
        // the copies are flushed; a later prune deletes each as superseded. Packs any marker read here names, and pinned
        // ones, wait for a later prune.
        var usable = livePacks.Where(p => allPacks.Contains(p) && !unreadable.Contains(p) && !anyMarked.Contains(p)).ToHashSet(StringComparer.Ordinal);
        var repack = await RepackAsync(objects, live, usable, pins.Pinned, repackThreshold, cancellationToken).ConfigureAwait(false);

        // Phase 1: mark the dead packs, the repacked ones and the abandoned points not marked yet.
        var pending = markers.Markers.Except(due).ToList();
        var stillMarked = pending.SelectMany(m => m.Packs).ToHashSet(StringComparer.Ordinal);
        var stillMarkedPoints = pending.SelectMany(m => m.Points).ToHashSet(StringComparer.Ordinal);
        var toMark = deadPacks.Where(p => !deleted.Contains(p) && !stillMarked.Contains(p)).Order(StringComparer.Ordinal).ToList();
        var pointsToMark = abandoned.Where(p => !dueAbandoned.Contains(p) && !stillMarkedPoints.Contains(p)).Order(StringComparer.Ordinal).ToList();
        if (toMark.Count > 0 || pointsToMark.Count > 0 || repack.Repacked.Count > 0)
        {
            await repository.WritePruneMarkerAsync(now, [.. toMark, .. repack.Repacked], pointsToMark, cancellationToken).ConfigureAwait(false);
        }

        foreach (var lapsed in pins.Lapsed)
        {
            await store.DeleteAsync(lapsed, cancellationToken).ConfigureAwait(false); // a crashed writer's
        }

        objects.Forget(deleted);
        objects.ExcludePacks(stillMarked.Concat(toMark).Concat(repack.Repacked));
        return new PruneResult(deleted.Count, toMark.Count, pointsDeleted, null) { PacksRepacked = repack.Repacked.Count, BytesRepacked = repack.BytesWritten };
    }

    /// <summary>
    /// The backups that have any object under <c>catalog/</c>, damaged or not: a backup whose entry does not open
    /// still owns its points (damage stays local), so only a backup with no entry at all has abandoned points.
    /// </summary>
    public static async Task<HashSet<string>> ListCataloguedBackupsAsync(BackupStore store, CancellationToken cancellationToken)
    {
        var backups = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var entry in store.ListAsync("catalog/", cancellationToken).ConfigureAwait(false))
        {
            var parts = entry.Key.Split('/');
            if (parts.Length >= 2 && parts[1].Length > 0)
            {
                backups.Add(parts[1]);
            }
        }

        return backups;
    }

}

/// <summary>What a rekey did.</summary>
/// <param name="Generation">The key generation objects were copied under.</param>
/// <param name="PacksRewritten">Old packs whose objects were copied and which were marked for a later prune.</param>
/// <param name="ObjectsCopied">Objects copied.</param>
/// <param name="BytesWritten">Bytes of new packs and indexes written.</param>
/// <param name="PacksRemaining">Old packs not rewritten by this call (beyond its budget).</param>
/// <param name="PacksDamaged">Old packs that could not be read or opened: left as they are, for verify to name.</param>
internal readonly record struct RekeyResult(uint Generation, int PacksRewritten, int ObjectsCopied, long BytesWritten, int PacksRemaining, int PacksDamaged);

/// <summary>What a prune did.</summary>
/// <param name="PacksDeleted">Packs deleted now (marked by an earlier prune and still unreferenced).</param>
/// <param name="PacksMarked">Packs newly marked for deletion by a later prune.</param>
/// <param name="AbandonedPointsDeleted">Recovery points of backups without a catalog entry (an interrupted upload's) deleted now, marked by an earlier prune.</param>
/// <param name="Blocked">Why nothing was collected (damage that makes the live set unknowable), or <see langword="null"/>.</param>
internal readonly record struct PruneResult(int PacksDeleted, int PacksMarked, int AbandonedPointsDeleted, string? Blocked)
{
    /// <summary>Live packs repacked and marked (not counted in <see cref="PacksMarked"/>).</summary>
    public int PacksRepacked { get; init; }

    /// <summary>Bytes of new packs and indexes the repacking wrote.</summary>
    public long BytesRepacked { get; init; }
}
