using System.Collections.Concurrent;
using System.Diagnostics;
using KmsBackup.Diagnostics;

namespace KmsBackup;

/// <summary>A backup whose run failed while others ran: the backup and what it threw.</summary>
/// <param name="BackupId">The backup.</param>
/// <param name="Error">What the run threw.</param>
public sealed record BackupRunFailure(string BackupId, Exception Error);

/// <summary>
/// How a backup that this client runs is doing: its last success and failure, failures in a row, how far
/// it is behind schedule, and when it expires. Failures are those this client saw (in this process);
/// the last success is read from the store.
/// </summary>
public sealed record BackupHealth
{
    /// <summary>The backup.</summary>
    public required string BackupId { get; init; }

    /// <summary>The backup's kind.</summary>
    public required BackupKind Kind { get; init; }

    /// <summary>The backup's status now.</summary>
    public required BackupStatus Status { get; init; }

    /// <summary>The bound instance's ID, if any.</summary>
    public string? InstanceId { get; init; }

    /// <summary>The latest recovery point, if any.</summary>
    public RecoveryPoint? LatestPoint { get; init; }

    /// <summary>When the latest run that committed a recovery point completed; <see langword="null"/> if none did.</summary>
    public DateTimeOffset? LastSuccessAt { get; init; }

    /// <summary>When this client last saw a run of the backup fail; <see langword="null"/> if it saw none.</summary>
    public DateTimeOffset? LastFailureAt { get; init; }

    /// <summary>The last failure as a stable name: a <see cref="BackupErrorCode"/>, or an exception type name.</summary>
    public string? LastErrorType { get; init; }

    /// <summary>The last failure's message, for a <see cref="BackupException"/> only (whose messages never hold a secret); <see langword="null"/> otherwise.</summary>
    public string? LastErrorMessage { get; init; }

    /// <summary>How many runs failed in a row since the last success this client saw; 0 after a success.</summary>
    public int ConsecutiveFailures { get; init; }

    /// <summary>What runs next and when it is (or was) due; <see langword="null"/> when nothing will run (unbound, expired, released).</summary>
    public ScheduledRun? NextRun { get; init; }

    /// <summary>How far the backup is behind its schedule: how long its next run has been due; zero when nothing is due.</summary>
    public TimeSpan Lag { get; init; }

    /// <summary>When a purchased backup expires; <see langword="null"/> for kinds that do not.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>How long until it expires (negative once expired); <see langword="null"/> for kinds that do not.</summary>
    public TimeSpan? ExpiresIn { get; init; }
}

public partial class BackupClient
{
    private readonly ConcurrentDictionary<string, RunRecord> _runRecords = new(StringComparer.Ordinal);

    /// <summary>
    /// Reports the health of every backup this client runs: each backup bound to an instance that this
    /// client's <see cref="InstanceGateway"/> serves, and any backup whose run this client saw fail.
    /// A backup whose catalog entry is damaged is reported with that damage as its last error. Reads the
    /// catalog and the latest points; changes nothing.
    /// </summary>
    /// <param name="cancellationToken">Cancels the report.</param>
    /// <returns>One entry per backup, in catalog order.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    public virtual async Task<IReadOnlyList<BackupHealth>> GetHealthAsync(CancellationToken cancellationToken = default)
    {
        var now = Clock.GetUtcNow();
        var report = new List<BackupHealth>();
        var listing = await _repository.LoadStatesAsync(cancellationToken).ConfigureAwait(false);
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

        foreach (var entry in listing.States.Select(Observe))
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
                var points = await PointsAsync(state, cancellationToken).ConfigureAwait(false);
                if (points.Count > 0)
                {
                    latest = ToPoint(await ReadPointAsync(points[^1], cancellationToken).ConfigureAwait(false), points[^1].Date);
                }

                history = await HistoryAsync(state, points, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.NotFound)
            {
                // A point was deleted while this report read it (a reset or release elsewhere): report what is certain.
                ForgetPoints(state.Id);
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
    private static bool IsRunFailure(Exception error, CancellationToken cancellationToken) => error switch
    {
        OutOfMemoryException => false,
        OperationCanceledException when cancellationToken.IsCancellationRequested => false,
        BackupException backup when backup.Code == BackupErrorCode.LeaseHeld => false,
        _ => true,
    };

    private void OnRunCommitted(string backupId, RunAttempt attempt, BackupRunResult result)
    {
        _runRecords.AddOrUpdate(backupId, static (_, _) => RunRecord.Success, static (_, old, _) => old with { ConsecutiveFailures = 0 }, 0);
        var run = attempt.Run!;
        var duration = Clock.GetElapsedTime(attempt.StartTimestamp);
        var lag = attempt.StartedAt - run.DueAt;
        _telemetry.RunCommitted(attempt.BackupKind!.Value, run, result, duration, lag);
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

    private void OnRunFailed(string backupId, RunAttempt attempt, Exception error)
    {
        var errorType = BackupTelemetry.ErrorType(error);
        var message = error is BackupException backup ? backup.Message : null;
        var now = Clock.GetUtcNow();
        var record = _runRecords.AddOrUpdate(
            backupId,
            static (_, failure) => new RunRecord(1, failure.Now, failure.Type, failure.Message),
            static (_, old, failure) => new RunRecord(old.ConsecutiveFailures + 1, failure.Now, failure.Type, failure.Message),
            (Now: now, Type: errorType, Message: message));
        _telemetry.RunFailed(attempt.BackupKind, attempt.Run?.Kind, errorType, attempt.Run is null ? null : Clock.GetElapsedTime(attempt.StartTimestamp));
        BackupTelemetry.SetFailed(attempt.Activity, error);
        Log.RunFailed(_logger, error, backupId, attempt.Run is { } run ? BackupTelemetry.RunKindName(run.Kind) : "scheduled", errorType, record.ConsecutiveFailures);
    }

    /// <summary>What this client saw of a backup's runs; <see cref="LastFailureAt"/> and the error stay after a success.</summary>
    private sealed record RunRecord(int ConsecutiveFailures, DateTimeOffset? LastFailureAt, string? LastErrorType, string? LastErrorMessage)
    {
        public static RunRecord Success { get; } = new(0, null, null, null);
    }

    /// <summary>One call of <see cref="RunIfDueAsync"/>: what it was about to run, since when, and its span.</summary>
    private sealed class RunAttempt
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

        public void Confirm(string backupId, ScheduledRun run, TimeProvider clock)
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

            _ = clock;
        }
    }
}
