using System.Globalization;
using FsCheck.Xunit;

namespace KmsBackup.Tests.Schedule;

/// <summary>Rule S3: an incremental every interval (5 minutes) after each full completes, until the next full.</summary>
[Properties(Arbitrary = new[] { typeof(ScheduleArbitraries) })]
public class IncrementalTests
{
    private static readonly DateTimeOffset s_midnight = new(2024, 5, 1, 0, 0, 0, TimeSpan.Zero);

    [Property(MaxTest = 100)]
    [Trait("Rule", "S3")]
    public void Incrementals_start_at_each_grid_point_after_the_full_completes_until_the_next_slot(
        EnablingCase enabling, DayCount days, GridInterval interval, RunDurations durations)
    {
        var policy = new BackupSchedulePolicy { IncrementalInterval = interval.Value };
        var tz = enabling.Zone.TimeZoneInfo;

        var sim = ScheduleSimulator.Run(enabling.Backup(), policy, enabling.EnabledAt.AddDays(days.Value), durations);

        var runs = sim.Runs;
        var i = 0;
        while (i < runs.Count)
        {
            var full = runs[i];
            Assert.Equal(BackupRunKind.Full, full.Kind);
            var nextSlot = ZoneFacts.NextSlotAfter(tz, policy.DailyFullTime, full.StartedAt);

            var j = i + 1;
            while (j < runs.Count && runs[j].Kind == BackupRunKind.Incremental)
            {
                j++;
            }

            var incrementals = runs.Skip(i + 1).Take(j - i - 1).ToList();
            var expected = new List<DateTimeOffset>();
            for (var due = full.CompletedAt + interval.Value; due < nextSlot && due < sim.End; due += interval.Value)
            {
                expected.Add(due);
            }

            Assert.True(
                expected.SequenceEqual(incrementals.Select(r => r.StartedAt)),
                $"After {full}: expected {expected.Count} incrementals from {expected.FirstOrDefault():O} every {interval.Value:c} before {nextSlot:O}, got:{Environment.NewLine}{sim.Describe(i)}");
            Assert.All(incrementals, r => Assert.Equal((r.StartedAt, ScheduleReason.Incremental), (r.DueAt, r.Reason)));

            if (j < runs.Count)
            {
                Assert.Equal(nextSlot, runs[j].DueAt);
                if (full.Reason == ScheduleReason.DailyFull)
                {
                    // A whole day between two daily fulls: its length (23, 24 or 25 hours...) decides the count.
                    var dayLength = ZoneFacts.DayLength(tz, ZoneFacts.DateOf(tz, full.DueAt));
                    var count = (int)Math.Ceiling((dayLength - (full.CompletedAt - full.DueAt)) / interval.Value) - 1;
                    Assert.Equal(count, incrementals.Count);
                }
            }
            else
            {
                Assert.True(nextSlot >= sim.End, $"The simulation ended before the slot {nextSlot:O} though it ran until {sim.End:O}");
            }

            i = j;
        }
    }

    [Property(MaxTest = 100)]
    [Trait("Rule", "S2")]
    [Trait("Rule", "S3")]
    public void The_decision_does_not_change_while_the_engine_waits_for_it(EnablingCase enabling, GridInterval interval, RunDurations durations)
    {
        var policy = new BackupSchedulePolicy { IncrementalInterval = interval.Value };
        var backup = enabling.Backup();

        var sim = ScheduleSimulator.Run(backup, policy, enabling.EnabledAt.AddDays(2), durations);

        foreach (var run in sim.Runs.Where(r => r.DueAt > r.DecidedAt))
        {
            var halfway = run.DecidedAt + ((run.DueAt - run.DecidedAt) / 2);
            foreach (var now in new[] { halfway, run.DueAt })
            {
                var again = BackupScheduler.Next(backup, run.Before, policy, now).Run!;
                Assert.True(
                    (again.Kind, again.DueAt, again.Reason) == (run.Kind, run.DueAt, run.Reason),
                    $"Asked at {run.DecidedAt:O}: {run}; asked again at {now:O}: {again}");
            }
        }
    }

