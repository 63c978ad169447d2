using KmsBackup.Diagnostics;

namespace KmsBackup;

// Operator operations (no caller account): runs, health, key rotation and rekey, prune, verify, the store clock: delegated to BackupRunner, RunHealth and MaintenanceOperations.
public partial class BackupClient
{
    /// <summary>
    /// Runs every backup whose next run is due now (rules S1–S5): each under its lease, so that several
    /// hosts can share the work. A backup whose lease another writer holds is skipped, and so is a backup
    /// of an instance this client's <see cref="InstanceGateway"/> does not serve (another host's service
    /// sharing the store). A backup whose run fails does not stop the others: every due backup is tried,
    /// and the report lists the runs that committed and the backups that failed
    /// (<see cref="BackupRunReport.ThrowIfAnyFailed"/> turns failures into an exception).
    /// </summary>
    /// <param name="cancellationToken">Cancels the runs; a cancelled run commits nothing.</param>
    /// <returns>The runs that committed a recovery point, and the backups whose runs failed.</returns>
    /// <exception cref="BackupException">The pass could not start: the store's clock or the catalog could not be read, or this host's clock is behind the store's.</exception>
    public virtual Task<BackupRunReport> RunDueBackupsAsync(CancellationToken cancellationToken = default) =>
        _runner.RunDueBackupsAsync(cancellationToken);

    /// <summary>Runs the backup's next run if it is due now; otherwise does nothing.</summary>
    /// <param name="backupId">The backup.</param>
    /// <param name="cancellationToken">Cancels the run; a cancelled run commits nothing.</param>
    /// <returns>What the run did, or <see langword="null"/> when nothing was due.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.LeaseHeld"/>: another writer runs this backup now (the error names it).</exception>
    public virtual Task<BackupRunResult?> RunIfDueAsync(string backupId, CancellationToken cancellationToken = default) =>
        _runner.RunIfDueAsync(backupId, cancellationToken);

    /// <summary>
    /// Reports the health of every backup this client runs: each backup bound to an instance that this
    /// client's <see cref="InstanceGateway"/> serves, and any backup whose run this client saw fail.
    /// A backup whose catalog entry is damaged is reported with that damage as its last error. Reads the
    /// catalog and the latest points; changes nothing.
    /// </summary>
    /// <param name="cancellationToken">Cancels the report.</param>
    /// <returns>One entry per backup, in catalog order.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    public virtual Task<IReadOnlyList<BackupHealth>> GetHealthAsync(CancellationToken cancellationToken = default) =>
        _health.GetHealthAsync(cancellationToken);

    /// <summary>
    /// Rotates the repository key: adds a key generation, a new random key wrapped by the repository's key
    /// provider, under which everything written from now on is sealed (on this host at once, on other hosts from
    /// the first object of the new generation they read, or their next open). Data written before stays readable
    /// under its own generation; <see cref="RekeyAsync"/> re-encrypts it. No data is re-encrypted by this call.
    /// See docs/repository-format.md, "Key rotation and rekey".
    /// </summary>
    /// <param name="cancellationToken">Cancels the rotation; a generation is either stored whole or not at all.</param>
    /// <returns>The generation now current.</returns>
    /// <exception cref="BackupException">The key provider or the store failed; nothing changed.</exception>
    public virtual Task<RepositoryKeyRotation> RotateRepositoryKeyAsync(CancellationToken cancellationToken = default) =>
        BackupTelemetry.TraceAsync(KmsBackupDiagnostics.RotateKeyActivity, _ => _maintenance.RotateRepositoryKeyAsync(cancellationToken));

    /// <summary>
    /// Re-encrypts data sealed under older key generations (after <see cref="RotateRepositoryKeyAsync"/>): the
    /// objects of each old pack are copied into new packs under the current generation, and the old pack is marked
    /// for deletion; <see cref="PruneAsync"/>, at least <see cref="BackupClientOptions.PruneGracePeriod"/> later,
    /// deletes each old pack whose objects all have such a copy. Runs beside backups, views and restores; an
    /// interrupted rekey leaves only copies, and the next call goes on. Call it repeatedly with a budget to spread
    /// the work (a background job), until <see cref="RekeySummary.IsComplete"/>.
    /// </summary>
    /// <remarks>
    /// Recovery point manifests, catalog entries and other small records keep the generation they were written
    /// under until they are replaced or deleted (retention deletes old points); they hold tree roots and lifecycle
    /// state, never key material or secret values. <see cref="RepositoryVerification.PacksByKeyGeneration"/> shows
    /// the progress.
    /// </remarks>
    /// <param name="maximumPacks">How many old packs to rewrite in this call at most; <see langword="null"/> for all.</param>
    /// <param name="cancellationToken">Cancels the rekey; what was copied is kept, and the next call goes on.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maximumPacks"/> is less than 1.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.ClockBehindStore"/>: this host's clock is behind the store's time.</exception>
    /// <exception cref="BackupIntegrityException">An old pack's object does not authenticate: nothing of that pack was marked; run verify.</exception>
    public virtual Task<RekeySummary> RekeyAsync(int? maximumPacks = null, CancellationToken cancellationToken = default) =>
        BackupTelemetry.TraceAsync(KmsBackupDiagnostics.RekeyActivity, _ => _maintenance.RekeyAsync(maximumPacks, cancellationToken));

