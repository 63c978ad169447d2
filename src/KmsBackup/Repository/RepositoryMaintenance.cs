using System.Security.Cryptography;

namespace KmsBackup.Repository;

/// <summary>Verify and garbage collection of a <see cref="BackupRepository"/>.</summary>
internal static class RepositoryMaintenance
{
    /// <summary>
    /// Checks everything: every pack's content hash, every index, every object's MAC and authentication,
    /// every recovery point and every reference from it, every catalog entry. Reports what is wrong and
    /// what is merely unreferenced (left by an interrupted write, removed by the next prune).
    /// </summary>
    public static async Task<RepositoryVerification> VerifyAsync(BackupRepository repository, CancellationToken cancellationToken)
    {
        var problems = new List<VerificationProblem>();
        var store = repository.Store;
        var objects = repository.Objects;
        foreach (var (key, problem) in await repository.RefreshKeysAsync(cancellationToken).ConfigureAwait(false))
        {
            problems.Add(new VerificationProblem($"key record '{key}'", problem));
        }

        // Damaged indexes are reported below, one by one; names that are no pack ID here.
        foreach (var (key, problem) in await objects.RefreshIndexAsync(cancellationToken).ConfigureAwait(false))
        {
            if (!ObjectStore.IsPackId(key[ObjectStore.IndexPrefix.Length..]))
            {
                problems.Add(new VerificationProblem($"object '{key}'", problem));
            }
        }

        // Packs and their objects.
        var packs = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var entry in store.ListAsync(ObjectStore.PackPrefix, cancellationToken).ConfigureAwait(false))
        {
            var packId = entry.Key[(entry.Key.LastIndexOf('/') + 1)..];
            if (ObjectStore.IsPackId(packId))
            {
                packs.Add(packId);
            }
            else
            {
                problems.Add(new VerificationProblem($"object '{entry.Key}'", $"the name '{packId}' under packs/ is not a pack ID"));
            }
        }

