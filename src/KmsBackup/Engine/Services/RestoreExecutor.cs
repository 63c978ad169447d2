using KmsBackup.Diagnostics;
using KmsBackup.Repository;
using Microsoft.Extensions.Logging;
using System.Diagnostics;

namespace KmsBackup;

/// <summary>Restores (rules R6–R9): plans, journals, creates keys before the secrets they encrypt, and rolls back what a failed run created.</summary>
internal sealed class RestoreExecutor
{
    private readonly BackupCatalog _catalog;
    private readonly RestorePreparation _preparation;
    private readonly BackupRepository _repository;
    private readonly InstanceGateway _instances;
    private readonly BackupClientOptions _options;
    private readonly ILogger _logger;

    internal RestoreExecutor(BackupCatalog catalog, RestorePreparation preparation)
    {
        _catalog = catalog;
        _preparation = preparation;
        _repository = catalog.Repository;
        Journal = new RestoreJournal(catalog.Repository);
        _instances = catalog.Instances;
        _options = catalog.Options;
        _logger = catalog.Logger;
    }

    internal async Task<RestorePlan> PlanRestoreAsync(RestoreRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
        var owned = await _catalog.LoadOwnedAsync(request.CallerAccount, request.BackupId, cancellationToken).ConfigureAwait(false);
        // A plan needs no key material and no secret value: the items are read without them.
        var prepared = await _preparation.PrepareRestoreAsync(request with { OperationId = request.OperationId ?? BackupCatalog.NewId("restore") }, owned, null, withValues: false, cancellationToken).ConfigureAwait(false);
        prepared.Records.Clear();
        return prepared.Plan;
    }

