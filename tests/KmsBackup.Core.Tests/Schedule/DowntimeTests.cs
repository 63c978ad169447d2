using FsCheck.Xunit;

namespace KmsBackup.Tests.Schedule;

/// <summary>
/// Rule S4: after downtime, one full now if a daily full was missed, otherwise one incremental that covers the
/// whole gap; missed grid points are never replayed one by one.
/// </summary>
[Properties(Arbitrary = new[] { typeof(ScheduleArbitraries) })]
public class DowntimeTests
{
    private static readonly DateTimeOffset s_midnight = new(2024, 5, 1, 0, 0, 0, TimeSpan.Zero);

    [Property(MaxTest = 200)]
    [Trait("Rule", "S4")]
    public void After_downtime_exactly_one_overdue_run_starts_and_the_schedule_resumes_after_it(
        EnablingCase enabling, DayCount days, GridInterval interval, RunDurations durations, DowntimePlan downtimes)
    {
        var policy = new BackupSchedulePolicy { IncrementalInterval = interval.Value };
        var tz = enabling.Zone.TimeZoneInfo;
        var backup = enabling.Backup();
        var windows = downtimes.From(enabling.EnabledAt);
        var end = Max(enabling.EnabledAt.AddDays(days.Value), windows[^1].To.AddHours(6));

        var sim = ScheduleSimulator.Run(backup, policy, end, durations, downtimes);
        var runs = sim.Runs;

        for (var w = 0; w < windows.Count; w++)
        {
            var (t0, t1) = windows[w];
            Assert.DoesNotContain(runs, r => r.StartedAt >= t0 && r.StartedAt < t1);

            // What was due before t1 and not run by then: exactly the one run the engine starts at t1, if any.
            var overdue = runs.Where(r => r.StartedAt >= t1 && r.DueAt < t1).ToList();
            var resumed = runs.Where(r => r.ResumedFrom == w).ToList();
            Assert.True(overdue.Count <= 1, $"Downtime #{w} [{t0:O}, {t1:O}) left {overdue.Count} overdue runs:{Environment.NewLine}{string.Join(Environment.NewLine, overdue)}");
            if (resumed.Count == 0)
            {
                Assert.Empty(overdue);
                continue;
            }

            var run = Assert.Single(resumed);
            Assert.Equal(t1, run.StartedAt);
            Assert.Equal<SimulatedRun>(run.DueAt < t1 ? [run] : [], overdue);

            var before = run.Before;
            var lastFullStart = before.LastFullStartedAt!.Value;
            var fullDone = before.LastFullCompletedAt!.Value;
            var latestSlot = ZoneFacts.LatestSlotAtOrBefore(tz, policy.DailyFullTime, t1);
            var nextSlot = ZoneFacts.NextSlotAfter(tz, policy.DailyFullTime, t1);
            DateTimeOffset nextGridPoint;

            if (latestSlot > lastFullStart)
            {
                // A daily full was missed: one full now (a catch-up if late by an interval or more); after it the
                // grid starts afresh from its completion.
                Assert.Equal(BackupRunKind.Full, run.Kind);
                Assert.Equal(latestSlot, run.DueAt);
                Assert.Equal(t1 - latestSlot >= interval.Value ? ScheduleReason.CatchUpFull : ScheduleReason.DailyFull, run.Reason);
                nextGridPoint = run.CompletedAt + interval.Value;
            }
            else
            {
                // No full missed: one incremental now for the next grid point, covering the whole gap; the grid resumes
                // at the first grid point after t1.
                var expectedDue = (before.LastIncrementalSlot ?? fullDone) + interval.Value;
                Assert.Equal(BackupRunKind.Incremental, run.Kind);
                Assert.Equal(expectedDue, run.DueAt);
                Assert.Equal(t1 - expectedDue >= interval.Value ? ScheduleReason.CatchUpIncremental : ScheduleReason.Incremental, run.Reason);
                nextGridPoint = fullDone + (interval.Value * (Math.Floor((t1 - fullDone) / interval.Value) + 1));
            }

            // What the engine is told when the overdue run completes: the next grid point, or the next day's full if
            // that comes first (or has come while the overdue run ran). Never again something due before t1, never a catch-up.
            var next = BackupScheduler.Next(backup, run.After, policy, run.CompletedAt).Run!;
            var expectedNext = nextSlot <= run.CompletedAt || nextGridPoint >= nextSlot
                ? (BackupRunKind.Full, nextSlot, ScheduleReason.DailyFull)
                : (BackupRunKind.Incremental, nextGridPoint, ScheduleReason.Incremental);
            Assert.True(
                (next.Kind, next.DueAt, next.Reason) == expectedNext,
                $"After the overdue {run}, expected {expectedNext}, got {next}");
            Assert.True(next.DueAt > t1);
        }

        // Without downtime in front of it, a run is never a catch-up.
        Assert.All(
            runs.Where(r => r.ResumedFrom is null),
            r => Assert.False(r.Reason is ScheduleReason.CatchUpFull or ScheduleReason.CatchUpIncremental, r.ToString()));
    }

