using System.Globalization;
using FsCheck;
using FsCheck.Xunit;

namespace KmsBackup.Tests.Windows;

[Properties(Arbitrary = [typeof(DomainArbitraries)], MaxTest = 300)]
public class ViewableWindowTests
{
    private static DateOnly D(string iso) => DateOnly.ParseExact(iso, "yyyy-MM-dd", CultureInfo.InvariantCulture);

    private static DateTimeOffset At(string iso) => DateTimeOffset.Parse(iso, CultureInfo.InvariantCulture);

    // --- W1: days in the backup's time zone ---

    [Theory]
    [Trait("Rule", "W1")]
    [InlineData("UTC", "2024-05-01T23:30:00Z", "2024-05-01")]
    [InlineData("Asia/Shanghai", "2024-05-01T16:00:00Z", "2024-05-02")]
    [InlineData("Asia/Shanghai", "2024-05-01T15:59:59Z", "2024-05-01")]
    [InlineData("America/New_York", "2024-05-02T03:59:59Z", "2024-05-01")]
    [InlineData("America/New_York", "2024-05-02T04:00:00Z", "2024-05-02")]
    public void The_date_of_an_instant_is_its_calendar_day_in_the_backups_zone(string zone, string instant, string date)
    {
        Assert.Equal(D(date), BackupTimeZone.FromId(zone).DateOf(At(instant)));
    }

    [Theory]
    [Trait("Rule", "W1")]
    [InlineData("Europe/Berlin", "2026-03-29", 23)]
    [InlineData("Europe/Berlin", "2026-10-25", 25)]
    [InlineData("Europe/Berlin", "2026-06-01", 24)]
    [InlineData("America/Santiago", "2026-09-06", 23)]
    [InlineData("America/Santiago", "2026-04-04", 25)]
    [InlineData("UTC", "2026-03-29", 24)]
    public void Days_last_23_or_25_hours_across_daylight_saving_changes(string zone, string date, int hours)
    {
        var tz = BackupTimeZone.FromId(zone);
        var day = D(date);
        Assert.Equal(TimeSpan.FromHours(hours), tz.StartOf(day.AddDays(1)) - tz.StartOf(day));
    }

    [Fact]
    [Trait("Rule", "W1")]
    public void A_day_whose_midnight_is_skipped_begins_at_the_first_instant_after_the_skip()
    {
        // America/Santiago moves from 00:00 to 01:00 on 2026-09-06: the day begins at 01:00 local (04:00 UTC).
        var tz = BackupTimeZone.FromId("America/Santiago");
        var start = tz.StartOf(D("2026-09-06"));
        Assert.Equal(At("2026-09-06T04:00:00Z"), start);
        Assert.Equal(new TimeOnly(1, 0), TimeOnly.FromDateTime(start.DateTime));
        Assert.Equal(D("2026-09-06"), tz.DateOf(start));
        Assert.Equal(D("2026-09-05"), tz.DateOf(start.AddTicks(-1)));
    }

    [Fact]
    [Trait("Rule", "W1")]
    public void A_repeated_midnight_resolves_to_its_first_occurrence()
    {
        // America/Havana falls back from 01:00 to 00:00 on 2026-11-01: 00:00 happens twice; the day begins at the first.
        var tz = BackupTimeZone.FromId("America/Havana");
        var start = tz.StartOf(D("2026-11-01"));
        Assert.Equal(At("2026-11-01T04:00:00Z"), start);
        Assert.Equal(D("2026-10-31"), tz.DateOf(start.AddTicks(-1)));
    }

    [Property]
    [Trait("Rule", "W1")]
    public bool Every_day_starts_on_its_own_date_and_the_instant_before_is_the_day_before(BackupTimeZone zone, DateTimeOffset instant)
    {
        var date = zone.DateOf(instant);
        var start = zone.StartOf(date);
        var hours = (zone.StartOf(date.AddDays(1)) - start).TotalHours;
        return start <= instant && zone.DateOf(start) == date && zone.DateOf(start.AddTicks(-1)) == date.AddDays(-1) && hours is >= 22.5 and <= 25.5;
    }

    [Theory]
    [Trait("Rule", "W1")]
    [InlineData("Mars/Olympus_Mons")]
    [InlineData("")]
    [InlineData("Europe/Berlinn")]
    public void An_unknown_time_zone_is_refused_naming_it(string id)
    {
        var error = Assert.Throws<BackupException>(() => BackupTimeZone.FromId(id));
        Assert.Equal(BackupErrorCode.UnknownTimeZone, error.Code);
        Assert.Contains($"'{id}'", error.Message, StringComparison.Ordinal);
        Assert.Contains("IANA", error.Remedy, StringComparison.Ordinal);
    }