        var indexed = new Dictionary<ObjectId, ObjectLocation>();
        var branches = new Dictionary<ObjectId, byte[]>();
        var indexedPacks = new HashSet<string>(StringComparer.Ordinal);
        var generations = new SortedDictionary<uint, int>();
        var objectsChecked = 0;
        await foreach (var entry in store.ListAsync(ObjectStore.IndexPrefix, cancellationToken).ConfigureAwait(false))
        {
            var packId = entry.Key[ObjectStore.IndexPrefix.Length..];
            if (!ObjectStore.IsPackId(packId))
            {
                continue; // reported above
            }

            indexedPacks.Add(packId);
            List<(ObjectId Id, ObjectLocation Location)> entries;
            PackKeyInfo keyInfo;
            try
            {
                var bytes = await store.TryReadAsync(entry.Key, cancellationToken).ConfigureAwait(false) ?? [];
                (keyInfo, entries) = await objects.WithKeysAsync(() => objects.DecodeIndex(packId, bytes), cancellationToken).ConfigureAwait(false);
            }
            catch (BackupIntegrityException e)
            {
                problems.Add(new VerificationProblem(e.Item, e.Message));
                continue;
            }

            if (!packs.Contains(packId))
            {
                problems.Add(new VerificationProblem($"pack {ObjectStore.Short(packId)}", "its index exists but the pack is missing"));
                continue;
            }

            byte[] pack;
            PackCipher cipher;
            try
            {
                pack = await objects.ReadPackAsync(packId, cancellationToken).ConfigureAwait(false);
                cipher = await objects.OpenPackAsync(packId, pack, keyInfo, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupIntegrityException e)
            {
                problems.Add(new VerificationProblem(e.Item, e.Message));
                continue;
            }

            if (!ObjectStore.PackMatchesId(pack, packId))
            {
                problems.Add(new VerificationProblem($"pack {ObjectStore.Short(packId)}", "its content does not match its ID (it was changed or damaged)"));
            }

            generations[keyInfo.Generation] = generations.GetValueOrDefault(keyInfo.Generation) + 1;
            using var packCipher = cipher;
            foreach (var (id, location) in entries)
            {
                objectsChecked++;
                try
                {
                    if ((long)location.Offset + location.Length > pack.Length)
                    {
                        throw RepositoryErrors.Integrity($"object {id.Short}", "it lies past the end of its pack");
                    }

                    var plain = packCipher.OpenObject(pack.AsSpan(location.Offset, location.Length), id, location.Role);
                    indexed.TryAdd(id, location);
                    if (location.Role == ObjectRole.Branch)
                    {
                        branches.TryAdd(id, plain); // walked below without reading the pack again
                    }
                    else
                    {
                        CryptographicOperations.ZeroMemory(plain); // a leaf: key material, secret ciphertexts
                    }
                }
                catch (BackupIntegrityException e)
                {
                    problems.Add(new VerificationProblem(e.Item, $"{e.Message} (in pack {ObjectStore.Short(packId)})"));
                }
            }
        }

        // Recovery points and what they reference.
        var referenced = new HashSet<ObjectId>();
        var pointsChecked = 0;
        var abandonedPoints = 0;
        var catalogued = await ListCataloguedBackupsAsync(store, cancellationToken).ConfigureAwait(false);
        await foreach (var entry in store.ListAsync("points/", cancellationToken).ConfigureAwait(false))
        {
            var parts = entry.Key.Split('/');
            if (parts.Length != 4 || !PointKey.TryParse(parts[1], $"{parts[2]}/{parts[3]}", out var key))
            {
                problems.Add(new VerificationProblem($"object '{entry.Key}'", "it is in the points area but is not a recovery point"));
                continue;
            }

            pointsChecked++;
            if (!catalogued.Contains(key.BackupId))
            {
                abandonedPoints++;
            }

            try
            {
                var manifest = await repository.ReadPointAsync(key, cancellationToken).ConfigureAwait(false);
                foreach (var root in new[] { manifest.KeyRoot, manifest.SecretRoot })
                {
                    if (!indexed.ContainsKey(root.Id))
                    {
                        throw RepositoryErrors.Integrity($"object {root.Id.Short}", "the recovery point's root is in no intact pack");
                    }

                    ItemTree.CollectFrom(root, branches, referenced);
                }
            }
            catch (BackupIntegrityException e)
            {
                problems.Add(new VerificationProblem($"recovery point {key.BackupId}#{key.Sequence}", e.Message));
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.NotFound)
            {
                pointsChecked--; // deleted since it was listed (a reset, release or prune ran meanwhile)
            }
        }

        // Catalog and prune markers.
        foreach (var damaged in (await repository.LoadStatesAsync(cancellationToken).ConfigureAwait(false)).Damaged)
        {
            problems.Add(new VerificationProblem(damaged.Error.Item, damaged.Error.Message));
        }

        foreach (var (key, problem) in (await repository.ReadPruneMarkersAsync(cancellationToken).ConfigureAwait(false)).Unreadable)
        {
            problems.Add(new VerificationProblem($"prune marker '{key}'", problem));
        }

        foreach (var (item, problem) in await new RestoreJournal(repository).VerifyAsync(cancellationToken).ConfigureAwait(false))
        {
            problems.Add(new VerificationProblem(item, problem));
        }

        foreach (var id in referenced.Where(id => !indexed.ContainsKey(id)))
        {
            problems.Add(new VerificationProblem($"object {id.Short}", "a recovery point refers to it, but no intact pack holds it"));
        }

        var unreferencedObjects = indexed.Keys.Count(id => !referenced.Contains(id));
        var livePacks = objects.PacksHolding(referenced.Where(indexed.ContainsKey));
        var unreferencedPacks = packs.Where(p => !livePacks.Contains(p)).Order(StringComparer.Ordinal).ToList();
        return new RepositoryVerification(problems, packs.Count, objectsChecked, pointsChecked, unreferencedObjects, unreferencedPacks,
            packs.Where(p => !indexedPacks.Contains(p)).Count(), abandonedPoints,
            generations.GroupBy(g => (long)objects.Crypto.SequenceOf(g.Key)).ToDictionary(g => g.Key, g => g.Sum(x => x.Value)),
            (long)objects.Crypto.SequenceOf(objects.Crypto.CurrentGeneration));
    }

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
    public static async Task<PruneResult> CollectGarbageAsync(BackupRepository repository, DateTimeOffset now, TimeSpan grace, CancellationToken cancellationToken)
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

        // Phase 1: mark the dead packs and abandoned points not marked yet.
        var pending = markers.Markers.Except(due).ToList();
        var stillMarked = pending.SelectMany(m => m.Packs).ToHashSet(StringComparer.Ordinal);
        var stillMarkedPoints = pending.SelectMany(m => m.Points).ToHashSet(StringComparer.Ordinal);
        var toMark = deadPacks.Where(p => !deleted.Contains(p) && !stillMarked.Contains(p)).Order(StringComparer.Ordinal).ToList();
        var pointsToMark = abandoned.Where(p => !dueAbandoned.Contains(p) && !stillMarkedPoints.Contains(p)).Order(StringComparer.Ordinal).ToList();
        if (toMark.Count > 0 || pointsToMark.Count > 0)
        {
            await repository.WritePruneMarkerAsync(now, toMark, pointsToMark, cancellationToken).ConfigureAwait(false);
        }

        foreach (var lapsed in pins.Lapsed)
        {
            await store.DeleteAsync(lapsed, cancellationToken).ConfigureAwait(false); // a crashed writer's
        }

