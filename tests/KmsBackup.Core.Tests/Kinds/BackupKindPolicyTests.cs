using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace KmsBackup.Tests.Kinds;

public class BackupKindPolicyTests
{
    private static readonly DateTimeOffset Now = new(2026, 5, 1, 10, 0, 0, TimeSpan.Zero);

    [Theory]
    [Trait("Rule", "K1")]
    [InlineData(BackupKind.Automatic, "System Created")]
    [InlineData(BackupKind.Default, "Default")]
    [InlineData(BackupKind.Purchased, "Paid")]
    [InlineData(BackupKind.Uploaded, "Upload")]
    public void Each_kind_has_the_seed_label(BackupKind kind, string label)
    {
        Assert.Equal(label, BackupKindPolicy.For(kind).Label);
    }

    [Fact]
    [Trait("Rule", "K1")]
    public void There_are_exactly_four_kinds_each_with_one_policy()
    {
        Assert.Equal(Enum.GetValues<BackupKind>(), BackupKindPolicy.All.Select(p => p.Kind));
        Assert.Throws<ArgumentOutOfRangeException>(() => BackupKindPolicy.For((BackupKind)99));
    }

    [Fact]
    [Trait("Rule", "K1")]
    public void A_created_backup_carries_its_kind_label()
    {
        var created = new[]
        {
            BackupLifecycle.CreateAutomatic("a", DomainArbitraries.SoftwareInstance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, Now).GetBackupsOrThrow()[0],
            BackupLifecycle.CreateDefault("d", BackupTimeZone.Utc, Now),
            BackupLifecycle.Purchase("p", new PurchaseOrder("cn-hangzhou", 30, PurchaseTerm.FromMonths(1)), BackupTimeZone.Utc, Now).GetBackupsOrThrow()[0],
            BackupLifecycle.CreateUploaded("u", "restored-copy", new DateOnly(2026, 4, 1), null, BackupTimeZone.Utc, Now).GetBackupsOrThrow()[0],
        };

        Assert.Equal(["System Created", "Default", "Paid", "Upload"], created.Select(b => b.Label));
    }

    [Theory]
    [Trait("Rule", "K2")]
    [InlineData(BackupKind.Automatic, 90, 90)]
    [InlineData(BackupKind.Default, 7, 7)]
    [InlineData(BackupKind.Purchased, 7, 600)]
    [InlineData(BackupKind.Uploaded, 1, 1)]
    public void Viewable_days_follow_the_kind(BackupKind kind, int minimum, int maximum)
    {
        var policy = BackupKindPolicy.For(kind);
        Assert.Equal(minimum, policy.MinimumViewableDays);
        Assert.Equal(maximum, policy.MaximumViewableDays);
        Assert.Equal(kind == BackupKind.Purchased, policy.CanExtendViewableDays);
    }

    [Fact]
    [Trait("Rule", "K2")]
    public void Created_backups_start_with_their_kinds_viewable_days()
    {
        Assert.Equal(90, BackupLifecycle.CreateAutomatic("a", DomainArbitraries.SoftwareInstance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, Now).Backups[0].ViewableDays);
        Assert.Equal(7, BackupLifecycle.CreateDefault("d", BackupTimeZone.Utc, Now).ViewableDays);
        Assert.Equal(250, BackupLifecycle.Purchase("p", new PurchaseOrder("r", 250, PurchaseTerm.FromMonths(1)), BackupTimeZone.Utc, Now).Backups[0].ViewableDays);
        var uploaded = BackupLifecycle.CreateUploaded("u", "copy", new DateOnly(2026, 4, 1), null, BackupTimeZone.Utc, Now).Backups[0];
        Assert.Equal(new ViewableWindow(new DateOnly(2026, 4, 1), new DateOnly(2026, 4, 1)), uploaded.WindowAt(Now));
    }

