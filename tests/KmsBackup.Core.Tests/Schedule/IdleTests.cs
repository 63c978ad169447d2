using FsCheck.Xunit;

namespace KmsBackup.Tests.Schedule;

/// <summary>Rule S5: nothing runs for a backup that is unbound, expired or released, nor for an automatic backup whose instance is released.</summary>
[Properties(Arbitrary = new[] { typeof(ScheduleArbitraries) })]
public class IdleTests
{
    private static readonly DateTimeOffset s_t0 = new(2025, 1, 15, 8, 0, 0, TimeSpan.Zero);

    private static readonly BackupSchedulePolicy s_policy = BackupSchedulePolicy.Default;

    /// <summary>A history of a backup that had been running, so that idleness does not come from an empty history.</summary>
    private static readonly ScheduleHistory s_ranBefore =
        BackupScheduler.Record(ScheduleHistory.Empty, BackupRunKind.Full, s_t0, s_t0.AddMinutes(1), s_policy);

    [Theory]
    [Trait("Rule", "S5")]
    [InlineData(BackupKind.Default)]
    [InlineData(BackupKind.Purchased)]
    public void An_unbound_backup_has_nothing_scheduled(BackupKind kind)
    {
        var unbound = Backups.Unbound(kind, BackupTimeZone.Utc, s_t0);

        Assert.Equal(BackupStatus.Disabled, unbound.Status);
        AssertIdle(ScheduleIdleReason.NotBound, unbound, ScheduleHistory.Empty, s_t0.AddDays(1));
    }

    [Theory]
    [Trait("Rule", "S5")]
    [InlineData(BackupKind.Default)]
    [InlineData(BackupKind.Purchased)]
    public void A_reset_backup_is_unbound_again_and_has_nothing_scheduled(BackupKind kind)
    {
        var enabled = Backups.Enabled(kind, BackupTimeZone.Utc, s_t0);
        var reset = Backups.Apply(enabled, new ResetBackup(), s_t0.AddHours(5));

        Assert.NotNull(BackupScheduler.Next(enabled, s_ranBefore, s_policy, s_t0.AddHours(5)).Run);
        AssertIdle(ScheduleIdleReason.NotBound, reset, s_ranBefore, s_t0.AddHours(5));
        AssertIdle(ScheduleIdleReason.NotBound, reset, s_ranBefore, s_t0.AddDays(3));
    }

    [Fact]
    [Trait("Rule", "S5")]
    public void A_purchased_backup_runs_until_it_expires_then_nothing_then_released()
    {
        var purchasedAt = s_t0.AddDays(-10);
        var backup = Backups.Enable(Backups.Purchased(BackupTimeZone.FromId("Europe/Berlin"), purchasedAt, PurchaseTerm.FromMonths(1)), s_t0);
        var expiresAt = backup.ExpiresAt!.Value;
        Assert.Equal(purchasedAt.AddMonths(1), expiresAt);

        Assert.NotNull(BackupScheduler.Next(backup, s_ranBefore, s_policy, expiresAt.AddTicks(-1)).Run);
        AssertIdle(ScheduleIdleReason.Expired, backup, s_ranBefore, expiresAt);
        AssertIdle(ScheduleIdleReason.Expired, backup, s_ranBefore, expiresAt.AddDays(15).AddTicks(-1));
        AssertIdle(ScheduleIdleReason.Released, backup, s_ranBefore, expiresAt.AddDays(15));
        AssertIdle(ScheduleIdleReason.Released, backup, s_ranBefore, expiresAt.AddYears(1));
    }

    [Fact]
    [Trait("Rule", "S5")]
    public void An_unbound_purchased_backup_that_expired_is_idle_as_expired()
    {
        var backup = Backups.Purchased(BackupTimeZone.Utc, s_t0, PurchaseTerm.FromMonths(1));

        AssertIdle(ScheduleIdleReason.Expired, backup, ScheduleHistory.Empty, backup.ExpiresAt!.Value.AddHours(1));
    }

