using System.Globalization;

namespace KmsBackup.Testing.Engine;

// The oracle: what must hold of the store at any moment, checked with a fresh client (no caches) on the true clock
// while the other operations are parked wherever the scheduler left them.
internal sealed partial class InterleavingSchedule
{

    private async Task CheckAsync(string when)
    {
        if (!_changed)
        {
            return;
        }

        _changed = false;
        try
        {
            await CheckCoreAsync(when);
        }
        catch (Exception e) when (_failure is null)
        {
            Fail(e is BackupIntegrityException ? "integrity" : "check failed", $"{when}: reading the store failed: {e}");
        }
    }

    private async Task CheckCoreAsync(string when)
    {
        var now = _clock.GetUtcNow();
        using var reader = await BackupClient.OpenAsync(_createStore(_clock), _keys, _instances, hsmClusters: null, new BackupClientOptions { TimeProvider = _clock, LeaseHolder = "oracle" });
        var store = _createStore(_clock);

        // verify is clean apart from garbage (unreferenced objects and packs).
        var verification = await reader.VerifyAsync();
        if (!verification.IsClean)
        {
            Fail("verify", $"{when}: verify found {verification.Problems.Count} problems: {string.Join("; ", verification.Problems.Take(5).Select(p => $"{p.Item}: {p.Description}"))}");
            return;
        }

        var listed = new Dictionary<(string BackupId, DateOnly Date), IReadOnlyList<RecoveryPoint>>();
        foreach (var backup in _backups)
        {
            var details = await reader.GetBackupAsync(Owner, backup.Id);
            backup.Details = details;

            // A release deletes all data: only the true clock may bring it (a host whose clock is ahead must not).
            if (details.Status == BackupStatus.Released && (details.ReleaseDueAt is not { } due || due > now))
            {
                Fail("released early", $"{when}: {backup.Alias} is Released at {now:MM-dd HH:mm}, though its release is due {details.ReleaseDueAt:yyyy-MM-dd HH:mm}");
                return;
            }

            var stored = await StoredPointsAsync(store, backup.Id);

            // A reset backup shows nothing, and a run that raced the reset must not have put data back. A reset
            // that stored its decision and stopped deleting (its lease lapsed) may leave points it would have
            // deleted: those are invisible and prune removes them. Any other point is data put back.
            // A point no one reported (its pass was killed before it reported, or its writer took it back) is a
            // leftover too when a reset of the backup succeeded.
            var putBack = stored.Where(p =>
            {
                var reported = _committed.Where(c => c.Point.BackupId == backup.Id && c.Point.Date == p.Date && c.Point.Sequence == p.Sequence).ToList();
                return reported.Count == 0
                    ? !_resets.Any(r => r.Backup == backup && r.Succeeded)
                    : !reported.Any(c => _resets.Any(r => r.Backup == backup && r.Succeeded && r.MayHaveDeletedAfter(c.StartStep)));
            }).ToList();
            if (details.Status == BackupStatus.Disabled && (putBack.Count > 0 || details.LatestPoint is not null) && !ResetUnsettled(backup))
            {
                Fail("data after reset", $"{when}: {backup.Alias} is Disabled (reset) but shows {details.LatestPoint?.Sequence.ToString(CultureInfo.InvariantCulture) ?? "no"} latest point and the store holds points no reset left: {string.Join(", ", putBack.Select(p => $"{p.Date:yyyy-MM-dd}/#{p.Sequence}"))}");
                return;
            }

            // An enabled backup shows nothing from before it was enabled (data of an earlier binding is deleted by its
            // reset). Told by the instance's read time, which is on the true clock: only while every host's clock is right.
            if (!_clocksWereWrong && details.Status == BackupStatus.Enabled && details.EnabledAt is { } enabledAt && details.QueryableRange is { } window)
            {
                foreach (var date in stored.Select(p => p.Date).Distinct().Where(d => d >= window.Start && d <= window.End))
                {
                    var points = await reader.ListRecoveryPointsAsync(Owner, backup.Id, date);
                    listed[(backup.Id, date)] = points;
                    if (points.FirstOrDefault(p => p.TakenAt < enabledAt) is { } stale)
                    {
                        Fail("data before enabling", $"{when}: {backup.Alias} was enabled at {enabledAt:MM-dd HH:mm:ss} but lists {Describe(stale)} (a point of an earlier binding)");
                        return;
                    }
                }
            }
        }

        foreach (var committed in _committed)
        {
            if (!await CheckCommittedAsync(reader, store, committed, listed, now, when))
            {
                return;
            }
        }
    }

    /// <summary>Checks one reported point; false when it failed the schedule.</summary>
    private async Task<bool> CheckCommittedAsync(
        BackupClient reader, BackupStore store, CommittedPoint committed,
        Dictionary<(string BackupId, DateOnly Date), IReadOnlyList<RecoveryPoint>> listed, DateTimeOffset now, string when)
    {
        var point = committed.Point;
        var backup = _backups.Single(b => b.Id == point.BackupId);
        var details = backup.Details!;
        if (!IsExpected(committed, backup, details, now))
        {
            return true;
        }

        var viewable = details.Status == BackupStatus.Enabled && details.QueryableRange is { } window && window.Contains(point.Date);
        if (!viewable)
        {
            // Kept but not viewable now (a date after today by the true clock, or one only extending reveals): it must still be stored.
            if (await store.TryReadAsync(PointKey(point)) is null)
            {
                Fail(LostKind(backup, committed), $"{when}: {committed} is gone (the store has no {PointKey(point)}; {backup.Alias} is {details.Status})");
                return false;
            }

            return true;
        }

        if (!listed.TryGetValue((point.BackupId, point.Date), out var points))
        {
            points = await reader.ListRecoveryPointsAsync(Owner, point.BackupId, point.Date);
            listed[(point.BackupId, point.Date)] = points;
        }

        if (!points.Any(p => p.Sequence == point.Sequence && p.CompletedAt == point.CompletedAt && p.TakenAt == point.TakenAt))
        {
            Fail(LostKind(backup, committed), $"{when}: {committed} is gone; {point.Date:yyyy-MM-dd} lists {(points.Count == 0 ? "nothing" : string.Join(", ", points.Select(p => $"#{p.Sequence} (completed {p.CompletedAt:MM-dd HH:mm:ss})")))}");
            return false;
        }

        if (committed.ReadBack)
        {
            // Read back whole once: the point is listed with the same sequence and times, and verify checks every
            // object and reference, so what it holds cannot have changed since.
            return true;
        }

        committed.ReadBack = true;
        RecoveryPoint found;
        InstanceSnapshot snapshot;
        try
        {
            (found, snapshot) = await reader.GetStateAtAsync(Owner, point.BackupId, point.TakenAt);
        }
        catch (BackupException e) when (e.Code == BackupErrorCode.DateOutsideWindow || e.Code == BackupErrorCode.DateBeforeEnabled || e.Code == BackupErrorCode.DateInFuture)
        {
            // The point that answers is another one, of a date not viewable (see below).
            return true;
        }
        catch (BackupException e) when (e.Code == BackupErrorCode.NotFound && _clocksWereWrong)
        {
            // A point-in-time read looks for the point by the date of the instance's read time; a host whose clock
            // was ahead of the instance's dated its point later than that, and the read does not look there.
            return true;
        }

        if (found.Sequence != point.Sequence || found.Date != point.Date)
        {
            // Another point taken at the same instant (or later in sequence but earlier in time, from a host whose
            // clock was behind) answers the read: this point's content cannot be read alone through the client.
            return true;
        }

        var marker = snapshot.FindKey(InterleavingInstances.MarkerName);
        var version = InterleavingInstances.VersionOfMarker(marker);
        var source = snapshot.Source.InstanceId;
        if (version < 0)
        {
            Fail("content", $"{when}: {committed} holds no marker key: it is not a snapshot of an instance");
            return false;
        }

        if (!_instances.WasCurrentBetween(source, version, committed.StartStep, committed.EndStep))
        {
            Fail("content", $"{when}: {committed} holds {source} v{version}, which the instance did not hold while the operation ran");
            return false;
        }

        committed.Content = (source, version);
        var expected = _instances.ContentAt(source, version)!.Value;
        var difference = Difference(expected.Keys, snapshot.Keys, k => k.Name) ?? Difference(expected.Secrets, snapshot.Secrets, s => s.Name);
        if (difference is not null)
        {
            Fail("content", $"{when}: {committed} should hold exactly {source} v{version}, but {difference}");
            return false;
        }

        return true;
    }

    /// <summary>
    /// Whether a reported point must be readable now: its backup is enabled and was not reset after the point
    /// committed, and retention on the true clock keeps its date. Reset after it committed: a reset of the backup
    /// that ended after the point's run began and did not refuse before deleting, or (while every clock is right)
    /// the point completed before the backup's current enabling. Only a reset that went through counts, as the issue's
    /// oracle says: one that succeeded, or one that died after storing its decision (a reset is done once its state is
    /// stored; deleting its points is clean-up), which the oracle knows from an enable of the backup begun after the
    /// reset began (an enabled backup cannot be enabled). A reset that failed, was killed before storing, or still runs
    /// excuses no lost point. Retention is judged from the backup's enabling, not from a status a host with a wrong
    /// clock stored (an expiry or release the true clock has not reached deletes nothing).
    /// </summary>
    private bool IsExpected(CommittedPoint committed, Backup backup, BackupDetails details, DateTimeOffset now)
    {
        lock (_resets)
        {
            if (_resets.Any(r => r.Backup == backup && (r.Succeeded || backup.EnableStartedAfter(r.StartStep)) && r.MayHaveDeletedAfter(committed.StartStep)))
            {
                return false;
            }
        }

        if (details.Status == BackupStatus.Disabled || details.EnabledAt is not { } enabledAt || details.Instance is not { } instance ||
            (!_clocksWereWrong && committed.Point.CompletedAt < enabledAt))
        {
            return false;
        }

        var state = backup.Kind == BackupKind.Purchased
            ? BackupLifecycle.Purchase("order", new PurchaseOrder(Region, 7, PurchaseTerm.FromYears(1)), BackupTimeZone.Utc, details.CreatedAt).GetBackupsOrThrow()[0]
            : BackupLifecycle.CreateDefault(backup.Id, BackupTimeZone.Utc, details.CreatedAt);
        var info = new InstanceInfo(instance.Id, InstanceKind.Software, Region, s_start.AddDays(-30));
        state = BackupLifecycle.Apply(state, new EnableBackup(info, InstanceKind.Software), enabledAt).GetStateOrThrow();
        if (details.ViewableDays > state.ViewableDays)
        {
            state = BackupLifecycle.Apply(state, new ExtendViewableDays(details.ViewableDays), enabledAt).GetStateOrThrow();
        }

        return RetentionPolicy.Evaluate(state, [committed.Point.Date], now).Keep.Count == 1;
    }

    /// <summary>How a lost point is reported: apart, when a reset of its backup that did not go through (failed, killed or still running) may have deleted it.</summary>
    private string LostKind(Backup backup, CommittedPoint committed)
    {
        lock (_resets)
        {
            return _resets.Any(r => r.Backup == backup && !r.Succeeded && r.MayHaveDeletedAfter(committed.StartStep))
                ? "reset half done: its enabled backup lost points"
                : "committed point lost";
        }
    }

    /// <summary>Whether leftovers of a reset may remain: a reset of the backup runs, or the last one that may have deleted did not finish.</summary>
    private bool ResetUnsettled(Backup backup)
    {
        lock (_resets)
        {
            var last = _resets.LastOrDefault(r => r.Backup == backup && r.MayHaveDeletedAfter(0));
            return last is not null && (last.Running || !last.Succeeded);
        }
    }

    private static async Task<List<(DateOnly Date, long Sequence)>> StoredPointsAsync(BackupStore store, string backupId)
    {
        var points = new List<(DateOnly, long)>();
        await foreach (var entry in store.ListAsync($"points/{backupId}/"))
        {
            var parts = entry.Key.Split('/');
            if (parts.Length == 4 &&
                DateOnly.TryParseExact(parts[2], "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date) &&
                long.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out var sequence))
            {
                points.Add((date, sequence));
            }
        }

        return points;
    }

    private static string PointKey(RecoveryPoint point) =>
        Invariant($"points/{point.BackupId}/{point.Date:yyyy-MM-dd}/{point.Sequence:D12}");

    private static string? Difference<T>(IReadOnlyList<T> expected, IReadOnlyList<T> actual, Func<T, string> name)
        where T : IEquatable<T>
    {
        var want = expected.ToDictionary(name, StringComparer.Ordinal);
        var have = actual.ToDictionary(name, StringComparer.Ordinal);
        if (want.Keys.Except(have.Keys).FirstOrDefault() is { } missing)
        {
            return $"'{missing}' is missing";
        }

        if (have.Keys.Except(want.Keys).FirstOrDefault() is { } extra)
        {
            return $"'{extra}' should not be there";
        }

        return want.FirstOrDefault(w => !w.Value.Equals(have[w.Key])) is { Key: { } changed } ? $"'{changed}' differs ({have[changed]} instead of {want[changed]})" : null;
    }
}