        objects.Forget(deleted);
        objects.ExcludePacks(stillMarked.Concat(toMark));
        return new PruneResult(deleted.Count, toMark.Count, pointsDeleted, null);
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

    /// <summary>
    /// Rewrites the objects of packs sealed under an older key generation into new packs under the current one,
    /// then marks the old packs: a prune at least the grace period later deletes each old pack whose live objects
    /// all have a copy in an unmarked pack (docs/repository-format.md, "Key rotation and rekey"). Packs a marker
    /// already names are left to the prunes. Safe to interrupt at any point and to run again: what was copied is
    /// only garbage until its old pack is marked.
    /// </summary>
    /// <param name="repository">The repository.</param>
    /// <param name="now">The time recorded in the marker.</param>
    /// <param name="maximumPacks">How many old packs to rewrite in this call at most.</param>
    /// <param name="cancellationToken">Cancels the rekey.</param>
    public static async Task<RekeyResult> RekeyAsync(BackupRepository repository, DateTimeOffset now, int maximumPacks, CancellationToken cancellationToken)
    {
        var objects = repository.Objects;
        await repository.RefreshKeysAsync(cancellationToken).ConfigureAwait(false);
        var markers = await repository.ReadPruneMarkersAsync(cancellationToken).ConfigureAwait(false);
        await objects.RefreshIndexAsync(cancellationToken).ConfigureAwait(false);
        var current = objects.Crypto.CurrentGeneration;
        var marked = markers.MarkedPacks.ToHashSet(StringComparer.Ordinal);
        var generations = objects.PackGenerations();
        var old = generations
            .Where(p => p.Value != current && !marked.Contains(p.Key))
            .Select(p => p.Key).Order(StringComparer.Ordinal).ToList();

        // Hosts rekeying at once start at different packs, so they seldom copy the same one.
        var start = old.Count == 0 ? 0 : RandomNumberGenerator.GetInt32(old.Count);
        old = [.. old.Skip(start), .. old.Take(start)];

        // An object that already has a copy under the current generation in a pack no marker names (a rekey that died
        // before its marker, or another host's) is not copied again: its old pack is only marked.
        bool HasCurrentCopy(ObjectId id, string from) => objects.PacksOf(id).Any(p =>
            !string.Equals(p, from, StringComparison.Ordinal) && !marked.Contains(p) && generations.GetValueOrDefault(p) == current);

        var rewritten = new List<string>();
        var damaged = 0;
        var objectsCopied = 0;
        using var writer = new PackWriter(objects) { WriteCopies = true };
        foreach (var packId in old)
        {
            if (rewritten.Count >= maximumPacks)
            {
                break;
            }

            var entries = objects.EntriesOf(packId);
            byte[]? pack = null;
            try
            {
                if (entries.All(e => HasCurrentCopy(e.Id, packId)))
                {
                    rewritten.Add(packId);
                    continue;
                }

                pack = await objects.ReadPackAsync(packId, cancellationToken).ConfigureAwait(false);
                using var cipher = await objects.OpenPackAsync(packId, pack, cancellationToken).ConfigureAwait(false);

                // Open every object first: a pack with one damaged object is left whole (verify names it), not half copied.
                var opened = new List<(byte Role, byte[] Plain)>(entries.Count);
                try
                {
                    foreach (var (id, location) in entries.Where(e => !HasCurrentCopy(e.Id, packId)))
                    {
                        opened.Add((location.Role, cipher.OpenObject(pack, id, location)));
                    }

                    foreach (var (role, plain) in opened)
                    {
                        await writer.AddAsync(role, plain, cancellationToken).ConfigureAwait(false);
                        objectsCopied++;
                    }
                }
                finally
                {
                    foreach (var (_, plain) in opened)
                    {
                        CryptographicOperations.ZeroMemory(plain);
                    }
                }

                rewritten.Add(packId);
            }
            catch (BackupIntegrityException)
            {
                damaged++; // deleted meanwhile by a prune, or damaged: verify names it; the other packs go on
            }
            finally
            {
                if (pack is not null)
                {
                    CryptographicOperations.ZeroMemory(pack);
                }
            }
        }

        // Copies first, then the marker: until the marker exists the copies are merely extra, and the next rekey marks
        // the old pack without copying it again.
        await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        if (rewritten.Count > 0)
        {
            await repository.WritePruneMarkerAsync(now, rewritten, [], cancellationToken).ConfigureAwait(false);
        }

        return new RekeyResult(current, rewritten.Count, objectsCopied, writer.BytesWritten, old.Count - rewritten.Count - damaged, damaged);
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
internal readonly record struct PruneResult(int PacksDeleted, int PacksMarked, int AbandonedPointsDeleted, string? Blocked);
