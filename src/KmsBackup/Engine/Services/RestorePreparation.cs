using KmsBackup.Repository;

namespace KmsBackup;

/// <summary>Reads the data a restore chooses and plans it against the target instance (rules R1–R5, R8, H7); writes nothing.</summary>
internal sealed class RestorePreparation
{
    private readonly BackupCatalog _catalog;
    private readonly BackupDataReader _data;
    private readonly BackupRepository _repository;
    private readonly InstanceGateway _instances;
    private readonly BackupClientOptions _options;

    internal RestorePreparation(BackupCatalog catalog, BackupDataReader data)
    {
        _catalog = catalog;
        _data = data;
        _repository = catalog.Repository;
        _instances = catalog.Instances;
        _options = catalog.Options;
    }

    /// <summary>
    /// Reads the chosen items (with their key material and secret ciphertexts only when <paramref name="withValues"/>:
    /// to restore them) and plans. The caller clears the records (<see cref="RestoreRecords.Clear"/>) when done, and so
    /// does this method if it fails.
    /// </summary>
    internal async Task<PreparedRestore> PrepareRestoreAsync(RestoreRequest request, CatalogEntry owned, long? pinnedSequence, bool withValues, CancellationToken cancellationToken)
    {
        var records = new RestoreRecords();
        try
        {
            return await PrepareRestoreAsync(request, owned, pinnedSequence, withValues, records, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            records.Clear();
            throw;
        }
    }

    internal async Task<PreparedRestore> PrepareRestoreAsync(RestoreRequest request, CatalogEntry owned, long? pinnedSequence, bool withValues, RestoreRecords records, CancellationToken cancellationToken)
    {
        // Reads only: the state is advanced by time in memory, never stored.
        var entry = _catalog.AsOfNow(owned);
        var now = _catalog.Clock.GetUtcNow();
        var state = entry.State;
        var source = await ReadRestoreSourceAsync(state, request, now, pinnedSequence, withValues, records, cancellationToken).ConfigureAwait(false);

        var missingKeys = request.KeyNames.Where(n => !records.Keys.ContainsKey(n)).ToList();
        var missingSecrets = request.SecretNames.Where(n => !records.Secrets.ContainsKey(n)).ToList();
        if (source.Snapshot is null)
        {
            // No data was read (the date was refused or holds nothing): the plan reports that, not each name.
            missingKeys.Clear();
            missingSecrets.Clear();
        }

        // Another account's instance is planned as a missing one, and nothing more is asked about it or its
        // region (names in use, key IDs, HSM material): a refusal must not tell one tenant about another.
        var target = await _instances.GetInstanceAsync(request.TargetInstanceId, cancellationToken).ConfigureAwait(false) is { } described &&
            string.Equals(described.OwnerAccount, entry.OwnerAccount, StringComparison.Ordinal) ? described : null;
        List<NameInUse> namesInUse = [];
        IReadOnlySet<string> keyIds = new HashSet<string>();
        if (target is not null && target.ReleasedAt is null)
        {
            if (records.Keys.Count > 0)
            {
                namesInUse.AddRange(await _instances.FindNamesInUseAsync(target.Info.Region, ItemType.Key, records.Keys.Keys, cancellationToken).ConfigureAwait(false));
            }

            if (records.Secrets.Count > 0)
            {
                namesInUse.AddRange(await _instances.FindNamesInUseAsync(target.Info.Region, ItemType.Secret, records.Secrets.Keys, cancellationToken).ConfigureAwait(false));
            }

            namesInUse = await WithOwnersAsync(namesInUse, target, cancellationToken).ConfigureAwait(false);

            var ids = records.Keys.Values.Select(k => k.Id).Concat(records.Secrets.Values.Select(s => s.EncryptionKeyId)).Distinct(StringComparer.Ordinal).ToList();
            if (ids.Count > 0)
            {
                keyIds = await _instances.FindKeyIdsAsync(request.TargetInstanceId, ids, cancellationToken).ConfigureAwait(false);
            }
        }

        // Requests take key names: a secret whose key the target lacks is refused naming the key, found by ID among the
        // chosen keys, else in the keys of the point the secret was read from (read only then, page by page).
        var keyNames = new Dictionary<string, string>(StringComparer.Ordinal);
        if (target is not null && source.Manifest is { } read)
        {
            var lacking = records.Secrets.Values.Select(s => s.EncryptionKeyId).Where(id => !keyIds.Contains(id)).ToHashSet(StringComparer.Ordinal);
            foreach (var key in records.Keys.Values.Where(k => lacking.Remove(k.Id)))
            {
                keyNames[key.Id] = key.Name;
            }

            if (lacking.Count > 0)
            {
                await NameKeysAsync(read, lacking, keyNames, cancellationToken).ConfigureAwait(false);
            }
        }

        // Hardware data (rule H7): with an HSM gateway, each key's material must be in the target's cluster.
        string? clusterId = null;
        IReadOnlySet<string>? withMaterial = null;
        if (source.Snapshot?.Source.Kind == InstanceKind.Hardware && target is { Info.Kind: InstanceKind.Hardware } && records.Keys.Count > 0 &&
            _catalog.HsmClusters is { } hsm && await hsm.FindClusterOfInstanceAsync(request.TargetInstanceId, cancellationToken).ConfigureAwait(false) is { } cluster)
        {
            clusterId = cluster.ClusterId;
            withMaterial = await hsm.FindPresentKeysAsync(cluster.ClusterId, records.Keys.Values.Select(k => k.Id), cancellationToken).ConfigureAwait(false);
        }

        var plan = RestorePlanner.Plan(new RestorePlanInput
        {
            OperationId = request.OperationId!,
            CallerAccount = request.CallerAccount,
            BackupOwnerAccount = entry.OwnerAccount,
            Backup = state,
            BackupDate = source.Date,
            Now = now,
            PointTakenAt = source.TakenAt,
            Source = source.Snapshot?.Source,
            Keys = [.. records.Keys.Values],
            Secrets = [.. records.Secrets.Values],
            MissingKeyNames = missingKeys,
            MissingSecretNames = missingSecrets,
            TargetInstanceId = request.TargetInstanceId,
            Target = target,
            NamesInUse = namesInUse,
            TargetKeyIds = keyIds,
            EncryptionKeyNames = keyNames,
            TargetClusterId = clusterId,
            KeyIdsWithMaterial = withMaterial,
        });
        return new PreparedRestore(plan, records, source.Snapshot is null ? null : source.Sequence);
    }

    /// <summary>Adds to <paramref name="names"/> the name of each key of the point whose ID is in <paramref name="ids"/>, reading its keys (without material) a page at a time until all are found.</summary>
    private async Task NameKeysAsync(PointManifest manifest, HashSet<string> ids, Dictionary<string, string> names, CancellationToken cancellationToken)
    {
        const int Page = 4096;
        for (long skip = 0; skip < manifest.KeyRoot.Count && ids.Count > 0; skip += Page)
        {
            foreach (var key in await _repository.ReadKeyRangeAsync(manifest, skip, Page, cancellationToken).ConfigureAwait(false))
            {
                if (ids.Remove(key.Id))
                {
                    names[key.Id] = key.Name;
                }
            }
        }
    }

    /// <summary>
    /// The names in use with the owner of each instance that holds one, for a gateway that leaves
    /// <see cref="NameInUse.OwnerAccount"/> out: the plan names an instance only to its owner's account.
    /// </summary>
    internal async Task<List<NameInUse>> WithOwnersAsync(List<NameInUse> uses, InstanceDescription target, CancellationToken cancellationToken)
    {
        var owners = new Dictionary<string, string?>(StringComparer.Ordinal) { [target.Info.Id] = target.OwnerAccount };
        var result = new List<NameInUse>(uses.Count);
        foreach (var use in uses)
        {
            if (use.OwnerAccount is not null)
            {
                result.Add(use);
                continue;
            }

            if (!owners.TryGetValue(use.InstanceId, out var owner))
            {
                owner = (await _instances.GetInstanceAsync(use.InstanceId, cancellationToken).ConfigureAwait(false))?.OwnerAccount;
                owners[use.InstanceId] = owner;
            }

            result.Add(use with { OwnerAccount = owner });
        }

        return result;
    }

    /// <summary>A plan, the records it restores (cleared when done), and the last recovery point it read.</summary>
    internal sealed record PreparedRestore(RestorePlan Plan, RestoreRecords Records, long? PointSequence);

    /// <summary>
    /// Reads the data the request chooses and keeps the chosen items in <paramref name="records"/>. Reads
    /// nothing when the date is not usable for a restore (the plan then reports why). With
    /// <paramref name="pinnedSequence"/> (a resume, by date), reads the date's points only up to that one,
    /// and nothing if it is gone: the data its operation's first run read, not what the date holds now.
    /// </summary>
    internal async Task<RestoreSource> ReadRestoreSourceAsync(BackupState state, RestoreRequest request, DateTimeOffset now, long? pinnedSequence, bool withValues, RestoreRecords records, CancellationToken cancellationToken)
    {
        InstanceSnapshot? snapshot;
        DateOnly date;
        DateTimeOffset? takenAt;
        long sequence;
        PointManifest readFrom;
        if (request.PointInTime is { } at)
        {
            if (BackupLifecycle.Check(state, BackupOperation.Restore, now) is not null)
            {
                return new RestoreSource(state.TimeZone.DateOf(at), null, null);
            }

            if (await _data.FindPointAtAsync(state.Id, state, at, cancellationToken).ConfigureAwait(false) is not { } hit)
            {
                return new RestoreSource(state.TimeZone.DateOf(at), null, null);
            }

            var (key, manifest) = hit;
            date = key.Date;
            takenAt = manifest.TakenAt;
            sequence = key.Sequence;
            if (BackupLifecycle.CheckDate(state, date, BackupOperation.Restore, now) is not null)
            {
                return new RestoreSource(date, null, takenAt);
            }

            snapshot = await ReadChosenAsync(manifest, request, withValues, cancellationToken).ConfigureAwait(false);
            readFrom = manifest;
        }
        else
        {
            date = request.BackupDate!.Value;
            if (BackupLifecycle.CheckDate(state, date, BackupOperation.Restore, now) is not null)
            {
                return new RestoreSource(date, null, null);
            }

            var day = await _repository.ListPointsAsync(state.Id, date, cancellationToken).ConfigureAwait(false);
            if (pinnedSequence is { } pin)
            {
                day = [.. day.Where(p => p.Sequence <= pin)];
                if (day.Count > 0 && day[^1].Sequence != pin)
                {
                    return new RestoreSource(date, null, null);
                }
            }

            if (day.Count == 0)
            {
                return new RestoreSource(date, null, null);
            }

            sequence = day[^1].Sequence;

            if (request.DataType is { } type)
            {
                var full = type is BackupDataType.FullyBackedUpKeys or BackupDataType.FullyBackedUpSecrets;
                var pointKey = full ? await _data.FullPointOfAsync(day, cancellationToken).ConfigureAwait(false) : day[^1];
                if (pointKey is not { } viewPoint)
                {
                    return new RestoreSource(date, null, null);
                }

                var manifest = await _catalog.ReadPointAsync(viewPoint, cancellationToken).ConfigureAwait(false);
                var (keys, secrets) = await _data.ViewRecordsAsync(day, type, withValues, records.Read, cancellationToken).ConfigureAwait(false);
                snapshot = InstanceSnapshot.Create(manifest.Source, manifest.TakenAt, keys ?? [], secrets ?? []);
                takenAt = manifest.TakenAt;
                readFrom = manifest;
            }
            else
            {
                var manifest = await _catalog.ReadPointAsync(day[^1], cancellationToken).ConfigureAwait(false);
                snapshot = await ReadChosenAsync(manifest, request, withValues, cancellationToken).ConfigureAwait(false);
                takenAt = manifest.TakenAt;
                readFrom = manifest;
            }
        }

        records.Take(snapshot, request);
        return new RestoreSource(date, snapshot, takenAt, sequence) { Manifest = readFrom };
    }

    /// <summary>The items of a point the request chooses: all of them, or those it names, found by seeking through the trees.</summary>
    private Task<InstanceSnapshot> ReadChosenAsync(PointManifest manifest, RestoreRequest request, bool withValues, CancellationToken cancellationToken) =>
        request.AllItems
            ? _repository.ReadSnapshotAsync(manifest, withValues, cancellationToken)
            : _repository.ReadItemsAsync(manifest, request.KeyNames, request.SecretNames, withValues, cancellationToken);

    /// <summary>The data read: its date, the items (null when none was read), when they were taken, and the last point read.</summary>
    internal sealed record RestoreSource(DateOnly Date, InstanceSnapshot? Snapshot, DateTimeOffset? TakenAt, long Sequence = 0)
    {
        /// <summary>The manifest of the point whose keys hold the chosen secrets' keys, when data was read.</summary>
        public PointManifest? Manifest { get; init; }
    }

    /// <summary>The chosen items, by name, with their material and ciphertexts; cleared when the restore is done.</summary>
    internal sealed class RestoreRecords
    {
        private readonly List<KeyRecord> _readKeys = [];
        private readonly List<SecretRecord> _readSecrets = [];

        public Dictionary<string, KeyRecord> Keys { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, SecretRecord> Secrets { get; } = new(StringComparer.Ordinal);

        /// <summary>Notes records read for the restore, chosen or not, so that <see cref="Clear"/> zeroes them all.</summary>
        public void Read(IEnumerable<KeyRecord> keys, IEnumerable<SecretRecord> secrets)
        {
            _readKeys.AddRange(keys);
            _readSecrets.AddRange(secrets);
        }

        public void Take(InstanceSnapshot snapshot, RestoreRequest request)
        {
            Read(snapshot.Keys, snapshot.Secrets);
            var keyNames = request.KeyNames.ToHashSet(StringComparer.Ordinal);
            var secretNames = request.SecretNames.ToHashSet(StringComparer.Ordinal);
            foreach (var key in snapshot.Keys.Where(k => request.AllItems || keyNames.Contains(k.Name)))
            {
                Keys[key.Name] = key;
            }

            foreach (var secret in snapshot.Secrets.Where(s => request.AllItems || secretNames.Contains(s.Name)))
            {
                Secrets[secret.Name] = secret;
            }
        }

        /// <summary>Zeroes the key material and secret ciphertexts read for the restore.</summary>
        public void Clear()
        {
            _readKeys.ForEach(SensitiveValues.Clear);
            _readSecrets.ForEach(SensitiveValues.Clear);
            _readKeys.Clear();
            _readSecrets.Clear();
            Keys.Clear();
            Secrets.Clear();
        }
    }
}