    [Fact]
    [Trait("Rule", "S4")]
    public void Downtime_of_half_an_hour_gives_one_incremental_then_the_grid_resumes()
    {
        var (backup, history, policy) = RunningSinceMidnight();
        history = BackupScheduler.Record(history, BackupRunKind.Incremental, At(10, 0), At(10, 1), policy);

        // Down from 10:02 to 10:31: grid points 10:05 ... 10:30 were missed.
        var atRestart = BackupScheduler.Next(backup, history, policy, At(10, 31)).Run!;
        history = BackupScheduler.Record(history, atRestart.Kind, At(10, 31), At(10, 32), policy);
        var following = BackupScheduler.Next(backup, history, policy, At(10, 32)).Run!;

        Assert.Equal((BackupRunKind.Incremental, At(10, 5), ScheduleReason.CatchUpIncremental), (atRestart.Kind, atRestart.DueAt, atRestart.Reason));
        Assert.Equal(At(10, 30), history.LastIncrementalSlot);
        Assert.Equal((BackupRunKind.Incremental, At(10, 35), ScheduleReason.Incremental), (following.Kind, following.DueAt, following.Reason));
    }

    [Fact]
    [Trait("Rule", "S4")]
    public void A_short_delay_past_one_grid_point_is_a_late_incremental_not_a_catch_up()
    {
        var (backup, history, policy) = RunningSinceMidnight();
        history = BackupScheduler.Record(history, BackupRunKind.Incremental, At(10, 0), At(10, 1), policy);

        var atRestart = BackupScheduler.Next(backup, history, policy, At(10, 7)).Run!;
        history = BackupScheduler.Record(history, atRestart.Kind, At(10, 7), At(10, 8), policy);
        var following = BackupScheduler.Next(backup, history, policy, At(10, 8)).Run!;

        Assert.Equal((BackupRunKind.Incremental, At(10, 5), ScheduleReason.Incremental), (atRestart.Kind, atRestart.DueAt, atRestart.Reason));
        Assert.Equal(At(10, 10), following.DueAt);
    }

    [Fact]
    [Trait("Rule", "S4")]
    public void Downtime_across_midnight_gives_one_catch_up_full_then_incrementals_from_its_completion()
    {
        var (backup, history, policy) = RunningSinceMidnight();
        history = BackupScheduler.Record(history, BackupRunKind.Incremental, At(23, 50), At(23, 51), policy);
        var restart = At(26, 0); // 02:00 the next day

        var atRestart = BackupScheduler.Next(backup, history, policy, restart).Run!;
        history = BackupScheduler.Record(history, atRestart.Kind, restart, restart.AddMinutes(3), policy);
        var following = BackupScheduler.Next(backup, history, policy, restart.AddMinutes(3)).Run!;

        Assert.Equal((BackupRunKind.Full, At(24, 0), ScheduleReason.CatchUpFull), (atRestart.Kind, atRestart.DueAt, atRestart.Reason));
        Assert.Equal((BackupRunKind.Incremental, restart.AddMinutes(8), ScheduleReason.Incremental), (following.Kind, following.DueAt, following.Reason));
    }

    [Fact]
    [Trait("Rule", "S4")]
    public void Three_days_down_give_one_full_for_the_latest_day_not_three()
    {
        var (backup, history, policy) = RunningSinceMidnight();
        var restart = s_midnight.AddDays(3).AddHours(9);

        var atRestart = BackupScheduler.Next(backup, history, policy, restart).Run!;
        history = BackupScheduler.Record(history, atRestart.Kind, restart, restart.AddMinutes(1), policy);
        var following = BackupScheduler.Next(backup, history, policy, restart.AddMinutes(1)).Run!;

        Assert.Equal((BackupRunKind.Full, s_midnight.AddDays(3), ScheduleReason.CatchUpFull), (atRestart.Kind, atRestart.DueAt, atRestart.Reason));
        Assert.Equal((BackupRunKind.Incremental, restart.AddMinutes(6)), (following.Kind, following.DueAt));
    }