    [Fact]
    [Trait("Rule", "S5")]
    [Trait("Rule", "S4")]
    public void Renewing_an_expired_purchased_backup_resumes_its_schedule_with_one_full()
    {
        var backup = Backups.Enable(Backups.Purchased(BackupTimeZone.Utc, s_t0.AddDays(-1), PurchaseTerm.FromMonths(1)), s_t0);
        var expiresAt = backup.ExpiresAt!.Value;
        var renewedAt = expiresAt.AddDays(3);
        var renewed = Backups.Apply(backup, new RenewBackup(PurchaseTerm.FromMonths(1)), renewedAt);

        var run = BackupScheduler.Next(renewed, s_ranBefore, s_policy, renewedAt).Run!;

        Assert.Equal(BackupStatus.Enabled, renewed.Status);
        Assert.Equal((BackupRunKind.Full, ScheduleReason.CatchUpFull), (run.Kind, run.Reason));
        Assert.Equal(new DateTimeOffset(renewedAt.UtcDateTime.Date, TimeSpan.Zero), run.DueAt);
    }

    [Fact]
    [Trait("Rule", "S5")]
    public void An_uploaded_backup_has_nothing_scheduled()
    {
        var uploaded = BackupLifecycle.CreateUploaded("upload-1", "from-file", new DateOnly(2025, 1, 10), Backups.Region, BackupTimeZone.Utc, s_t0)
            .GetBackupsOrThrow()[0];

        Assert.Equal(BackupStatus.Enabled, uploaded.Status);
        AssertIdle(ScheduleIdleReason.Uploaded, uploaded, ScheduleHistory.Empty, s_t0);
        AssertIdle(ScheduleIdleReason.Uploaded, uploaded, s_ranBefore, s_t0.AddDays(2));
    }

    [Fact]
    [Trait("Rule", "S5")]
    public void A_deleted_uploaded_backup_is_released()
    {
        var uploaded = BackupLifecycle.CreateUploaded("upload-1", "from-file", new DateOnly(2025, 1, 10), Backups.Region, BackupTimeZone.Utc, s_t0)
            .GetBackupsOrThrow()[0];
        var deleted = Backups.Apply(uploaded, new DeleteBackup(), s_t0.AddHours(1));

        AssertIdle(ScheduleIdleReason.Released, deleted, ScheduleHistory.Empty, s_t0.AddHours(1));
    }

    [Fact]
    [Trait("Rule", "S5")]
    public void An_automatic_backup_whose_instance_was_released_takes_nothing_new_and_is_released_90_days_later()
    {
        var automatic = Backups.Enabled(BackupKind.Automatic, BackupTimeZone.FromId("Asia/Kolkata"), s_t0);
        var releasedAt = s_t0.AddDays(4);
        var instanceGone = Backups.Apply(automatic, new InstanceReleased(Backups.InstanceId), releasedAt);

        Assert.NotNull(BackupScheduler.Next(automatic, s_ranBefore, s_policy, releasedAt).Run);
        AssertIdle(ScheduleIdleReason.InstanceReleased, instanceGone, s_ranBefore, releasedAt);
        AssertIdle(ScheduleIdleReason.InstanceReleased, instanceGone, s_ranBefore, releasedAt.AddDays(90).AddTicks(-1));
        AssertIdle(ScheduleIdleReason.Released, instanceGone, s_ranBefore, releasedAt.AddDays(90));
    }

    [Fact]
    [Trait("Rule", "S5")]
    public void Releasing_another_instance_does_not_stop_an_automatic_backup()
    {
        var automatic = Backups.Enabled(BackupKind.Automatic, BackupTimeZone.Utc, s_t0);
        var unaffected = Backups.Apply(automatic, new InstanceReleased("some-other-instance"), s_t0.AddHours(2));

        var run = BackupScheduler.Next(unaffected, s_ranBefore, s_policy, s_t0.AddHours(2)).Run;

        Assert.NotNull(run);
        Assert.Equal(BackupRunKind.Incremental, run.Kind);
    }

