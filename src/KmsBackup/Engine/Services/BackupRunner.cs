using KmsBackup.Diagnostics;
using KmsBackup.Repository;
using Microsoft.Extensions.Logging;

namespace KmsBackup;

/// <summary>Runs backups (rules S1–S5): decides what is due, takes the backup's lease, reads the instance (or its change feed), and commits a recovery point through the repository, fenced by the lease and the catalog version.</summary>
internal sealed class BackupRunner
{
    private readonly BackupCatalog _catalog;
    private readonly RunHistory _history;
    private readonly RunHealth _health;
    private readonly BackupRepository _repository;
    private readonly InstanceGateway _instances;
    private readonly BackupClientOptions _options;
    private readonly ILogger _logger;
    private readonly AutomaticBackups _automatic;
    private readonly HashSet<string> _refusalsLogged = new(StringComparer.Ordinal);
    private long _nextDiscoveryTicks = long.MinValue;

    internal BackupRunner(BackupCatalog catalog, RunHistory history, RunHealth health, AutomaticBackups automatic)
    {
        _catalog = catalog;
        _automatic = automatic;
        _history = history;
        _health = health;
        _repository = catalog.Repository;
        _instances = catalog.Instances;
        _options = catalog.Options;
        _logger = catalog.Logger;
    }

    internal async Task<BackupRunReport> RunDueBackupsAsync(CancellationToken cancellationToken = default)
    {
        var (results, failures) = await RunDueCoreAsync(cancellationToken).ConfigureAwait(false);
        return new BackupRunReport(results, failures);
    }

    /// <summary>Runs every due backup, each on its own: a failure is collected and the next backup runs.</summary>
    internal async Task<(List<BackupRunResult> Results, List<BackupRunFailure> Failures)> RunDueCoreAsync(CancellationToken cancellationToken)
    {
        var results = new List<BackupRunResult>();
        var failures = new List<BackupRunFailure>();

        // Every tick records this host's time in the store (unless it is too far ahead, or behind: then the
        // tick refuses). That keeps the store's time current while nothing is due, so that a lifecycle
        // deletion due in a quiet store is not mistaken for a clock jump.
        await _repository.CheckClockAsync(commit: true, cancellationToken).ConfigureAwait(false);
        var listing = await _repository.LoadStatesAsync(cached: true, cancellationToken).ConfigureAwait(false);

        // A damaged catalog entry stays local: that backup is reported failed, every other backup runs.
        foreach (var damaged in listing.Damaged)
        {
            if (damaged.Previous?.State.Instance is { } previousInstance &&
                await _instances.GetInstanceAsync(previousInstance.Id, cancellationToken).ConfigureAwait(false) is null)
            {
                continue; // another host's backup
            }

            Log.CatalogEntryDamaged(_logger, damaged.BackupId, BackupTelemetry.ErrorType(damaged.Error));
            _health.OnRunFailed(damaged.BackupId, new RunHealth.RunAttempt(), damaged.Error);
            failures.Add(new BackupRunFailure(damaged.BackupId, damaged.Error));
        }

        await DiscoverEnabledInstancesAsync(listing, results, failures, cancellationToken).ConfigureAwait(false);

        foreach (var entry in listing.States)
        {
            try
            {
                if (entry.State.Instance is not { } instance ||
                    await _instances.GetInstanceAsync(instance.Id, cancellationToken).ConfigureAwait(false) is not { } described)
                {
                    continue;
                }

                // A release the host did not report (OnInstanceReleasedAsync) is learned here, dated when the service
                // released the instance: the backup stops running and its clock (90 days for an automatic one) starts.
                if (described.ReleasedAt is { } releasedAt && entry.State.InstanceReleasedAt is null && entry.State.Status != BackupStatus.Released)
                {
                    await _catalog.ChangeStateAsync(entry.State.Id,
                        current => BackupLifecycle.Apply(current.State, new InstanceReleased(instance.Id) { At = releasedAt }, _catalog.Clock.GetUtcNow()),
                        cancellationToken).ConfigureAwait(false);
                    Log.InstanceReleaseLearned(_logger, entry.State.Id, instance.Id, releasedAt);
                    continue;
                }

                if (await RunIfDueAsync(entry.State.Id, _catalog.Observe(entry), cancellationToken).ConfigureAwait(false) is { } result)
                {
                    results.Add(result);
                }
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.LeaseHeld)
            {
                // Another host runs this backup now.
                Log.RunSkippedLeaseHeld(_logger, entry.State.Id);
            }
            catch (Exception e) when (RunHealth.IsRunFailure(e, cancellationToken))
            {
                failures.Add(new BackupRunFailure(entry.State.Id, e));
            }
        }

        return (results, failures);
    }

