using System.Globalization;

namespace KmsBackup.Tests.Schedule;

/// <summary>One run the simulated engine carried out.</summary>
/// <param name="Kind">What ran.</param>
/// <param name="Reason">Why the scheduler said it was due.</param>
/// <param name="DueAt">When the scheduler said it was due.</param>
/// <param name="DecidedAt">When the engine last asked the scheduler before starting it.</param>
/// <param name="StartedAt">When it started.</param>
/// <param name="CompletedAt">When it completed.</param>
/// <param name="Before">The history before the run.</param>
/// <param name="After">The history after it was recorded.</param>
/// <param name="ResumedFrom">The index of the downtime window after which the engine asked again and started this run, if any.</param>
internal sealed record SimulatedRun(
    BackupRunKind Kind,
    ScheduleReason Reason,
    DateTimeOffset DueAt,
    DateTimeOffset DecidedAt,
    DateTimeOffset StartedAt,
    DateTimeOffset CompletedAt,
    ScheduleHistory Before,
    ScheduleHistory After,
    int? ResumedFrom)
{
    /// <inheritdoc />
    public override string ToString() => string.Create(
        CultureInfo.InvariantCulture,
        $"{Kind} ({Reason}) due {DueAt:O} decided {DecidedAt:O} ran {StartedAt:O}..{CompletedAt:O}{(ResumedFrom is { } w ? $" after downtime #{w}" : string.Empty)}");
}

/// <summary>What a simulation did.</summary>
internal sealed class Simulation
{
    internal Simulation(
        BackupState backup, BackupSchedulePolicy policy, DateTimeOffset end,
        IReadOnlyList<(DateTimeOffset From, DateTimeOffset To)> downtimes, IReadOnlyList<SimulatedRun> runs)
    {
        Backup = backup;
        Policy = policy;
        End = end;
        Downtimes = downtimes;
        Runs = runs;
    }

    public BackupState Backup { get; }

    public BackupSchedulePolicy Policy { get; }

    /// <summary>No run due at or after this instant was started.</summary>
    public DateTimeOffset End { get; }

    public IReadOnlyList<(DateTimeOffset From, DateTimeOffset To)> Downtimes { get; }

    public IReadOnlyList<SimulatedRun> Runs { get; }

    public IEnumerable<SimulatedRun> Fulls => Runs.Where(r => r.Kind == BackupRunKind.Full);

    /// <summary>The runs, one a line, for a failure message.</summary>
    public string Describe(int around = -1)
    {
        var shown = around < 0 ? Runs : Runs.Skip(Math.Max(0, around - 5)).Take(11);
        return string.Join(Environment.NewLine, shown.Select(r => r.ToString()));
    }
}

/// <summary>
/// The engine loop in miniature: ask <see cref="BackupScheduler.Next"/>, wait until the run is due, run it for the
/// next duration (runs never overlap), record it with <see cref="BackupScheduler.Record"/>, and ask again. While the
/// host is down no run starts: when a run would start in a downtime window, the engine asks again when the window
/// ends and starts what it is told then.
/// </summary>
internal static class ScheduleSimulator
{
    private const int MaximumRuns = 200_000;

    public static Simulation Run(
        BackupState backup, BackupSchedulePolicy policy, DateTimeOffset end, RunDurations durations, DowntimePlan? downtimes = null)
    {
        var start = backup.EnabledAt ?? throw new ArgumentException("The backup is not enabled.", nameof(backup));
        var windows = (downtimes ?? DowntimePlan.None).From(start);
        var runs = new List<SimulatedRun>();
        var history = ScheduleHistory.Empty;
        var clock = start;
        int? resumedFrom = null;

        // A bound well above what a correct schedule runs (one run per interval, a few fulls a day), so that a broken
        // scheduler fails the test at once instead of running it for minutes.
        var span = end - start;
        var maximumRuns = (int)Math.Min(MaximumRuns, (2 * (span / policy.IncrementalInterval)) + (4 * span.TotalDays) + 100);
        while (runs.Count < maximumRuns)
        {
            var decision = BackupScheduler.Next(backup, history, policy, clock);
            if (decision.Run is not { } run)
            {
                throw new InvalidOperationException($"The scheduler went idle ({decision.IdleReason}) for an enabled backup at {clock:O}.");
            }

            if (runs.Count > 0 && runs[^1].Kind == run.Kind && runs[^1].DueAt == run.DueAt)
            {
                throw new InvalidOperationException($"The scheduler asked again for the run that just ran: {runs[^1]}; now {run}.");
            }

            if (run.DueAt >= end)
            {
                break;
            }

            var startAt = run.DueAt > clock ? run.DueAt : clock;
            var down = IndexOfWindowHolding(windows, startAt);
            if (down >= 0)
            {
                clock = windows[down].To;
                resumedFrom = down;
                if (clock >= end)
                {
                    break;
                }

                continue;
            }

            var completedAt = startAt + durations[runs.Count];
            var after = BackupScheduler.Record(history, run.Kind, startAt, completedAt, policy);
            runs.Add(new SimulatedRun(run.Kind, run.Reason, run.DueAt, clock, startAt, completedAt, history, after, resumedFrom));
            history = after;
            clock = completedAt;
            resumedFrom = null;
        }

        if (runs.Count >= maximumRuns)
        {
            throw new InvalidOperationException($"The simulation did not end after {runs.Count} runs: the scheduler keeps scheduling runs.");
        }

        return new Simulation(backup, policy, end, windows, runs);
    }

    private static int IndexOfWindowHolding(IReadOnlyList<(DateTimeOffset From, DateTimeOffset To)> windows, DateTimeOffset instant)
    {
        for (var i = 0; i < windows.Count; i++)
        {
            if (windows[i].From <= instant && instant < windows[i].To)
            {
                return i;
            }
        }

        return -1;
    }
}
