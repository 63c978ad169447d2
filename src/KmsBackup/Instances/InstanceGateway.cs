namespace KmsBackup;

/// <summary>
/// A key management service as the engine sees it: its instances, a snapshot of each, optionally a
/// change feed (so that a 5-minute incremental costs in proportion to what changed), and, as a
/// restore target, quotas, names in use in a region, and creating and deleting keys and secrets.
/// </summary>
/// <remarks>Implementations are thread-safe. Every method takes a <see cref="CancellationToken"/> last.</remarks>
public abstract class InstanceGateway
{
    /// <summary>For subclasses.</summary>
    protected InstanceGateway()
    {
    }

    /// <summary>Describes the instance <paramref name="instanceId"/>, or returns <see langword="null"/> if there is none.</summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public abstract Task<InstanceDescription?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken = default);

    /// <summary>Lists the instances, of one region or of all.</summary>
    /// <param name="region">A region, or <see langword="null"/> for all.</param>
    /// <param name="cancellationToken">Cancels the listing.</param>
    public abstract IAsyncEnumerable<InstanceDescription> ListInstancesAsync(string? region = null, CancellationToken cancellationToken = default);

    /// <summary>Reads every key and secret of the instance, consistently, with a cursor for <see cref="ReadChangesAsync"/> when the gateway has a change feed.</summary>
    /// <remarks>
    /// Return copies: the caller owns the records, and the engine zeroes their key material and secret ciphertexts
    /// (<see cref="SensitiveBytes.Clear"/>) once its run is done, so that no copy outlives it.
    /// </remarks>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such instance.</exception>
    public abstract Task<SnapshotRead> ReadSnapshotAsync(string instanceId, CancellationToken cancellationToken = default);

    /// <summary>Whether <see cref="ReadChangesAsync"/> is supported.</summary>
    public virtual bool SupportsChangeFeed => false;

    /// <summary>
    /// Reads what changed in the instance since <paramref name="cursor"/>: the keys and secrets added or
    /// changed (whole) and the names deleted. When the cursor is too old to serve, returns
    /// <see cref="InstanceChanges.CursorExpired"/> set, and the engine reads a whole snapshot instead.
    /// Return copies, as <see cref="ReadSnapshotAsync"/> does: the engine zeroes them once its run is done.
    /// </summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="cursor">A cursor from an earlier read.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <exception cref="NotSupportedException">The gateway has no change feed.</exception>
    public virtual Task<InstanceChanges> ReadChangesAsync(string instanceId, string cursor, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException($"{GetType().Name} has no change feed; read a snapshot instead.");

    /// <summary>Finds which of <paramref name="names"/> are in use by a key or secret (of <paramref name="type"/>) in any instance of <paramref name="region"/>.</summary>
    /// <param name="region">The region.</param>
    /// <param name="type">Key or secret.</param>
    /// <param name="names">The names to look for.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>
    /// Each name in use, with the instance that uses it, and <see cref="NameInUse.RestoredByOperation"/> set
    /// when a restore operation created that item (so that a rerun of the operation is idempotent). Set
    /// <see cref="NameInUse.OwnerAccount"/> to the instance's owner: a restore plan names an instance only to its
    /// owner's account, and when it is left <see langword="null"/> the engine describes the instance to find out.
    /// </returns>
    public abstract Task<IReadOnlyList<NameInUse>> FindNamesInUseAsync(string region, ItemType type, IReadOnlyCollection<string> names, CancellationToken cancellationToken = default);

    /// <summary>
    /// Finds which of <paramref name="keyIds"/> the instance holds a key with. A restore plan uses it to
    /// check that each secret's encrypting key is in the target (rule R4) and that a key to restore does
    /// not clash with a key of the same ID there.
    /// </summary>
    /// <param name="instanceId">The instance.</param>
    /// <param name="keyIds">The key IDs to look for.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The IDs found, a subset of <paramref name="keyIds"/>.</returns>
    /// <remarks>The default reads a whole snapshot (and clears its key material); gateways should override it with a direct lookup.</remarks>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such instance.</exception>
    public virtual async Task<IReadOnlySet<string>> FindKeyIdsAsync(string instanceId, IReadOnlyCollection<string> keyIds, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(keyIds);
        var read = await ReadSnapshotAsync(instanceId, cancellationToken).ConfigureAwait(false);
        var wanted = new HashSet<string>(keyIds, StringComparer.Ordinal);
        var found = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in read.Snapshot.Keys)
        {
            if (wanted.Contains(key.Id))
            {
                found.Add(key.Id);
            }
        }

        // Only IDs were wanted: the material and the secrets' ciphertexts read along with them are zeroed now.
        SensitiveValues.Clear(read.Snapshot);
        return found;
    }

