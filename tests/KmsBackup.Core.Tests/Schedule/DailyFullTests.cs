using System.Globalization;
using FsCheck.Xunit;

namespace KmsBackup.Tests.Schedule;

/// <summary>Rule S2: after the first full, a full backup every day at 00:00 in the backup's time zone.</summary>
[Properties(Arbitrary = new[] { typeof(ScheduleArbitraries) })]
public class DailyFullTests
{
    [Property(MaxTest = 100)]
    [Trait("Rule", "S2")]
    public void Exactly_one_full_per_local_day_at_the_daily_slot(EnablingCase enabling, DayCount days, RunDurations durations)
    {
        var policy = BackupSchedulePolicy.Default;
        var zone = enabling.Zone;
        var tz = zone.TimeZoneInfo;
        var end = enabling.EnabledAt.AddDays(days.Value);

        var sim = ScheduleSimulator.Run(enabling.Backup(), policy, end, durations);

        var fulls = sim.Fulls.ToList();
        Assert.Equal(ScheduleReason.FirstFull, fulls[0].Reason);
        Assert.Equal(enabling.EnabledAt, fulls[0].StartedAt);

        // The slots come from the oracle (first instant of each local day), not from the code under test.
        var slots = ZoneFacts.SlotsBetween(tz, policy.DailyFullTime, enabling.EnabledAt, end);
        Assert.InRange(slots.Count, days.Value - 1, days.Value + 1); // N × 24 hours can hold N + 1 day starts when a day is short
        Assert.Equal(slots, fulls.Skip(1).Select(f => f.DueAt));

        for (var i = 1; i < sim.Runs.Count; i++)
        {
            var run = sim.Runs[i];
            Assert.False(run.Reason is ScheduleReason.CatchUpFull or ScheduleReason.CatchUpIncremental, $"No catch-up without downtime: {run}");
            if (run.Kind != BackupRunKind.Full)
            {
                continue;
            }

            Assert.Equal(ScheduleReason.DailyFull, run.Reason);
            Assert.Equal(zone.At(ZoneFacts.DateOf(tz, run.DueAt), policy.DailyFullTime), run.DueAt);

            // It starts at the slot, or as soon as the run before it (at most 4 minutes long) has completed.
            var previous = sim.Runs[i - 1];
            Assert.Equal(run.DueAt > previous.CompletedAt ? run.DueAt : previous.CompletedAt, run.StartedAt);
            Assert.InRange(run.StartedAt - run.DueAt, TimeSpan.Zero, RunDurations.Longest);
        }

        // One full starts on each local calendar day: the first on the enabling day, then one a day.
        var enabledOn = ZoneFacts.DateOf(tz, enabling.EnabledAt);
        var lastDay = slots.Count == 0 ? enabledOn : ZoneFacts.DateOf(tz, slots[^1]);
        var perDay = fulls.GroupBy(f => ZoneFacts.DateOf(tz, f.StartedAt)).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(lastDay.DayNumber - enabledOn.DayNumber + 1, perDay.Count);
        for (var day = enabledOn; day <= lastDay; day = day.AddDays(1))
        {
            Assert.True(perDay.GetValueOrDefault(day) == 1, $"{day:O} has {perDay.GetValueOrDefault(day)} fulls");
        }
    }

    [Theory]
    [Trait("Rule", "S2")]
    [InlineData("Europe/Berlin", "2026-03-29", 23)]
    [InlineData("Europe/Berlin", "2026-10-25", 25)]
    [InlineData("America/New_York", "2026-03-08", 23)]
    [InlineData("America/New_York", "2026-11-01", 25)]
    [InlineData("UTC", "2026-03-29", 24)]
    public void The_daily_full_is_at_local_midnight_on_23_and_25_hour_days(string zoneId, string date, int hours)
    {
        var day = DateOnly.Parse(date, CultureInfo.InvariantCulture);
        var zone = BackupTimeZone.FromId(zoneId);
        Assert.Equal(TimeSpan.FromHours(hours), ZoneFacts.DayLength(zone.TimeZoneInfo, day));

        AssertFullsAtEachMidnightAround(zone, day);
    }