    [Property(MaxTest = 300)]
    [Trait("Rule", "K2")]
    public bool Purchased_viewable_days_are_accepted_exactly_in_7_to_600(int days)
    {
        var outcome = BackupLifecycle.Purchase("p", new PurchaseOrder("r", days, PurchaseTerm.FromMonths(1)), BackupTimeZone.Utc, Now);
        var valid = days is >= 7 and <= 600;
        return valid
            ? outcome.IsAccepted && outcome.Backups[0].ViewableDays == days
            : !outcome.IsAccepted && outcome.Refusal.Code == BackupErrorCode.ViewableDaysOutOfRange && outcome.Refusal.Item.Contains($"viewableDays={days}", StringComparison.Ordinal);
    }

    [Theory]
    [Trait("Rule", "K2")]
    [InlineData(6)]
    [InlineData(601)]
    [InlineData(0)]
    [InlineData(-5)]
    public void Viewable_days_out_of_range_are_refused_with_value_and_remedy(int days)
    {
        var refusal = BackupLifecycle.Purchase("p", new PurchaseOrder("r", days, PurchaseTerm.FromMonths(1)), BackupTimeZone.Utc, Now).Refusal!;
        Assert.Equal(BackupErrorCode.ViewableDaysOutOfRange, refusal.Code);
        Assert.Contains(days.ToString(System.Globalization.CultureInfo.InvariantCulture), refusal.Message, StringComparison.Ordinal);
        Assert.Contains("7 to 600", refusal.Remedy, StringComparison.Ordinal);
        var thrown = Assert.Throws<BackupException>(() =>
            BackupLifecycle.Purchase("p", new PurchaseOrder("r", days, PurchaseTerm.FromMonths(1)), BackupTimeZone.Utc, Now).GetBackupsOrThrow());
        Assert.Equal(BackupErrorCode.ViewableDaysOutOfRange, thrown.Code);
    }

    [Theory]
    [Trait("Rule", "K3")]
    [InlineData(BackupKind.Automatic, false)]
    [InlineData(BackupKind.Default, false)]
    [InlineData(BackupKind.Purchased, true)]
    public void Only_purchased_backups_are_paid(BackupKind kind, bool paid)
    {
        Assert.Equal(paid ? BackupCost.Paid : BackupCost.Free, BackupKindPolicy.For(kind).Cost);
    }

    [Fact]
    [Trait("Rule", "K3")]
    public void A_purchase_records_duration_viewable_days_and_quantity_and_asks_for_a_charge()
    {
        var outcome = BackupLifecycle.Purchase("order-7", new PurchaseOrder("cn-hangzhou", 60, PurchaseTerm.FromYears(1), 3), BackupTimeZone.Utc, Now);
        Assert.True(outcome.IsAccepted);
        Assert.Equal([LifecycleEffect.RecordCharge], outcome.Effects);
        Assert.All(outcome.Backups, b => Assert.Equal(new PurchaseRecord(Now, PurchaseTerm.FromMonths(12), 60, 3), b.Purchase));
        Assert.All(outcome.Backups, b => Assert.Equal(Now.AddMonths(12), b.ExpiresAt));
    }

    [Fact]
    [Trait("Rule", "K3")]
    public void Extending_and_renewing_ask_for_a_charge_and_free_kinds_never_do()
    {
        var paid = DomainArbitraries.Enable(BackupLifecycle.Purchase("p", new PurchaseOrder("cn-hangzhou", 10, PurchaseTerm.FromMonths(1)), BackupTimeZone.Utc, Now).Backups[0], Now);
        Assert.Contains(LifecycleEffect.RecordCharge, BackupLifecycle.Apply(paid, new ExtendViewableDays(20), Now).Effects);
        Assert.Contains(LifecycleEffect.RecordCharge, BackupLifecycle.Apply(paid, new RenewBackup(PurchaseTerm.FromMonths(1)), Now).Effects);

        var free = DomainArbitraries.Enable(BackupLifecycle.CreateDefault("d", BackupTimeZone.Utc, Now), Now);
        Assert.DoesNotContain(LifecycleEffect.RecordCharge, BackupLifecycle.Apply(free, new ResetBackup(), Now).Effects);
        Assert.DoesNotContain(LifecycleEffect.RecordCharge, BackupLifecycle.CreateAutomatic("a", DomainArbitraries.SoftwareInstance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, Now).Effects);
    }