    [Theory]
    [Trait("Rule", "S3")]
    [InlineData("UTC", "2026-03-29", 287)]
    [InlineData("Europe/Berlin", "2026-03-28", 287)]
    [InlineData("Europe/Berlin", "2026-03-29", 275)]
    [InlineData("Europe/Berlin", "2026-10-25", 299)]
    [InlineData("America/New_York", "2026-03-08", 275)]
    [InlineData("America/New_York", "2026-11-01", 299)]
    [InlineData("Asia/Kolkata", "2026-03-29", 287)]
    public void A_day_holds_one_incremental_per_5_minutes_of_its_length_after_the_full(string zoneId, string date, int expected)
    {
        var day = DateOnly.Parse(date, CultureInfo.InvariantCulture);
        Assert.Equal(expected, IncrementalsOnDay(BackupTimeZone.FromId(zoneId), day));
    }

    [Theory]
    [Trait("Rule", "S3")]
    [InlineData("America/Santiago")]
    [InlineData("America/Havana")]
    [InlineData("Australia/Lord_Howe")]
    public void Short_and_long_days_found_by_TimeZoneInfo_hold_fewer_and_more_incrementals(string zoneId)
    {
        var zone = BackupTimeZone.FromId(zoneId);
        foreach (var year in new[] { 2024, 2026, 2029 })
        {
            foreach (var (day, length) in ZoneFacts.UnusualDays(zoneId, year))
            {
                // 23 h: 275, 25 h: 299, 23.5 h (Lord Howe): 281, 24.5 h: 293.
                var expected = (int)(length / TimeSpan.FromMinutes(5)) - 1;
                Assert.True(expected is 275 or 299 or 281 or 293, $"{zoneId} {day:O} is {length} long");
                Assert.Equal(expected, IncrementalsOnDay(zone, day));
            }
        }
    }

    [Fact]
    [Trait("Rule", "S3")]
    public void The_grid_starts_when_the_full_completes_not_when_it_starts()
    {
        var policy = BackupSchedulePolicy.Default;
        var backup = Backups.Enabled(BackupKind.Default, BackupTimeZone.Utc, s_midnight);
        var completed = s_midnight.AddMinutes(3).AddSeconds(20);
        var history = BackupScheduler.Record(ScheduleHistory.Empty, BackupRunKind.Full, s_midnight, completed, policy);

        var dues = new List<DateTimeOffset>();
        var now = completed;
        while (true)
        {
            var run = BackupScheduler.Next(backup, history, policy, now).Run!;
            if (run.Kind == BackupRunKind.Full)
            {
                Assert.Equal(s_midnight.AddDays(1), run.DueAt);
                break;
            }

            Assert.True(dues.Count < 288 && (dues.Count == 0 || run.DueAt > dues[^1]), $"Incremental #{dues.Count + 1} due {run.DueAt:O}");

            Assert.Equal(ScheduleReason.Incremental, run.Reason);
            dues.Add(run.DueAt);
            history = BackupScheduler.Record(history, run.Kind, run.DueAt, run.DueAt.AddSeconds(40), policy);
            now = run.DueAt.AddSeconds(40);
        }

        Assert.Equal(287, dues.Count);
        Assert.Equal(completed.AddMinutes(5), dues[0]);
        Assert.Equal(new DateTimeOffset(2024, 5, 1, 23, 58, 20, TimeSpan.Zero), dues[^1]);
        Assert.All(dues.Zip(dues.Skip(1)), pair => Assert.Equal(TimeSpan.FromMinutes(5), pair.Second - pair.First));
    }

    [Fact]
    [Trait("Rule", "S3")]
    public void A_grid_point_that_falls_exactly_on_the_next_slot_is_the_full_not_an_incremental()
    {
        var policy = BackupSchedulePolicy.Default;
        var backup = Backups.Enabled(BackupKind.Default, BackupTimeZone.Utc, s_midnight);
        var history = BackupScheduler.Record(ScheduleHistory.Empty, BackupRunKind.Full, s_midnight, s_midnight, policy);
        var lastIncremental = s_midnight.AddDays(1).AddMinutes(-5);
        history = BackupScheduler.Record(history, BackupRunKind.Incremental, lastIncremental, lastIncremental, policy);

        var run = BackupScheduler.Next(backup, history, policy, lastIncremental).Run!;

        Assert.Equal((BackupRunKind.Full, s_midnight.AddDays(1), ScheduleReason.DailyFull), (run.Kind, run.DueAt, run.Reason));
    }