    [Property(MaxTest = 200)]
    [Trait("Rule", "S5")]
    public void A_purchased_backup_is_scheduled_exactly_while_it_is_neither_expired_nor_released(EnablingCase enabling, ValidPolicy policy, Lateness sinceEnabling)
    {
        var term = PurchaseTerm.FromMonths(1 + (int)(sinceEnabling.Value.Ticks % 3));
        var purchasedAt = enabling.EnabledAt.AddDays(-2);
        var backup = Backups.Enable(Backups.Purchased(enabling.Zone, purchasedAt, term), enabling.EnabledAt);
        var expiresAt = backup.ExpiresAt!.Value;
        var history = BackupScheduler.Record(ScheduleHistory.Empty, BackupRunKind.Full, enabling.EnabledAt, enabling.EnabledAt, policy.Policy);

        // Before expiry (up to 3 days before it), at expiry, in the 15 days after it, and after release.
        Assert.NotNull(BackupScheduler.Next(backup, history, policy.Policy, expiresAt - sinceEnabling.Value - TimeSpan.FromTicks(1)).Run);
        AssertIdle(ScheduleIdleReason.Expired, backup, history, expiresAt, policy.Policy);
        AssertIdle(ScheduleIdleReason.Expired, backup, history, expiresAt + (sinceEnabling.Value / 3), policy.Policy);
        AssertIdle(ScheduleIdleReason.Released, backup, history, expiresAt + BackupKindPolicy.PurchasedReleaseDelay + sinceEnabling.Value, policy.Policy);
    }

    [Property(MaxTest = 200)]
    [Trait("Rule", "S5")]
    public void An_automatic_backup_is_idle_from_the_moment_its_instance_is_released(EnablingCase enabling, Lateness releasedAfter, Lateness askedAfter)
    {
        var backup = Backups.Enabled(BackupKind.Automatic, enabling.Zone, enabling.EnabledAt);
        var releasedAt = enabling.EnabledAt + releasedAfter.Value;
        var released = Backups.Apply(backup, new InstanceReleased(Backups.InstanceId), releasedAt);
        var history = BackupScheduler.Record(ScheduleHistory.Empty, BackupRunKind.Full, enabling.EnabledAt, enabling.EnabledAt, s_policy);

        Assert.NotNull(BackupScheduler.Next(backup, history, s_policy, releasedAt + askedAfter.Value).Run);
        AssertIdle(ScheduleIdleReason.InstanceReleased, released, history, releasedAt + askedAfter.Value);
    }

    [Property(MaxTest = 200)]
    [Trait("Rule", "S5")]
    public void Unbound_reset_and_uploaded_backups_are_never_scheduled_in_any_zone(BackupTimeZone zone, EnablingCase when, Lateness later)
    {
        var createdAt = when.EnabledAt;
        var now = createdAt + later.Value;
        var reset = Backups.Apply(Backups.Enabled(BackupKind.Default, zone, createdAt), new ResetBackup(), createdAt);
        var uploaded = BackupLifecycle.CreateUploaded("upload-1", "from-file", zone.DateOf(createdAt).AddDays(-1), null, zone, createdAt).GetBackupsOrThrow()[0];
        var history = BackupScheduler.Record(ScheduleHistory.Empty, BackupRunKind.Full, createdAt, createdAt, s_policy);

        AssertIdle(ScheduleIdleReason.NotBound, Backups.Unbound(BackupKind.Default, zone, createdAt), ScheduleHistory.Empty, now);
        AssertIdle(ScheduleIdleReason.NotBound, Backups.Unbound(BackupKind.Purchased, zone, createdAt), ScheduleHistory.Empty, now);
        AssertIdle(ScheduleIdleReason.NotBound, reset, history, now);
        AssertIdle(ScheduleIdleReason.Uploaded, uploaded, history, now);
    }

    private static void AssertIdle(ScheduleIdleReason expected, BackupState state, ScheduleHistory history, DateTimeOffset now, BackupSchedulePolicy? policy = null)
    {
        var decision = BackupScheduler.Next(state, history, policy ?? s_policy, now);
        Assert.Null(decision.Run);
        Assert.Equal(expected, decision.IdleReason);
        Assert.Equal($"Idle ({expected})", decision.ToString());
    }
}