    // --- W2: the window ---

    [Property]
    [Trait("Rule", "W2")]
    public bool The_window_is_the_last_n_days_never_before_enabling(WindowScenario s)
    {
        var w = s.Window;
        var expectedLength = Math.Min(s.ViewableDays, s.Today.DayNumber - s.EnabledOn.DayNumber + 1);
        return w.End == s.Today && w.Start >= s.EnabledOn && w.Start.DayNumber >= s.Today.DayNumber - (s.ViewableDays - 1) && w.Length == expectedLength;
    }

    [Property]
    [Trait("Rule", "W2")]
    public bool A_date_is_in_the_window_exactly_when_it_is_recent_enough_and_not_before_enabling(WindowScenario s, int offset)
    {
        var date = s.Today.AddDays(-(Math.Abs(offset) % 700));
        var inWindow = date >= s.EnabledOn && s.Today.DayNumber - date.DayNumber < s.ViewableDays;
        return s.Window.Contains(date) == inWindow;
    }

    [Property]
    [Trait("Rule", "W2")]
    public bool The_window_grows_monotonically_with_viewable_days(WindowScenario s, PositiveInt more)
    {
        var larger = ViewableWindow.On(s.Today, s.ViewableDays + more.Get % 600, s.EnabledOn);
        return larger.Contains(s.Window) && larger.Start >= s.EnabledOn;
    }

    [Property]
    [Trait("Rule", "W2")]
    public bool No_number_of_viewable_days_reaches_before_enabling(WindowScenario s)
    {
        return ViewableWindow.On(s.Today, int.MaxValue / 2, s.EnabledOn).Start == s.EnabledOn;
    }

    [Property]
    [Trait("Rule", "W2")]
    public bool Extending_a_purchased_backup_never_shrinks_its_window_nor_reaches_before_enabling(PurchasedScenario s, PositiveInt more)
    {
        var target = Math.Min(BackupKindPolicy.MaximumPurchasedViewableDays, s.State.ViewableDays + more.Get);
        var before = s.State.WindowAt(s.Now)!.Value;
        var outcome = BackupLifecycle.Apply(s.State, new ExtendViewableDays(target), s.Now);
        if (target == s.State.ViewableDays)
        {
            return outcome.Refusal?.Code == BackupErrorCode.ViewableDaysNotIncreased;
        }

        var after = outcome.GetStateOrThrow().WindowAt(s.Now)!.Value;
        return after.Contains(before) && after.Start >= s.State.EnabledOn!.Value && after.End == before.End;
    }

