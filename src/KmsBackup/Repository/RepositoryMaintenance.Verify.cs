using System.Security.Cryptography;

namespace KmsBackup.Repository;
// Verify: every pack, index, object, recovery point and catalog entry checked; nothing changed.
internal static partial class RepositoryMaintenance
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

        foreach (var (key, problem) in await repository.CheckKeyProviderRecordsAsync(cancellationToken).ConfigureAwait(false))
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

        // Packs and their objects. Verify holds one pack at a time, in one buffer read pack after pack, and opens each
        // object into one pinned scratch buffer, zeroed after each object; it keeps the branches (to walk the points'
        // trees below) and, per object, its ID and length in a sorted array, and one bit for whether a point refers to it.
        var packs = new Dictionary<string, long>(StringComparer.Ordinal); // pack ID, its listed length
        var packBytes = 0L;
        await foreach (var entry in store.ListAsync(ObjectStore.PackPrefix, cancellationToken).ConfigureAwait(false))
        {
            var packId = entry.Key[(entry.Key.LastIndexOf('/') + 1)..];
            if (ObjectStore.IsPackId(packId))
            {
                if (string.Equals(entry.Key, ObjectStore.PackKey(packId), StringComparison.Ordinal))
                {
                    packs[packId] = entry.Length;
                }
                else
                {
                    packs.TryAdd(packId, entry.Length);
                }

                packBytes += entry.Length;
            }
            else
            {
                problems.Add(new VerificationProblem($"object '{entry.Key}'", $"the name '{packId}' under packs/ is not a pack ID"));
            }
        }

        var census = new ObjectCensus();
        var branches = new Dictionary<ObjectId, byte[]>();
        var indexedPacks = new HashSet<string>(StringComparer.Ordinal);
        var generations = new SortedDictionary<uint, int>();
        var objectsChecked = 0;
        var packBuffer = new ObjectStore.PackBuffer();

        // Pinned, so that no compacting collection leaves a copy of a leaf behind that the zeroing never reaches.
        var scratch = GC.AllocateUninitializedArray<byte>(64 * 1024, pinned: true);
        try
        {
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

                if (!packs.TryGetValue(packId, out var listedLength))
                {
                    problems.Add(new VerificationProblem($"pack {ObjectStore.Short(packId)}", "its index exists but the pack is missing"));
                    continue;
                }

                ReadOnlyMemory<byte> pack;
                PackCipher cipher;
                try
                {
                    pack = await objects.ReadPackAsync(packId, listedLength, packBuffer, cancellationToken).ConfigureAwait(false);
                    cipher = await objects.OpenPackAsync(packId, pack, keyInfo, cancellationToken).ConfigureAwait(false);
                }
                catch (BackupIntegrityException e)
                {
                    problems.Add(new VerificationProblem(e.Item, e.Message));
                    continue;
                }

                if (!ObjectStore.PackMatchesId(pack.Span, packId))
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

                        var plainLength = Math.Max(0, location.Length - RepositoryCrypto.Overhead);
                        if (plainLength > scratch.Length)
                        {
                            CryptographicOperations.ZeroMemory(scratch);
                            scratch = GC.AllocateUninitializedArray<byte>(plainLength, pinned: true);
                        }

                        var length = packCipher.OpenObject(pack.Span.Slice(location.Offset, location.Length), id, location.Role, scratch);
                        census.AddIntact(id, location.Length);
                        if (location.Role == ObjectRole.Branch && !branches.ContainsKey(id))
                        {
                            branches.Add(id, scratch.AsSpan(0, length).ToArray()); // walked below without reading the pack again
                        }

                        CryptographicOperations.ZeroMemory(scratch.AsSpan(0, length)); // a leaf: key material, secret ciphertexts
                    }
                    catch (BackupIntegrityException e)
                    {
                        problems.Add(new VerificationProblem(e.Item, $"{e.Message} (in pack {ObjectStore.Short(packId)})"));
                    }
                }
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(scratch);
        }

        census.Seal();

        // Recovery points and what they reference.
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
                    if (!census.IsIntact(root.Id))
                    {
                        throw RepositoryErrors.Integrity($"object {root.Id.Short}", "the recovery point's root is in no intact pack");
                    }

                    ItemTree.CollectFrom(root, branches, census.AddReferenced);
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

        foreach (var id in census.Missing)
        {
            problems.Add(new VerificationProblem($"object {id.Short}", "a recovery point refers to it, but no intact pack holds it"));
        }

        var unreferencedObjects = census.UnreferencedCount;
        var livePacks = objects.PacksHolding(census.ReferencedIntact());
        var referencedBytes = census.ReferencedBytes;
        var unreferencedPacks = packs.Keys.Where(p => !livePacks.Contains(p)).Order(StringComparer.Ordinal).ToList();
        return new RepositoryVerification(problems, packs.Count, objectsChecked, pointsChecked, unreferencedObjects, unreferencedPacks,
            packs.Keys.Count(p => !indexedPacks.Contains(p)), abandonedPoints,
            generations.GroupBy(g => (long)objects.Crypto.SequenceOf(g.Key)).ToDictionary(g => g.Key, g => g.Sum(x => x.Value)),
            (long)objects.Crypto.SequenceOf(objects.Crypto.CurrentGeneration))
        {
            PackBytes = packBytes,
            ReferencedBytes = referencedBytes,
        };
    }
}
