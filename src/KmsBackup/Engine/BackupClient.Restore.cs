using System.Diagnostics;
using KmsBackup.Diagnostics;
using KmsBackup.Repository;

namespace KmsBackup;

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
    public virtual async Task<RestorePlan> PlanRestoreAsync(RestoreRequest request, CancellationToken cancellationToken = default)
    {
        using var activity = StartRestoreActivity(KmsBackupDiagnostics.RestorePlanActivity, request?.BackupId, request?.TargetInstanceId);
        try
        {
            ArgumentNullException.ThrowIfNull(request);
            request.Validate();
            var owned = await LoadOwnedAsync(request.CallerAccount, request.BackupId, cancellationToken).ConfigureAwait(false);
            // A plan needs no key material and no secret value: the items are read without them.
            var prepared = await PrepareRestoreAsync(request with { OperationId = request.OperationId ?? NewId("restore") }, owned, null, withValues: false, cancellationToken).ConfigureAwait(false);
            prepared.Records.Clear();
            return prepared.Plan;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            BackupTelemetry.SetFailed(activity, e);
            throw;
        }
    }

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
    public virtual async Task<RestoreResult> RestoreAsync(RestoreRequest request, IProgress<RestoreProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        using var activity = StartRestoreActivity(KmsBackupDiagnostics.RestoreActivity, request?.BackupId, request?.TargetInstanceId);
        var operationId = request?.OperationId;
        try
        {
            ArgumentNullException.ThrowIfNull(request);
            request.Validate();

            // The owner check reads only the catalog: a caller who does not own the backup is refused before anything is written.
            var owned = await LoadOwnedAsync(request.CallerAccount, request.BackupId, cancellationToken).ConfigureAwait(false);
            operationId ??= NewId("restore");
            if (await Journal.LoadAsync(operationId, cancellationToken).ConfigureAwait(false) is { } journaled)
            {
                ThrowIfOtherRestore(journaled, request);
            }

            return await RunRestoreAsync(request with { OperationId = operationId }, owned, null, resuming: false, progress, activity, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            BackupTelemetry.SetFailed(activity, e);
            if (request is not null)
            {
                Log.RestoreFailed(_logger, e, operationId ?? "(new)", request.BackupId, request.TargetInstanceId, BackupTelemetry.ErrorType(e));
            }

            throw;
        }
    }

    private RestoreJournal Journal => new(_repository);

    private static Activity? StartRestoreActivity(string name, string? backupId, string? targetInstanceId)
    {
        var activity = BackupTelemetry.Source.StartActivity(name);
        if (activity is not null && backupId is not null)
        {
            activity.SetTag(KmsBackupDiagnostics.BackupIdTag, backupId);
            activity.SetTag(KmsBackupDiagnostics.TargetInstanceTag, targetInstanceId);
        }

        return activity;
    }

    /// <summary>
    /// Runs one journaled run of a restore operation under its lease: plans (a resume, with the
    /// <paramref name="pinnedSequence"/> of its operation, reads the data that operation read), journals the
    /// start, creates, and journals the end.
    /// </summary>
    private Task<RestoreResult> RunRestoreAsync(
        RestoreRequest request, CatalogEntry owned, long? pinnedSequence, bool resuming, IProgress<RestoreProgress>? progress, Activity? activity, CancellationToken cancellationToken) =>
        UnderOperationLeaseAsync(request.OperationId!, async token =>
        {
            var operationId = request.OperationId!;

            // Read again under the lease: another process may have run the operation a moment ago.
            var journaled = await Journal.LoadAsync(operationId, token).ConfigureAwait(false);
            if (journaled is not null)
            {
                ThrowIfOtherRestore(journaled, request);
                if (resuming)
                {
                    ThrowIfFinished(journaled, "resume");
                }
            }

            var prepared = await PrepareRestoreAsync(request, owned, pinnedSequence, withValues: true, token).ConfigureAwait(false);
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
                    StartedAt = Clock.GetUtcNow(),
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
    private async Task<T> UnderOperationLeaseAsync<T>(string operationId, Func<CancellationToken, Task<T>> work, CancellationToken cancellationToken)
    {
        var lease = await _repository.Store.AcquireLeaseAsync($"restores/{operationId}", _options.LeaseHolder, _options.LeaseDuration, cancellationToken).ConfigureAwait(false);
        await using (lease.ConfigureAwait(false))
        {
            var keeper = LeaseKeeper.Start(lease, _options.LeaseDuration, Clock, cancellationToken);
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

    private static RestoreOperationItem ItemOf(RestorePlanItem item) => new(item.Type, item.Name);

    private async Task<RestoreResult> ExecuteAsync(RestorePlan plan, RestoreRecords records, int run, IProgress<RestoreProgress>? progress, CancellationToken cancellationToken)
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
                await TryEndAsync(operationId, run, new RestoreRunEnd(RestoreRunOutcome.RolledBack, Clock.GetUtcNow(), [.. removed.Select(ItemOf)])).ConfigureAwait(false);
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
            await Journal.EndAsync(operationId, run, new RestoreRunEnd(RestoreRunOutcome.Completed, Clock.GetUtcNow(), [.. created.Select(ItemOf)]), CancellationToken.None).ConfigureAwait(false);
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
    private async Task TryEndAsync(string operationId, int run, RestoreRunEnd end)
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
    private async Task<(List<RestorePlanItem> Removed, List<RestorePlanItem> Left, bool AllDeleted)> RollBackAsync(RestorePlan plan, List<RestorePlanItem> created, RestorePlanItem? inFlight, IProgress<RestoreProgress>? progress)
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

    private static Refusal FailureRefusal(RestorePlan plan, Exception failure, RestorePlanItem? failed, int createdCount, List<RestorePlanItem> left)
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

    /// <summary>
    /// Reads the chosen items (with their key material and secret ciphertexts only when <paramref name="withValues"/>:
    /// to restore them) and plans. The caller clears the records (<see cref="RestoreRecords.Clear"/>) when done, and so
    /// does this method if it fails.
    /// </summary>
    private async Task<PreparedRestore> PrepareRestoreAsync(RestoreRequest request, CatalogEntry owned, long? pinnedSequence, bool withValues, CancellationToken cancellationToken)
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

    private async Task<PreparedRestore> PrepareRestoreAsync(RestoreRequest request, CatalogEntry owned, long? pinnedSequence, bool withValues, RestoreRecords records, CancellationToken cancellationToken)
    {
        // Reads only: the state is advanced by time in memory, never stored.
        var entry = AsOfNow(owned);
        var now = Clock.GetUtcNow();
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

        // Hardware data (rule H7): with an HSM gateway, each key's material must be in the target's cluster.
        string? clusterId = null;
        IReadOnlySet<string>? withMaterial = null;
        if (source.Snapshot?.Source.Kind == InstanceKind.Hardware && target is { Info.Kind: InstanceKind.Hardware } && records.Keys.Count > 0 &&
            _options.HsmClusters is { } hsm && await hsm.FindClusterOfInstanceAsync(request.TargetInstanceId, cancellationToken).ConfigureAwait(false) is { } cluster)
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
            TargetClusterId = clusterId,
            KeyIdsWithMaterial = withMaterial,
        });
        return new PreparedRestore(plan, records, source.Snapshot is null ? null : source.Sequence);
    }

    /// <summary>
    /// The names in use with the owner of each instance that holds one, for a gateway that leaves
    /// <see cref="NameInUse.OwnerAccount"/> out: the plan names an instance only to its owner's account.
    /// </summary>
    private async Task<List<NameInUse>> WithOwnersAsync(List<NameInUse> uses, InstanceDescription target, CancellationToken cancellationToken)
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
    private sealed record PreparedRestore(RestorePlan Plan, RestoreRecords Records, long? PointSequence);

    /// <summary>
    /// Reads the data the request chooses and keeps the chosen items in <paramref name="records"/>. Reads
    /// nothing when the date is not usable for a restore (the plan then reports why). With
    /// <paramref name="pinnedSequence"/> (a resume, by date), reads the date's points only up to that one,
    /// and nothing if it is gone: the data its operation's first run read, not what the date holds now.
    /// </summary>
    private async Task<RestoreSource> ReadRestoreSourceAsync(BackupState state, RestoreRequest request, DateTimeOffset now, long? pinnedSequence, bool withValues, RestoreRecords records, CancellationToken cancellationToken)
    {
        InstanceSnapshot? snapshot;
        DateOnly date;
        DateTimeOffset? takenAt;
        long sequence;
        if (request.PointInTime is { } at)
        {
            if (BackupLifecycle.Check(state, BackupOperation.Restore, now) is not null)
            {
                return new RestoreSource(state.TimeZone.DateOf(at), null, null);
            }

            if (await FindPointAtAsync(state.Id, state, at, cancellationToken).ConfigureAwait(false) is not { } hit)
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

            snapshot = await _repository.ReadSnapshotAsync(manifest, withValues, cancellationToken).ConfigureAwait(false);
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
                var pointKey = full ? await FullPointOfAsync(day, cancellationToken).ConfigureAwait(false) : day[^1];
                if (pointKey is not { } viewPoint)
                {
                    return new RestoreSource(date, null, null);
                }

                var manifest = await ReadPointAsync(viewPoint, cancellationToken).ConfigureAwait(false);
                var (keys, secrets) = await ViewRecordsAsync(day, type, withValues, records.Read, cancellationToken).ConfigureAwait(false);
                snapshot = InstanceSnapshot.Create(manifest.Source, manifest.TakenAt, keys ?? [], secrets ?? []);
                takenAt = manifest.TakenAt;
            }
            else
            {
                var manifest = await ReadPointAsync(day[^1], cancellationToken).ConfigureAwait(false);
                snapshot = await _repository.ReadSnapshotAsync(manifest, withValues, cancellationToken).ConfigureAwait(false);
                takenAt = manifest.TakenAt;
            }
        }

        records.Take(snapshot, request);
        return new RestoreSource(date, snapshot, takenAt, sequence);
    }

    /// <summary>The data read: its date, the items (null when none was read), when they were taken, and the last point read.</summary>
    private sealed record RestoreSource(DateOnly Date, InstanceSnapshot? Snapshot, DateTimeOffset? TakenAt, long Sequence = 0);

    /// <summary>The chosen items, by name, with their material and ciphertexts; cleared when the restore is done.</summary>
    private sealed class RestoreRecords
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