    internal async Task<RestoreResult> RestoreAsync(RestoreRequest request, IProgress<RestoreProgress>? progress, Activity? activity, CancellationToken cancellationToken = default)
    {
        var operationId = request?.OperationId;
        try
        {
            ArgumentNullException.ThrowIfNull(request);
            request.Validate();

            // The owner check reads only the catalog: a caller who does not own the backup is refused before anything is written.
            var owned = await _catalog.LoadOwnedAsync(request.CallerAccount, request.BackupId, cancellationToken).ConfigureAwait(false);
            operationId ??= BackupCatalog.NewId("restore");
            if (await Journal.LoadAsync(operationId, cancellationToken).ConfigureAwait(false) is { } journaled)
            {
                UnfinishedRestores.ThrowIfOtherRestore(journaled, request);
            }

            return await RunRestoreAsync(request with { OperationId = operationId }, owned, null, resuming: false, progress, activity, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException && request is not null)
        {
            Log.RestoreFailed(_logger, e, operationId ?? "(new)", request.BackupId, request.TargetInstanceId, BackupTelemetry.ErrorType(e));
            throw;
        }
    }

    /// <summary>The restore journal, shared with <see cref="UnfinishedRestores"/>.</summary>
    internal RestoreJournal Journal { get; }

    /// <summary>
    /// Runs one journaled run of a restore operation under its lease: plans (a resume, with the
    /// <paramref name="pinnedSequence"/> of its operation, reads the data that operation read), journals the
    /// start, creates, and journals the end.
    /// </summary>
    internal Task<RestoreResult> RunRestoreAsync(
        RestoreRequest request, CatalogEntry owned, long? pinnedSequence, bool resuming, IProgress<RestoreProgress>? progress, Activity? activity, CancellationToken cancellationToken) =>
        UnderOperationLeaseAsync(request.OperationId!, async token =>
        {
            var operationId = request.OperationId!;

            // Read again under the lease: another process may have run the operation a moment ago.
            var journaled = await Journal.LoadAsync(operationId, token).ConfigureAwait(false);
            if (journaled is not null)
            {
                UnfinishedRestores.ThrowIfOtherRestore(journaled, request);
                if (resuming)
                {
                    UnfinishedRestores.ThrowIfFinished(journaled, "resume");
                }
            }

            var prepared = await _preparation.PrepareRestoreAsync(request, owned, pinnedSequence, withValues: true, token).ConfigureAwait(false);
            try
            {
                var plan = prepared.Plan;
                if (!plan.CanExecute)
                {
                    throw new RestoreException(plan.AllRefusals.First(), plan);
                }

                var run = (journaled?.Latest.Run ?? 0) + 1;
                await Journal.BeginAsync(new RestoreRunStart
                {
                    OperationId = operationId,
                    Run = run,
                    CallerAccount = request.CallerAccount,
                    BackupId = plan.BackupId,
                    TargetInstanceId = plan.TargetInstanceId,
                    StartedAt = _catalog.Clock.GetUtcNow(),
                    BackupDate = plan.BackupDate,
                    DataType = request.DataType,
                    AllItems = request.AllItems,
                    PointSequence = prepared.PointSequence!.Value,
                    Items = [.. plan.Items.Select(ItemOf)],
                }, token).ConfigureAwait(false);

                var result = await ExecuteAsync(plan, prepared.Records, run, progress, token).ConfigureAwait(false);
                activity?.SetTag(KmsBackupDiagnostics.RestoredItemsTag, result.Restored.Count);
                Log.RestoreCompleted(_logger, operationId, plan.BackupId, plan.TargetInstanceId, result.Restored.Count, result.AlreadyRestored.Count);
                return result;
            }
            finally
            {
                prepared.Records.Clear();
            }
        }, cancellationToken);

    /// <summary>
    /// Runs <paramref name="work"/> holding the lease <c>restores/&lt;operationId&gt;</c>, so that one process at a time
    /// runs, resumes or rolls back an operation; keeps the lease renewed meanwhile, and stops the work (its token is
    /// cancelled) if a renewal finds that another process took the lease over.
    /// </summary>
    internal async Task<T> UnderOperationLeaseAsync<T>(string operationId, Func<CancellationToken, Task<T>> work, CancellationToken cancellationToken)
    {
        var lease = await _repository.Store.AcquireLeaseAsync($"restores/{operationId}", _options.LeaseHolder, _options.LeaseDuration, cancellationToken).ConfigureAwait(false);
        await using (lease.ConfigureAwait(false))
        {
            var keeper = LeaseKeeper.Start(lease, _options.LeaseDuration, _catalog.Clock, cancellationToken);
            await using (keeper.ConfigureAwait(false))
            {
                try
                {
                    return await work(keeper.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (keeper.Lost is { } lost && !cancellationToken.IsCancellationRequested)
                {
                    throw new BackupException(lost.Refusal, lost);
                }
            }
        }
    }

    internal static RestoreOperationItem ItemOf(RestorePlanItem item) => new(item.Type, item.Name);

    internal async Task<RestoreResult> ExecuteAsync(RestorePlan plan, RestorePreparation.RestoreRecords records, int run, IProgress<RestoreProgress>? progress, CancellationToken cancellationToken)
    {
        var operationId = plan.OperationId;
        var target = plan.TargetInstanceId;
        var work = plan.Items.Where(i => i.Outcome == RestoreItemOutcome.Restore).ToList();
        var created = new List<RestorePlanItem>(work.Count);
        RestorePlanItem? inFlight = null;

        // The operation is journaled: from here on its ID is the one to resume or roll it back by.
        progress?.Report(new RestoreProgress(operationId, RestorePhase.Started, 0, work.Count, null));
        try
        {
            // Keys come first in the plan's order, so each secret's key is in place before the secret (rule R7).
            foreach (var item in work)
            {
                cancellationToken.ThrowIfCancellationRequested();
                inFlight = item;
                var createdNow = item.Type == ItemType.Key
                    ? await _instances.CreateKeyAsync(target, records.Keys[item.Name], operationId, cancellationToken).ConfigureAwait(false)
                    : await _instances.CreateSecretAsync(target, records.Secrets[item.Name], operationId, cancellationToken).ConfigureAwait(false);
                inFlight = null;
                if (createdNow)
                {
                    created.Add(item);
                }

                progress?.Report(new RestoreProgress(operationId, RestorePhase.Restoring, created.Count, work.Count, ItemOf(item)));
            }
        }
        catch (Exception failure) when (failure is not OutOfMemoryException)
        {
            var (removed, left, allDeleted) = await RollBackAsync(plan, created, inFlight, progress).ConfigureAwait(false);

            // The operation is over only if nothing of it can be left: every deletion went through (the item in
            // flight's too, since it may have landed) and no earlier run had created anything. Otherwise it stays
            // unfinished in the journal, to be resumed or rolled back by its ID.
            if (allDeleted && plan.AlreadyRestored == 0)
            {
                await TryEndAsync(operationId, run, new RestoreRunEnd(RestoreRunOutcome.RolledBack, _catalog.Clock.GetUtcNow(), [.. removed.Select(ItemOf)])).ConfigureAwait(false);
            }

            if (failure is OperationCanceledException && left.Count == 0)
            {
                throw;
            }

            throw new RestoreException(FailureRefusal(plan, failure, inFlight, created.Count, left), plan, left, failure);
        }

        try
        {
            // Recorded whatever the caller's token says: every item is in, and the journal must say so.
            await Journal.EndAsync(operationId, run, new RestoreRunEnd(RestoreRunOutcome.Completed, _catalog.Clock.GetUtcNow(), [.. created.Select(ItemOf)]), CancellationToken.None).ConfigureAwait(false);
        }
        catch (BackupException e)
        {
            throw new RestoreException(new Refusal(e.Code, $"restore {operationId}",
                $"Every planned item is in instance '{target}', but the restore journal could not record that restore {operationId} completed: {e.Refusal.Message}",
                $"Resume the restore operation '{operationId}' once the store is reachable: it records the completion and writes nothing more into the target."), plan, [], e);
        }

        return new RestoreResult
        {
            Plan = plan,
            Restored = created,
            AlreadyRestored = [.. plan.Items.Where(i => i.Outcome == RestoreItemOutcome.AlreadyRestored)],
        };
    }

    /// <summary>Journals a run's end after a rollback; a failure is logged, not thrown, so that it never hides the failure being reported.</summary>
    internal async Task TryEndAsync(string operationId, int run, RestoreRunEnd end)
    {
        try
        {
            await Journal.EndAsync(operationId, run, end, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The target is as it was; the operation is only listed as unfinished until a rollback by ID records it.
            Log.RestoreJournalEndFailed(_logger, e, operationId, BackupTelemetry.ErrorType(e));
        }
    }

    /// <summary>Removes what this run created, newest first (secrets before their keys), whatever the caller's token says.</summary>
    internal async Task<(List<RestorePlanItem> Removed, List<RestorePlanItem> Left, bool AllDeleted)> RollBackAsync(RestorePlan plan, List<RestorePlanItem> created, RestorePlanItem? inFlight, IProgress<RestoreProgress>? progress)
    {
        // The item in flight may have been created before the failure reached us; deleting it is safe
        // because the gateway removes only what this operation created, and it was not created before
        // this run (the plan would have marked it AlreadyRestored).
        var undo = new List<RestorePlanItem>(created);
        if (inFlight is not null)
        {
            undo.Add(inFlight);
        }

        undo.Reverse();
        var removed = new List<RestorePlanItem>();
        var left = new List<RestorePlanItem>();
        var allDeleted = true;
        var done = 0;
        foreach (var item in undo)
        {
            try
            {
                if (await _instances.DeleteRestoredItemAsync(plan.TargetInstanceId, item.Type, item.Name, plan.OperationId, CancellationToken.None).ConfigureAwait(false))
                {
                    removed.Add(item);
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                allDeleted = false;
                if (!ReferenceEquals(item, inFlight))
                {
                    left.Add(item);
                }
            }

            progress?.Report(new RestoreProgress(plan.OperationId, RestorePhase.RollingBack, ++done, undo.Count, ItemOf(item)));
        }

        return (removed, left, allDeleted);
    }

    internal static Refusal FailureRefusal(RestorePlan plan, Exception failure, RestorePlanItem? failed, int createdCount, List<RestorePlanItem> left)
    {
        var what = failed is null ? "The restore" : $"Restoring the {(failed.Type == ItemType.Key ? "key" : "secret")} '{failed.Name}'";
        var cause = failure switch
        {
            BackupException backup => backup.Refusal.Message,
            OperationCanceledException => "The restore was cancelled.",
            _ => $"The target instance '{plan.TargetInstanceId}' failed ({failure.GetType().Name}).",
        };
        var earlier = plan.AlreadyRestored;
        var outcome = left.Count > 0
            ? $"{left.Count} items this run created could not be removed: {string.Join(", ", left.Select(i => $"'{i.Name}'"))}."
            : earlier == 0
                ? $"The {createdCount} items this run had created were removed again; the target is as it was."
                : $"The {createdCount} items this run had created were removed again; the {earlier} items earlier runs of operation '{plan.OperationId}' created are still in the target.";
        var remedy = left.Count == 0 && earlier == 0
            ? failure is BackupException b ? b.Remedy : "Check that the target instance is reachable, then retry the restore."
            : $"Resume the restore operation '{plan.OperationId}' to finish it (items it created are recognised), or roll it back by that ID to remove what it created.";
        var code = failure is BackupException known && left.Count == 0 ? known.Code : BackupErrorCode.RestoreFailed;
        return new Refusal(code, failed is null ? $"restore {plan.OperationId}" : $"{(failed.Type == ItemType.Key ? "key" : "secret")} '{failed.Name}'",
            $"{what} into instance '{plan.TargetInstanceId}' failed: {cause} {outcome}", remedy);
    }
}