    /// <summary>
    /// Learns the enables the host did not report (<see cref="BackupClient.OnInstanceEnabledAsync"/>): at most once per
    /// <see cref="BackupClientOptions.InstanceDiscoveryInterval"/>, lists the gateway's instances and creates the automatic
    /// backup of each enabled, eligible instance that has none, then runs its first full. Hosts racing to do so create one
    /// backup (<see cref="AutomaticBackups"/>). A backup created so is logged (event 1011), an instance that gets none
    /// once per client (event 1010), and a listing or creation that fails (event 1012) is tried again on the next tick. It runs
    /// before the due backups, so a new backup's first full is in this tick's report.
    /// </summary>
    private async Task DiscoverEnabledInstancesAsync(CatalogListing listing, List<BackupRunResult> results, List<BackupRunFailure> failures, CancellationToken cancellationToken)
    {
        var now = _catalog.Clock.GetUtcNow();
        if (_options.InstanceDiscoveryInterval is not { } interval || now.UtcTicks < Interlocked.Read(ref _nextDiscoveryTicks))
        {
            return;
        }

        // Any automatic backup of an instance covers it, released or not: after a release (reported by the host, or learned)
        // only an explicit OnInstanceEnabledAsync creates another.
        var covered = listing.States.Select(e => e.State)
            .Concat(listing.Damaged.Where(d => d.Previous is not null).Select(d => d.Previous!.State))
            .Where(s => s.Kind == BackupKind.Automatic && s.Instance is not null)
            .Select(s => s.Instance!.Id)
            .ToHashSet(StringComparer.Ordinal);
        var created = new List<CatalogEntry>();
        try
        {
            await foreach (var instance in _instances.ListInstancesAsync(null, cancellationToken).ConfigureAwait(false))
            {
                var instanceId = instance.Info.Id;
                if (!instance.Info.IsEnabled || instance.ReleasedAt is not null || covered.Contains(instanceId))
                {
                    continue;
                }

                try
                {
                    var entry = await _automatic.CreateEntryAsync(instance, listing, cancellationToken).ConfigureAwait(false);
                    Log.InstanceEnableLearned(_logger, entry.State.Id, instanceId);
                    created.Add(entry);
                }
                catch (BackupException e) when (AutomaticBackups.IsNoAutomaticBackup(e))
                {
                    if (e.Code != BackupErrorCode.AutomaticBackupExists && RememberRefusal(instanceId))
                    {
                        _automatic.LogNoAutomaticBackup(instanceId, e);
                    }
                }
            }
        }
        catch (Exception e) when (RunHealth.IsRunFailure(e, cancellationToken))
        {
            Log.InstanceDiscoveryFailed(_logger, BackupTelemetry.ErrorType(e));
            Interlocked.Exchange(ref _nextDiscoveryTicks, now.UtcTicks);
            await RunFirstFullsAsync(created, results, failures, cancellationToken).ConfigureAwait(false);
            return;
        }

        Interlocked.Exchange(ref _nextDiscoveryTicks, (now + interval).UtcTicks);
        await RunFirstFullsAsync(created, results, failures, cancellationToken).ConfigureAwait(false);
    }

    private async Task RunFirstFullsAsync(List<CatalogEntry> created, List<BackupRunResult> results, List<BackupRunFailure> failures, CancellationToken cancellationToken)
    {
        foreach (var entry in created)
        {
            try
            {
                if (await RunIfDueAsync(entry.State.Id, _catalog.Observe(entry), cancellationToken).ConfigureAwait(false) is { } result)
                {
                    results.Add(result);
                }
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.LeaseHeld)
            {
                Log.RunSkippedLeaseHeld(_logger, entry.State.Id);
            }
            catch (Exception e) when (RunHealth.IsRunFailure(e, cancellationToken))
            {
                failures.Add(new BackupRunFailure(entry.State.Id, e));
            }
        }
    }