    [Theory]
    [Trait("Rule", "S2")]
    [InlineData("America/Santiago", 60)]
    [InlineData("America/Havana", 60)]
    [InlineData("Australia/Lord_Howe", 30)]
    [InlineData("Europe/Berlin", 60)]
    [InlineData("America/New_York", 60)]
    public void The_daily_full_is_at_the_start_of_each_DST_change_day_found_by_TimeZoneInfo(string zoneId, int dstMinutes)
    {
        var zone = BackupTimeZone.FromId(zoneId);
        var unusual = ZoneFacts.UnusualDays(zoneId, 2026);

        // One short day and one long day a year, by the zone's DST amount.
        Assert.Equal(2, unusual.Count);
        Assert.Equal(
            new[] { TimeSpan.FromHours(24) - TimeSpan.FromMinutes(dstMinutes), TimeSpan.FromHours(24) + TimeSpan.FromMinutes(dstMinutes) },
            unusual.Select(d => d.Length).Order());

        foreach (var (day, _) in unusual)
        {
            AssertFullsAtEachMidnightAround(zone, day);
        }
    }

    [Fact]
    [Trait("Rule", "S2")]
    public void In_Santiago_the_full_of_the_spring_forward_day_runs_at_01_00_because_00_00_does_not_exist()
    {
        var zone = BackupTimeZone.FromId("America/Santiago");
        var shortDay = ZoneFacts.UnusualDays(zone.Id, 2026).Single(d => d.Length == TimeSpan.FromHours(23)).Date;
        var backup = Backups.Enabled(BackupKind.Default, zone, ZoneFacts.FirstInstantOf(zone.TimeZoneInfo, shortDay.AddDays(-1)).AddHours(12));
        var history = BackupScheduler.Record(ScheduleHistory.Empty, BackupRunKind.Full, backup.EnabledAt!.Value, backup.EnabledAt.Value, BackupSchedulePolicy.Default);
        var dayStart = ZoneFacts.FirstInstantOf(zone.TimeZoneInfo, shortDay);

        var run = BackupScheduler.Next(backup, history, BackupSchedulePolicy.Default, dayStart).Run!;

        Assert.Equal((BackupRunKind.Full, ScheduleReason.DailyFull, dayStart), (run.Kind, run.Reason, run.DueAt));
        Assert.Equal(TimeSpan.FromHours(24), dayStart - ZoneFacts.FirstInstantOf(zone.TimeZoneInfo, shortDay.AddDays(-1))); // Saturday ends at 24:00 = Sunday 01:00
        Assert.Equal(new TimeOnly(1, 0), TimeOnly.FromDateTime(zone.ToLocal(run.DueAt).DateTime));
        Assert.Equal(shortDay, zone.DateOf(run.DueAt));
    }

    [Fact]
    [Trait("Rule", "S2")]
    public void A_backup_enabled_two_minutes_before_midnight_gets_its_first_full_and_then_the_daily_full_at_midnight()
    {
        var zone = BackupTimeZone.FromId("Europe/Berlin");
        var enabledAt = new DateTimeOffset(2026, 6, 10, 23, 58, 0, TimeSpan.FromHours(2));

        var sim = ScheduleSimulator.Run(Backups.Enabled(BackupKind.Default, zone, enabledAt), BackupSchedulePolicy.Default, enabledAt.AddHours(1), RunDurations.Instant);

        var fulls = sim.Fulls.ToList();
        Assert.Equal(2, fulls.Count);
        Assert.Equal((ScheduleReason.FirstFull, enabledAt), (fulls[0].Reason, fulls[0].StartedAt));
        Assert.Equal((ScheduleReason.DailyFull, new DateTimeOffset(2026, 6, 11, 0, 0, 0, TimeSpan.FromHours(2))), (fulls[1].Reason, fulls[1].StartedAt));
    }