    [Fact]
    [Trait("Rule", "S4")]
    public void A_full_started_less_than_an_interval_late_is_a_daily_full()
    {
        var (backup, history, policy) = RunningSinceMidnight();
        history = BackupScheduler.Record(history, BackupRunKind.Incremental, At(23, 55), At(23, 56), policy);

        var run = BackupScheduler.Next(backup, history, policy, At(24, 4).AddSeconds(59)).Run!;
        var later = BackupScheduler.Next(backup, history, policy, At(24, 5)).Run!;

        Assert.Equal((BackupRunKind.Full, ScheduleReason.DailyFull), (run.Kind, run.Reason));
        Assert.Equal((BackupRunKind.Full, ScheduleReason.CatchUpFull), (later.Kind, later.Reason));
    }

    [Fact]
    [Trait("Rule", "S4")]
    [Trait("Rule", "S1")]
    public void A_first_full_delayed_past_midnight_is_the_only_full_and_the_only_overdue_run()
    {
        var enabledAt = At(23, 0);
        var backup = Backups.Enabled(BackupKind.Default, BackupTimeZone.Utc, enabledAt);
        var policy = BackupSchedulePolicy.Default;
        var restart = At(25, 0); // down from enabling until 01:00 the next day

        var first = BackupScheduler.Next(backup, ScheduleHistory.Empty, policy, restart).Run!;
        var history = BackupScheduler.Record(ScheduleHistory.Empty, first.Kind, restart, restart.AddMinutes(2), policy);
        var following = BackupScheduler.Next(backup, history, policy, restart.AddMinutes(2)).Run!;

        Assert.Equal((BackupRunKind.Full, enabledAt, ScheduleReason.FirstFull), (first.Kind, first.DueAt, first.Reason));
        Assert.Equal((BackupRunKind.Incremental, restart.AddMinutes(7), ScheduleReason.Incremental), (following.Kind, following.DueAt, following.Reason));
    }

    [Fact]
    [Trait("Rule", "S4")]
    public void A_simulated_day_with_two_outages_has_one_overdue_run_after_each()
    {
        var enabledAt = new DateTimeOffset(2026, 10, 24, 12, 0, 0, TimeSpan.FromHours(2));
        var zone = BackupTimeZone.FromId("Europe/Berlin");
        var plan = new DowntimePlan(
        [
            new Downtime(TimeSpan.FromHours(2), TimeSpan.FromMinutes(47)), // 14:00–14:47: incrementals missed
            new Downtime(TimeSpan.FromHours(8) + TimeSpan.FromMinutes(13), TimeSpan.FromHours(3)), // 23:00–01:00 (25-hour night): the full missed
        ]);

        var sim = ScheduleSimulator.Run(Backups.Enabled(BackupKind.Default, zone, enabledAt), BackupSchedulePolicy.Default, enabledAt.AddDays(1), RunDurations.Instant, plan);

        var resumed = sim.Runs.Where(r => r.ResumedFrom is not null).ToList();
        Assert.Equal(2, resumed.Count);
        Assert.Equal((BackupRunKind.Incremental, ScheduleReason.CatchUpIncremental), (resumed[0].Kind, resumed[0].Reason));
        Assert.Equal((BackupRunKind.Full, ScheduleReason.CatchUpFull), (resumed[1].Kind, resumed[1].Reason));
        Assert.Equal(new DateTimeOffset(2026, 10, 25, 0, 0, 0, TimeSpan.FromHours(2)), resumed[1].DueAt);
        Assert.Equal(sim.Downtimes[1].To, resumed[1].StartedAt);
        Assert.Equal(2, sim.Runs.Count(r => r.StartedAt > r.DueAt));
    }

    private static (BackupState Backup, ScheduleHistory History, BackupSchedulePolicy Policy) RunningSinceMidnight()
    {
        var policy = BackupSchedulePolicy.Default;
        var backup = Backups.Enabled(BackupKind.Default, BackupTimeZone.Utc, s_midnight);
        var history = BackupScheduler.Record(ScheduleHistory.Empty, BackupRunKind.Full, s_midnight, s_midnight, policy);
        return (backup, history, policy);
    }

    /// <summary>An instant on 2024-05-01 (UTC); hours past 23 run into the next day.</summary>
    private static DateTimeOffset At(int hours, int minutes) => s_midnight.AddHours(hours).AddMinutes(minutes);

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;
}
