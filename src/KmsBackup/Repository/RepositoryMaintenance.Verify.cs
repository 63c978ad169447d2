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
        var packBytes = 0L;
        await foreach (var entry in store.ListAsync(ObjectStore.PackPrefix, cancellationToken).ConfigureAwait(false))
        {
            var packId = entry.Key[(entry.Key.LastIndexOf('/') + 1)..];
            if (ObjectStore.IsPackId(packId))
            {
                packs.Add(packId);
                packBytes += entry.Length;
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
        var referencedBytes = referenced.Sum(id => indexed.TryGetValue(id, out var location) ? (long)location.Length : 0L);
        var unreferencedPacks = packs.Where(p => !livePacks.Contains(p)).Order(StringComparer.Ordinal).ToList();
        return new RepositoryVerification(problems, packs.Count, objectsChecked, pointsChecked, unreferencedObjects, unreferencedPacks,
            packs.Where(p => !indexedPacks.Contains(p)).Count(), abandonedPoints,
            generations.GroupBy(g => (long)objects.Crypto.SequenceOf(g.Key)).ToDictionary(g => g.Key, g => g.Sum(x => x.Value)),
            (long)objects.Crypto.SequenceOf(objects.Crypto.CurrentGeneration))
        {
            PackBytes = packBytes,
            ReferencedBytes = referencedBytes,
        };
    }
}
