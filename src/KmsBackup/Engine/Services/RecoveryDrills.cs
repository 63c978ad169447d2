using System.Diagnostics;
using System.Security.Cryptography;
using KmsBackup.Repository;

namespace KmsBackup;

/// <summary>
/// Recovery drills: restore a sample of a recovery point into an empty scratch instance through the ordinary restore
/// path, compare what the instance then holds with the backup, and delete it again.
/// </summary>
internal sealed class RecoveryDrills
{
    /// <summary>Keys read per page while looking for the encrypting keys of sampled secrets.</summary>
    private const int KeyScanPage = 1000;

    private readonly BackupCatalog _catalog;
    private readonly BackupDataReader _data;
    private readonly RestoreExecutor _executor;
    private readonly MaintenanceOperations _maintenance;
    private readonly BackupRepository _repository;
    private readonly InstanceGateway _instances;

    internal RecoveryDrills(BackupCatalog catalog, BackupDataReader data, RestoreExecutor executor, MaintenanceOperations maintenance)
    {
        _catalog = catalog;
        _data = data;
        _executor = executor;
        _maintenance = maintenance;
        _repository = catalog.Repository;
        _instances = catalog.Instances;
    }

    internal async Task<RecoveryDrillReport> DrillAsync(RecoveryDrillRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
        var watch = Stopwatch.StartNew();
        var entry = await _catalog.LoadOwnedForAsync(request.CallerAccount, request.BackupId, BackupOperation.Restore, date: null, cancellationToken).ConfigureAwait(false);
        await CheckScratchAsync(request, entry, cancellationToken).ConfigureAwait(false);

        var verification = request.VerifyRepository ? await _maintenance.VerifyAsync(cancellationToken).ConfigureAwait(false) : null;
        var at = request.PointInTime ?? _catalog.Clock.GetUtcNow();
        if (await _data.FindPointAtAsync(request.BackupId, entry.State, at, cancellationToken).ConfigureAwait(false) is not { } found)
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, $"backup '{request.BackupId}' at {ViewableWindow.Iso(at)}",
                $"The backup '{request.BackupId}' has no recovery point at or before {ViewableWindow.Iso(at)} to drill.",
                "Run a backup first, or choose a later instant."));
        }

        var (pointKey, manifest) = found;
        var sampler = new Sampler(request.Seed);
        var keys = await SampleAsync(manifest.KeyRoot.Count, request.SampleSize, sampler, (skip, take) => _repository.ReadKeyRangeAsync(manifest, skip, take, cancellationToken)).ConfigureAwait(false);
        var secrets = await SampleAsync(manifest.SecretRoot.Count, request.SampleSize, sampler, (skip, take) => _repository.ReadSecretRangeAsync(manifest, skip, take, cancellationToken)).ConfigureAwait(false);

        // A secret is restored with the key that encrypts it (rule R4): the keys of sampled secrets join the sample.
        var items = new List<RecoveryDrillItem>();
        var keyNames = new SortedSet<string>(keys.Select(k => k.Name), StringComparer.Ordinal);
        var keyIds = keys.Select(k => k.Id).ToHashSet(StringComparer.Ordinal);
        var wanted = secrets.Select(s => s.EncryptionKeyId).Where(id => !keyIds.Contains(id)).ToHashSet(StringComparer.Ordinal);
        foreach (var key in await FindKeysByIdAsync(manifest, wanted, cancellationToken).ConfigureAwait(false))
        {
            keyNames.Add(key.Name);
            keyIds.Add(key.Id);
        }

        var secretNames = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var secret in secrets)
        {
            if (keyIds.Contains(secret.EncryptionKeyId))
            {
                secretNames.Add(secret.Name);
            }
            else
            {
                items.Add(new RecoveryDrillItem(ItemType.Secret, secret.Name, RecoveryDrillOutcome.Skipped,
                    $"its encrypting key '{secret.EncryptionKeyId}' is not in the recovery point, so it cannot be restored into an empty instance"));
            }
        }

        if (keyNames.Count + secretNames.Count == 0)
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, $"recovery point {request.BackupId}#{manifest.Sequence}",
                $"The recovery point {request.BackupId}#{manifest.Sequence} holds nothing that can be restored into an empty instance, so there is nothing to drill.",
                "Drill a backup whose instance holds keys, or a later point."));
        }

        var restore = new RestoreRequest
        {
            CallerAccount = request.CallerAccount,
            BackupId = request.BackupId,
            TargetInstanceId = request.ScratchInstanceId,
            PointInTime = manifest.TakenAt,
            KeyNames = [.. keyNames],
            SecretNames = [.. secretNames],
            OperationId = $"drill-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}",
        };

        // Planned first, which writes nothing: a refused drill (names in use in the scratch instance's region, another
        // kind of instance) leaves no trace in the store, not even the operation's lease.
        var plan = await _executor.PlanRestoreAsync(restore, cancellationToken).ConfigureAwait(false);
        if (!plan.CanExecute)
        {
            throw new RestoreException(plan.AllRefusals.First(), plan);
        }

        var result = await _executor.RestoreAsync(restore, progress: null, activity: null, cancellationToken).ConfigureAwait(false);

        IReadOnlyList<string> left;
        try
        {
            items.InsertRange(0, await CompareAsync(manifest, request.ScratchInstanceId, keyNames, secretNames, cancellationToken).ConfigureAwait(false));
        }
        finally
        {
            // The scratch instance is emptied again whatever the comparison found (or if it failed): secrets before the
            // keys that encrypt them, as a rollback does. Not cancellable: a drill must not leave its items behind.
            left = await ClearScratchAsync(request.ScratchInstanceId, result.OperationId, keyNames, secretNames).ConfigureAwait(false);
        }

        return new RecoveryDrillReport
        {
            BackupId = request.BackupId,
            Point = BackupCatalog.ToPoint(manifest, pointKey.Date),
            ScratchInstanceId = request.ScratchInstanceId,
            KeyProviderId = _repository.KeyProviderId,
            OperationId = result.OperationId,
            KeysInPoint = manifest.KeyRoot.Count,
            SecretsInPoint = manifest.SecretRoot.Count,
            Items = [.. items.OrderBy(i => i.Type).ThenBy(i => i.Name, StringComparer.Ordinal)],
            Verification = verification,
            ScratchCleared = left.Count == 0,
            LeftInScratch = left,
            Elapsed = watch.Elapsed,
        };
    }

    /// <summary>Refuses a target that is not a scratch instance: the backup's own instance, or one that holds anything.</summary>
    private async Task CheckScratchAsync(RecoveryDrillRequest request, CatalogEntry entry, CancellationToken cancellationToken)
    {
        var scratch = request.ScratchInstanceId;
        if (string.Equals(entry.State.Instance?.Id, scratch, StringComparison.Ordinal))
        {
            throw NotScratch(scratch, $"The instance '{scratch}' is the one the backup '{request.BackupId}' backs up; a drill restores only into a scratch instance.");
        }

        // An instance that does not exist, or is another account's, is left to the restore plan, which refuses both alike.
        if (await _instances.GetInstanceAsync(scratch, cancellationToken).ConfigureAwait(false) is { } described &&
            string.Equals(described.OwnerAccount, request.CallerAccount, StringComparison.Ordinal) &&
            described.KeyCount + described.SecretCount > 0)
        {
            throw NotScratch(scratch, $"The instance '{scratch}' holds {Plural(described.KeyCount, "key")} and {Plural(described.SecretCount, "secret")}; a drill restores only into an empty instance, and deletes what it restored.");
        }
    }

    private static BackupException NotScratch(string scratch, string message) =>
        new(new Refusal(BackupErrorCode.DrillTargetNotScratch, $"instance '{scratch}'", message,
            "Create an empty instance of the backup's kind (in another region, so that its names are free) and drill into it."));

    private static string Plural(int count, string noun) => count == 1 ? $"1 {noun}" : $"{count:N0} {noun}s";

    /// <summary>Up to <paramref name="size"/> of <paramref name="count"/> items at random positions, each read alone (a seek, not a scan).</summary>
    private static async Task<List<T>> SampleAsync<T>(long count, int size, Sampler sampler, Func<long, int, Task<List<T>>> read)
    {
        if (count <= size)
        {
            return count == 0 ? [] : await read(0, (int)count).ConfigureAwait(false);
        }

        var positions = new SortedSet<long>();
        while (positions.Count < size)
        {
            positions.Add(sampler.Next(count));
        }

        var sampled = new List<T>(size);
        foreach (var position in positions)
        {
            sampled.AddRange(await read(position, 1).ConfigureAwait(false));
        }

        return sampled;
    }

    /// <summary>The keys of the point with the IDs in <paramref name="ids"/>, read a page at a time until all are found (keys are in name order, not by ID).</summary>
    private async Task<List<KeyRecord>> FindKeysByIdAsync(PointManifest manifest, HashSet<string> ids, CancellationToken cancellationToken)
    {
        var found = new List<KeyRecord>();
        for (long skip = 0; found.Count < ids.Count && skip < manifest.KeyRoot.Count; skip += KeyScanPage)
        {
            foreach (var key in await _repository.ReadKeyRangeAsync(manifest, skip, KeyScanPage, cancellationToken).ConfigureAwait(false))
            {
                if (ids.Contains(key.Id))
                {
                    found.Add(key);
                }
            }
        }

        return found;
    }

    /// <summary>Each restored item as the scratch instance holds it against the backup's record, values included; every value read is zeroed.</summary>
    private async Task<List<RecoveryDrillItem>> CompareAsync(
        PointManifest manifest, string scratchId, SortedSet<string> keyNames, SortedSet<string> secretNames, CancellationToken cancellationToken)
    {
        var backedUpKeys = await _repository.FindKeysAsync(manifest, keyNames, withValues: true, cancellationToken).ConfigureAwait(false);
        List<SecretRecord> backedUpSecrets = [];
        InstanceSnapshot? restored = null;
        try
        {
            backedUpSecrets = await _repository.FindSecretsAsync(manifest, secretNames, withValues: true, cancellationToken).ConfigureAwait(false);
            restored = (await _instances.ReadSnapshotAsync(scratchId, cancellationToken).ConfigureAwait(false)).Snapshot;
            var keysThere = restored.Keys.ToDictionary(k => k.Name, StringComparer.Ordinal);
            var secretsThere = restored.Secrets.ToDictionary(s => s.Name, StringComparer.Ordinal);
            var items = new List<RecoveryDrillItem>();
            foreach (var key in backedUpKeys)
            {
                items.Add(!keysThere.TryGetValue(key.Name, out var there)
                    ? new RecoveryDrillItem(ItemType.Key, key.Name, RecoveryDrillOutcome.Missing, $"the scratch instance '{scratchId}' does not hold the key after the restore")
                    : Compare(ItemType.Key, key.Name, key.Id == there.Id, key.SameMetadata(there), key.SameVersions(there), "key material"));
            }

            foreach (var secret in backedUpSecrets)
            {
                items.Add(!secretsThere.TryGetValue(secret.Name, out var there)
                    ? new RecoveryDrillItem(ItemType.Secret, secret.Name, RecoveryDrillOutcome.Missing, $"the scratch instance '{scratchId}' does not hold the secret after the restore")
                    : Compare(ItemType.Secret, secret.Name, secret.EncryptionKeyId == there.EncryptionKeyId, secret.SameMetadata(there), secret.SameVersions(there), "ciphertext"));
            }

            // A name the restore created that the point does not hold would have been planned from nothing: report it.
            foreach (var name in keyNames.Except(backedUpKeys.Select(k => k.Name), StringComparer.Ordinal))
            {
                items.Add(new RecoveryDrillItem(ItemType.Key, name, RecoveryDrillOutcome.Missing, "the recovery point no longer yields the key when read with its material"));
            }

            foreach (var name in secretNames.Except(backedUpSecrets.Select(s => s.Name), StringComparer.Ordinal))
            {
                items.Add(new RecoveryDrillItem(ItemType.Secret, name, RecoveryDrillOutcome.Missing, "the recovery point no longer yields the secret when read with its ciphertexts"));
            }

            return items;
        }
        finally
        {
            foreach (var key in backedUpKeys)
            {
                SensitiveValues.Clear(key);
            }

            foreach (var secret in backedUpSecrets)
            {
                SensitiveValues.Clear(secret);
            }

            SensitiveValues.Clear(restored);
        }
    }

    private static RecoveryDrillItem Compare(ItemType type, string name, bool sameId, bool sameMetadata, bool sameVersions, string values)
    {
        var problems = new List<string>();
        if (!sameId)
        {
            problems.Add(type == ItemType.Key ? "its key ID differs" : "its encrypting key's ID differs");
        }

        if (!sameMetadata)
        {
            problems.Add("its metadata differs");
        }

        if (!sameVersions)
        {
            problems.Add($"its versions or {values} differ");
        }

        return problems.Count == 0
            ? new RecoveryDrillItem(type, name, RecoveryDrillOutcome.Matched)
            : new RecoveryDrillItem(type, name, RecoveryDrillOutcome.Differs, string.Join("; ", problems) + " from the backup");
    }

    private async Task<IReadOnlyList<string>> ClearScratchAsync(string scratchId, string operationId, SortedSet<string> keyNames, SortedSet<string> secretNames)
    {
        var left = new List<string>();
        foreach (var (type, name) in secretNames.Select(n => (ItemType.Secret, n)).Concat(keyNames.Select(n => (ItemType.Key, n))))
        {
            try
            {
                await _instances.DeleteRestoredItemAsync(scratchId, type, name, operationId, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                left.Add($"{(type == ItemType.Key ? "key" : "secret")} '{name}': deleting it from the scratch instance failed: {e.Message}");
            }
        }

        return left;
    }

    /// <summary>
    /// Positions to sample: uniform below a bound, from SHA-256 of a seed and a counter, so that a seeded drill samples
    /// the same items again; without a seed, the seed is random.
    /// </summary>
    private sealed class Sampler(int? seed)
    {
        private readonly byte[] _seed = seed is { } s ? BitConverter.GetBytes(s) : RandomNumberGenerator.GetBytes(16);
        private long _counter;

        public long Next(long bound)
        {
            // Rejection sampling keeps the positions uniform: values past the largest multiple of the bound are drawn again.
            var limit = ulong.MaxValue - (ulong.MaxValue % (ulong)bound);
            Span<byte> input = stackalloc byte[_seed.Length + 8];
            Span<byte> hash = stackalloc byte[32];
            _seed.CopyTo(input);
            while (true)
            {
                BitConverter.TryWriteBytes(input[_seed.Length..], _counter++);
                SHA256.HashData(input, hash);
                var value = BitConverter.ToUInt64(hash);
                if (value < limit)
                {
                    return (long)(value % (ulong)bound);
                }
            }
        }
    }
}
