// Over 400 lines: one example or property per lifecycle rule, over shared generators.
using System.Globalization;
using FsCheck;
using FsCheck.Xunit;

namespace KmsBackup.Tests.Lifecycle;

[Properties(Arbitrary = [typeof(DomainArbitraries)], MaxTest = 300)]
public class BackupLifecycleTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 10, 8, 0, 0, TimeSpan.Zero);

    private static readonly BackupCommand[] UserCommands =
    [
        new EnableBackup(DomainArbitraries.SoftwareInstance, InstanceKind.Software, "x"),
        new ExtendViewableDays(600),
        new ResetBackup(),
        new RenewBackup(PurchaseTerm.FromMonths(1)),
        new DeleteBackup(),
    ];

    private static readonly BackupOperation[] DataOperations = [BackupOperation.View, BackupOperation.Restore, BackupOperation.Download];

    private static BackupState PurchasedEnabled(int months = 1, int days = 30) =>
        DomainArbitraries.Enable(BackupLifecycle.Purchase("p", new PurchaseOrder("cn-hangzhou", days, PurchaseTerm.FromMonths(months)), BackupTimeZone.Utc, T0).GetBackupsOrThrow()[0], T0);

    // --- L1: states ---

    [Fact]
    [Trait("Rule", "L1")]
    public void A_backup_moves_through_disabled_enabled_expired_and_released()
    {
        var purchased = BackupLifecycle.Purchase("p", new PurchaseOrder("cn-hangzhou", 30, PurchaseTerm.FromMonths(1)), BackupTimeZone.Utc, T0).GetBackupsOrThrow()[0];
        Assert.Equal(BackupStatus.Disabled, purchased.Status);
        var enabled = DomainArbitraries.Enable(purchased, T0.AddHours(1));
        Assert.Equal(BackupStatus.Enabled, enabled.Status);
        var expiresAt = T0.AddMonths(1);
        Assert.Equal(BackupStatus.Expired, BackupLifecycle.Advance(enabled, expiresAt).State.Status);
        Assert.Equal(BackupStatus.Released, BackupLifecycle.Advance(enabled, expiresAt.AddDays(15)).State.Status);
    }

    [Property]
    [Trait("Rule", "L1")]
    public bool Every_reachable_state_is_consistent(LifecycleScenario s)
    {
        var state = s.State;
        var statusOk = state.Status switch
        {
            BackupStatus.Disabled => state.Instance is null && state.EnabledAt is null && state.Kind is BackupKind.Default or BackupKind.Purchased,
            BackupStatus.Enabled => state.EnabledOn is not null && (state.Instance is not null || state.Kind == BackupKind.Uploaded),
            BackupStatus.Expired => state.Kind == BackupKind.Purchased && s.Now >= state.ExpiresAt && s.Now < state.ReleaseDueAt,
            BackupStatus.Released => state.ReleasedAt is not null && state.ReleasedAt <= s.Now,
            _ => false,
        };
        var daysOk = state.ViewableDays >= state.Policy.MinimumViewableDays && state.ViewableDays <= state.Policy.MaximumViewableDays;
        return statusOk && daysOk;
    }

    [Property]
    [Trait("Rule", "L1")]
    public bool Released_is_final(LifecycleScenario s, PositiveInt laterMinutes)
    {
        if (s.State.Status != BackupStatus.Released)
        {
            return true;
        }

        var later = s.Now.AddMinutes(laterMinutes.Get);
        return UserCommands.All(c =>
        {
            var outcome = BackupLifecycle.Apply(s.State, c, later);
            return outcome.Refusal?.Code == BackupErrorCode.BackupReleased && outcome.State == s.State;
        });
    }

    // --- L2: automatic ---

    [Fact]
    [Trait("Rule", "L2")]
    public void An_automatic_backup_cannot_be_deleted_reset_renewed_or_extended_by_hand()
    {
        var automatic = BackupLifecycle.CreateAutomatic("a", DomainArbitraries.SoftwareInstance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, T0).GetBackupsOrThrow()[0];
        foreach (var command in new BackupCommand[] { new ResetBackup(), new RenewBackup(PurchaseTerm.FromMonths(1)), new DeleteBackup(), new ExtendViewableDays(100) })
        {
            var outcome = BackupLifecycle.Apply(automatic, command, T0.AddDays(1));
            Assert.Equal(BackupErrorCode.OperationNotSupported, outcome.Refusal?.Code);
            Assert.Equal(automatic, outcome.State);
        }
    }

    [Property]
    [Trait("Rule", "L2")]
    public bool An_automatic_backup_is_deleted_exactly_90_days_after_its_instance_is_released(PositiveInt releaseAfterMinutes, int aroundSeconds)
    {
        var automatic = BackupLifecycle.CreateAutomatic("a", DomainArbitraries.SoftwareInstance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, T0).GetBackupsOrThrow()[0];
        var releasedAt = T0.AddMinutes(releaseAfterMinutes.Get % 1_000_000);
        var afterRelease = BackupLifecycle.Apply(automatic, new InstanceReleased(DomainArbitraries.SoftwareInstance.Id), releasedAt).GetStateOrThrow();
        var deleteAt = releasedAt.AddDays(90);
        var now = deleteAt.AddSeconds(aroundSeconds % 100_000);
        var advanced = BackupLifecycle.Advance(afterRelease, now);
        return now < deleteAt
            ? advanced.State.Status == BackupStatus.Enabled && advanced.Effects.Count == 0
            : advanced.State.Status == BackupStatus.Released && advanced.State.ReleasedAt == deleteAt && advanced.Effects.SequenceEqual([LifecycleEffect.DeleteAllData]);
    }

    [Fact]
    [Trait("Rule", "L2")]
    public void An_automatic_backup_whose_instance_lives_on_is_never_deleted()
    {
        var automatic = BackupLifecycle.CreateAutomatic("a", DomainArbitraries.SoftwareInstance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, T0).GetBackupsOrThrow()[0];
        Assert.Equal(BackupStatus.Enabled, BackupLifecycle.Advance(automatic, T0.AddYears(20)).State.Status);
        Assert.Null(automatic.ReleaseDueAt);
    }

    // --- L3: default ---

    [Fact]
    [Trait("Rule", "L3")]
    public void A_default_backup_is_valid_indefinitely_until_reset()
    {
        var backup = DomainArbitraries.Enable(BackupLifecycle.CreateDefault("d", BackupTimeZone.Utc, T0), T0);
        var muchLater = T0.AddYears(30);
        Assert.Equal(BackupStatus.Enabled, BackupLifecycle.Advance(backup, muchLater).State.Status);
        Assert.Null(backup.ExpiresAt);
        Assert.Null(BackupLifecycle.Check(backup, BackupOperation.View, muchLater));
        var reset = BackupLifecycle.Apply(backup, new ResetBackup(), muchLater);
        Assert.Equal(BackupStatus.Disabled, reset.State.Status);
        Assert.Equal(BackupErrorCode.OperationNotSupported, BackupLifecycle.Apply(backup, new RenewBackup(PurchaseTerm.FromMonths(1)), muchLater).Refusal?.Code);
    }

    // --- L4: expiry, release, renewal ---

    [Property]
    [Trait("Rule", "L4")]
    public bool An_expired_backup_refuses_everything_but_renew(PurchasedScenario s, PositiveInt minutesPastExpiry)
    {
        var now = s.State.ExpiresAt!.Value.AddMinutes(minutesPastExpiry.Get % (15 * 24 * 60));
        var refusedAll = UserCommands.Where(c => c is not RenewBackup).All(c =>
        {
            var outcome = BackupLifecycle.Apply(s.State, c, now);
            return outcome.Refusal?.Code == BackupErrorCode.BackupExpired && outcome.State.Status == BackupStatus.Expired;
        });
        var refusedData = DataOperations.All(op =>
            BackupLifecycle.Check(s.State, op, now)?.Code == BackupErrorCode.BackupExpired &&
            BackupLifecycle.CheckDate(s.State, s.State.EnabledOn!.Value, op, now)?.Code == BackupErrorCode.BackupExpired);
        var renewed = BackupLifecycle.Apply(s.State, new RenewBackup(PurchaseTerm.FromMonths(1)), now);
        return refusedAll && refusedData && renewed.IsAccepted && renewed.State.Status == BackupStatus.Enabled;
    }

    [Property]
    [Trait("Rule", "L4")]
    public bool A_purchased_backup_is_released_with_its_data_exactly_15_days_after_expiry(PurchasedScenario s, int aroundMinutes)
    {
        var releaseAt = s.State.ExpiresAt!.Value.AddDays(15);
        var now = releaseAt.AddMinutes(aroundMinutes % (20 * 24 * 60));
        var advanced = BackupLifecycle.Advance(s.State, now);
        if (now < s.State.ExpiresAt)
        {
            return advanced.State.Status == BackupStatus.Enabled && advanced.Effects.Count == 0;
        }

        return now < releaseAt
            ? advanced.State.Status == BackupStatus.Expired && advanced.Effects.Count == 0
            : advanced.State.Status == BackupStatus.Released && advanced.State.ReleasedAt == releaseAt &&
              advanced.Effects.SequenceEqual([LifecycleEffect.DeleteAllData]);
    }

    [Property]
    [Trait("Rule", "L4")]
    public bool Renewing_after_release_fails(PurchasedScenario s, PositiveInt minutesPastRelease)
    {
        var now = s.State.ReleaseDueAt!.Value.AddMinutes(minutesPastRelease.Get - 1);
        var outcome = BackupLifecycle.Apply(s.State, new RenewBackup(PurchaseTerm.FromYears(1)), now);
        return outcome.Refusal?.Code == BackupErrorCode.BackupReleased &&
               outcome.Refusal.Remedy.Contains("purchase a new backup", StringComparison.Ordinal) &&
               outcome.State.Status == BackupStatus.Released;
    }

    [Property]
    [Trait("Rule", "L4")]
    public bool Renewing_an_active_backup_extends_it_and_renewing_an_expired_one_reactivates_it(PurchasedScenario s, PositiveInt months, PositiveInt minutesPastExpiry)
    {
        var term = PurchaseTerm.FromMonths(1 + (months.Get % 24));
        var active = BackupLifecycle.Apply(s.State, new RenewBackup(term), s.Now).GetStateOrThrow();
        var expiredAt = s.State.ExpiresAt!.Value.AddMinutes(minutesPastExpiry.Get % (15 * 24 * 60));
        var reactivated = BackupLifecycle.Apply(s.State, new RenewBackup(term), expiredAt).GetStateOrThrow();
        return active.ExpiresAt == s.State.ExpiresAt!.Value.ToUniversalTime().AddMonths(term.Months) &&
               active.Status == BackupStatus.Enabled &&
               reactivated.ExpiresAt == expiredAt.ToUniversalTime().AddMonths(term.Months) &&
               reactivated.Status == BackupStatus.Enabled &&
               reactivated.EnabledAt == s.State.EnabledAt &&
               BackupLifecycle.Check(reactivated, BackupOperation.View, expiredAt) is null;
    }

    [Fact]
    [Trait("Rule", "L4")]
    public void The_expired_refusal_names_the_backup_and_the_last_day_to_renew()
    {
        var backup = PurchasedEnabled();
        var refusal = BackupLifecycle.Check(backup, BackupOperation.Download, T0.AddMonths(1).AddDays(2))!;
        Assert.Equal(BackupErrorCode.BackupExpired, refusal.Code);
        Assert.Equal("backup 'p-1'", refusal.Item);
        Assert.Contains("2026-02-10", refusal.Message, StringComparison.Ordinal);
        Assert.Contains("Renew it before 2026-02-25", refusal.Remedy, StringComparison.Ordinal);
        Assert.Contains("within 15 days", refusal.Remedy, StringComparison.Ordinal);
        var thrown = Assert.Throws<BackupException>(() => BackupLifecycle.Apply(backup, new ResetBackup(), T0.AddMonths(1).AddDays(2)).GetStateOrThrow());
        Assert.Equal(BackupErrorCode.BackupExpired, thrown.Code);
        Assert.Contains("Remedy: Renew", thrown.Message, StringComparison.Ordinal);
    }

    // --- L5: reset ---

    [Property]
    [Trait("Rule", "L5")]
    public bool Reset_deletes_all_data_unbinds_and_leaves_disabled(LifecycleScenario s, PositiveInt laterMinutes)
    {
        var now = s.Now.AddMinutes(laterMinutes.Get % 10_000);
        var current = BackupLifecycle.Advance(s.State, now).State;
        var outcome = BackupLifecycle.Apply(s.State, new ResetBackup(), now);
        var resettable = current.Kind is BackupKind.Default or BackupKind.Purchased && current.Status is BackupStatus.Enabled or BackupStatus.Disabled;
        if (!resettable)
        {
            return !outcome.IsAccepted && outcome.State == current;
        }

        var reset = outcome.State;
        var anyDate = current.EnabledOn ?? current.TimeZone.DateOf(now);
        return outcome.IsAccepted &&
               reset.Status == BackupStatus.Disabled && reset.Instance is null && reset.EnabledAt is null && reset.EnabledOn is null &&
               outcome.Effects.Contains(LifecycleEffect.DeleteAllData) &&
               RetentionPolicy.Evaluate(reset, [anyDate, anyDate.AddDays(-1)], now).Keep.Count == 0 &&
               BackupLifecycle.Check(reset, BackupOperation.View, now)?.Code == BackupErrorCode.BackupNotEnabled;
    }

    [Fact]
    [Trait("Rule", "L5")]
    public void A_reset_backup_can_be_enabled_again_for_any_matching_instance()
    {
        var backup = PurchasedEnabled();
        var reset = BackupLifecycle.Apply(backup, new ResetBackup(), T0.AddDays(3)).GetStateOrThrow();
        var other = new InstanceInfo("kst-other", InstanceKind.Software, "cn-hangzhou", T0);
        var rebound = BackupLifecycle.Apply(reset, new EnableBackup(other, InstanceKind.Software, "second life"), T0.AddDays(4));
        Assert.True(rebound.IsAccepted, rebound.ToString());
        Assert.Equal("kst-other", rebound.State.Instance!.Id);
        Assert.Equal(T0.AddDays(4), rebound.State.EnabledAt);
        Assert.Equal(new ViewableWindow(new DateOnly(2026, 1, 14), new DateOnly(2026, 1, 14)), rebound.State.WindowAt(T0.AddDays(4)));
        Assert.Equal(BackupErrorCode.DateBeforeEnabled, BackupLifecycle.CheckDate(rebound.State, new DateOnly(2026, 1, 12), BackupOperation.View, T0.AddDays(4))?.Code);
    }

    [Theory]
    [Trait("Rule", "L5")]
    [InlineData(BackupKind.Automatic)]
    [InlineData(BackupKind.Uploaded)]
    public void Only_default_and_purchased_backups_can_be_reset(BackupKind kind)
    {
        var backup = kind == BackupKind.Automatic
            ? BackupLifecycle.CreateAutomatic("a", DomainArbitraries.SoftwareInstance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, T0).Backups[0]
            : BackupLifecycle.CreateUploaded("u", "copy", new DateOnly(2026, 1, 1), null, BackupTimeZone.Utc, T0).Backups[0];
        var refusal = BackupLifecycle.Apply(backup, new ResetBackup(), T0).Refusal!;
        Assert.Equal(BackupErrorCode.OperationNotSupported, refusal.Code);
        Assert.Contains("Reset", refusal.Message, StringComparison.Ordinal);
    }

    // --- L6: extend ---

    [Property]
    [Trait("Rule", "L6")]
    public bool Extending_is_accepted_exactly_for_a_live_purchased_backup_going_up_to_at_most_600(LifecycleScenario s, int requested)
    {
        var days = requested % 700;
        var current = BackupLifecycle.Advance(s.State, s.Now).State;
        var outcome = BackupLifecycle.Apply(s.State, new ExtendViewableDays(days), s.Now);
        var allowed = current.Kind == BackupKind.Purchased && current.Status is BackupStatus.Enabled or BackupStatus.Disabled &&
                      days > current.ViewableDays && days <= 600;
        if (!allowed)
        {
            return !outcome.IsAccepted && outcome.State == current;
        }

        return outcome.IsAccepted && outcome.State.ViewableDays == days && outcome.State == current with { ViewableDays = days };
    }

    [Fact]
    [Trait("Rule", "L6")]
    public void Extension_refusals_name_the_value_and_the_remedy()
    {
        var backup = PurchasedEnabled(days: 30);
        var down = BackupLifecycle.Apply(backup, new ExtendViewableDays(20), T0).Refusal!;
        Assert.Equal(BackupErrorCode.ViewableDaysNotIncreased, down.Code);
        Assert.Equal("viewableDays=20", down.Item);
        Assert.Contains("downgrading is not supported", down.Message, StringComparison.Ordinal);
        Assert.Contains("more than 30", down.Remedy, StringComparison.Ordinal);

        var tooMany = BackupLifecycle.Apply(backup, new ExtendViewableDays(601), T0).Refusal!;
        Assert.Equal(BackupErrorCode.ViewableDaysOutOfRange, tooMany.Code);
        Assert.Equal("viewableDays=601", tooMany.Item);

        var defaultBackup = DomainArbitraries.Enable(BackupLifecycle.CreateDefault("d", BackupTimeZone.Utc, T0), T0);
        var notPurchased = BackupLifecycle.Apply(defaultBackup, new ExtendViewableDays(30), T0).Refusal!;
        Assert.Equal(BackupErrorCode.OperationNotSupported, notPurchased.Code);
        Assert.Contains("Only purchased backups", notPurchased.Remedy, StringComparison.Ordinal);
    }

    // --- L7: renew ---

    [Theory]
    [Trait("Rule", "L7")]
    [InlineData(BackupKind.Automatic)]
    [InlineData(BackupKind.Default)]
    [InlineData(BackupKind.Uploaded)]
    public void Only_purchased_backups_can_be_renewed(BackupKind kind)
    {
        var backup = kind switch
        {
            BackupKind.Automatic => BackupLifecycle.CreateAutomatic("a", DomainArbitraries.SoftwareInstance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, T0).Backups[0],
            BackupKind.Default => BackupLifecycle.CreateDefault("d", BackupTimeZone.Utc, T0),
            _ => BackupLifecycle.CreateUploaded("u", "copy", new DateOnly(2026, 1, 1), null, BackupTimeZone.Utc, T0).Backups[0],
        };
        var outcome = BackupLifecycle.Apply(backup, new RenewBackup(PurchaseTerm.FromMonths(6)), T0);
        Assert.Equal(BackupErrorCode.OperationNotSupported, outcome.Refusal?.Code);
        Assert.Contains("Only purchased backups can be renewed", outcome.Refusal!.Remedy, StringComparison.Ordinal);
    }

    [Theory]
    [Trait("Rule", "L7")]
    [InlineData(0)]
    [InlineData(121)]
    [InlineData(-1)]
    public void A_term_outside_1_to_120_months_is_refused(int months)
    {
        var error = Assert.Throws<BackupException>(() => PurchaseTerm.FromMonths(months));
        Assert.Equal(BackupErrorCode.InvalidPurchaseTerm, error.Code);
        Assert.Contains($"{months} months", error.Message, StringComparison.Ordinal);
        Assert.Equal(BackupErrorCode.InvalidPurchaseTerm, Assert.Throws<BackupException>(() => PurchaseTerm.FromYears(11)).Code);
        Assert.Equal(BackupErrorCode.InvalidPurchaseTerm, BackupLifecycle.Apply(PurchasedEnabled(), new RenewBackup(default), T0).Refusal?.Code);
    }

    // --- L8: pure transitions with stable codes and remedies ---

    [Property]
    [Trait("Rule", "L8")]
    public bool Transitions_are_pure_functions_of_state_command_and_now(LifecycleScenario s, byte which, PositiveInt laterMinutes)
    {
        var command = UserCommands[which % UserCommands.Length];
        var now = s.Now.AddMinutes(laterMinutes.Get % 100_000);
        var first = BackupLifecycle.Apply(s.State, command, now);
        var second = BackupLifecycle.Apply(s.State, command, now);
        return first.State == second.State && Equals(first.Refusal, second.Refusal) && first.Effects.SequenceEqual(second.Effects);
    }

    [Property]
    [Trait("Rule", "L8")]
    public bool A_refusal_changes_nothing_but_time_and_always_has_a_code_item_and_remedy(LifecycleScenario s, byte which, PositiveInt laterMinutes)
    {
        var command = UserCommands[which % UserCommands.Length];
        var now = s.Now.AddMinutes(laterMinutes.Get % 100_000);
        var outcome = BackupLifecycle.Apply(s.State, command, now);
        if (outcome.IsAccepted)
        {
            return true;
        }

        var refusal = outcome.Refusal;
        return outcome.State == BackupLifecycle.Advance(s.State, now).State &&
               !string.IsNullOrEmpty(refusal.Code.ToString()) && refusal.Item.Length > 0 && refusal.Remedy.Length > 0 &&
               outcome.ToString().StartsWith("Refused", StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "L8")]
    public void Error_codes_are_stable_strings()
    {
        Assert.Equal("BackupExpired", BackupErrorCode.BackupExpired.ToString());
        Assert.Equal("InsufficientQuota", BackupErrorCode.InsufficientQuota.ToString());
        Assert.Equal("NameConflict", BackupErrorCode.NameConflict.ToString());
        Assert.Equal(new BackupErrorCode("BackupExpired"), BackupErrorCode.BackupExpired);
        Assert.NotEqual(BackupErrorCode.BackupExpired, BackupErrorCode.BackupReleased);
        Assert.Throws<ArgumentException>(() => new BackupErrorCode(" "));
    }

    [Fact]
    [Trait("Rule", "L8")]
    public void Using_a_backup_that_holds_no_data_is_refused_with_the_remedy_to_enable_it()
    {
        var backup = BackupLifecycle.CreateDefault("d", BackupTimeZone.Utc, T0);
        foreach (var operation in DataOperations)
        {
            var refusal = BackupLifecycle.CheckDate(backup, new DateOnly(2026, 1, 10), operation, T0)!;
            Assert.Equal(BackupErrorCode.BackupNotEnabled, refusal.Code);
            Assert.Contains("Enable it", refusal.Remedy, StringComparison.Ordinal);
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => BackupLifecycle.CheckDate(backup, new DateOnly(2026, 1, 10), BackupOperation.Reset, T0));
    }

    [Fact]
    [Trait("Rule", "L8")]
    public void An_uploaded_backup_holds_one_date_and_can_be_deleted()
    {
        var uploaded = BackupLifecycle.CreateUploaded("u", "copy", new DateOnly(2025, 12, 1), "cn-shanghai", BackupTimeZone.Utc, T0).GetBackupsOrThrow()[0];
        Assert.Null(BackupLifecycle.CheckDate(uploaded, new DateOnly(2025, 12, 1), BackupOperation.Restore, T0));
        var other = BackupLifecycle.CheckDate(uploaded, new DateOnly(2025, 12, 2), BackupOperation.View, T0)!;
        Assert.Equal(BackupErrorCode.DateNotReachable, other.Code);
        Assert.Contains("2025-12-01", other.Message, StringComparison.Ordinal);

        var deleted = BackupLifecycle.Apply(uploaded, new DeleteBackup(), T0.AddDays(1));
        Assert.Equal(BackupStatus.Released, deleted.State.Status);
        Assert.Equal([LifecycleEffect.DeleteAllData], deleted.Effects);

        Assert.Equal(BackupErrorCode.InvalidAlias, BackupLifecycle.CreateUploaded("u2", "", new DateOnly(2025, 12, 1), null, BackupTimeZone.Utc, T0).Refusal?.Code);
        Assert.Equal(BackupErrorCode.OperationNotSupported, BackupLifecycle.Apply(PurchasedEnabled(), new DeleteBackup(), T0).Refusal?.Code);
    }

    [Fact]
    [Trait("Rule", "L8")]
    public void Refusals_never_format_more_than_ids_dates_and_numbers()
    {
        var refusal = BackupLifecycle.Apply(PurchasedEnabled(), new ExtendViewableDays(5), T0).Refusal!;
        Assert.Equal($"{refusal.Code}: {refusal.Message} Remedy: {refusal.Remedy}", refusal.ToString());
        Assert.Equal(refusal, new Refusal(refusal.Code, refusal.Item, refusal.Message, refusal.Remedy));
        Assert.Equal(refusal.GetHashCode(), new Refusal(refusal.Code, refusal.Item, refusal.Message, refusal.Remedy).GetHashCode());
        Assert.Equal(string.Create(CultureInfo.InvariantCulture, $"viewableDays={5}"), refusal.Item);
    }
}