    /// <summary>
    /// Creates <paramref name="key"/> (its ID, name, versions, material, metadata and creator) in the
    /// instance, on behalf of restore operation <paramref name="operationId"/>. Creating it again for
    /// the same operation changes nothing and returns <see langword="false"/>.
    /// </summary>
    /// <param name="instanceId">The target instance.</param>
    /// <param name="key">The key to create.</param>
    /// <param name="operationId">The restore operation, so that a rerun is idempotent and a rollback deletes only what it wrote.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns><see langword="true"/> if created now; <see langword="false"/> if this operation had created it already.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NameConflict"/>, <see cref="BackupErrorCode.InsufficientQuota"/> or <see cref="BackupErrorCode.NotFound"/>.</exception>
    public abstract Task<bool> CreateKeyAsync(string instanceId, KeyRecord key, string operationId, CancellationToken cancellationToken = default);

    /// <summary>Creates <paramref name="secret"/> in the instance on behalf of restore operation <paramref name="operationId"/>; see <see cref="CreateKeyAsync"/>.</summary>
    /// <param name="instanceId">The target instance.</param>
    /// <param name="secret">The secret to create; its encrypting key must exist in the instance.</param>
    /// <param name="operationId">The restore operation.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns><see langword="true"/> if created now; <see langword="false"/> if this operation had created it already.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NameConflict"/>, <see cref="BackupErrorCode.InsufficientQuota"/>, <see cref="BackupErrorCode.EncryptionKeyMissing"/> or <see cref="BackupErrorCode.NotFound"/>.</exception>
    public abstract Task<bool> CreateSecretAsync(string instanceId, SecretRecord secret, string operationId, CancellationToken cancellationToken = default);

    /// <summary>Deletes an item that restore operation <paramref name="operationId"/> created (a rollback). Items it did not create are left alone.</summary>
    /// <param name="instanceId">The target instance.</param>
    /// <param name="type">Key or secret.</param>
    /// <param name="name">The item's name.</param>
    /// <param name="operationId">The restore operation.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>Whether an item was deleted.</returns>
    public abstract Task<bool> DeleteRestoredItemAsync(string instanceId, ItemType type, string name, string operationId, CancellationToken cancellationToken = default);
}

/// <summary>A snapshot and, when the gateway has a change feed, the cursor that follows it.</summary>
/// <param name="Snapshot">The instance's keys and secrets.</param>
/// <param name="Cursor">Where the change feed continues from; <see langword="null"/> without a change feed.</param>
public sealed record SnapshotRead(InstanceSnapshot Snapshot, string? Cursor);

/// <summary>What changed in an instance since a cursor.</summary>
public sealed record InstanceChanges
{
    /// <summary>When the changes were read.</summary>
    public required DateTimeOffset ReadAt { get; init; }

    /// <summary>Where the feed continues from.</summary>
    public required string Cursor { get; init; }

    /// <summary>Whether the cursor was too old to serve; the other members are then empty and a snapshot must be read.</summary>
    public bool CursorExpired { get; init; }

    /// <summary>Keys added or changed, whole.</summary>
    public IReadOnlyList<KeyRecord> UpsertedKeys { get; init; } = [];

    /// <summary>Secrets added or changed, whole.</summary>
    public IReadOnlyList<SecretRecord> UpsertedSecrets { get; init; } = [];

    /// <summary>Names of keys deleted.</summary>
    public IReadOnlyList<string> DeletedKeys { get; init; } = [];

    /// <summary>Names of secrets deleted.</summary>
    public IReadOnlyList<string> DeletedSecrets { get; init; } = [];
}
