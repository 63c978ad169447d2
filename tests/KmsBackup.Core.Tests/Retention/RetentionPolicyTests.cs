using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace KmsBackup.Tests.Retention;

[Properties(Arbitrary = [typeof(DomainArbitraries)], MaxTest = 200)]
public class RetentionPolicyTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 10, 8, 0, 0, TimeSpan.Zero);

    /// <summary>Every date from 700 days before today up to 2 days after it: more than any backup can hold.</summary>
    private static DateOnly[] AllDatesAround(DateOnly today) =>
        Enumerable.Range(-700, 703).Select(today.AddDays).ToArray();

    /// <summary>Whether any viewable days the backup can ever have (now or by extending) make <paramref name="date"/> viewable today.</summary>
    private static bool WindowCanEverReach(BackupState state, DateOnly date, DateTimeOffset now)
    {
        var today = state.TimeZone.DateOf(now);
        if (state.EnabledOn is not { } enabledOn || date > today)
        {
            return false;
        }

        return Enumerable.Range(state.ViewableDays, state.Policy.MaximumViewableDays - state.ViewableDays + 1)
            .Any(days => ViewableWindow.On(today, days, enabledOn).Contains(date));
    }

    [Property]
    [Trait("Rule", "W5")]
    public bool Retention_keeps_exactly_what_the_window_can_ever_reach(LifecycleScenario s)
    {
        var state = BackupLifecycle.Advance(s.State, s.Now).State;
        if (state.Kind == BackupKind.Uploaded || state.Status == BackupStatus.Released)
        {
            return true; // covered by their own tests
        }

        var today = state.TimeZone.DateOf(s.Now);
        var decision = RetentionPolicy.Evaluate(s.State, AllDatesAround(today), s.Now);
        var kept = decision.Keep.Where(k => k.Date <= today).Select(k => k.Date).ToHashSet();
        return AllDatesAround(today).Where(d => d <= today).All(d => kept.Contains(d) == WindowCanEverReach(state, d, s.Now));
    }

    [Property]
    [Trait("Rule", "W5")]
    public bool Nothing_from_before_enabling_is_ever_kept(LifecycleScenario s)
    {
        var enabledOn = s.State.EnabledOn;
        var decision = RetentionPolicy.Evaluate(s.State, AllDatesAround(s.State.TimeZone.DateOf(s.Now)), s.Now);
        return enabledOn is null
            ? decision.Keep.Count == 0
            : decision.Keep.All(k => k.Date >= enabledOn) &&
              decision.Prune.Where(p => p.Date < enabledOn).All(p => p.Reason is PruneReason.BeforeEnabled or PruneReason.BackupReleased or PruneReason.NotUploaded);
    }

    [Property]
    [Trait("Rule", "W5")]
    public bool Every_date_is_either_kept_or_pruned_once_with_a_reason(LifecycleScenario s, int[] offsets)
    {
        var today = s.State.TimeZone.DateOf(s.Now);
        var dates = offsets.Select(o => today.AddDays(-(Math.Abs(o) % 800))).ToArray();
        var decision = RetentionPolicy.Evaluate(s.State, dates, s.Now);
        var all = decision.Keep.Select(k => k.Date).Concat(decision.Prune.Select(p => p.Date)).ToArray();
        return all.Order().SequenceEqual(dates.Distinct().Order()) &&
               decision.Keep.All(k => k.Reasons != KeepReason.None) &&
               decision.Prune.All(p => Enum.IsDefined(p.Reason));
    }

    [Property]
    [Trait("Rule", "W5")]
    public bool A_purchased_backup_keeps_600_days_since_enabling_so_that_extending_reveals_them(PurchasedScenario s)
    {
        var today = s.State.TimeZone.DateOf(s.Now);
        var decision = RetentionPolicy.Evaluate(s.State, AllDatesAround(today), s.Now);
        var window = s.State.WindowAt(s.Now)!.Value;
        var oldest = RetentionPolicy.OldestRetainedDate(s.State, s.Now)!.Value;
        var expectedOldest = DateOnly.FromDayNumber(Math.Max(s.State.EnabledOn!.Value.DayNumber, today.DayNumber - 599));
        return oldest == expectedOldest &&
               decision.Keep.Where(k => k.Date <= today).All(k =>
                   k.Date >= oldest &&
                   k.Reasons == (window.Contains(k.Date) ? KeepReason.Viewable : KeepReason.ReachableByExtending));
    }

    [Theory]
    [Trait("Rule", "W5")]
    [InlineData(BackupKind.Automatic, 90)]
    [InlineData(BackupKind.Default, 7)]
    public void Fixed_kinds_keep_exactly_their_viewable_days(BackupKind kind, int days)
    {
        var enabled = T0;
        var backup = kind == BackupKind.Automatic
            ? BackupLifecycle.CreateAutomatic("a", DomainArbitraries.SoftwareInstance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, enabled).Backups[0]
            : DomainArbitraries.Enable(BackupLifecycle.CreateDefault("d", BackupTimeZone.Utc, enabled), enabled);
        var now = enabled.AddDays(400);
        var today = DateOnly.FromDateTime(now.UtcDateTime);
        var decision = RetentionPolicy.Evaluate(backup, AllDatesAround(today).Where(d => d <= today), now);

        Assert.Equal(days, decision.Keep.Count);
        Assert.Equal(today.AddDays(-(days - 1)), decision.Keep[0].Date);
        Assert.All(decision.Keep, k => Assert.Equal(KeepReason.Viewable, k.Reasons));
        Assert.All(decision.Prune, p => Assert.Equal(p.Date < new DateOnly(2026, 1, 10) ? PruneReason.BeforeEnabled : PruneReason.PastRetention, p.Reason));
        Assert.Contains(decision.Prune, p => p.Reason == PruneReason.PastRetention);
    }

    [Fact]
    [Trait("Rule", "W5")]
    public void An_expired_backup_keeps_its_data_until_release_and_then_prunes_everything()
    {
        var backup = DomainArbitraries.Enable(BackupLifecycle.Purchase("p", new PurchaseOrder("cn-hangzhou", 30, PurchaseTerm.FromMonths(1)), BackupTimeZone.Utc, T0).Backups[0], T0);
        var expired = T0.AddMonths(1).AddDays(3);
        var dates = new[] { new DateOnly(2026, 1, 15), new DateOnly(2026, 2, 9) };
        var decision = RetentionPolicy.Evaluate(backup, dates, expired);
        Assert.Empty(decision.Prune);
        Assert.All(decision.Keep, k => Assert.True(k.Reasons.HasFlag(KeepReason.AwaitingRenewal)));

        var released = RetentionPolicy.Evaluate(backup, dates, T0.AddMonths(1).AddDays(15));
        Assert.Empty(released.Keep);
        Assert.All(released.Prune, p => Assert.Equal(PruneReason.BackupReleased, p.Reason));
        Assert.Null(RetentionPolicy.OldestRetainedDate(backup, T0.AddMonths(1).AddDays(15)));
    }

    [Fact]
    [Trait("Rule", "W5")]
    public void An_uploaded_backup_keeps_what_it_holds_forever()
    {
        var uploaded = BackupLifecycle.CreateUploaded("u", "copy", new DateOnly(2020, 1, 1), null, BackupTimeZone.Utc, T0).Backups[0];
        var decision = RetentionPolicy.Evaluate(uploaded, [new DateOnly(2020, 1, 1), new DateOnly(2020, 1, 2)], T0.AddYears(10));
        Assert.Equal([new RetainedDate(new DateOnly(2020, 1, 1), KeepReason.UploadedContent)], decision.Keep);
        Assert.Equal([new PrunedDate(new DateOnly(2020, 1, 2), PruneReason.NotUploaded)], decision.Prune);
    }

    [Fact]
    [Trait("Rule", "W5")]
    public void Data_dated_after_today_is_kept_rather_than_lost()
    {
        var backup = DomainArbitraries.Enable(BackupLifecycle.CreateDefault("d", BackupTimeZone.Utc, T0), T0);
        var decision = RetentionPolicy.Evaluate(backup, [new DateOnly(2026, 1, 12)], T0);
        Assert.Equal(KeepReason.AfterToday, Assert.Single(decision.Keep).Reasons);
    }

    [Property]
    [Trait("Rule", "W5")]
    public bool Retention_only_ever_prunes_what_it_pruned_before_as_time_passes(PurchasedScenario s, PositiveInt laterDays)
    {
        // Monotonic: a date pruned today is never kept again later (so pruning can never destroy data that would be needed later).
        var today = s.State.TimeZone.DateOf(s.Now);
        var dates = AllDatesAround(today).Where(d => d <= today).ToArray();
        var later = s.Now.AddDays(laterDays.Get % 400);
        var prunedNow = RetentionPolicy.Evaluate(s.State, dates, s.Now).Prune.Select(p => p.Date).ToHashSet();
        var keptLater = RetentionPolicy.Evaluate(s.State, dates, later).Keep.Select(k => k.Date);
        return !keptLater.Any(prunedNow.Contains);
    }
}
