using System.Globalization;
using FsCheck.Xunit;

namespace KmsBackup.Tests.Schedule;

/// <summary>Rule S6: the interval, the daily time and the zone are options; the defaults are the seed's (5 minutes, 00:00, UTC).</summary>
[Properties(Arbitrary = new[] { typeof(ScheduleArbitraries) })]
public class OptionsTests
{
    private static readonly DateTimeOffset s_noon = new(2024, 5, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    [Trait("Rule", "S6")]
    public void The_defaults_are_the_seeds()
    {
        Assert.Equal(TimeSpan.FromMinutes(5), BackupSchedulePolicy.Default.IncrementalInterval);
        Assert.Equal(TimeOnly.MinValue, BackupSchedulePolicy.Default.DailyFullTime);
        Assert.Equal(BackupSchedulePolicy.Default, new BackupSchedulePolicy());
        Assert.Null(BackupSchedulePolicy.Default.Validate());
        Assert.Equal("UTC", BackupTimeZone.Utc.Id);
    }

    [Property(MaxTest = 100)]
    [Trait("Rule", "S6")]
    public void Any_valid_interval_and_daily_time_are_honoured(EnablingCase enabling, ValidPolicy valid)
    {
        var policy = valid.Policy;
        var zone = enabling.Zone;
        var tz = zone.TimeZoneInfo;
        var end = enabling.EnabledAt.AddDays(2);

        var sim = ScheduleSimulator.Run(enabling.Backup(), policy, end, RunDurations.Instant);

        // Fulls: the first at enabling, then one at each daily slot (lenient: a skipped time moves forward, a repeated one is taken once).
        var slots = ZoneFacts.SlotsBetween(tz, policy.DailyFullTime, enabling.EnabledAt, end);
        var fulls = sim.Fulls.ToList();
        Assert.Equal(ScheduleReason.FirstFull, fulls[0].Reason);
        Assert.Equal(slots, fulls.Skip(1).Select(f => f.DueAt));
        Assert.All(fulls.Skip(1), f => Assert.Equal(zone.At(zone.DateOf(f.DueAt), policy.DailyFullTime), f.DueAt));
        Assert.All(fulls.Skip(1), f => Assert.Equal(ScheduleReason.DailyFull, f.Reason));

        // Incrementals: every interval after each full, before the next slot.
        var expected = new List<DateTimeOffset>();
        foreach (var full in fulls)
        {
            var nextSlot = ZoneFacts.NextSlotAfter(tz, policy.DailyFullTime, full.StartedAt);
            for (var due = full.CompletedAt + policy.IncrementalInterval; due < nextSlot && due < end; due += policy.IncrementalInterval)
            {
                expected.Add(due);
            }
        }

        var incrementals = sim.Runs.Where(r => r.Kind == BackupRunKind.Incremental).ToList();
        Assert.Equal(expected, incrementals.Select(r => r.StartedAt));
        Assert.All(incrementals, r => Assert.Equal(ScheduleReason.Incremental, r.Reason));
    }

    [Property(MaxTest = 300)]
    [Trait("Rule", "S6")]
    public void The_daily_slot_is_the_daily_time_in_the_backups_zone_resolved_leniently(EnablingCase near, ValidPolicy valid)
    {
        // Dates around the generated instant, which is often near a DST change of its zone.
        var zone = near.Zone;
        var time = valid.Policy.DailyFullTime;
        for (var offset = -1; offset <= 1; offset++)
        {
            var date = zone.DateOf(near.EnabledAt).AddDays(offset);
            var slot = zone.At(date, time);
            Assert.Equal(ZoneFacts.LenientInstant(zone.TimeZoneInfo, date, time), slot);
            Assert.Equal(date, zone.DateOf(slot));
        }
    }

    [Theory]
    [Trait("Rule", "S6")]
    [InlineData("00:01:00", 719)] // enabled at 12:00 UTC, full takes no time: grid points 12:01 ... 23:59
    [InlineData("00:15:00", 47)]
    [InlineData("01:00:00", 11)]
    [InlineData("05:00:00", 2)] // 17:00 and 22:00
    [InlineData("12:00:00", 0)] // 00:00 is the next full's slot
    [InlineData("00:00:01", 43199)]
    public void A_non_default_interval_sets_the_incremental_grid(string interval, int incrementalsBeforeMidnight)
    {
        var policy = new BackupSchedulePolicy { IncrementalInterval = TimeSpan.Parse(interval, CultureInfo.InvariantCulture) };
        var backup = Backups.Enabled(BackupKind.Default, BackupTimeZone.Utc, s_noon);
        var history = BackupScheduler.Record(ScheduleHistory.Empty, BackupRunKind.Full, s_noon, s_noon, policy);

        var count = 0;
        var now = s_noon;
        ScheduledRun run;
        while ((run = BackupScheduler.Next(backup, history, policy, now).Run!).Kind == BackupRunKind.Incremental)
        {
            count++;
            Assert.Equal(s_noon + (policy.IncrementalInterval * count), run.DueAt); // also ends the loop if the grid does not advance
            history = BackupScheduler.Record(history, run.Kind, run.DueAt, run.DueAt, policy);
            now = run.DueAt;
        }

        Assert.Equal(incrementalsBeforeMidnight, count);
        Assert.Equal((BackupRunKind.Full, new DateTimeOffset(2024, 5, 2, 0, 0, 0, TimeSpan.Zero)), (run.Kind, run.DueAt));
    }

    [Fact]
    [Trait("Rule", "S6")]
    public void A_daily_time_of_02_30_runs_the_full_at_02_30_local()
    {
        var zone = BackupTimeZone.FromId("America/New_York");
        var policy = new BackupSchedulePolicy { DailyFullTime = new TimeOnly(2, 30) };
        var enabledAt = new DateTimeOffset(2026, 6, 10, 9, 0, 0, TimeSpan.FromHours(-4));

        var sim = ScheduleSimulator.Run(Backups.Enabled(BackupKind.Purchased, zone, enabledAt), policy, enabledAt.AddDays(2), RunDurations.Instant);

        Assert.Equal(
            new[] { new DateTimeOffset(2026, 6, 11, 2, 30, 0, TimeSpan.FromHours(-4)), new DateTimeOffset(2026, 6, 12, 2, 30, 0, TimeSpan.FromHours(-4)) },
            sim.Fulls.Skip(1).Select(f => f.StartedAt));
    }

    [Fact]
    [Trait("Rule", "S6")]
    public void A_daily_time_skipped_by_DST_in_Berlin_resolves_forward_by_the_skip()
    {
        // 2026-03-29 02:30 does not exist in Berlin (02:00 CET -> 03:00 CEST): the full runs at 03:30 CEST.
        var zone = BackupTimeZone.FromId("Europe/Berlin");
        var policy = new BackupSchedulePolicy { DailyFullTime = new TimeOnly(2, 30) };
        var enabledAt = new DateTimeOffset(2026, 3, 27, 12, 0, 0, TimeSpan.FromHours(1));

        var sim = ScheduleSimulator.Run(Backups.Enabled(BackupKind.Default, zone, enabledAt), policy, enabledAt.AddDays(3), RunDurations.Instant);

        var fulls = sim.Fulls.Skip(1).Select(f => f.StartedAt).ToList();
        Assert.Equal(
            new[]
            {
                new DateTimeOffset(2026, 3, 28, 2, 30, 0, TimeSpan.FromHours(1)),
                new DateTimeOffset(2026, 3, 29, 3, 30, 0, TimeSpan.FromHours(2)),
                new DateTimeOffset(2026, 3, 30, 2, 30, 0, TimeSpan.FromHours(2)),
            },
            fulls);
        Assert.Equal(new TimeOnly(3, 30), TimeOnly.FromDateTime(zone.ToLocal(fulls[1]).DateTime));
        Assert.Equal(TimeSpan.FromHours(24), fulls[1] - fulls[0]); // 02:30 CET to 03:30 CEST
        Assert.Equal(TimeSpan.FromHours(23), fulls[2] - fulls[1]); // 03:30 CEST to 02:30 CEST the next day
    }

    [Fact]
    [Trait("Rule", "S6")]
    public void A_daily_time_repeated_by_DST_in_Berlin_runs_once_at_its_first_occurrence()
    {
        // 2026-10-25 02:30 happens twice (CEST, then CET): one full, at 02:30 CEST.
        var zone = BackupTimeZone.FromId("Europe/Berlin");
        var policy = new BackupSchedulePolicy { DailyFullTime = new TimeOnly(2, 30) };
        var enabledAt = new DateTimeOffset(2026, 10, 24, 12, 0, 0, TimeSpan.FromHours(2));

        var sim = ScheduleSimulator.Run(Backups.Enabled(BackupKind.Default, zone, enabledAt), policy, enabledAt.AddDays(2), RunDurations.Instant);

        Assert.Equal(
            new[] { new DateTimeOffset(2026, 10, 25, 2, 30, 0, TimeSpan.FromHours(2)), new DateTimeOffset(2026, 10, 26, 2, 30, 0, TimeSpan.FromHours(1)) },
            sim.Fulls.Skip(1).Select(f => f.StartedAt));
    }

    [Fact]
    [Trait("Rule", "S6")]
    public void The_zone_is_the_backups_option()
    {
        // The same instant and policy: 00:00 in Kolkata is 18:30 UTC the day before.
        var enabledAt = new DateTimeOffset(2026, 2, 1, 12, 0, 0, TimeSpan.Zero);
        var history = BackupScheduler.Record(ScheduleHistory.Empty, BackupRunKind.Full, enabledAt, enabledAt, BackupSchedulePolicy.Default);
        var lateEvening = new DateTimeOffset(2026, 2, 1, 18, 29, 0, TimeSpan.Zero);

        var inUtc = BackupScheduler.Next(Backups.Enabled(BackupKind.Default, BackupTimeZone.Utc, enabledAt), history, BackupSchedulePolicy.Default, lateEvening).Run!;
        var inKolkata = BackupScheduler.Next(Backups.Enabled(BackupKind.Default, BackupTimeZone.FromId("Asia/Kolkata"), enabledAt), history, BackupSchedulePolicy.Default, lateEvening.AddMinutes(1)).Run!;

        Assert.Equal(BackupRunKind.Incremental, inUtc.Kind);
        Assert.Equal((BackupRunKind.Full, new DateTimeOffset(2026, 2, 1, 18, 30, 0, TimeSpan.Zero)), (inKolkata.Kind, inKolkata.DueAt));
    }

    [Theory]
    [Trait("Rule", "S6")]
    [InlineData("00:00:00")]
    [InlineData("-00:00:01")]
    [InlineData("-00:05:00")]
    [InlineData("00:00:00.9990000")]
    [InlineData("12:00:00.0000001")]
    [InlineData("13:00:00")]
    [InlineData("1.00:00:00")]
    public void An_interval_outside_1_second_to_12_hours_is_refused(string interval)
    {
        AssertRefused(TimeSpan.Parse(interval, CultureInfo.InvariantCulture));
    }

    [Property(MaxTest = 200)]
    [Trait("Rule", "S6")]
    public void Any_invalid_interval_is_refused_naming_the_value(InvalidInterval interval)
    {
        AssertRefused(interval.Value);
    }

    [Theory]
    [Trait("Rule", "S6")]
    [InlineData("00:00:01")]
    [InlineData("12:00:00")]
    public void The_bounds_1_second_and_12_hours_are_accepted(string interval)
    {
        var policy = new BackupSchedulePolicy { IncrementalInterval = TimeSpan.Parse(interval, CultureInfo.InvariantCulture) };
        var backup = Backups.Enabled(BackupKind.Default, BackupTimeZone.Utc, s_noon);

        Assert.Null(policy.Validate());
        policy.ThrowIfInvalid();
        Assert.NotNull(BackupScheduler.Next(backup, ScheduleHistory.Empty, policy, s_noon).Run);
    }

    private static void AssertRefused(TimeSpan interval)
    {
        var policy = new BackupSchedulePolicy { IncrementalInterval = interval };
        var shown = interval.ToString("c", CultureInfo.InvariantCulture);
        var backup = Backups.Enabled(BackupKind.Default, BackupTimeZone.Utc, s_noon);
        var history = BackupScheduler.Record(ScheduleHistory.Empty, BackupRunKind.Full, s_noon, s_noon, BackupSchedulePolicy.Default);

        var refusal = policy.Validate();
        Assert.NotNull(refusal);
        Assert.Equal(BackupErrorCode.InvalidScheduleOption, refusal.Code);
        Assert.Equal($"incrementalInterval={shown}", refusal.Item);
        Assert.Contains(shown, refusal.Message, StringComparison.Ordinal);

        foreach (var refused in new Action[]
        {
            policy.ThrowIfInvalid,
            () => BackupScheduler.Next(backup, history, policy, s_noon),
            () => BackupScheduler.Record(history, BackupRunKind.Incremental, s_noon.AddMinutes(5), s_noon.AddMinutes(5), policy),
        })
        {
            var exception = Assert.Throws<BackupException>(refused);
            Assert.Equal(BackupErrorCode.InvalidScheduleOption, exception.Code);
            Assert.Equal($"incrementalInterval={shown}", exception.Item);
            Assert.False(string.IsNullOrWhiteSpace(exception.Remedy));
        }
    }
}