    [Theory]
    [Trait("Rule", "S3")]
    [InlineData(0, 5)] // on time: counts for +5 min
    [InlineData(30, 5)] // 30 s late: still +5 min
    [InlineData(299, 5)]
    [InlineData(300, 10)] // started at +10 min: counts for +10 min
    [InlineData(-120, 5)] // started early (+3 min): counts for the first grid point
    public void Record_counts_an_incremental_for_the_latest_grid_point_at_or_before_its_start(int secondsAfterFirstGridPoint, int expectedMinutes)
    {
        var policy = BackupSchedulePolicy.Default;
        var fullDone = s_midnight.AddMinutes(2);
        var history = BackupScheduler.Record(ScheduleHistory.Empty, BackupRunKind.Full, s_midnight, fullDone, policy);
        var started = fullDone.AddMinutes(5).AddSeconds(secondsAfterFirstGridPoint);

        var after = BackupScheduler.Record(history, BackupRunKind.Incremental, started, started.AddSeconds(10), policy);

        Assert.Equal(fullDone.AddMinutes(expectedMinutes), after.LastIncrementalSlot);
        Assert.Equal((s_midnight, fullDone), (after.LastFullStartedAt!.Value, after.LastFullCompletedAt!.Value));
    }

    [Fact]
    [Trait("Rule", "S3")]
    public void Record_starts_a_new_grid_with_each_full_and_refuses_impossible_runs()
    {
        var policy = BackupSchedulePolicy.Default;
        var history = BackupScheduler.Record(ScheduleHistory.Empty, BackupRunKind.Full, s_midnight, s_midnight.AddMinutes(1), policy);
        history = BackupScheduler.Record(history, BackupRunKind.Incremental, s_midnight.AddMinutes(6), s_midnight.AddMinutes(7), policy);

        var next = BackupScheduler.Record(history, BackupRunKind.Full, s_midnight.AddDays(1), s_midnight.AddDays(1).AddMinutes(2), policy);

        Assert.Null(next.LastIncrementalSlot);
        Assert.Equal(s_midnight.AddDays(1).AddMinutes(2), next.LastFullCompletedAt);
        Assert.Throws<ArgumentException>(() => BackupScheduler.Record(ScheduleHistory.Empty, BackupRunKind.Incremental, s_midnight, s_midnight, policy));
        Assert.Throws<ArgumentException>(() => BackupScheduler.Record(history, BackupRunKind.Full, s_midnight, s_midnight.AddTicks(-1), policy));
    }

    /// <summary>The incrementals between the full at the start of <paramref name="day"/> and the next, with runs that take no time.</summary>
    private static int IncrementalsOnDay(BackupTimeZone zone, DateOnly day)
    {
        var tz = zone.TimeZoneInfo;
        var dayStart = ZoneFacts.FirstInstantOf(tz, day);
        var nextDayStart = ZoneFacts.FirstInstantOf(tz, day.AddDays(1));
        var enabledAt = dayStart.AddHours(-6);

        var sim = ScheduleSimulator.Run(Backups.Enabled(BackupKind.Default, zone, enabledAt), BackupSchedulePolicy.Default, nextDayStart.AddMinutes(1), RunDurations.Instant);

        var fullIndex = sim.Runs.ToList().FindIndex(r => r.Kind == BackupRunKind.Full && r.DueAt == dayStart);
        Assert.True(fullIndex > 0, $"No full at {dayStart:O}");
        var incrementals = sim.Runs.Skip(fullIndex + 1).TakeWhile(r => r.Kind == BackupRunKind.Incremental).ToList();
        Assert.Equal(nextDayStart, sim.Runs[fullIndex + 1 + incrementals.Count].DueAt);
        Assert.All(incrementals, r => Assert.True(r.StartedAt < nextDayStart));
        return incrementals.Count;
    }
}
