namespace KmsBackup.DevelopmentKms;

// The embedded service as an InstanceGateway: reads, the change feed, and restore writes.
public sealed partial class EmbeddedKeyManagementService
{
    // ---- InstanceGateway -------------------------------------------------------------------

    /// <inheritdoc />
    public override Task<InstanceDescription?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        return Run(() => _instances.TryGetValue(instanceId, out var state) ? state.Describe() : null, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>The instances as they are when the call is made, ordered by ID; released instances included.</remarks>
    public override IAsyncEnumerable<InstanceDescription> ListInstancesAsync(string? region = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        List<InstanceDescription> instances;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            instances = [.. _instances.Values.Where(s => region is null || s.Region == region).Select(s => s.Describe())];
        }

        return instances.ToAsyncEnumerable();
    }

    /// <inheritdoc />
    /// <remarks>Keys and secrets are copies: the caller may clear their material and ciphertexts. A released or disabled instance can be read too.</remarks>
    public override Task<SnapshotRead> ReadSnapshotAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        return Run(() =>
        {
            var state = Get(instanceId);
            var snapshot = InstanceSnapshot.Create(
                new SnapshotSource(state.Id, state.Kind, state.Region, state.OwnerAccount),
                _time.GetUtcNow(),
                state.Keys.Values.Select(k => CopyOf(k.Record)),
                state.Secrets.Values.Select(s => CopyOf(s.Record)));
            return new SnapshotRead(snapshot, state.Cursor);
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Returns each key and secret changed since the cursor once, as it is now (a copy), and the names
    /// of those that existed at the cursor and are gone. An expired result returns the given cursor
    /// unchanged; read a snapshot for a fresh one.
    /// </remarks>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such instance.</exception>
    public override Task<InstanceChanges> ReadChangesAsync(string instanceId, string cursor, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(cursor);
        return Run(() =>
        {
            var state = Get(instanceId);
            var now = _time.GetUtcNow();
            var changed = TryParseCursor(state, cursor, out var sequence) ? state.ChangedSince(sequence) : null;
            if (changed is null)
            {
                return new InstanceChanges { ReadAt = now, Cursor = cursor, CursorExpired = true };
            }

            List<KeyRecord> keys = [];
            List<SecretRecord> secrets = [];
            List<string> deletedKeys = [];
            List<string> deletedSecrets = [];
            foreach (var (type, name, existedAtCursor) in changed)
            {
                if (type == ItemType.Key)
                {
                    if (state.Keys.TryGetValue(name, out var key))
                    {
                        keys.Add(CopyOf(key.Record));
                    }
                    else if (existedAtCursor)
                    {
                        deletedKeys.Add(name);
                    }
                }
                else if (state.Secrets.TryGetValue(name, out var secret))
                {
                    secrets.Add(CopyOf(secret.Record));
                }
                else if (existedAtCursor)
                {
                    deletedSecrets.Add(name);
                }
            }

            return new InstanceChanges
            {
                ReadAt = now,
                Cursor = state.Cursor,
                UpsertedKeys = [.. keys.OrderBy(k => k.Name, ItemNameComparer.Instance)],
                UpsertedSecrets = [.. secrets.OrderBy(s => s.Name, ItemNameComparer.Instance)],
                DeletedKeys = [.. deletedKeys.Order(ItemNameComparer.Instance)],
                DeletedSecrets = [.. deletedSecrets.Order(ItemNameComparer.Instance)],
            };
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>Released instances hold no names. The result is ordered by name, then instance ID.</remarks>
    public override Task<IReadOnlyList<NameInUse>> FindNamesInUseAsync(string region, ItemType type, IReadOnlyCollection<string> names, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(region);
        ArgumentNullException.ThrowIfNull(names);
        return Run<IReadOnlyList<NameInUse>>(() =>
        {
            var wanted = names.Distinct(StringComparer.Ordinal).ToList();
            return [.. _instances.Values
                .Where(s => s.Region == region && !s.IsReleased)
                .SelectMany(s => wanted.Where(n => s.Holds(type, n)).Select(n => new NameInUse(type, n, s.Id) { RestoredByOperation = s.RestoredBy(type, n), OwnerAccount = s.OwnerAccount }))
                .OrderBy(n => n.Name, ItemNameComparer.Instance)
                .ThenBy(n => n.InstanceId, StringComparer.Ordinal)];
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>Looks the IDs up directly; released instances hold no keys.</remarks>
    public override Task<IReadOnlySet<string>> FindKeyIdsAsync(string instanceId, IReadOnlyCollection<string> keyIds, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(keyIds);
        return Run<IReadOnlySet<string>>(() =>
        {
            var state = Get(instanceId);
            return state.IsReleased ? new HashSet<string>() : keyIds.Where(state.KeyNamesById.ContainsKey).ToHashSet(StringComparer.Ordinal);
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// The key is kept exactly (ID, name, spec, creator, times, description, versions and material),
    /// as a copy. A software instance takes only keys with material in every version, a hardware one
    /// only keys without (<see cref="BackupErrorCode.InstanceKindMismatch"/>). The target must be enabled
    /// (<see cref="BackupErrorCode.InstanceNotEnabled"/>), and no key of the instance may have the same ID.
    /// </remarks>
    public override Task<bool> CreateKeyAsync(string instanceId, KeyRecord key, string operationId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentException.ThrowIfNullOrWhiteSpace(operationId);
        return Run(() =>
        {
            var state = Get(instanceId);
            if (state.Keys.TryGetValue(key.Name, out var existing) && existing.RestoredBy == operationId)
            {
                return false;
            }

            RequireUsable(state);
            RequireNameFree(state, ItemType.Key, key.Name);
            if (state.KeyNamesById.TryGetValue(key.Id, out var sameId))
            {
                throw EmbeddedRefusals.KeyIdConflict(key.Id, key.Name, sameId, state.Id);
            }

            var hardware = state.Kind == InstanceKind.Hardware;
            if (hardware ? key.HasMaterial : key.Versions.Any(v => v.Material is null))
            {
                throw EmbeddedRefusals.KindMismatch(key, state);
            }

            RequireQuota(state, ItemType.Key, key.Name);
            Commit(state.WithKey(new StoredKey(CopyOf(key), operationId), _logCapacity));
            return true;
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// The secret is kept exactly (name, key ID, creator, times, description, versions and their
    /// ciphertexts), as a copy; its ciphertexts are not checked, only that the instance holds a key with
    /// the secret's <see cref="SecretRecord.EncryptionKeyId"/>. The target must be enabled.
    /// </remarks>
    public override Task<bool> CreateSecretAsync(string instanceId, SecretRecord secret, string operationId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(secret);
        ArgumentException.ThrowIfNullOrWhiteSpace(operationId);
        return Run(() =>
        {
            var state = Get(instanceId);
            if (state.Secrets.TryGetValue(secret.Name, out var existing) && existing.RestoredBy == operationId)
            {
                return false;
            }

            RequireUsable(state);
            RequireNameFree(state, ItemType.Secret, secret.Name);
            if (!state.KeyNamesById.ContainsKey(secret.EncryptionKeyId))
            {
                throw EmbeddedRefusals.EncryptionKeyMissing(secret.Name, secret.EncryptionKeyId, state.Id);
            }

            RequireQuota(state, ItemType.Secret, secret.Name);
            Commit(state.WithSecret(new StoredSecret(CopyOf(secret), operationId), _logCapacity));
            return true;
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Deletes the item only if <paramref name="operationId"/> created it and nothing changed it since
    /// (a rotation, new value or description change makes it the user's). Works on a disabled instance too.
    /// </remarks>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such instance;
    /// <see cref="BackupErrorCode.StoreUnavailable"/>: the deletion could not be written (nothing changed).</exception>
    public override Task<bool> DeleteRestoredItemAsync(string instanceId, ItemType type, string name, string operationId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(operationId);
        return Run(() =>
        {
            var state = Get(instanceId);
            if (type == ItemType.Key)
            {
                if (!state.Keys.TryGetValue(name, out var key) || key.RestoredBy != operationId)
                {
                    return false;
                }

                Commit(state.WithoutKey(name, _logCapacity));
                SensitiveValues.Clear(key.Record);
                return true;
            }

            if (!state.Secrets.TryGetValue(name, out var secret) || secret.RestoredBy != operationId)
            {
                return false;
            }

            Commit(state.WithoutSecret(name, _logCapacity));
            return true;
        }, cancellationToken);
    }

    /// <summary>Closes the service: releases the folder and zeroes the master key and the key material held in memory.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            foreach (var state in _instances.Values)
            {
                foreach (var key in state.Keys.Values)
                {
                    SensitiveValues.Clear(key.Record);
                }
            }

            _instances = _instances.Clear();
            _files.Dispose();
        }
    }

    /// <summary>The service in one line, without any key or secret.</summary>
    public override string ToString() => $"embedded key management service ({_instances.Count} instances)";
}
