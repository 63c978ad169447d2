using System.Diagnostics;
using KmsBackup.Diagnostics;
using KmsBackup.Repository;
using Microsoft.Extensions.Logging;
using System.Runtime.CompilerServices;

namespace KmsBackup;

/// <summary>Restore operations left unfinished in the journal: listing, resuming and rolling them back by their IDs.</summary>
internal sealed class UnfinishedRestores
{
    private readonly BackupCatalog _catalog;
    private readonly RestoreExecutor _executor;
    private readonly BackupRepository _repository;
    private readonly InstanceGateway _instances;
    private readonly ILogger _logger;

    internal UnfinishedRestores(BackupCatalog catalog, RestoreExecutor executor)
    {
        _catalog = catalog;
        _executor = executor;
        _repository = catalog.Repository;
        _instances = catalog.Instances;
        _logger = catalog.Logger;
    }

    internal async IAsyncEnumerable<RestoreOperation> ListUnfinishedRestoresAsync(string callerAccount, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(callerAccount);
        var unfinished = await _executor.Journal.LoadUnfinishedAsync(cancellationToken).ConfigureAwait(false);
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

    internal async Task<RestoreResult> ResumeRestoreAsync(string callerAccount, string operationId, IProgress<RestoreProgress>? progress, Activity? activity, CancellationToken cancellationToken = default)
    {
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
                owned = await _catalog.LoadOwnedAsync(callerAccount, latest.BackupId, cancellationToken).ConfigureAwait(false);
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
            return await _executor.RunRestoreAsync(request, owned, latest.PointSequence, resuming: true, progress, activity, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            if (latest is not null)
            {
                Log.RestoreFailed(_logger, e, operationId, latest.BackupId, latest.TargetInstanceId, BackupTelemetry.ErrorType(e));
            }

            throw;
        }
    }

    internal async Task<RestoreRollbackResult> RollBackRestoreAsync(string callerAccount, string operationId, IProgress<RestoreProgress>? progress, Activity? activity, CancellationToken cancellationToken = default)
    {
        JournaledRestore? journaled = null;
        try
        {
            journaled = await LoadOperationAsync(callerAccount, operationId, "roll back", cancellationToken).ConfigureAwait(false);
            activity?.SetTag(KmsBackupDiagnostics.BackupIdTag, journaled.Latest.BackupId);
            activity?.SetTag(KmsBackupDiagnostics.TargetInstanceTag, journaled.Latest.TargetInstanceId);

            // Only the backup's owner; a backup deleted since leaves the journal's caller, who owned it then.
            if (await _repository.LoadStateAsync(journaled.Latest.BackupId, cancellationToken).ConfigureAwait(false) is { } entry)
            {
                BackupCatalog.ThrowIfNotOwner(callerAccount, entry);
            }

            var loaded = journaled;
            return await _executor.UnderOperationLeaseAsync(operationId, async token =>
            {
                // Read again under the lease: another process may have finished the operation, or begun another run of it.
                var current = await _executor.Journal.LoadAsync(operationId, token).ConfigureAwait(false) ?? loaded;
                ThrowIfFinished(current, "roll back");
                var result = await RemoveOperationItemsAsync(current, progress, token).ConfigureAwait(false);
                await _executor.Journal.EndAsync(operationId, current.Latest.Run, new RestoreRunEnd(RestoreRunOutcome.RolledBack, _catalog.Clock.GetUtcNow(), result.Removed), CancellationToken.None).ConfigureAwait(false);
                Log.RestoreRolledBack(_logger, operationId, current.Latest.BackupId, result.TargetInstanceId, result.Removed.Count);
                return result;
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            if (journaled is not null)
            {
                Log.RestoreFailed(_logger, e, operationId, journaled.Latest.BackupId, journaled.Latest.TargetInstanceId, BackupTelemetry.ErrorType(e));
            }

            throw;
        }
    }

    internal async Task<RestoreRollbackResult> RemoveOperationItemsAsync(JournaledRestore journaled, IProgress<RestoreProgress>? progress, CancellationToken cancellationToken)
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
    internal async Task<HashSet<RestoreOperationItem>> ItemsInTargetAsync(string targetInstanceId, string operationId, IReadOnlyList<RestoreOperationItem> items, CancellationToken cancellationToken)
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
    internal async Task<JournaledRestore> LoadOperationAsync(string callerAccount, string operationId, string verb, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(callerAccount);
        RestoreRequest.ValidateOperationId(operationId);
        var journaled = await _executor.Journal.LoadAsync(operationId, cancellationToken).ConfigureAwait(false)
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

    internal static void ThrowIfFinished(JournaledRestore journaled, string verb)
    {
        if (journaled.LatestEnd is not { } end)
        {
            return;
        }

        var (what, remedy) = end.Outcome == RestoreRunOutcome.Completed
            ? ($"completed at {ViewableWindow.Iso(end.FinishedAt)}: its items are in instance '{journaled.Latest.TargetInstanceId}'",
               "Nothing to do. To undo a completed restore, delete its items from the target instance.")
            : ($"was rolled back at {ViewableWindow.Iso(end.FinishedAt)}: the target instance '{journaled.Latest.TargetInstanceId}' holds nothing of it",
               "Nothing to do. To restore the items, start a new restore.");
        throw new BackupException(new Refusal(BackupErrorCode.RestoreOperationFinished, $"restore operation '{journaled.OperationId}'",
            $"The restore operation '{journaled.OperationId}' {what}; there is nothing to {verb}.", remedy));
    }

    /// <summary>Refuses an operation ID that the journal holds for another account's restore, or for another backup or target.</summary>
    internal static void ThrowIfOtherRestore(JournaledRestore journaled, RestoreRequest request)
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
