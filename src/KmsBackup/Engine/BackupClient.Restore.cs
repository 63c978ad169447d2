using KmsBackup.Diagnostics;

namespace KmsBackup;

// Account operations (each takes the caller account first): restores and unfinished restore operations, delegated to RestoreExecutor and UnfinishedRestores.
public partial class BackupClient
{
    /// <summary>
    /// Plans a restore without changing anything (rule R6): reads the chosen data and what the target
    /// and its region look like now, and returns every item with its outcome and every violated
    /// precondition (rules R1–R5, R8) with its error code and remedy.
    /// </summary>
    /// <param name="request">What to restore, from which data, into which instance.</param>
    /// <param name="cancellationToken">Cancels the planning.</param>
    /// <returns>The plan; restore with <see cref="RestoreAsync"/> and the plan's operation ID.</returns>
    /// <exception cref="ArgumentException">The request is malformed (see <see cref="RestoreRequest.Validate"/>).</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such backup; <see cref="BackupErrorCode.AccessDenied"/>: the caller does not own the backup — refused before any backup data is read.</exception>
    /// <remarks>
    /// A target instance that does not exist and one of another account are refused alike, with one
    /// <see cref="BackupErrorCode.NotFound"/> refusal whose item, message and remedy are the same in both cases; nothing
    /// else is looked up about another account's instance or reported about it.
    /// </remarks>
    public virtual Task<RestorePlan> PlanRestoreAsync(RestoreRequest request, CancellationToken cancellationToken = default) =>
        BackupTelemetry.TraceAsync(
            KmsBackupDiagnostics.RestorePlanActivity, _ => _executor.PlanRestoreAsync(request, cancellationToken), request?.BackupId, targetInstanceId: request?.TargetInstanceId);

    /// <summary>
    /// Restores keys and secrets into the target instance, all or nothing (rules R7–R9): plans first and
    /// refuses with every violation if the plan has any; journals the operation in the backup store; creates
    /// keys before the secrets they encrypt, each with its name, ID, versions, metadata and creator; if an
    /// item fails or the call is cancelled, removes what this run created, so that the target is as it was.
    /// Rerunning with the same <see cref="RestoreRequest.OperationId"/> restores nothing twice.
    /// </summary>
    /// <remarks>
    /// The operation ID is known before anything is written into the target: the one the request names
    /// (recommended: take the plan's, or choose one, and keep it), and in any case the first progress report
    /// (<see cref="RestorePhase.Started"/>) and <see cref="RestoreException.OperationId"/> carry it. If the
    /// process dies between its writes and its rollback, the restore journal keeps the operation unfinished:
    /// after a restart, <see cref="ListUnfinishedRestoresAsync"/> finds it, and <see cref="ResumeRestoreAsync"/>
    /// or <see cref="RollBackRestoreAsync"/> finishes or undoes it by its ID. One process at a time runs an
    /// operation: it holds the store lease <c>restores/&lt;operationId&gt;</c> while it does.
    /// </remarks>
    /// <param name="request">What to restore, from which data, into which instance.</param>
    /// <param name="progress">Receives the operation ID before the first write, then progress after each item; <see langword="null"/> for none.</param>
    /// <param name="cancellationToken">Cancels the restore; what it created is removed before the cancellation is thrown.</param>
    /// <returns>What was restored.</returns>
    /// <exception cref="ArgumentException">The request is malformed.</exception>
    /// <exception cref="RestoreException">The plan has violations (nothing was written; <see cref="RestoreException.Plan"/> lists them), or an item failed (the batch was rolled back; <see cref="RestoreException.LeftInTarget"/> lists anything that could not be removed).</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/> or <see cref="BackupErrorCode.AccessDenied"/>, before any backup data is read (also for an operation ID another account's restore uses);
    /// <see cref="BackupErrorCode.RestoreOperationMismatch"/>: the operation ID names a restore of another backup or into another instance;
    /// <see cref="BackupErrorCode.LeaseHeld"/>: another process runs the operation (or died running it less than a lease ago).</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the target is as it was.</exception>
    public virtual Task<RestoreResult> RestoreAsync(RestoreRequest request, IProgress<RestoreProgress>? progress = null, CancellationToken cancellationToken = default) =>
        BackupTelemetry.TraceAsync(
            KmsBackupDiagnostics.RestoreActivity, activity => _executor.RestoreAsync(request, progress, activity, cancellationToken), request?.BackupId, targetInstanceId: request?.TargetInstanceId);

    /// <summary>
    /// Proves a backup recoverable without touching production: restores a random sample of one recovery point's keys
    /// and secrets (with the keys that encrypt the sampled secrets) into an empty scratch instance through the ordinary
    /// restore path, compares what the instance then holds with the backup (metadata, every version, key material and
    /// secret ciphertexts), and deletes the restored items again. Open the client the way a disaster would leave you,
    /// with only the escrowed key provider or on the copy in a second store, and the drill proves that way works.
    /// </summary>
    /// <remarks>
    /// The drill finds each sampled item by seeking through the point's trees. The keys that encrypt sampled secrets are
    /// found by ID in the key tree's metadata, a page at a time, which at worst reads the whole key tree (without
    /// values). <see cref="RecoveryDrillRequest.VerifyRepository"/> adds a verification of every object.
    /// It writes nothing to the backup: only the restore operation's journal records, as any restore does.
    /// </remarks>
    /// <param name="request">The backup, the scratch instance and the sample.</param>
    /// <param name="cancellationToken">Cancels the drill; restored items are deleted from the scratch instance all the same.</param>
    /// <returns>Every sampled item with its outcome; <see cref="RecoveryDrillReport.Passed"/> says whether the drill proves the backup recoverable.</returns>
    /// <exception cref="ArgumentException">The request is malformed (see <see cref="RecoveryDrillRequest.Validate"/>).</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/> or <see cref="BackupErrorCode.AccessDenied"/>: no such backup, or not the caller's;
    /// <see cref="BackupErrorCode.DrillTargetNotScratch"/>: the scratch instance is the backup's own or holds items;
    /// <see cref="BackupErrorCode.NotFound"/>: no recovery point at or before the instant.</exception>
    /// <exception cref="RestoreException">The restore plan refused the sample (for instance, its names are in use in the scratch instance's region); nothing was written.</exception>
    public virtual Task<RecoveryDrillReport> DrillAsync(RecoveryDrillRequest request, CancellationToken cancellationToken = default) =>
        BackupTelemetry.TraceAsync(
            KmsBackupDiagnostics.DrillActivity, _ => _drills.DrillAsync(request, cancellationToken), request?.BackupId, targetInstanceId: request?.ScratchInstanceId);

