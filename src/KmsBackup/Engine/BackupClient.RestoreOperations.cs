using System.Runtime.CompilerServices;
using KmsBackup.Diagnostics;
using KmsBackup.Repository;

namespace KmsBackup;

public partial class BackupClient
{
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
    public virtual async IAsyncEnumerable<RestoreOperation> ListUnfinishedRestoresAsync(string callerAccount, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(callerAccount);
        var unfinished = await Journal.LoadUnfinishedAsync(cancellationToken).ConfigureAwait(false);
        foreach (var journaled in unfinished.OrderBy(j => j.Latest.StartedAt).ThenBy(j => j.OperationId, StringComparer.Ordinal))
        {
            if (!string.Equals(journaled.Latest.CallerAccount, callerAccount, StringComparison.Ordinal) ||
                await _repository.LoadStateAsync(journaled.Latest.BackupId, cancellationToken).ConfigureAwait(false) is { } entry &&
                !string.Equals(entry.OwnerAccount, callerAccount, StringComparison.Ordinal))
            {
                continue;
            }

            var items = journaled.Items;
            var inTarget = await ItemsInTargetAsync(journaled.Latest.TargetInstanceId, journaled.OperationId, items, cancellationToken).ConfigureAwait(false);
            yield return new RestoreOperation
            {
                OperationId = journaled.OperationId,
                CallerAccount = journaled.Latest.CallerAccount,
                BackupId = journaled.Latest.BackupId,
                BackupDate = journaled.Latest.BackupDate,
                TargetInstanceId = journaled.Latest.TargetInstanceId,
                StartedAt = journaled.Latest.StartedAt,
                Runs = journaled.Runs.Count,
                Items = items,
                ItemsInTarget = [.. items.Where(inTarget.Contains)],
            };
        }
    }

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
    public virtual async Task<RestoreResult> ResumeRestoreAsync(string callerAccount, string operationId, IProgress<RestoreProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        using var activity = StartRestoreActivity(KmsBackupDiagnostics.RestoreActivity, null, null);
        RestoreRunStart? latest = null;
        try
        {
            var journaled = await LoadOperationAsync(callerAccount, operationId, "resume", cancellationToken).ConfigureAwait(false);
            latest = journaled.Latest;
            activity?.SetTag(KmsBackupDiagnostics.BackupIdTag, latest.BackupId);
            activity?.SetTag(KmsBackupDiagnostics.TargetInstanceTag, latest.TargetInstanceId);
            CatalogEntry owned;
            try
            {
                owned = await LoadOwnedAsync(callerAccount, latest.BackupId, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.NotFound)
            {
                throw new BackupException(new Refusal(BackupErrorCode.NotFound, $"restore operation '{operationId}'",
                    $"The backup '{latest.BackupId}' that the restore operation '{operationId}' restores from no longer exists, so the operation cannot be resumed.",
                    $"Roll the operation back by its ID to remove what it created from instance '{latest.TargetInstanceId}'."), e);
            }

            var request = new RestoreRequest
            {
                CallerAccount = callerAccount,
                BackupId = latest.BackupId,
                TargetInstanceId = latest.TargetInstanceId,
                BackupDate = latest.BackupDate,
                DataType = latest.DataType,
                AllItems = latest.AllItems,
                KeyNames = latest.AllItems ? [] : [.. latest.Items.Where(i => i.Type == ItemType.Key).Select(i => i.Name)],
                SecretNames = latest.AllItems ? [] : [.. latest.Items.Where(i => i.Type == ItemType.Secret).Select(i => i.Name)],
                OperationId = operationId,
            };
            return await RunRestoreAsync(request, owned, latest.PointSequence, resuming: true, progress, activity, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            BackupTelemetry.SetFailed(activity, e);
            if (latest is not null)
            {
                Log.RestoreFailed(_logger, e, operationId, latest.BackupId, latest.TargetInstanceId, BackupTelemetry.ErrorType(e));
            }

            throw;
        }
    }

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
    public virtual async Task<RestoreRollbackResult> RollBackRestoreAsync(string callerAccount, string operationId, IProgress<RestoreProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        using var activity = StartRestoreActivity(KmsBackupDiagnostics.RestoreActivity, null, null);
        JournaledRestore? journaled = null;
        try
        {
            journaled = await LoadOperationAsync(callerAccount, operationId, "roll back", cancellationToken).ConfigureAwait(false);
            activity?.SetTag(KmsBackupDiagnostics.BackupIdTag, journaled.Latest.BackupId);
            activity?.SetTag(KmsBackupDiagnostics.TargetInstanceTag, journaled.Latest.TargetInstanceId);

            // Only the backup's owner; a backup deleted since leaves the journal's caller, who owned it then.
            if (await _repository.LoadStateAsync(journaled.Latest.BackupId, cancellationToken).ConfigureAwait(false) is { } entry)
            {
                ThrowIfNotOwner(callerAccount, entry);
            }

            var loaded = journaled;
            return await UnderOperationLeaseAsync(operationId, async token =>
            {
                // Read again under the lease: another process may have finished the operation, or begun another run of it.
                var current = await Journal.LoadAsync(operationId, token).ConfigureAwait(false) ?? loaded;
                ThrowIfFinished(current, "roll back");
                var result = await RemoveOperationItemsAsync(current, progress, token).ConfigureAwait(false);
                await Journal.EndAsync(operationId, current.Latest.Run, new RestoreRunEnd(RestoreRunOutcome.RolledBack, Clock.GetUtcNow(), result.Removed), CancellationToken.None).ConfigureAwait(false);
                Log.RestoreRolledBack(_logger, operationId, current.Latest.BackupId, result.TargetInstanceId, result.Removed.Count);
                return result;
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            BackupTelemetry.SetFailed(activity, e);
            if (journaled is not null)
            {
                Log.RestoreFailed(_logger, e, operationId, journaled.Latest.BackupId, journaled.Latest.TargetInstanceId, BackupTelemetry.ErrorType(e));
            }

            throw;
        }
    }

    private async Task<RestoreRollbackResult> RemoveOperationItemsAsync(JournaledRestore journaled, IProgress<RestoreProgress>? progress, CancellationToken cancellationToken)
    {
        var operationId = journaled.OperationId;
        var target = journaled.Latest.TargetInstanceId;

        // Secrets before the keys that encrypt them, each newest first: the reverse of the order they were created in.
        var undo = journaled.Items.Where(i => i.Type == ItemType.Secret).Reverse()
            .Concat(journaled.Items.Where(i => i.Type == ItemType.Key).Reverse()).ToList();

        // An instance that no longer exists holds nothing of the operation any more.
        var targetExists = await _instances.GetInstanceAsync(target, cancellationToken).ConfigureAwait(false) is not null;
        var removed = new List<RestoreOperationItem>();
        var skipped = new List<RestoreOperationItem>();
        foreach (var item in undo)
        {
            cancellationToken.ThrowIfCancellationRequested();
            bool deleted;
            try
            {
                deleted = targetExists && await _instances.DeleteRestoredItemAsync(target, item.Type, item.Name, operationId, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException and not OperationCanceledException)
            {
                var cause = e is BackupException b ? b.Refusal.Message : $"The target instance '{target}' failed ({e.GetType().Name}).";
                throw new BackupException(new Refusal(BackupErrorCode.RestoreFailed, $"restore operation '{operationId}'",
                    $"Rolling back the restore operation '{operationId}' failed at the {item}: {cause} {removed.Count} items were removed so far; the operation stays unfinished.",
                    $"Check that the target instance '{target}' is reachable, then roll the operation '{operationId}' back again."), e);
            }

            (deleted ? removed : skipped).Add(item);
            progress?.Report(new RestoreProgress(operationId, RestorePhase.RollingBack, removed.Count + skipped.Count, undo.Count, item));
        }

        return new RestoreRollbackResult { OperationId = operationId, TargetInstanceId = target, Removed = removed, Skipped = skipped };
    }

    /// <summary>The planned items that <paramref name="targetInstanceId"/> holds as operation <paramref name="operationId"/> created them.</summary>
    private async Task<HashSet<RestoreOperationItem>> ItemsInTargetAsync(string targetInstanceId, string operationId, IReadOnlyList<RestoreOperationItem> items, CancellationToken cancellationToken)
    {
        var found = new HashSet<RestoreOperationItem>();
        if (items.Count == 0 || await _instances.GetInstanceAsync(targetInstanceId, cancellationToken).ConfigureAwait(false) is not { } target)
        {
            return found;
        }

        foreach (var type in new[] { ItemType.Key, ItemType.Secret })
        {
            var names = items.Where(i => i.Type == type).Select(i => i.Name).ToList();
            if (names.Count == 0)
            {
                continue;
            }

            foreach (var use in await _instances.FindNamesInUseAsync(target.Info.Region, type, names, cancellationToken).ConfigureAwait(false))
            {
                if (string.Equals(use.InstanceId, targetInstanceId, StringComparison.Ordinal) && string.Equals(use.RestoredByOperation, operationId, StringComparison.Ordinal))
                {
                    found.Add(new RestoreOperationItem(type, use.Name));
                }
            }
        }

        return found;
    }

    /// <summary>Loads an operation for <paramref name="callerAccount"/> to <paramref name="verb"/>: it must exist, be theirs and be unfinished.</summary>
    private async Task<JournaledRestore> LoadOperationAsync(string callerAccount, string operationId, string verb, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(callerAccount);
        RestoreRequest.ValidateOperationId(operationId);
        var journaled = await Journal.LoadAsync(operationId, cancellationToken).ConfigureAwait(false)
            ?? throw new BackupException(new Refusal(BackupErrorCode.NotFound, $"restore operation '{operationId}'",
                $"The restore journal has no operation '{operationId}'.",
                "Check the operation ID; list the unfinished restores to see which can be resumed or rolled back."));
        if (!string.Equals(journaled.Latest.CallerAccount, callerAccount, StringComparison.Ordinal))
        {
            throw new BackupException(new Refusal(BackupErrorCode.AccessDenied, $"restore operation '{operationId}'",
                $"The restore operation '{operationId}' belongs to another account; only the owner of its backup may {verb} it.",
                "Act as the account that ran the restore."));
        }

        ThrowIfFinished(journaled, verb);
        return journaled;
    }

    private static void ThrowIfFinished(JournaledRestore journaled, string verb)
    {
        if (journaled.LatestEnd is not { } end)
        {
            return;
        }

        var (what, remedy) = end.Outcome == RestoreRunOutcome.Completed
            ? ($"completed at {end.FinishedAt:O}: its items are in instance '{journaled.Latest.TargetInstanceId}'",
               "Nothing to do. To undo a completed restore, delete its items from the target instance.")
            : ($"was rolled back at {end.FinishedAt:O}: the target instance '{journaled.Latest.TargetInstanceId}' holds nothing of it",
               "Nothing to do. To restore the items, start a new restore.");
        throw new BackupException(new Refusal(BackupErrorCode.RestoreOperationFinished, $"restore operation '{journaled.OperationId}'",
            $"The restore operation '{journaled.OperationId}' {what}; there is nothing to {verb}.", remedy));
    }

    /// <summary>Refuses an operation ID that the journal holds for another account's restore, or for another backup or target.</summary>
    private static void ThrowIfOtherRestore(JournaledRestore journaled, RestoreRequest request)
    {
        var latest = journaled.Latest;
        if (!string.Equals(latest.CallerAccount, request.CallerAccount, StringComparison.Ordinal))
        {
            throw new BackupException(new Refusal(BackupErrorCode.AccessDenied, $"restore operation '{journaled.OperationId}'",
                $"The operation ID '{journaled.OperationId}' is in use by another account's restore.",
                "Choose another operation ID, or leave it empty to have one made."));
        }

        if (!string.Equals(latest.BackupId, request.BackupId, StringComparison.Ordinal) ||
            !string.Equals(latest.TargetInstanceId, request.TargetInstanceId, StringComparison.Ordinal))
        {
            throw new BackupException(new Refusal(BackupErrorCode.RestoreOperationMismatch, $"restore operation '{journaled.OperationId}'",
                $"The restore operation '{journaled.OperationId}' restores backup '{latest.BackupId}' into instance '{latest.TargetInstanceId}', not backup '{request.BackupId}' into instance '{request.TargetInstanceId}'.",
                "Give another restore its own operation ID, or leave it empty to have one made."));
        }
    }
}
