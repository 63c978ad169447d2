using System.Diagnostics;
using System.Security.Cryptography;
using KmsBackup.Diagnostics;

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
    public virtual async Task<RestorePlan> PlanRestoreAsync(RestoreRequest request, CancellationToken cancellationToken = default)
    {
        using var activity = StartRestoreActivity(KmsBackupDiagnostics.RestorePlanActivity, request);
        try
        {
            var (plan, records) = await PrepareRestoreAsync(request, cancellationToken).ConfigureAwait(false);
            records.Clear();
            return plan;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            BackupTelemetry.SetFailed(activity, e);
            throw;
        }
    }

    /// <summary>
    /// Restores keys and secrets into the target instance, all or nothing (rules R7–R9): plans first and
    /// refuses with every violation if the plan has any; creates keys before the secrets they encrypt,
    /// each with its name, ID, versions, metadata and creator; if an item fails or the call is cancelled,
    /// removes what this run created, so that the target is as it was. Rerunning with the same
    /// <see cref="RestoreRequest.OperationId"/> restores nothing twice.
    /// </summary>
    /// <param name="request">What to restore, from which data, into which instance.</param>
    /// <param name="progress">Receives progress after each item; <see langword="null"/> for none.</param>
    /// <param name="cancellationToken">Cancels the restore; what it created is removed before the cancellation is thrown.</param>
    /// <returns>What was restored.</returns>
    /// <exception cref="ArgumentException">The request is malformed.</exception>
    /// <exception cref="RestoreException">The plan has violations (nothing was written; <see cref="RestoreException.Plan"/> lists them), or an item failed (the batch was rolled back; <see cref="RestoreException.LeftInTarget"/> lists anything that could not be removed).</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/> or <see cref="BackupErrorCode.AccessDenied"/>, before any backup data is read.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the target is as it was.</exception>
    public virtual async Task<RestoreResult> RestoreAsync(RestoreRequest request, IProgress<RestoreProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        using var activity = StartRestoreActivity(KmsBackupDiagnostics.RestoreActivity, request);
        try
        {
            var (plan, records) = await PrepareRestoreAsync(request, cancellationToken).ConfigureAwait(false);
            try
            {
                if (!plan.CanExecute)
                {
                    throw new RestoreException(plan.AllRefusals.First(), plan);
                }

                var result = await ExecuteAsync(plan, records, progress, cancellationToken).ConfigureAwait(false);
                activity?.SetTag(KmsBackupDiagnostics.RestoredItemsTag, result.Restored.Count);
                Log.RestoreCompleted(_logger, plan.OperationId, request.BackupId, plan.TargetInstanceId, result.Restored.Count, result.AlreadyRestored.Count);
                return result;
            }
            finally
            {
                records.Clear();
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            BackupTelemetry.SetFailed(activity, e);
            if (request is not null)
            {
                Log.RestoreFailed(_logger, e, request.OperationId ?? "(new)", request.BackupId, request.TargetInstanceId, BackupTelemetry.ErrorType(e));
            }

            throw;
        }
    }

    private static Activity? StartRestoreActivity(string name, RestoreRequest? request)
    {
        var activity = BackupTelemetry.Source.StartActivity(name);
        if (activity is not null && request is not null)
        {
            activity.SetTag(KmsBackupDiagnostics.BackupIdTag, request.BackupId);
            activity.SetTag(KmsBackupDiagnostics.TargetInstanceTag, request.TargetInstanceId);
        }

        return activity;
    }

    private async Task<RestoreResult> ExecuteAsync(RestorePlan plan, RestoreRecords records, IProgress<RestoreProgress>? progress, CancellationToken cancellationToken)
    {
        var target = plan.TargetInstanceId;
        var work = plan.Items.Where(i => i.Outcome == RestoreItemOutcome.Restore).ToList();
        var created = new List<RestorePlanItem>(work.Count);
        RestorePlanItem? inFlight = null;
        try
        {
            // Keys come first in the plan's order, so each secret's key is in place before the secret (rule R7).
            foreach (var item in work)
            {
                cancellationToken.ThrowIfCancellationRequested();
                inFlight = item;
                var createdNow = item.Type == ItemType.Key
                    ? await _instances.CreateKeyAsync(target, records.Keys[item.Name], plan.OperationId, cancellationToken).ConfigureAwait(false)
                    : await _instances.CreateSecretAsync(target, records.Secrets[item.Name], plan.OperationId, cancellationToken).ConfigureAwait(false);
                inFlight = null;
                if (createdNow)
                {
                    created.Add(item);
                }

                progress?.Report(new RestoreProgress(RestorePhase.Restoring, created.Count, work.Count, item));
            }
        }
        catch (Exception failure) when (failure is not OutOfMemoryException)
        {
            var left = await RollBackAsync(plan, created, inFlight, progress).ConfigureAwait(false);
            if (failure is OperationCanceledException && left.Count == 0)
            {
                throw;
            }

            throw new RestoreException(FailureRefusal(plan, failure, inFlight, created.Count, left), plan, left, failure);
        }

        return new RestoreResult
        {
            Plan = plan,
            Restored = created,
            AlreadyRestored = [.. plan.Items.Where(i => i.Outcome == RestoreItemOutcome.AlreadyRestored)],
        };
    }

    /// <summary>Removes what this run created, newest first (secrets before their keys), whatever the caller's token says.</summary>
    private async Task<List<RestorePlanItem>> RollBackAsync(RestorePlan plan, List<RestorePlanItem> created, RestorePlanItem? inFlight, IProgress<RestoreProgress>? progress)
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
        var left = new List<RestorePlanItem>();
        var done = 0;
        foreach (var item in undo)
        {
            try
            {
                await _instances.DeleteRestoredItemAsync(plan.TargetInstanceId, item.Type, item.Name, plan.OperationId, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                if (!ReferenceEquals(item, inFlight))
                {
                    left.Add(item);
                }
            }

            progress?.Report(new RestoreProgress(RestorePhase.RollingBack, ++done, undo.Count, item));
        }

        return left;
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
        var outcome = left.Count == 0
            ? $"The {createdCount} items this run had created were removed again; the target is as it was."
            : $"{left.Count} items this run created could not be removed: {string.Join(", ", left.Select(i => $"'{i.Name}'"))}.";
        var remedy = left.Count == 0
            ? failure is BackupException b ? b.Remedy : "Check that the target instance is reachable, then retry the restore."
            : $"Retry the restore with the operation ID '{plan.OperationId}' to finish it (items it created are recognised), or delete those items from the target instance.";
        var code = failure is BackupException known && left.Count == 0 ? known.Code : BackupErrorCode.RestoreFailed;
        return new Refusal(code, failed is null ? $"restore {plan.OperationId}" : $"{(failed.Type == ItemType.Key ? "key" : "secret")} '{failed.Name}'",
            $"{what} into instance '{plan.TargetInstanceId}' failed: {cause} {outcome}", remedy);
    }

    private async Task<(RestorePlan Plan, RestoreRecords Records)> PrepareRestoreAsync(RestoreRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();

        // The owner check reads only the catalog: a caller who does not own the backup is refused before any of its data is read.
        var entry = AsOfNow(await LoadOwnedAsync(request.CallerAccount, request.BackupId, cancellationToken).ConfigureAwait(false));
        var now = Clock.GetUtcNow();
        var state = entry.State;
        var records = new RestoreRecords();
        var source = await ReadRestoreSourceAsync(state, request, now, records, cancellationToken).ConfigureAwait(false);

        var missingKeys = request.KeyNames.Where(n => !records.Keys.ContainsKey(n)).ToList();
        var missingSecrets = request.SecretNames.Where(n => !records.Secrets.ContainsKey(n)).ToList();
        if (source.Snapshot is null)
        {
            // No data was read (the date was refused or holds nothing): the plan reports that, not each name.
            missingKeys.Clear();
            missingSecrets.Clear();
        }

        var target = await _instances.GetInstanceAsync(request.TargetInstanceId, cancellationToken).ConfigureAwait(false);
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
            OperationId = request.OperationId ?? $"restore-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}",
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
        return (plan, records);
    }

    /// <summary>
    /// Reads the data the request chooses and keeps the chosen items in <paramref name="records"/>. Reads
    /// nothing when the date is not usable for a restore (the plan then reports why).
    /// </summary>
    private async Task<RestoreSource> ReadRestoreSourceAsync(BackupState state, RestoreRequest request, DateTimeOffset now, RestoreRecords records, CancellationToken cancellationToken)
    {
        InstanceSnapshot? snapshot;
        DateOnly date;
        DateTimeOffset? takenAt;
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
            if (BackupLifecycle.CheckDate(state, date, BackupOperation.Restore, now) is not null)
            {
                return new RestoreSource(date, null, takenAt);
            }

            snapshot = await _repository.ReadSnapshotAsync(manifest, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            date = request.BackupDate!.Value;
            if (BackupLifecycle.CheckDate(state, date, BackupOperation.Restore, now) is not null)
            {
                return new RestoreSource(date, null, null);
            }

            var day = await _repository.ListPointsAsync(state.Id, date, cancellationToken).ConfigureAwait(false);
            if (day.Count == 0)
            {
                return new RestoreSource(date, null, null);
            }

            if (request.DataType is { } type)
            {
                var full = type is BackupDataType.FullyBackedUpKeys or BackupDataType.FullyBackedUpSecrets;
                var pointKey = full ? await FullPointOfAsync(day, cancellationToken).ConfigureAwait(false) : day[^1];
                if (pointKey is not { } viewPoint)
                {
                    return new RestoreSource(date, null, null);
                }

                var manifest = await ReadPointAsync(viewPoint, cancellationToken).ConfigureAwait(false);
                var (keys, secrets) = await ViewRecordsAsync(day, type, cancellationToken).ConfigureAwait(false);
                snapshot = InstanceSnapshot.Create(manifest.Source, manifest.TakenAt, keys ?? [], secrets ?? []);
                takenAt = manifest.TakenAt;
            }
            else
            {
                var manifest = await ReadPointAsync(day[^1], cancellationToken).ConfigureAwait(false);
                snapshot = await _repository.ReadSnapshotAsync(manifest, cancellationToken).ConfigureAwait(false);
                takenAt = manifest.TakenAt;
            }
        }

        records.Take(snapshot, request);
        return new RestoreSource(date, snapshot, takenAt);
    }

    private sealed record RestoreSource(DateOnly Date, InstanceSnapshot? Snapshot, DateTimeOffset? TakenAt);

    /// <summary>The chosen items, by name, with their material and ciphertexts; cleared when the restore is done.</summary>
    private sealed class RestoreRecords
    {
        private readonly List<InstanceSnapshot> _read = [];

        public Dictionary<string, KeyRecord> Keys { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, SecretRecord> Secrets { get; } = new(StringComparer.Ordinal);

        public void Take(InstanceSnapshot snapshot, RestoreRequest request)
        {
            _read.Add(snapshot);
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
            foreach (var snapshot in _read)
            {
                foreach (var key in snapshot.Keys)
                {
                    foreach (var version in key.Versions)
                    {
                        version.Material?.Clear();
                    }
                }

                foreach (var secret in snapshot.Secrets)
                {
                    foreach (var version in secret.Versions)
                    {
                        version.Ciphertext.Clear();
                    }
                }
            }

            _read.Clear();
            Keys.Clear();
            Secrets.Clear();
        }
    }
}
