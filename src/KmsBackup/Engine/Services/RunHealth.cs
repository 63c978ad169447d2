using KmsBackup.Repository;
using KmsBackup.Diagnostics;
using Microsoft.Extensions.Logging;
using System.Collections.Concurrent;
using System.Diagnostics;

namespace KmsBackup;

/// <summary>What this client saw of its runs (failures in a row, last error), reported as health together with the schedule; records each run's metrics, span and log.</summary>
internal sealed class RunHealth
{
    private readonly BackupCatalog _catalog;
    private readonly RunHistory _history;
    private readonly BackupRepository _repository;
    private readonly InstanceGateway _instances;
    private readonly BackupClientOptions _options;
    private readonly ILogger _logger;

    internal RunHealth(BackupCatalog catalog, RunHistory history)
    {
        _catalog = catalog;
        _history = history;
        _repository = catalog.Repository;
        _instances = catalog.Instances;
        _options = catalog.Options;
        _logger = catalog.Logger;
    }

    internal readonly ConcurrentDictionary<string, RunRecord> _runRecords = new(StringComparer.Ordinal);

    internal async Task<IReadOnlyList<BackupHealth>> GetHealthAsync(CancellationToken cancellationToken = default)
    {
        var now = _catalog.Clock.GetUtcNow();
        var report = new List<BackupHealth>();
        var listing = await _repository.LoadStatesAsync(cached: true, cancellationToken).ConfigureAwait(false);
        foreach (var damaged in listing.Damaged)
        {
            // Listed by what its previous entry says, with the damage as its error: health must show it, not fail.
            _runRecords.TryGetValue(damaged.BackupId, out var failed);
            report.Add(new BackupHealth
            {
                BackupId = damaged.BackupId,
                Kind = damaged.Previous?.State.Kind ?? BackupKind.Default,
                Status = damaged.Previous?.State.Status ?? BackupStatus.Disabled,
                InstanceId = damaged.Previous?.State.Instance?.Id,
                LastFailureAt = failed?.LastFailureAt ?? now,
                LastErrorType = BackupTelemetry.ErrorType(damaged.Error),
                LastErrorMessage = damaged.Error.Message,
                ConsecutiveFailures = Math.Max(1, failed?.ConsecutiveFailures ?? 0),
            });
        }

        foreach (var entry in listing.States.Select(_catalog.Observe))
        {
            var state = BackupLifecycle.Advance(entry.State, now).State;
            _runRecords.TryGetValue(state.Id, out var record);
            var served = state.Instance is { } instance &&
                await _instances.GetInstanceAsync(instance.Id, cancellationToken).ConfigureAwait(false) is not null;
            if (!served && record is null)
            {
                continue;
            }

            RecoveryPoint? latest = null;
            ScheduleHistory history;
            try
            {
                var points = await _catalog.PointsAsync(state, cancellationToken).ConfigureAwait(false);
                if (points.Count > 0)
                {
                    latest = BackupCatalog.ToPoint(await _catalog.ReadPointAsync(points[^1], cancellationToken).ConfigureAwait(false), points[^1].Date);
                }

                history = await _history.HistoryAsync(state, points, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.NotFound)
            {
                // A point was deleted while this report read it (a reset or release elsewhere): report what is certain.
                _catalog.ForgetPoints(state.Id);
                history = ScheduleHistory.Empty;
            }

            var next = BackupScheduler.Next(state, history, _options.Schedule, now).Run;
            report.Add(new BackupHealth
            {
                BackupId = state.Id,
                Kind = state.Kind,
                Status = state.Status,
                InstanceId = state.Instance?.Id,
                LatestPoint = latest,
                LastSuccessAt = latest?.CompletedAt,
                LastFailureAt = record?.LastFailureAt,
                LastErrorType = record?.LastErrorType,
                LastErrorMessage = record?.LastErrorMessage,
                ConsecutiveFailures = record?.ConsecutiveFailures ?? 0,
                NextRun = next,
                Lag = next is not null && next.IsDue(now) ? now - next.DueAt : TimeSpan.Zero,
                ExpiresAt = state.ExpiresAt,
                ExpiresIn = state.ExpiresAt - now,
            });
        }

        return report;
    }

    /// <summary>A failure of a run: anything but another writer holding the lease, or the caller's own cancellation.</summary>
    internal static bool IsRunFailure(Exception error, CancellationToken cancellationToken) => error switch
    {
        OutOfMemoryException => false,
        OperationCanceledException when cancellationToken.IsCancellationRequested => false,
        BackupException backup when backup.Code == BackupErrorCode.LeaseHeld => false,
        _ => true,
    };

    internal void OnRunCommitted(string backupId, RunAttempt attempt, BackupRunResult result)
    {
        _runRecords.AddOrUpdate(backupId, static (_, _) => RunRecord.Success, static (_, old, _) => old with { ConsecutiveFailures = 0 }, 0);
        var run = attempt.Run!;
        var duration = _catalog.Clock.GetElapsedTime(attempt.StartTimestamp);
        var lag = attempt.StartedAt - run.DueAt;
        _catalog.Telemetry.RunCommitted(attempt.BackupKind!.Value, run, result, duration, lag);
        var point = result.Point;
        if (attempt.Activity is { } activity)
        {
            activity.SetTag("kmsbackup.run.sequence", point.Sequence);
            activity.SetTag("kmsbackup.run.items", point.KeyCount + point.SecretCount);
            activity.SetTag("kmsbackup.run.bytes_written", result.BytesWritten);
        }

        Log.RunCommitted(_logger, backupId, point.Kind, point.Reason, point.Sequence, point.KeyCount, point.SecretCount, point.ChangeCount,
            result.BytesWritten, duration.TotalMilliseconds, Math.Max(0, lag.TotalSeconds));
    }

    internal void OnRunFailed(string backupId, RunAttempt attempt, Exception error)
    {
        var errorType = BackupTelemetry.ErrorType(error);
        var message = error is BackupException backup ? backup.Message : null;
        var now = _catalog.Clock.GetUtcNow();
        var record = _runRecords.AddOrUpdate(
            backupId,
            static (_, failure) => new RunRecord(1, failure.Now, failure.Type, failure.Message),
            static (_, old, failure) => new RunRecord(old.ConsecutiveFailures + 1, failure.Now, failure.Type, failure.Message),
            (Now: now, Type: errorType, Message: message));
        _catalog.Telemetry.RunFailed(attempt.BackupKind, attempt.Run?.Kind, errorType, attempt.Run is null ? null : _catalog.Clock.GetElapsedTime(attempt.StartTimestamp));
        BackupTelemetry.SetFailed(attempt.Activity, error);
        Log.RunFailed(_logger, error, backupId, attempt.Run is { } run ? BackupTelemetry.RunKindName(run.Kind) : "scheduled", errorType, record.ConsecutiveFailures);
    }

    /// <summary>What this client saw of a backup's runs; <see cref="LastFailureAt"/> and the error stay after a success.</summary>
    internal sealed record RunRecord(int ConsecutiveFailures, DateTimeOffset? LastFailureAt, string? LastErrorType, string? LastErrorMessage)
    {
        public static RunRecord Success { get; } = new(0, null, null, null);
    }

    /// <summary>One call of <see cref="BackupRunner.RunIfDueAsync(string, CatalogEntry?, CancellationToken)"/>: what it was about to run, since when, and its span.</summary>
    internal sealed class RunAttempt
    {
        public BackupKind? BackupKind { get; set; }

        public ScheduledRun? Run { get; private set; }

        public long StartTimestamp { get; private set; }

        public DateTimeOffset StartedAt { get; private set; }

        public Activity? Activity { get; private set; }

        public void Start(ScheduledRun run, TimeProvider clock)
        {
            Run = run;
            StartTimestamp = clock.GetTimestamp();
            StartedAt = clock.GetUtcNow();
        }

        public void Confirm(string backupId, ScheduledRun run)
        {
            Run = run;
            Activity = BackupTelemetry.Source.StartActivity(KmsBackupDiagnostics.BackupRunActivity);
            if (Activity is not null)
            {
                Activity.SetTag(KmsBackupDiagnostics.BackupIdTag, backupId);
                Activity.SetTag(KmsBackupDiagnostics.BackupKindTag, BackupTelemetry.KindName(BackupKind!.Value));
                Activity.SetTag(KmsBackupDiagnostics.RunKindTag, BackupTelemetry.RunKindName(run.Kind));
                Activity.SetTag(KmsBackupDiagnostics.RunReasonTag, BackupTelemetry.ReasonName(run.Reason));
                Activity.SetTag("kmsbackup.run.due_at", run.DueAt.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
            }
        }
    }
}