    [Theory]
    [Trait("Rule", "K4")]
    [InlineData(InstanceKind.Software, "2024-04-25T23:59:59Z", false)]
    [InlineData(InstanceKind.Software, "2024-04-26T00:00:00Z", true)]
    [InlineData(InstanceKind.Hardware, "2026-03-31T23:59:59Z", false)]
    [InlineData(InstanceKind.Hardware, "2026-04-01T00:00:00Z", true)]
    public void Automatic_backups_go_to_instances_created_on_or_after_the_cutoff(InstanceKind kind, string createdAt, bool eligible)
    {
        var instance = new InstanceInfo("i-1", kind, "cn-hangzhou", DateTimeOffset.Parse(createdAt, System.Globalization.CultureInfo.InvariantCulture))
        {
            ImageVersion = new Version(3, 9, 1),
        };
        var outcome = BackupLifecycle.CreateAutomatic("auto-1", instance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, Now);
        Assert.Equal(eligible, outcome.IsAccepted);
        if (eligible)
        {
            var backup = Assert.Single(outcome.Backups);
            Assert.Equal(BackupStatus.Enabled, backup.Status);
            Assert.Equal("i-1", backup.Instance!.Id);
            Assert.Equal(Now, backup.EnabledAt);
            Assert.Equal([LifecycleEffect.RunFullBackup], outcome.Effects);
        }
        else
        {
            Assert.Equal(BackupErrorCode.InstanceNotEligible, outcome.Refusal!.Code);
            Assert.Contains("'i-1'", outcome.Refusal.Message, StringComparison.Ordinal);
        }
    }

    [Property(MaxTest = 200)]
    [Trait("Rule", "K4")]
    public bool Eligibility_follows_configurable_cutoffs(int softwareOffsetHours, int hardwareOffsetHours, int createdOffsetHours, bool hardware)
    {
        var origin = new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var cutoffs = new AutomaticBackupCutoffs
        {
            SoftwareCreatedOnOrAfter = origin.AddHours(softwareOffsetHours % 10_000),
            HardwareCreatedOnOrAfter = origin.AddHours(hardwareOffsetHours % 10_000),
        };
        var kind = hardware ? InstanceKind.Hardware : InstanceKind.Software;
        var instance = new InstanceInfo("i", kind, "r", origin.AddHours(createdOffsetHours % 10_000)) { ImageVersion = new Version(4, 0) };
        var outcome = BackupLifecycle.CreateAutomatic("a", instance, [], cutoffs, BackupTimeZone.Utc, Now);
        return outcome.IsAccepted == (instance.CreatedAt >= cutoffs.For(kind));
    }

    [Fact]
    [Trait("Rule", "K4")]
    public void A_disabled_instance_gets_no_automatic_backup()
    {
        var instance = DomainArbitraries.SoftwareInstance with { IsEnabled = false };
        var outcome = BackupLifecycle.CreateAutomatic("a", instance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, Now);
        Assert.Equal(BackupErrorCode.InstanceNotEnabled, outcome.Refusal!.Code);
    }

    [Fact]
    [Trait("Rule", "K5")]
    public void An_instance_has_at_most_one_automatic_backup()
    {
        var first = BackupLifecycle.CreateAutomatic("auto-1", DomainArbitraries.SoftwareInstance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, Now).GetBackupsOrThrow();
        var second = BackupLifecycle.CreateAutomatic("auto-2", DomainArbitraries.SoftwareInstance, first, AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, Now);
        Assert.Equal(BackupErrorCode.AutomaticBackupExists, second.Refusal!.Code);
        Assert.Contains("auto-1", second.Refusal.Remedy, StringComparison.Ordinal);

        var other = DomainArbitraries.SoftwareInstance with { };
        var otherInstance = new InstanceInfo("kst-other", InstanceKind.Software, "cn-hangzhou", other.CreatedAt);
        Assert.True(BackupLifecycle.CreateAutomatic("auto-3", otherInstance, first, AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, Now).IsAccepted);
    }