    /// <summary>Whether this is the first refusal for the instance this client logs (at most 10,000 remembered; then it starts over).</summary>
    private bool RememberRefusal(string instanceId)
    {
        lock (_refusalsLogged)
        {
            if (_refusalsLogged.Count >= 10_000)
            {
                _refusalsLogged.Clear();
            }

            return _refusalsLogged.Add(instanceId);
        }
    }

    internal Task<BackupRunResult?> RunIfDueAsync(string backupId, CancellationToken cancellationToken = default) =>
        RunIfDueAsync(backupId, listed: null, cancellationToken);

    /// <summary>Runs the backup if a run is due; <paramref name="listed"/> is its catalog entry as a tick just listed it (else it is loaded).</summary>
    internal async Task<BackupRunResult?> RunIfDueAsync(string backupId, CatalogEntry? listed, CancellationToken cancellationToken)
    {
        var attempt = new RunHealth.RunAttempt();
        try
        {
            var result = await RunIfDueCoreAsync(backupId, attempt, cancellationToken, listed).ConfigureAwait(false);
            if (result is not null)
            {
                _health.OnRunCommitted(backupId, attempt, result);
            }

            return result;
        }
        catch (Exception e) when (RunHealth.IsRunFailure(e, cancellationToken))
        {
            _health.OnRunFailed(backupId, attempt, e);
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
    internal async Task<BackupRunResult?> RunFirstFullAsync(string backupId, CancellationToken cancellationToken)
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

    internal async Task<BackupRunResult?> RunIfDueCoreAsync(string backupId, RunHealth.RunAttempt attempt, CancellationToken cancellationToken, CatalogEntry? listed = null)
    {
        // A first look without the lease, to leave alone backups with nothing due: no run, and no lifecycle
        // change by time (an expiry or a release, which the scheduled run stores and carries out). It works from the
        // entry the tick listed and the points this client knows, so that a backup with nothing due costs no store
        // call: points other writers committed since can only make a run look due sooner, and the decision under
        // the lease lists them.
        var stored = listed ?? await _catalog.LoadAsync(backupId, cancellationToken).ConfigureAwait(false);
        var entry = _catalog.AsOfNow(stored);
        attempt.BackupKind = entry.State.Kind;
        List<PointKey> points;
        ScheduleHistory history;
        ScheduleDecision decision;
        bool runDue;
        try
        {
            points = await _catalog.KnownPointsAsync(entry.State, cancellationToken).ConfigureAwait(false);
            history = await _history.HistoryAsync(entry.State, points, cancellationToken).ConfigureAwait(false);
            var now = _catalog.Clock.GetUtcNow();
            decision = BackupScheduler.Next(entry.State, history, _options.Schedule, now);
            runDue = decision.Run is { } run && run.IsDue(now);
        }
        catch (BackupException e) when (e.Code == BackupErrorCode.NotFound)
        {
            // A point listed a moment ago was deleted (a reset or release by another writer): decide under the lease.
            _catalog.ForgetPoints(backupId);
            decision = BackupScheduler.Next(entry.State, ScheduleHistory.Empty, _options.Schedule, _catalog.Clock.GetUtcNow());
            runDue = true;
        }

        if (!runDue && entry.State == stored.State)
        {
            return null;
        }

        if (decision.Run is { } due && due.IsDue(_catalog.Clock.GetUtcNow()))
        {
            attempt.Start(due, _catalog.Clock);
        }

        var lease = await _catalog.AcquireLeaseAsync(backupId, cancellationToken).ConfigureAwait(false);
        await using (lease.ConfigureAwait(false))
        {
            // Decide again on what is true under the lease: the state (a reset or release may have happened
            // since the first look; state changes take this lease too) and the points (another host may have
            // run the backup a moment ago).
            entry = await _catalog.RefreshUnderLeaseAsync(await _catalog.LoadAsync(backupId, cancellationToken).ConfigureAwait(false), lease, now: null, cancellationToken).ConfigureAwait(false);
            for (var listing = 1; ; listing++)
            {
                points = await _catalog.PointsAsync(entry.State, cancellationToken).ConfigureAwait(false);
                try
                {
                    history = await _history.HistoryAsync(entry.State, points, cancellationToken).ConfigureAwait(false);
                    break;
                }
                catch (BackupException e) when (e.Code == BackupErrorCode.NotFound && listing < 3)
                {
                    // A point listed under this lease vanished: the writer that held the lease before (whose lease
                    // lapsed, perhaps by another host's clock) found its fence broken after writing its manifest, and
                    // deleted it again. List again.
                    _catalog.ForgetPoints(backupId);
                }
            }

            decision = BackupScheduler.Next(entry.State, history, _options.Schedule, _catalog.Clock.GetUtcNow());
            if (decision.Run is not { } confirmed || !confirmed.IsDue(_catalog.Clock.GetUtcNow()))
            {
                return null;
            }

            attempt.Confirm(backupId, confirmed);

            // A run can outlast its lease (a large full on a slow store): keep the lease renewed meanwhile,
            // and stop the run before it commits if a renewal finds that another writer took it over.
            var keeper = LeaseKeeper.Start(lease, _options.LeaseDuration, _catalog.Clock, cancellationToken);
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

    internal async Task<BackupRunResult> RunAsync(CatalogEntry entry, ScheduledRun run, List<PointKey> points, StoreLease lease, CancellationToken cancellationToken)
    {
        var state = entry.State;
        var startedAt = _catalog.Clock.GetUtcNow();
        var instanceId = state.Instance!.Id;
        var sequence = points.Count == 0 ? 1 : points[^1].Sequence + 1;
        var slot = run.Kind == BackupRunKind.Full ? startedAt : _history.SlotOf(run, startedAt, points.Count == 0 ? null : await _history.LastFullAsync(points, cancellationToken).ConfigureAwait(false));
        var date = state.TimeZone.DateOf(startedAt);
        var key = new PointKey(state.Id, date, sequence);

        // What the run reads holds key material and secret ciphertexts (copies from the gateway): all of it is zeroed
        // when the run ends, however it ends.
        using var held = new HeldValues();

        // An incremental follows the change feed when it can, and updates the last point's trees on the changed paths:
        // its cost grows with the changes, not with the instance.
        if (run.Kind == BackupRunKind.Incremental && _instances.SupportsChangeFeed &&
            await _history.LastManifestAsync(state, points, cancellationToken).ConfigureAwait(false) is { Cursor: { } since } last &&
            held.Hold(await _instances.ReadChangesAsync(instanceId, since, cancellationToken).ConfigureAwait(false)) is { CursorExpired: false } changes)
        {
            try
            {
                return await CommitChangesAsync(entry, run, points[^1], last, changes, lease, key, startedAt, slot, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupIntegrityException e)
            {
                // The last point's trees cannot be read (damaged): read the whole instance instead, and write whole trees.
                Log.IncrementalFellBackToSnapshot(_logger, state.Id, BackupTelemetry.ErrorType(e));
            }
        }

        var previous = await _history.PreviousPointAsync(state, points, cancellationToken).ConfigureAwait(false);
        var (snapshot, cursor) = held.Hold(await _instances.ReadSnapshotAsync(instanceId, cancellationToken).ConfigureAwait(false));
        if (state.Instance.Kind == InstanceKind.Hardware && snapshot.Keys.Any(k => k.HasMaterial))
        {
            throw HardwareMaterialRefusal(instanceId);
        }

        // The first point of a backup is the baseline: nothing counts as added or rotated on it.
        var digest = SnapshotDigest.Of(snapshot);
        var changesSincePrevious = previous is null ? [] : digest.ChangesSince(previous.Digest);
        var committed = await _repository.CommitPointAsync(
            snapshot,
            (keyRoot, secretRoot) => ManifestOf(key, run, startedAt, slot, snapshot.TakenAt, snapshot.Source, keyRoot, secretRoot, changesSincePrevious, cursor),
            date,
            token => EnsureRunStillValidAsync(entry, lease, token),
            cancellationToken).ConfigureAwait(false);
        return await ConfirmCommittedAsync(entry, lease, key, committed, digest, cursor, usedFeed: false, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Commits an incremental from the change feed: the last point's trees updated with the changes. Nothing per
    /// unchanged item is read, written or kept (no digest: the manifest's changes come from the changed items' old
    /// versions, found on the way). The new trees share the last point's unchanged subtrees, so the commit checks, after
    /// its manifest, that the last point is still there.
    /// </summary>
    private async Task<BackupRunResult> CommitChangesAsync(
        CatalogEntry entry, ScheduledRun run, PointKey lastKey, PointManifest last, InstanceChanges changes, StoreLease lease,
        PointKey key, DateTimeOffset startedAt, DateTimeOffset slot, CancellationToken cancellationToken)
    {
        var state = entry.State;
        if (state.Instance!.Kind == InstanceKind.Hardware && changes.UpsertedKeys.Any(k => k.HasMaterial))
        {
            throw HardwareMaterialRefusal(state.Instance.Id);
        }

        var update = PointChanges.Of(changes);
        var committed = await _repository.CommitPointAsync(
            (writer, token) => _repository.UpdateTreesAsync(last, update, writer, token),
            state.Instance.Id,
            (keyRoot, secretRoot) => ManifestOf(key, run, startedAt, slot, changes.ReadAt, last.Source, keyRoot, secretRoot, update.ItemChanges(), changes.Cursor),
            key.Date,
            token => EnsureRunStillValidAsync(entry, lease, token),
            cancellationToken,
            afterManifest: token => _repository.ConfirmPointAsync(lastKey, last, token)).ConfigureAwait(false);
        return await ConfirmCommittedAsync(entry, lease, key, committed, digest: null, changes.Cursor, usedFeed: true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The fence ran right before the manifest was written; a writer paused between the two past its lease could have
    /// missed a reset. Checks once more, and takes the point back if the backup changed under it; then remembers it.
    /// </summary>
    private async Task<BackupRunResult> ConfirmCommittedAsync(
        CatalogEntry entry, StoreLease lease, PointKey key, CommittedPoint committed, SnapshotDigest? digest, string? cursor, bool usedFeed, CancellationToken cancellationToken)
    {
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
        _catalog.RememberCommitted(key, manifest, digest, cursor);
        return new BackupRunResult
        {
            Point = BackupCatalog.ToPoint(manifest, key.Date),
            BytesWritten = committed.BytesWritten,
            ObjectsWritten = committed.ObjectsWritten,
            UsedChangeFeed = usedFeed,
        };
    }

    /// <summary>The manifest of a run's point, completed now.</summary>
    private PointManifest ManifestOf(
        PointKey key, ScheduledRun run, DateTimeOffset startedAt, DateTimeOffset slot, DateTimeOffset takenAt, SnapshotSource source,
        TreeRoot keyRoot, TreeRoot secretRoot, IReadOnlyList<ItemChange> changes, string? cursor) => new()
        {
            BackupId = key.BackupId,
            Sequence = key.Sequence,
            Kind = run.Kind,
            Reason = run.Reason,
            StartedAt = startedAt,
            CompletedAt = _catalog.Clock.GetUtcNow(),
            Slot = slot,
            TakenAt = takenAt,
            Source = source,
            KeyRoot = keyRoot,
            SecretRoot = secretRoot,
            Changes = changes,
            Cursor = cursor,
        };

    private static BackupException HardwareMaterialRefusal(string instanceId) => new(new Refusal(
        BackupErrorCode.IntegrityViolation, $"instance '{instanceId}'",
        $"The hardware instance '{instanceId}' returned key material; a hardware instance's backup holds key metadata only.",
        "Fix the instance gateway: hardware keys' material stays in the HSM cluster."));

    /// <summary>
    /// The run's fence: its lease is still held, and the backup's catalog entry is still the version the run
    /// was decided on (a reset, a release or a re-enable stores a new version, under the same lease).
    /// </summary>
    internal async Task EnsureRunStillValidAsync(CatalogEntry decidedOn, StoreLease lease, CancellationToken cancellationToken)
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
}