    /// <summary>
    /// Lists the restore operations of <paramref name="callerAccount"/> that began writing and have not
    /// finished: most often restores whose process died between their writes and their rollback (a restore
    /// still running in another process is listed too). Each shows its planned items and which of them the
    /// target holds now. Changes nothing.
    /// </summary>
    /// <param name="callerAccount">The account asking; only its own restores, of backups it owns, are listed.</param>
    /// <param name="cancellationToken">Cancels the listing.</param>
    /// <returns>The unfinished operations, oldest run first.</returns>
    /// <exception cref="ArgumentException"><paramref name="callerAccount"/> is empty.</exception>
    public virtual IAsyncEnumerable<RestoreOperation> ListUnfinishedRestoresAsync(string callerAccount, CancellationToken cancellationToken = default) =>
        _unfinished.ListUnfinishedRestoresAsync(callerAccount, cancellationToken);

    /// <summary>
    /// Resumes an unfinished restore operation by its ID, after a restart for instance: restores the rest of
    /// its planned items from the same data (the recovery point its first run read), skipping every item the
    /// operation created already, all or nothing as <see cref="RestoreAsync"/> is.
    /// </summary>
    /// <param name="callerAccount">The account asking: the one that ran the restore, the owner of its backup.</param>
    /// <param name="operationId">The operation's ID.</param>
    /// <param name="progress">Receives progress as <see cref="RestoreAsync"/> reports it; <see langword="null"/> for none.</param>
    /// <param name="cancellationToken">Cancels the resume; what it created is removed, and the operation stays unfinished.</param>
    /// <returns>What was restored: <see cref="RestoreResult.Restored"/> by this resume, <see cref="RestoreResult.AlreadyRestored"/> by earlier runs.</returns>
    /// <exception cref="ArgumentException"><paramref name="callerAccount"/> is empty or <paramref name="operationId"/> is malformed.</exception>
    /// <exception cref="RestoreException">The plan has violations now (the data is gone, a name is taken, quota): nothing was written and the operation stays unfinished (roll it back, or fix the cause and resume); or an item failed.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such operation, or its backup is gone;
    /// <see cref="BackupErrorCode.AccessDenied"/>: another account's operation or backup;
    /// <see cref="BackupErrorCode.RestoreOperationFinished"/>: it completed or was rolled back already;
    /// <see cref="BackupErrorCode.LeaseHeld"/>: another process runs it, or died running it less than a lease ago (retry once the lease expires).</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public virtual Task<RestoreResult> ResumeRestoreAsync(string callerAccount, string operationId, IProgress<RestoreProgress>? progress = null, CancellationToken cancellationToken = default) =>
        BackupTelemetry.TraceAsync(KmsBackupDiagnostics.RestoreActivity, activity => _unfinished.ResumeRestoreAsync(callerAccount, operationId, progress, activity, cancellationToken));

    /// <summary>
    /// Rolls an unfinished restore operation back by its ID, after a restart for instance: removes from the
    /// target exactly the items that operation created (secrets before their keys; an item changed since it
    /// was restored belongs to its user now and is left), and records the operation as rolled back.
    /// </summary>
    /// <param name="callerAccount">The account asking: the one that ran the restore, the owner of its backup.</param>
    /// <param name="operationId">The operation's ID.</param>
    /// <param name="progress">Receives <see cref="RestorePhase.RollingBack"/> progress after each item; <see langword="null"/> for none.</param>
    /// <param name="cancellationToken">Cancels the rollback between items; the operation then stays unfinished, and rolling it back again finishes it.</param>
    /// <returns>What was removed, and which planned items the target did not hold as the operation created them.</returns>
    /// <exception cref="ArgumentException"><paramref name="callerAccount"/> is empty or <paramref name="operationId"/> is malformed.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such operation;
    /// <see cref="BackupErrorCode.AccessDenied"/>: another account's operation or backup;
    /// <see cref="BackupErrorCode.RestoreOperationFinished"/>: it completed or was rolled back already;
    /// <see cref="BackupErrorCode.RestoreFailed"/>: the target failed while removing an item (the operation stays unfinished; roll it back again);
    /// <see cref="BackupErrorCode.LeaseHeld"/>: another process runs it, or died running it less than a lease ago.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public virtual Task<RestoreRollbackResult> RollBackRestoreAsync(string callerAccount, string operationId, IProgress<RestoreProgress>? progress = null, CancellationToken cancellationToken = default) =>
        BackupTelemetry.TraceAsync(KmsBackupDiagnostics.RestoreActivity, activity => _unfinished.RollBackRestoreAsync(callerAccount, operationId, progress, activity, cancellationToken));
}