    [Fact]
    [Trait("Rule", "K5")]
    public void Each_backup_backs_up_exactly_one_instance_and_cannot_be_bound_twice()
    {
        var backup = DomainArbitraries.Enable(BackupLifecycle.CreateDefault("d", BackupTimeZone.Utc, Now), Now);
        Assert.Equal(DomainArbitraries.SoftwareInstance.Id, backup.Instance!.Id);
        var other = new InstanceInfo("kst-other", InstanceKind.Software, "cn-hangzhou", Now);
        var again = BackupLifecycle.Apply(backup, new EnableBackup(other, InstanceKind.Software), Now.AddHours(1));
        Assert.Equal(BackupErrorCode.BackupAlreadyEnabled, again.Refusal!.Code);
        Assert.Equal(DomainArbitraries.SoftwareInstance.Id, again.State.Instance!.Id);
    }

    [Property(MaxTest = 100)]
    [Trait("Rule", "K6")]
    public bool A_purchase_of_quantity_n_creates_n_unbound_backups_in_its_region(PositiveInt quantity)
    {
        var n = 1 + ((quantity.Get - 1) % PurchaseOrder.MaximumQuantity);
        var backups = BackupLifecycle.Purchase("o", new PurchaseOrder("eu-central-1", 30, PurchaseTerm.FromMonths(3), n), BackupTimeZone.Utc, Now).GetBackupsOrThrow();
        return backups.Count == n &&
               backups.Select(b => b.Id).Distinct().Count() == n &&
               backups.All(b => b.Status == BackupStatus.Disabled && b.Instance is null && b.EnabledAt is null && b.Region == "eu-central-1");
    }

    [Theory]
    [Trait("Rule", "K6")]
    [InlineData(0)]
    [InlineData(101)]
    public void A_purchase_quantity_outside_1_to_100_is_refused(int quantity)
    {
        var refusal = BackupLifecycle.Purchase("o", new PurchaseOrder("r", 30, PurchaseTerm.FromMonths(1), quantity), BackupTimeZone.Utc, Now).Refusal!;
        Assert.Equal(BackupErrorCode.InvalidQuantity, refusal.Code);
        Assert.Contains($"quantity={quantity}", refusal.Item, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "K6")]
    public void A_purchased_backup_backs_up_only_an_instance_in_its_own_region()
    {
        var backup = BackupLifecycle.Purchase("o", new PurchaseOrder("eu-central-1", 30, PurchaseTerm.FromMonths(1)), BackupTimeZone.Utc, Now).Backups[0];
        var outcome = BackupLifecycle.Apply(backup, new EnableBackup(DomainArbitraries.SoftwareInstance, InstanceKind.Software), Now);
        Assert.Equal(BackupErrorCode.RegionMismatch, outcome.Refusal!.Code);
        Assert.Contains("cn-hangzhou", outcome.Refusal.Message, StringComparison.Ordinal);
        Assert.Contains("eu-central-1", outcome.Refusal.Message, StringComparison.Ordinal);
        Assert.Equal(BackupStatus.Disabled, outcome.State.Status);
    }

    [Fact]
    [Trait("Rule", "K7")]
    public void Enabling_binds_a_default_or_purchased_backup_with_its_alias_and_starts_a_full()
    {
        foreach (var backup in new[]
                 {
                     BackupLifecycle.CreateDefault("d", BackupTimeZone.Utc, Now),
                     BackupLifecycle.Purchase("p", new PurchaseOrder("cn-hangzhou", 30, PurchaseTerm.FromMonths(1)), BackupTimeZone.Utc, Now).Backups[0],
                 })
        {
            var outcome = BackupLifecycle.Apply(backup, new EnableBackup(DomainArbitraries.SoftwareInstance, InstanceKind.Software, "prod keys"), Now);
            Assert.True(outcome.IsAccepted, outcome.ToString());
            Assert.Equal(BackupStatus.Enabled, outcome.State.Status);
            Assert.Equal(new BoundInstance("kst-software-1", InstanceKind.Software, "cn-hangzhou"), outcome.State.Instance);
            Assert.Equal("prod keys", outcome.State.Alias);
            Assert.Equal(Now, outcome.State.EnabledAt);
            Assert.Equal([LifecycleEffect.RunFullBackup], outcome.Effects);
        }
    }