    /// <summary>
    /// A background job's step of <see cref="RekeyAsync"/>: rewrites up to <paramref name="maximumPacks"/> old packs when
    /// this client knows a key generation newer than the first and has not found the work done for it within the last
    /// hour (a host that had not yet learned of a rotation may still have written a few packs under an older one).
    /// Cheap when there is nothing to do: it reads nothing from the store then. The hosted scheduler calls it at every
    /// tick (<c>Scheduler.RekeyPacksPerTick</c>).
    /// </summary>
    /// <param name="maximumPacks">How many old packs to rewrite at most.</param>
    /// <param name="cancellationToken">Cancels the rekey; what was copied is kept.</param>
    /// <returns>What the rekey did, or <see langword="null"/> when it had nothing to do and read nothing.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maximumPacks"/> is less than 1.</exception>
    /// <exception cref="BackupException">As <see cref="RekeyAsync"/>.</exception>
    public virtual Task<RekeySummary?> RekeyInBackgroundAsync(int maximumPacks, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maximumPacks, 1);
        return _maintenance.RekeyInBackgroundAsync(maximumPacks, RekeyAsync, cancellationToken);
    }

    /// <summary>
    /// Deletes what no backup keeps (rule W5): recovery points of dates past retention, and of released
    /// or reset backups; then, in two phases, the packs no remaining point refers to and the recovery points
    /// an interrupted upload left without a catalog entry (marked by one prune, deleted by a later one at least
    /// <see cref="BackupClientOptions.PruneGracePeriod"/> after). Each backup's points are
    /// deleted under its lease, decided on its state read again under the lease. Deletes nothing while this
    /// host's clock is too far ahead of the store's (<see cref="PruneSummary.DeletionsHeld"/>).
    /// </summary>
    /// <param name="cancellationToken">Cancels the prune; what is deleted stays deleted, nothing referenced is.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.ClockBehindStore"/>: this host's clock is behind the store's time.
    /// <see cref="BackupErrorCode.StoreLinkRefused"/>: a file-system store's folder holds a link below its root; the prune stops
    /// there and deletes nothing through it (remove the link, then prune again).</exception>
    public virtual Task<PruneSummary> PruneAsync(CancellationToken cancellationToken = default) =>
        _maintenance.PruneAsync(cancellationToken);

    /// <summary>
    /// Checks the whole store: every pack's hash, every object's MAC, every recovery point and reference,
    /// every catalog entry and prune marker. Changes nothing.
    /// </summary>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreLinkRefused"/>: a file-system store's folder holds a
    /// link below its root, which the store never follows (the error names it: remove it, then verify again).</exception>
    public virtual Task<RepositoryVerification> VerifyAsync(CancellationToken cancellationToken = default) =>
        _maintenance.VerifyAsync(cancellationToken);

    /// <summary>
    /// Compares this host's clock with the latest time any writer of the store has seen, and says whether
    /// deletions are held because this clock is too far ahead. Changes nothing.
    /// </summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual Task<StoreClockStatus> GetStoreClockAsync(CancellationToken cancellationToken = default) =>
        _maintenance.GetStoreClockAsync(cancellationToken);

    /// <summary>
    /// An operator's confirmation that this host's clock is right: records it as the store's time and
    /// discards any later time a wrong clock recorded, which ends a hold of deletions (and lets hosts whose
    /// clocks a wrong time had put "behind" commit again). Deletions that were held happen at the next
    /// scheduled run or prune.
    /// </summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual Task<StoreClockStatus> ConfirmClockAsync(CancellationToken cancellationToken = default) =>
        _maintenance.ConfirmClockAsync(cancellationToken);
}