    [Fact]
    [Trait("Rule", "W2")]
    public void The_window_cannot_be_asked_for_a_backup_enabled_after_today_or_with_no_days()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ViewableWindow.On(D("2024-05-01"), 10, D("2024-05-02")));
        Assert.Throws<ArgumentOutOfRangeException>(() => ViewableWindow.On(D("2024-05-01"), 0, D("2024-04-01")));
        Assert.Throws<ArgumentException>(() => new ViewableWindow(D("2024-05-02"), D("2024-05-01")));
        Assert.Equal("2024-05-11..2024-05-20", new ViewableWindow(D("2024-05-11"), D("2024-05-20")).ToString());
    }

    // --- W3: the seed's May example ---

    [Fact]
    [Trait("Rule", "W3")]
    public void The_seeds_may_example_holds()
    {
        var enabledAt = At("2024-05-01T09:00:00Z");
        var backup = DomainArbitraries.Enable(
            BackupLifecycle.Purchase("p", new PurchaseOrder("cn-hangzhou", 10, PurchaseTerm.FromYears(1)), BackupTimeZone.Utc, At("2024-04-30T12:00:00Z")).GetBackupsOrThrow()[0],
            enabledAt);
        var may20 = At("2024-05-20T12:00:00Z");

        Assert.Equal(new ViewableWindow(D("2024-05-11"), D("2024-05-20")), backup.WindowAt(may20));

        var may5 = BackupLifecycle.EvaluateDate(backup, D("2024-05-05"), may20)!;
        Assert.Equal(DateAccessStatus.NeedsMoreViewableDays, may5.Status);
        Assert.Equal(16, may5.DaysNeeded);
        var refusal = BackupLifecycle.CheckDate(backup, D("2024-05-05"), BackupOperation.Restore, may20)!;
        Assert.Equal(BackupErrorCode.DateOutsideWindow, refusal.Code);
        Assert.Contains("16", refusal.Remedy, StringComparison.Ordinal);

        var extended = BackupLifecycle.Apply(backup, new ExtendViewableDays(16), may20).GetStateOrThrow();
        Assert.Null(BackupLifecycle.CheckDate(extended, D("2024-05-05"), BackupOperation.Restore, may20));
        Assert.Equal(new ViewableWindow(D("2024-05-05"), D("2024-05-20")), extended.WindowAt(may20));

        var maxed = BackupLifecycle.Apply(extended, new ExtendViewableDays(600), may20).GetStateOrThrow();
        var april30 = BackupLifecycle.CheckDate(maxed, D("2024-04-30"), BackupOperation.View, may20)!;
        Assert.Equal(BackupErrorCode.DateBeforeEnabled, april30.Code);
        Assert.Equal(DateAccessStatus.BeforeEnabled, BackupLifecycle.EvaluateDate(maxed, D("2024-04-30"), may20)!.Status);
    }

    [Property]
    [Trait("Rule", "W3")]
    public bool The_seeds_example_generalises_extending_to_the_days_needed_reaches_any_date_since_enabling(PurchasedScenario s, int back)
    {
        var today = s.State.WindowAt(s.Now)!.Value.End;
        var enabledOn = s.State.EnabledOn!.Value;
        var date = DateOnly.FromDayNumber(Math.Max(enabledOn.DayNumber, today.DayNumber - (Math.Abs(back) % 600)));
        var needed = ViewableWindow.DaysNeeded(today, date);
        var viewableNow = BackupLifecycle.CheckDate(s.State, date, BackupOperation.Restore, s.Now) is null;
        if (needed <= s.State.ViewableDays)
        {
            return viewableNow;
        }

        var extended = BackupLifecycle.Apply(s.State, new ExtendViewableDays(needed), s.Now).GetStateOrThrow();
        var oneShort = needed - 1 > s.State.ViewableDays
            ? BackupLifecycle.Apply(s.State, new ExtendViewableDays(needed - 1), s.Now).GetStateOrThrow()
            : s.State;
        return !viewableNow &&
               BackupLifecycle.CheckDate(extended, date, BackupOperation.Restore, s.Now) is null &&
               BackupLifecycle.CheckDate(oneShort, date, BackupOperation.Restore, s.Now)?.Code == BackupErrorCode.DateOutsideWindow;
    }

    // --- W4: refusals state the days needed ---

    [Property]
    [Trait("Rule", "W4")]
    public bool Days_needed_is_today_minus_date_plus_one_and_is_the_least_that_reaches_the_date(WindowScenario s, int back)
    {
        var date = s.Today.AddDays(-(Math.Abs(back) % 1000));
        var needed = ViewableWindow.DaysNeeded(s.Today, date);
        var reaches = ViewableWindow.On(s.Today, needed, s.EnabledOn).Contains(date);
        var oneLessReaches = needed > 1 && ViewableWindow.On(s.Today, needed - 1, s.EnabledOn).Contains(date);
        return needed == s.Today.DayNumber - date.DayNumber + 1 && reaches == (date >= s.EnabledOn) && !oneLessReaches;
    }

    [Property]
    [Trait("Rule", "W4")]
    public bool A_refusal_states_the_days_needed_and_whether_extending_reaches_the_date(WindowScenario s, int back, bool purchased)
    {
        var maximum = purchased ? 600 : s.ViewableDays;
        var date = s.Today.AddDays(-(Math.Abs(back) % 800) + 3);
        var access = DateAccess.Evaluate(date, s.Today, s.ViewableDays, s.EnabledOn, Math.Max(maximum, s.ViewableDays));
        var refusal = access.ToRefusal("backup 'b'");
        var code = refusal?.Code;
        return access.Status switch
        {
            DateAccessStatus.Viewable => refusal is null && s.Window.Contains(date),
            DateAccessStatus.InFuture => code == BackupErrorCode.DateInFuture && date > s.Today,
            DateAccessStatus.BeforeEnabled => code == BackupErrorCode.DateBeforeEnabled && date < s.EnabledOn && !access.CanExtendToReach,
            DateAccessStatus.NeedsMoreViewableDays => code == BackupErrorCode.DateOutsideWindow && access.CanExtendToReach &&
                refusal!.Remedy.Contains(access.DaysNeeded!.Value.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal) &&
                access.DaysNeeded <= Math.Max(maximum, s.ViewableDays),
            DateAccessStatus.NotReachable => code == BackupErrorCode.DateNotReachable && !access.CanExtendToReach &&
                refusal!.Message.Contains(access.DaysNeeded!.Value.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal) &&
                access.DaysNeeded > Math.Max(maximum, s.ViewableDays),
            _ => false,
        };
    }

    [Fact]
    [Trait("Rule", "W4")]
    public void A_fixed_window_kind_says_extending_cannot_reach_the_date()
    {
        var now = At("2026-05-20T12:00:00Z");
        var backup = DomainArbitraries.Enable(BackupLifecycle.CreateDefault("d", BackupTimeZone.Utc, At("2026-04-01T00:00:00Z")), At("2026-04-01T00:00:00Z"));
        var refusal = BackupLifecycle.CheckDate(backup, D("2026-05-10"), BackupOperation.View, now)!;
        Assert.Equal(BackupErrorCode.DateNotReachable, refusal.Code);
        Assert.Contains("11 viewable days", refusal.Message, StringComparison.Ordinal);
        Assert.Contains("2026-05-14..2026-05-20", refusal.Remedy, StringComparison.Ordinal);
        Assert.Equal("backup 'd' date 2026-05-10", refusal.Item);
    }

    // --- W6: after the instance is released ---

    [Fact]
    [Trait("Rule", "W6")]
    public void An_automatic_backup_takes_no_new_data_after_its_instance_is_released_and_what_it_holds_stays_viewable()
    {
        var enabled = At("2026-01-01T00:00:00Z");
        var backup = BackupLifecycle.CreateAutomatic("a", DomainArbitraries.SoftwareInstance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, enabled).GetBackupsOrThrow()[0];
        var releasedAt = At("2026-03-01T10:00:00Z");
        var released = BackupLifecycle.Apply(backup, new InstanceReleased(DomainArbitraries.SoftwareInstance.Id), releasedAt).GetStateOrThrow();

        Assert.True(backup.TakesNewData);
        Assert.False(released.TakesNewData);
        Assert.Equal(BackupStatus.Enabled, released.Status);
        Assert.Equal(ScheduleIdleReason.InstanceReleased, BackupScheduler.Next(released, ScheduleHistory.Empty, BackupSchedulePolicy.Default, releasedAt).IdleReason);

        // 60 days later the data of the release day is still in the 90-day window and can be viewed and restored.
        var later = releasedAt.AddDays(60);
        Assert.Null(BackupLifecycle.CheckDate(released, D("2026-03-01"), BackupOperation.Restore, later));
        Assert.Null(BackupLifecycle.CheckDate(released, D("2026-02-10"), BackupOperation.View, later));
        Assert.Equal(DateAccessStatus.NotReachable, BackupLifecycle.EvaluateDate(released, D("2026-01-01"), later)!.Status);
    }

    [Property]
    [Trait("Rule", "W6")]
    public bool A_released_instances_backup_stays_viewable_by_its_window_until_the_backup_is_deleted(PositiveInt minutesAfter)
    {
        var enabled = At("2026-01-01T00:00:00Z");
        var releasedAt = At("2026-03-01T10:00:00Z");
        var backup = BackupLifecycle.CreateAutomatic("a", DomainArbitraries.SoftwareInstance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, enabled).GetBackupsOrThrow()[0];
        var released = BackupLifecycle.Apply(backup, new InstanceReleased(DomainArbitraries.SoftwareInstance.Id), releasedAt).GetStateOrThrow();
        var now = releasedAt.AddMinutes(minutesAfter.Get % (200 * 24 * 60));
        var refusal = BackupLifecycle.CheckDate(released, D("2026-03-01"), BackupOperation.View, now);
        return now < releasedAt.AddDays(90)
            ? refusal is null
            : refusal?.Code == BackupErrorCode.BackupReleased;
    }

    /// <summary>A release learned later (from the service) dates from when it happened, and never from a time after it was learned.</summary>
    [Property]
    [Trait("Rule", "L2")]
    public bool A_release_learned_late_is_dated_when_it_happened_never_in_the_future(int minutesFromNow)
    {
        var enabled = At("2026-01-01T00:00:00Z");
        var now = At("2026-03-01T10:00:00Z");
        var at = now.AddMinutes(minutesFromNow % (100 * 24 * 60));
        var backup = BackupLifecycle.CreateAutomatic("a", DomainArbitraries.SoftwareInstance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, enabled).GetBackupsOrThrow()[0];
        var released = BackupLifecycle.Apply(backup, new InstanceReleased(DomainArbitraries.SoftwareInstance.Id) { At = at }, now).GetStateOrThrow();
        return released.InstanceReleasedAt == (at < now ? at : now);
    }

    [Fact]
    [Trait("Rule", "W6")]
    public void Releasing_another_instance_changes_nothing()
    {
        var now = At("2026-01-01T00:00:00Z");
        var backup = BackupLifecycle.CreateAutomatic("a", DomainArbitraries.SoftwareInstance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, now).GetBackupsOrThrow()[0];
        var outcome = BackupLifecycle.Apply(backup, new InstanceReleased("kst-someone-else"), now.AddDays(1));
        Assert.True(outcome.IsAccepted);
        Assert.Equal(backup, outcome.State);
        Assert.Empty(outcome.Effects);
    }
}
