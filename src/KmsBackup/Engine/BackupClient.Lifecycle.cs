namespace KmsBackup;

// Account operations (each takes the caller account first): the lifecycle of a backup (create, purchase, enable, extend, reset, renew, get, list), delegated to LifecycleOperations.
public partial class BackupClient
{
    /// <summary>Creates a default backup for <paramref name="callerAccount"/>: free, 7 viewable days, unbound until enabled (rules K1, K2, L3).</summary>
    /// <param name="callerAccount">The account that will own the backup.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual Task<BackupDetails> CreateDefaultBackupAsync(string callerAccount, CancellationToken cancellationToken = default) =>
        _lifecycle.CreateDefaultBackupAsync(callerAccount, cancellationToken);

    /// <summary>Purchases backups (rules K3, K6): <see cref="PurchaseOrder.Quantity"/> unbound backups in the order's region.</summary>
    /// <param name="callerAccount">The account that buys and will own them.</param>
    /// <param name="order">What is bought.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="BackupException">The order is invalid (viewable days, term, quantity, region).</exception>
    public virtual Task<IReadOnlyList<BackupDetails>> PurchaseBackupsAsync(string callerAccount, PurchaseOrder order, CancellationToken cancellationToken = default) =>
        _lifecycle.PurchaseBackupsAsync(callerAccount, order, cancellationToken);

    /// <summary>
    /// Binds a default or purchased backup to an enabled instance the caller owns, and runs its first full backup at once
    /// (rules K7, S1), unless another writer (a scheduler that saw the backup enabled) holds its lease and runs it.
    /// </summary>
    /// <param name="callerAccount">The owner of the backup and of the instance.</param>
    /// <param name="backupId">The backup.</param>
    /// <param name="instanceId">The instance to back up.</param>
    /// <param name="instanceKind">The kind of instance the backup is chosen for (software or hardware); the instance must be of this kind.</param>
    /// <param name="backupAlias">A custom alias, or <see langword="null"/> for the backup ID.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="BackupException">The backup or instance is missing, not the caller's, or the lifecycle refuses (rule K7 and the rules in docs/domain-rules.md: for instance an instance that is not enabled or not of <paramref name="instanceKind"/>); the refusal says why and what to do.</exception>
    public virtual Task<BackupDetails> EnableBackupAsync(
        string callerAccount, string backupId, string instanceId, InstanceKind instanceKind, string? backupAlias = null, CancellationToken cancellationToken = default) =>
        _lifecycle.EnableBackupAsync(callerAccount, backupId, instanceId, instanceKind, backupAlias, cancellationToken);

    /// <summary>Extends a purchased backup's viewable days, upward only, to at most 600 (rule L6).</summary>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">The backup.</param>
    /// <param name="viewableDays">The new viewable days.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual Task<BackupDetails> ExtendViewableDaysAsync(string callerAccount, string backupId, int viewableDays, CancellationToken cancellationToken = default) =>
        _lifecycle.ExtendViewableDaysAsync(callerAccount, backupId, viewableDays, cancellationToken);

    /// <summary>Resets a default or purchased backup: permanently deletes all its data and unbinds it, leaving it <c>Disabled</c> (rule L5).</summary>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">The backup.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual Task<BackupDetails> ResetBackupAsync(string callerAccount, string backupId, CancellationToken cancellationToken = default) =>
        _lifecycle.ResetBackupAsync(callerAccount, backupId, cancellationToken);

    /// <summary>
    /// Deletes an uploaded backup with all its data: it is <c>Released</c> from then on (final), its recovery points are
    /// deleted, and a prune deletes the packs only they used. Only uploaded backups can be deleted (the others are reset,
    /// or follow their instance); the seed gives uploads no way out, the SDK does (docs/domain-rules.md).
    /// </summary>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">The uploaded backup.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The backup as deleted (<c>Released</c>).</returns>
    /// <exception cref="BackupException">The backup is missing or not the caller's (<see cref="BackupErrorCode.NotFound"/>); it is not an
    /// uploaded backup, or already deleted (the refusal says what to do instead); or its lease is held by another operation (<see cref="BackupErrorCode.LeaseHeld"/>).</exception>
    public virtual Task<BackupDetails> DeleteBackupAsync(string callerAccount, string backupId, CancellationToken cancellationToken = default) =>
        _lifecycle.DeleteBackupAsync(callerAccount, backupId, cancellationToken);

    /// <summary>Renews a purchased backup: extends an active one, reactivates an expired one before release (rules L4, L7).</summary>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">The backup.</param>
    /// <param name="term">The renewal duration.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual Task<BackupDetails> RenewBackupAsync(string callerAccount, string backupId, PurchaseTerm term, CancellationToken cancellationToken = default) =>
        _lifecycle.RenewBackupAsync(callerAccount, backupId, term, cancellationToken);

    /// <summary>Gets a backup's details, with its queryable range today (rule W2).</summary>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">The backup.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual Task<BackupDetails> GetBackupAsync(string callerAccount, string backupId, CancellationToken cancellationToken = default) =>
        _lifecycle.GetBackupAsync(callerAccount, backupId, cancellationToken);

    /// <summary>
    /// Lists the caller's backups, released ones included, by ID. A backup whose latest catalog entry is
    /// damaged is listed too, with the state of its previous entry and <see cref="BackupDetails.Damage"/> set.
    /// Reads only: nothing in the store changes, whatever the clock says.
    /// </summary>
    /// <param name="callerAccount">The owner.</param>
    /// <param name="cancellationToken">Cancels the listing.</param>
    public virtual IAsyncEnumerable<BackupDetails> ListBackupsAsync(string callerAccount, CancellationToken cancellationToken = default) =>
        _lifecycle.ListBackupsAsync(callerAccount, cancellationToken);
}