    [Fact]
    [Trait("Rule", "S2")]
    public void A_full_due_while_an_incremental_still_runs_starts_when_it_completes_and_is_not_a_catch_up()
    {
        // The full completed at 00:03, so incrementals are due at hh:m3 and hh:m8; the last of the day, due 23:58,
        // runs 4 minutes, until 00:02. The full due at 00:00 then starts at once: late by less than an interval, so a
        // daily full, not a catch-up.
        var policy = BackupSchedulePolicy.Default;
        var enabledAt = new DateTimeOffset(2024, 5, 1, 0, 0, 0, TimeSpan.Zero);
        var backup = Backups.Enabled(BackupKind.Default, BackupTimeZone.Utc, enabledAt);
        var history = BackupScheduler.Record(ScheduleHistory.Empty, BackupRunKind.Full, enabledAt, enabledAt.AddMinutes(3), policy);
        var lastIncremental = new DateTimeOffset(2024, 5, 1, 23, 58, 0, TimeSpan.Zero);
        history = BackupScheduler.Record(history, BackupRunKind.Incremental, lastIncremental, lastIncremental.AddMinutes(4), policy);

        var run = BackupScheduler.Next(backup, history, policy, lastIncremental.AddMinutes(4)).Run!;

        Assert.Equal(BackupRunKind.Full, run.Kind);
        Assert.Equal(ScheduleReason.DailyFull, run.Reason);
        Assert.Equal(new DateTimeOffset(2024, 5, 2, 0, 0, 0, TimeSpan.Zero), run.DueAt);
        Assert.True(run.IsDue(lastIncremental.AddMinutes(4)));
    }

    [Fact]
    [Trait("Rule", "S2")]
    [Trait("Rule", "W1")]
    public void The_00_00_slot_is_the_first_instant_of_the_local_day_on_every_DST_change_day_2020_to_2030()
    {
        foreach (var zoneId in ZoneFacts.ZoneIds)
        {
            var zone = BackupTimeZone.FromId(zoneId);
            for (var year = 2020; year <= 2030; year++)
            {
                foreach (var (day, length) in ZoneFacts.UnusualDays(zoneId, year))
                {
                    var slot = zone.At(day, TimeOnly.MinValue);
                    Assert.True(
                        ZoneFacts.FirstInstantOf(zone.TimeZoneInfo, day) == slot,
                        $"{zoneId} {day:O} ({length}): slot {slot:O}, day starts {ZoneFacts.FirstInstantOf(zone.TimeZoneInfo, day):O}");
                    Assert.Equal(day, zone.DateOf(slot));
                    Assert.Equal(length, zone.At(day.AddDays(1), TimeOnly.MinValue) - slot);
                }
            }
        }
    }

    /// <summary>Simulates from noon of the day before <paramref name="day"/> to the day after, with runs that take no time.</summary>
    private static void AssertFullsAtEachMidnightAround(BackupTimeZone zone, DateOnly day)
    {
        var tz = zone.TimeZoneInfo;
        var enabledAt = ZoneFacts.FirstInstantOf(tz, day.AddDays(-1)).AddHours(12);
        var end = ZoneFacts.FirstInstantOf(tz, day.AddDays(2)).AddHours(1);

        var sim = ScheduleSimulator.Run(Backups.Enabled(BackupKind.Default, zone, enabledAt), BackupSchedulePolicy.Default, end, RunDurations.Instant);

        var dailyFulls = sim.Fulls.Skip(1).ToList();
        var expected = new[] { day, day.AddDays(1), day.AddDays(2) }.Select(d => ZoneFacts.FirstInstantOf(tz, d)).ToList();
        Assert.Equal(expected, dailyFulls.Select(f => f.StartedAt));
        Assert.All(dailyFulls, f => Assert.Equal(ScheduleReason.DailyFull, f.Reason));
        Assert.Equal(ZoneFacts.DayLength(tz, day), dailyFulls[1].StartedAt - dailyFulls[0].StartedAt);
        Assert.Equal(new[] { day, day.AddDays(1), day.AddDays(2) }, dailyFulls.Select(f => zone.DateOf(f.StartedAt)));
    }
}
