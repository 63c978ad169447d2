using KmsBackup.Repository;

namespace KmsBackup;

/// <summary>What a run needs to know of a backup's earlier points: the schedule history they tell, the last full, the incremental slot, the previous point's digest and items.</summary>
internal sealed class RunHistory
{
    private readonly BackupCatalog _catalog;
    private readonly BackupRepository _repository;
    private readonly BackupClientOptions _options;

    internal RunHistory(BackupCatalog catalog)
    {
        _catalog = catalog;
        _repository = catalog.Repository;
        _options = catalog.Options;
    }

    /// <summary>The schedule history as the stored points tell it (the points are the truth, not a cache).</summary>
    internal async Task<ScheduleHistory> HistoryAsync(BackupState state, List<PointKey> points, CancellationToken cancellationToken)
    {
        if (state.EnabledAt is not { } enabledAt)
        {
            return ScheduleHistory.Empty;
        }

        var history = ScheduleHistory.Empty;
        for (var i = points.Count - 1; i >= 0; i--)
        {
            var manifest = await _catalog.ReadPointAsync(points[i], cancellationToken).ConfigureAwait(false);
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

    internal async Task<PointManifest?> LastFullAsync(List<PointKey> points, CancellationToken cancellationToken)
    {
        for (var i = points.Count - 1; i >= 0; i--)
        {
            var manifest = await _catalog.ReadPointAsync(points[i], cancellationToken).ConfigureAwait(false);
            if (manifest.Kind == BackupRunKind.Full)
            {
                return manifest;
            }
        }

        return null;
    }

    internal DateTimeOffset SlotOf(ScheduledRun run, DateTimeOffset startedAt, PointManifest? lastFull)
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

    /// <summary>The manifest of the backup's last point, or <see langword="null"/> when it has none since it was enabled.</summary>
    internal async Task<PointManifest?> LastManifestAsync(BackupState state, List<PointKey> points, CancellationToken cancellationToken)
    {
        if (points.Count == 0 || state.EnabledAt is not { } enabledAt)
        {
            return null;
        }

        var manifest = await _catalog.ReadPointAsync(points[^1], cancellationToken).ConfigureAwait(false);
        return manifest.StartedAt < enabledAt ? null : manifest;
    }

    /// <summary>
    /// The last point of the backup as this client remembers it (a digest and the change feed's cursor), read from
    /// the repository without key material or secret values when the client has not seen it (a new process, or
    /// another writer's point). <see langword="null"/> when the backup has no point since it was enabled.
    /// </summary>
    internal async Task<BackupCatalog.CachedPoint?> PreviousPointAsync(BackupState state, List<PointKey> points, CancellationToken cancellationToken)
    {
        if (points.Count == 0 || state.EnabledAt is not { } enabledAt)
        {
            return null;
        }

        var last = points[^1];
        if (_catalog.LastPointIf(state.Id, last) is { } cached)
        {
            return cached;
        }

        var manifest = await _catalog.ReadPointAsync(last, cancellationToken).ConfigureAwait(false);
        if (manifest.StartedAt < enabledAt)
        {
            return null;
        }

        var metadata = await _repository.ReadSnapshotAsync(manifest, withValues: false, cancellationToken).ConfigureAwait(false);
        var loaded = new BackupCatalog.CachedPoint(last, SnapshotDigest.Of(metadata), manifest.Cursor);
        _catalog.RememberLastPoint(state.Id, loaded);
        return loaded;
    }
}
