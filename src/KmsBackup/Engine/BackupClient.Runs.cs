using KmsBackup.Diagnostics;
using KmsBackup.Repository;

namespace KmsBackup;

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
    public virtual async Task<BackupRunReport> RunDueBackupsAsync(CancellationToken cancellationToken = default)
    {
        var (results, failures) = await RunDueCoreAsync(cancellationToken).ConfigureAwait(false);
        return new BackupRunReport(results, failures);
    }

    /// <summary>Runs every due backup, each on its own: a failure is collected and the next backup runs.</summary>
    private async Task<(List<BackupRunResult> Results, List<BackupRunFailure> Failures)> RunDueCoreAsync(CancellationToken cancellationToken)
    {
        var results = new List<BackupRunResult>();
        var failures = new List<BackupRunFailure>();

        // Every tick records this host's time in the store (unless it is too far ahead, or behind: then the
        // tick refuses). That keeps the store's time current while nothing is due, so that a lifecycle
        // deletion due in a quiet store is not mistaken for a clock jump.
        await _repository.CheckClockAsync(commit: true, cancellationToken).ConfigureAwait(false);
        var listing = await _repository.LoadStatesAsync(cancellationToken).ConfigureAwait(false);

        // A damaged catalog entry stays local: that backup is reported failed, every other backup runs.
        foreach (var damaged in listing.Damaged)
        {
            if (damaged.Previous?.State.Instance is { } previousInstance &&
                await _instances.GetInstanceAsync(previousInstance.Id, cancellationToken).ConfigureAwait(false) is null)
            {
                continue; // another host's backup
            }

            Log.CatalogEntryDamaged(_logger, damaged.BackupId, BackupTelemetry.ErrorType(damaged.Error));
            OnRunFailed(damaged.BackupId, new RunAttempt(), damaged.Error);
            failures.Add(new BackupRunFailure(damaged.BackupId, damaged.Error));
        }

        foreach (var entry in listing.States)
        {
            try
            {
                if (entry.State.Instance is not { } instance ||
                    await _instances.GetInstanceAsync(instance.Id, cancellationToken).ConfigureAwait(false) is null)
                {
                    continue;
                }

                if (await RunIfDueAsync(entry.State.Id, cancellationToken).ConfigureAwait(false) is { } result)
                {
                    results.Add(result);
                }
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.LeaseHeld)
            {
                // Another host runs this backup now.
                Log.RunSkippedLeaseHeld(_logger, entry.State.Id);
            }
            catch (Exception e) when (IsRunFailure(e, cancellationToken))
            {
                failures.Add(new BackupRunFailure(entry.State.Id, e));
            }
        }

        return (results, failures);
    }

    /// <summary>Runs the backup's next run if it is due now; otherwise does nothing.</summary>
    /// <param name="backupId">The backup.</param>
    /// <param name="cancellationToken">Cancels the run; a cancelled run commits nothing.</param>
    /// <returns>What the run did, or <see langword="null"/> when nothing was due.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.LeaseHeld"/>: another writer runs this backup now (the error names it).</exception>
    public virtual async Task<BackupRunResult?> RunIfDueAsync(string backupId, CancellationToken cancellationToken = default)
    {
        var attempt = new RunAttempt();
        try
        {
            var result = await RunIfDueCoreAsync(backupId, attempt, cancellationToken).ConfigureAwait(false);
            if (result is not null)
            {
                OnRunCommitted(backupId, attempt, result);
            }

            return result;
        }
        catch (Exception e) when (IsRunFailure(e, cancellationToken))
        {
            OnRunFailed(backupId, attempt, e);
            throw;
        }
        finally
        {
            attempt.Activity?.Dispose();
        }
    }

    /// <summary>
    /// Runs the first full of a backup just enabled (rule S1). When another writer (a scheduler that saw
    /// the new backup) holds its lease, that writer is running it: the enabling succeeded all the same.
    /// </summary>
    private async Task<BackupRunResult?> RunFirstFullAsync(string backupId, CancellationToken cancellationToken)
    {
        try
        {
            return await RunIfDueAsync(backupId, cancellationToken).ConfigureAwait(false);
        }
        catch (BackupException e) when (e.Code == BackupErrorCode.LeaseHeld)
        {
            Log.RunSkippedLeaseHeld(_logger, backupId);
            return null;
        }
    }

    private async Task<BackupRunResult?> RunIfDueCoreAsync(string backupId, RunAttempt attempt, CancellationToken cancellationToken)
    {
        // A first look without the lease, to leave alone backups with nothing due: no run, and no lifecycle
        // change by time (an expiry or a release, which the scheduled run stores and carries out).
        var stored = await LoadAsync(backupId, cancellationToken).ConfigureAwait(false);
        var entry = AsOfNow(stored);
        attempt.BackupKind = entry.State.Kind;
        List<PointKey> points;
        ScheduleHistory history;
        ScheduleDecision decision;
        bool runDue;
        try
        {
            points = await PointsAsync(entry.State, cancellationToken).ConfigureAwait(false);
            history = await HistoryAsync(entry.State, points, cancellationToken).ConfigureAwait(false);
            var now = Clock.GetUtcNow();
            decision = BackupScheduler.Next(entry.State, history, _options.Schedule, now);
            runDue = decision.Run is { } run && run.IsDue(now);
        }
        catch (BackupException e) when (e.Code == BackupErrorCode.NotFound)
        {
            // A point listed a moment ago was deleted (a reset or release by another writer): decide under the lease.
            ForgetPoints(backupId);
            decision = BackupScheduler.Next(entry.State, ScheduleHistory.Empty, _options.Schedule, Clock.GetUtcNow());
            runDue = true;
        }

        if (!runDue && entry.State == stored.State)
        {
            return null;
        }

        if (decision.Run is { } due && due.IsDue(Clock.GetUtcNow()))
        {
            attempt.Start(due, Clock);
        }

        var lease = await AcquireLeaseAsync(backupId, cancellationToken).ConfigureAwait(false);
        await using (lease.ConfigureAwait(false))
        {
            // Decide again on what is true under the lease: the state (a reset or release may have happened
            // since the first look; state changes take this lease too) and the points (another host may have
            // run the backup a moment ago).
            entry = await RefreshUnderLeaseAsync(await LoadAsync(backupId, cancellationToken).ConfigureAwait(false), lease, now: null, cancellationToken).ConfigureAwait(false);
            for (var listing = 1; ; listing++)
            {
                points = await PointsAsync(entry.State, cancellationToken).ConfigureAwait(false);
                try
                {
                    history = await HistoryAsync(entry.State, points, cancellationToken).ConfigureAwait(false);
                    break;
                }
                catch (BackupException e) when (e.Code == BackupErrorCode.NotFound && listing < 3)
                {
                    // A point listed under this lease vanished: the writer that held the lease before (whose lease
                    // lapsed, perhaps by another host's clock) found its fence broken after writing its manifest, and
                    // deleted it again. List again.
                    ForgetPoints(backupId);
                }
            }

            decision = BackupScheduler.Next(entry.State, history, _options.Schedule, Clock.GetUtcNow());
            if (decision.Run is not { } confirmed || !confirmed.IsDue(Clock.GetUtcNow()))
            {
                return null;
            }

            attempt.Confirm(backupId, confirmed, Clock);

            // A run can outlast its lease (a large full on a slow store): keep the lease renewed meanwhile,
            // and stop the run before it commits if a renewal finds that another writer took it over.
            var keeper = LeaseKeeper.Start(lease, _options.LeaseDuration, Clock, cancellationToken);
            await using (keeper.ConfigureAwait(false))
            {
                try
                {
                    return await RunAsync(entry, confirmed, points, lease, keeper.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (keeper.Lost is { } lost && !cancellationToken.IsCancellationRequested)
                {
                    throw new BackupException(lost.Refusal, lost);
                }
            }
        }
    }

    private async Task<BackupRunResult> RunAsync(CatalogEntry entry, ScheduledRun run, List<PointKey> points, StoreLease lease, CancellationToken cancellationToken)
    {
        var state = entry.State;
        var startedAt = Clock.GetUtcNow();
        var instanceId = state.Instance!.Id;
        var previous = await PreviousPointAsync(state, points, cancellationToken).ConfigureAwait(false);

        // What the run reads holds key material and secret ciphertexts (copies from the gateway, the last point's items
        // read back from the repository): all of it is zeroed when the run ends, however it ends. Only a digest is kept.
        using var held = new HeldValues();

        // Read the instance: a full always reads everything; an incremental follows the change feed when it can,
        // replaying it onto the last point's items.
        InstanceSnapshot snapshot;
        string? cursor;
        var usedFeed = false;
        if (run.Kind == BackupRunKind.Incremental && previous is { Cursor: { } since } && _instances.SupportsChangeFeed &&
            held.Hold(await _instances.ReadChangesAsync(instanceId, since, cancellationToken).ConfigureAwait(false)) is { CursorExpired: false } changes &&
            held.Hold(await PreviousItemsAsync(points[^1], cancellationToken).ConfigureAwait(false)) is { } before)
        {
            snapshot = Apply(before, changes);
            cursor = changes.Cursor;
            usedFeed = true;
        }
        else
        {
            (snapshot, cursor) = held.Hold(await _instances.ReadSnapshotAsync(instanceId, cancellationToken).ConfigureAwait(false));
        }

        if (state.Instance.Kind == InstanceKind.Hardware && snapshot.Keys.Any(k => k.HasMaterial))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.IntegrityViolation, $"instance '{instanceId}'",
                $"The hardware instance '{instanceId}' returned key material; a hardware instance's backup holds key metadata only.",
                "Fix the instance gateway: hardware keys' material stays in the HSM cluster."));
        }

        // The first point of a backup is the baseline: nothing counts as added or rotated on it.
        var digest = SnapshotDigest.Of(snapshot);
        var changesSincePrevious = previous is null ? [] : digest.ChangesSince(previous.Digest);
        var sequence = points.Count == 0 ? 1 : points[^1].Sequence + 1;
        var slot = run.Kind == BackupRunKind.Full ? startedAt : SlotOf(run, startedAt, points.Count == 0 ? null : await LastFullAsync(points, cancellationToken).ConfigureAwait(false));
        var date = state.TimeZone.DateOf(startedAt);
        var key = new PointKey(state.Id, date, sequence);

        var committed = await _repository.CommitPointAsync(
            snapshot,
            (keyRoot, secretRoot) => new PointManifest
            {
                BackupId = state.Id,
                Sequence = sequence,
                Kind = run.Kind,
                Reason = run.Reason,
                StartedAt = startedAt,
                CompletedAt = Clock.GetUtcNow(),
                Slot = slot,
                TakenAt = snapshot.TakenAt,
                Source = snapshot.Source,
                KeyRoot = keyRoot,
                SecretRoot = secretRoot,
                Changes = changesSincePrevious,
                Cursor = cursor,
            },
            date,
            token => EnsureRunStillValidAsync(entry, lease, token),
            cancellationToken).ConfigureAwait(false);

        // The fence ran right before the manifest was written; a writer paused between the two past its lease
        // could have missed a reset. Check once more, and take the point back if the backup changed under it.
        try
        {
            await EnsureRunStillValidAsync(entry, lease, cancellationToken).ConfigureAwait(false);
        }
        catch (BackupException)
        {
            await _repository.DeletePointAsync(key, CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        var manifest = committed.Manifest;
        _manifests.TryAdd(key, manifest);
        if (_pointLists.TryGetValue(state.Id, out var list))
        {
            _pointLists[state.Id] = [.. list, key];
        }

        _lastPoints[state.Id] = new CachedPoint(key, digest, cursor);

        return new BackupRunResult
        {
            Point = ToPoint(manifest, date),
            BytesWritten = committed.BytesWritten,
            ObjectsWritten = committed.ObjectsWritten,
            UsedChangeFeed = usedFeed,
        };
    }

    /// <summary>
    /// The run's fence: its lease is still held, and the backup's catalog entry is still the version the run
    /// was decided on (a reset, a release or a re-enable stores a new version, under the same lease).
    /// </summary>
    private async Task EnsureRunStillValidAsync(CatalogEntry decidedOn, StoreLease lease, CancellationToken cancellationToken)
    {
        await lease.EnsureHeldAsync(cancellationToken).ConfigureAwait(false);
        var current = await _repository.LoadStateAsync(decidedOn.State.Id, cancellationToken).ConfigureAwait(false);
        if (current?.Version != decidedOn.Version)
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.LeaseLost, $"backup '{decidedOn.State.Id}'",
                $"The state of backup '{decidedOn.State.Id}' changed while its run was in flight (version {decidedOn.Version} became {current?.Version.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}); the run committed nothing.",
                "Nothing to do: the next scheduled run decides on the new state."));
        }
    }

    /// <summary>The schedule history as the stored points tell it (the points are the truth, not a cache).</summary>
    private async Task<ScheduleHistory> HistoryAsync(BackupState state, List<PointKey> points, CancellationToken cancellationToken)
    {
        if (state.EnabledAt is not { } enabledAt)
        {
            return ScheduleHistory.Empty;
        }

        var history = ScheduleHistory.Empty;
        for (var i = points.Count - 1; i >= 0; i--)
        {
            var manifest = await ReadPointAsync(points[i], cancellationToken).ConfigureAwait(false);
            if (manifest.StartedAt < enabledAt)
            {
                break;
            }

            if (manifest.Kind == BackupRunKind.Full)
            {
                history = history with { LastFullStartedAt = manifest.StartedAt, LastFullCompletedAt = manifest.CompletedAt };
                break;
            }

            history = history.LastIncrementalSlot is null ? history with { LastIncrementalSlot = manifest.Slot } : history;
        }

        return history.LastFullStartedAt is null ? ScheduleHistory.Empty : history;
    }

    private async Task<PointManifest?> LastFullAsync(List<PointKey> points, CancellationToken cancellationToken)
    {
        for (var i = points.Count - 1; i >= 0; i--)
        {
            var manifest = await ReadPointAsync(points[i], cancellationToken).ConfigureAwait(false);
            if (manifest.Kind == BackupRunKind.Full)
            {
                return manifest;
            }
        }

        return null;
    }

    private DateTimeOffset SlotOf(ScheduledRun run, DateTimeOffset startedAt, PointManifest? lastFull)
    {
        if (lastFull is null)
        {
            return run.DueAt;
        }

        var history = BackupScheduler.Record(
            new ScheduleHistory { LastFullStartedAt = lastFull.StartedAt, LastFullCompletedAt = lastFull.CompletedAt },
            BackupRunKind.Incremental, startedAt, startedAt, _options.Schedule);
        return history.LastIncrementalSlot!.Value;
    }

    /// <summary>
    /// The last point of the backup as this client remembers it (a digest and the change feed's cursor), read from
    /// the repository without key material or secret values when the client has not seen it (a new process, or
    /// another writer's point). <see langword="null"/> when the backup has no point since it was enabled.
    /// </summary>
    private async Task<CachedPoint?> PreviousPointAsync(BackupState state, List<PointKey> points, CancellationToken cancellationToken)
    {
        if (points.Count == 0 || state.EnabledAt is not { } enabledAt)
        {
            return null;
        }

        var last = points[^1];
        if (_lastPoints.TryGetValue(state.Id, out var cached) && cached.Point == last)
        {
            return cached;
        }

        var manifest = await ReadPointAsync(last, cancellationToken).ConfigureAwait(false);
        if (manifest.StartedAt < enabledAt)
        {
            return null;
        }

        var metadata = await _repository.ReadSnapshotAsync(manifest, withValues: false, cancellationToken).ConfigureAwait(false);
        var loaded = new CachedPoint(last, SnapshotDigest.Of(metadata), manifest.Cursor);
        _lastPoints[state.Id] = loaded;
        return loaded;
    }

    /// <summary>
    /// The items of the backup's last point, key material and secret ciphertexts included, for an incremental that
    /// replays the change feed onto them (the caller zeroes them when the run ends); <see langword="null"/> when they
    /// cannot be read (damaged, or deleted meanwhile), and the run reads the instance instead.
    /// </summary>
    private async Task<InstanceSnapshot?> PreviousItemsAsync(PointKey last, CancellationToken cancellationToken)
    {
        try
        {
            return await _repository.ReadSnapshotAsync(await ReadPointAsync(last, cancellationToken).ConfigureAwait(false), withValues: true, cancellationToken).ConfigureAwait(false);
        }
        catch (BackupException e) when (e is BackupIntegrityException || e.Code == BackupErrorCode.NotFound)
        {
            return null;
        }
    }

    private static InstanceSnapshot Apply(InstanceSnapshot previous, InstanceChanges changes)
    {
        var keys = previous.Keys.ToDictionary(k => k.Name, StringComparer.Ordinal);
        foreach (var name in changes.DeletedKeys)
        {
            keys.Remove(name);
        }

        foreach (var key in changes.UpsertedKeys)
        {
            keys[key.Name] = key;
        }

        var secrets = previous.Secrets.ToDictionary(s => s.Name, StringComparer.Ordinal);
        foreach (var name in changes.DeletedSecrets)
        {
            secrets.Remove(name);
        }

        foreach (var secret in changes.UpsertedSecrets)
        {
            secrets[secret.Name] = secret;
        }

        return InstanceSnapshot.Create(previous.Source, changes.ReadAt, keys.Values, secrets.Values);
    }
}