    [Fact]
    [Trait("Rule", "K7")]
    public void Without_an_alias_the_backup_id_is_the_alias()
    {
        var state = BackupLifecycle.Apply(BackupLifecycle.CreateDefault("d-17", BackupTimeZone.Utc, Now), new EnableBackup(DomainArbitraries.SoftwareInstance, InstanceKind.Software), Now).GetStateOrThrow();
        Assert.Equal("d-17", state.Alias);
    }

    [Theory]
    [Trait("Rule", "K7")]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData(" padded")]
    [InlineData("line\nbreak")]
    public void Bad_aliases_are_refused(string alias)
    {
        var outcome = BackupLifecycle.Apply(BackupLifecycle.CreateDefault("d", BackupTimeZone.Utc, Now), new EnableBackup(DomainArbitraries.SoftwareInstance, InstanceKind.Software, alias), Now);
        Assert.Equal(BackupErrorCode.InvalidAlias, outcome.Refusal!.Code);
        Assert.Equal(BackupStatus.Disabled, outcome.State.Status);
    }

    [Fact]
    [Trait("Rule", "K7")]
    public void Enabling_needs_an_enabled_instance_of_the_chosen_backup_type()
    {
        var backup = BackupLifecycle.CreateDefault("d", BackupTimeZone.Utc, Now);
        var mismatch = BackupLifecycle.Apply(backup, new EnableBackup(DomainArbitraries.SoftwareInstance, InstanceKind.Hardware), Now);
        Assert.Equal(BackupErrorCode.InstanceKindMismatch, mismatch.Refusal!.Code);

        var disabled = BackupLifecycle.Apply(backup, new EnableBackup(DomainArbitraries.SoftwareInstance with { IsEnabled = false }, InstanceKind.Software), Now);
        Assert.Equal(BackupErrorCode.InstanceNotEnabled, disabled.Refusal!.Code);

        var hardware = new InstanceInfo("kst-hw", InstanceKind.Hardware, "cn-hangzhou", Now) { ImageVersion = new Version(3, 9, 0) };
        var tooOld = BackupLifecycle.Apply(backup, new EnableBackup(hardware, InstanceKind.Hardware), Now);
        Assert.Equal(BackupErrorCode.ImageVersionTooOld, tooOld.Refusal!.Code);
        Assert.True(BackupLifecycle.Apply(backup, new EnableBackup(hardware with { ImageVersion = new Version(3, 9, 1) }, InstanceKind.Hardware), Now).IsAccepted);
    }

    [Theory]
    [Trait("Rule", "K7")]
    [InlineData(BackupKind.Automatic)]
    [InlineData(BackupKind.Uploaded)]
    public void Only_default_and_purchased_backups_are_enabled_by_hand(BackupKind kind)
    {
        var backup = kind == BackupKind.Automatic
            ? BackupLifecycle.CreateAutomatic("a", DomainArbitraries.SoftwareInstance, [], AutomaticBackupCutoffs.Default, BackupTimeZone.Utc, Now).Backups[0]
            : BackupLifecycle.CreateUploaded("u", "copy", new DateOnly(2026, 4, 1), null, BackupTimeZone.Utc, Now).Backups[0];
        var outcome = BackupLifecycle.Apply(backup, new EnableBackup(DomainArbitraries.SoftwareInstance, InstanceKind.Software), Now);
        Assert.Equal(BackupErrorCode.OperationNotSupported, outcome.Refusal!.Code);
    }
}
