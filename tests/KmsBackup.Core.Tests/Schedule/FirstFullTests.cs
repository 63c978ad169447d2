using FsCheck.Xunit;

namespace KmsBackup.Tests.Schedule;

/// <summary>Rule S1: the first run after enabling is a full backup, at once.</summary>
[Properties(Arbitrary = new[] { typeof(ScheduleArbitraries) })]
public class FirstFullTests
{
    private static readonly DateTimeOffset s_enabledAt = new(2024, 5, 1, 10, 17, 0, TimeSpan.Zero);

    [Property(MaxTest = 300)]
    [Trait("Rule", "S1")]
    public void First_decision_after_enabling_is_a_full_due_at_EnabledAt(EnablingCase enabling, ValidPolicy policy, Lateness lateness)
    {
        var backup = enabling.Backup();
        Assert.Equal(enabling.EnabledAt, backup.EnabledAt);

        var decision = BackupScheduler.Next(backup, ScheduleHistory.Empty, policy.Policy, enabling.EnabledAt + lateness.Value);

        var run = Assert.IsType<ScheduledRun>(decision.Run);
        Assert.Null(decision.IdleReason);
        Assert.Equal(BackupRunKind.Full, run.Kind);
        Assert.Equal(ScheduleReason.FirstFull, run.Reason);
        Assert.Equal(enabling.EnabledAt, run.DueAt);
        Assert.True(run.IsDue(enabling.EnabledAt), "The first full is due at once.");
    }

    [Property(MaxTest = 200)]
    [Trait("Rule", "S1")]
    public void Re_enabling_after_a_reset_starts_again_with_a_full_whatever_ran_before(EnablingCase enabling, Lateness downFor, Lateness lateness)
    {
        // A default or purchased backup ran for a while, was reset, and is enabled again (for another instance).
        var kind = enabling.Kind == BackupKind.Automatic ? BackupKind.Default : enabling.Kind;
        var policy = BackupSchedulePolicy.Default;
        var first = Backups.Enabled(kind, enabling.Zone, enabling.EnabledAt);
        var history = BackupScheduler.Record(ScheduleHistory.Empty, BackupRunKind.Full, enabling.EnabledAt, enabling.EnabledAt.AddMinutes(2), policy);
        history = BackupScheduler.Record(history, BackupRunKind.Incremental, enabling.EnabledAt.AddMinutes(7), enabling.EnabledAt.AddMinutes(8), policy);
        var resetAt = enabling.EnabledAt.AddMinutes(10);
        var reset = Backups.Apply(first, new ResetBackup(), resetAt);
        var enabledAgainAt = resetAt + downFor.Value + TimeSpan.FromSeconds(1);
        var again = Backups.Enable(reset, enabledAgainAt, "kms-sched-2");

        var run = BackupScheduler.Next(again, history, policy, enabledAgainAt + lateness.Value).Run;

        Assert.NotNull(run);
        Assert.Equal(BackupRunKind.Full, run.Kind);
        Assert.Equal(ScheduleReason.FirstFull, run.Reason);
        Assert.Equal(enabledAgainAt, run.DueAt);
    }

    [Property(MaxTest = 100)]
    [Trait("Rule", "S1")]
    public void The_simulated_engine_starts_with_one_full_at_the_enabling_instant(EnablingCase enabling, RunDurations durations)
    {
        var sim = ScheduleSimulator.Run(enabling.Backup(), BackupSchedulePolicy.Default, enabling.EnabledAt.AddHours(2), durations);

        var first = sim.Runs[0];
        Assert.Equal(BackupRunKind.Full, first.Kind);
        Assert.Equal(ScheduleReason.FirstFull, first.Reason);
        Assert.Equal(enabling.EnabledAt, first.StartedAt);
        Assert.Equal(1, sim.Runs.Count(r => r.Reason == ScheduleReason.FirstFull));
    }

    [Theory]
    [Trait("Rule", "S1")]
    [InlineData(BackupKind.Automatic)]
    [InlineData(BackupKind.Default)]
    [InlineData(BackupKind.Purchased)]
    public void Each_kind_that_backs_up_an_instance_runs_a_full_at_once_when_enabled(BackupKind kind)
    {
        var backup = Backups.Enabled(kind, BackupTimeZone.Utc, s_enabledAt);

        var decision = BackupScheduler.Next(backup, ScheduleHistory.Empty, BackupSchedulePolicy.Default, s_enabledAt);

        Assert.Equal("Full due 2024-05-01T10:17:00Z (FirstFull)", decision.ToString());
        Assert.True(decision.Run!.IsDue(s_enabledAt));
    }

    [Fact]
    [Trait("Rule", "S1")]
    public void Enabling_asks_the_engine_for_a_full_backup()
    {
        var automatic = BackupLifecycle.CreateAutomatic(
            "auto-1", Backups.Instance(s_enabledAt.AddDays(-1)), [], Backups.AnyAge, BackupTimeZone.Utc, s_enabledAt);
        var enabled = BackupLifecycle.Apply(
            Backups.Unbound(BackupKind.Default, BackupTimeZone.Utc, s_enabledAt.AddDays(-1)),
            new EnableBackup(Backups.Instance(s_enabledAt.AddDays(-1)), InstanceKind.Software, "alias"),
            s_enabledAt);

        Assert.Contains(LifecycleEffect.RunFullBackup, automatic.Effects);
        Assert.Contains(LifecycleEffect.RunFullBackup, enabled.Effects);
    }

    [Fact]
    [Trait("Rule", "S1")]
    public void A_late_engine_still_runs_the_first_full_and_only_that()
    {
        // Enabled at 10:17; the engine first asks three days later: still the first full (not a catch-up),
        // and after it, incrementals rather than another full.
        var backup = Backups.Enabled(BackupKind.Default, BackupTimeZone.Utc, s_enabledAt);
        var now = s_enabledAt.AddDays(3);

        var first = BackupScheduler.Next(backup, ScheduleHistory.Empty, BackupSchedulePolicy.Default, now).Run!;
        var history = BackupScheduler.Record(ScheduleHistory.Empty, first.Kind, now, now.AddMinutes(1), BackupSchedulePolicy.Default);
        var second = BackupScheduler.Next(backup, history, BackupSchedulePolicy.Default, now.AddMinutes(1)).Run!;

        Assert.Equal((BackupRunKind.Full, ScheduleReason.FirstFull, s_enabledAt), (first.Kind, first.Reason, first.DueAt));
        Assert.Equal((BackupRunKind.Incremental, ScheduleReason.Incremental, now.AddMinutes(6)), (second.Kind, second.Reason, second.DueAt));
    }

    [Fact]
    [Trait("Rule", "S1")]
    public void The_first_full_is_due_even_if_the_clock_is_behind_the_enabling_instant()
    {
        var backup = Backups.Enabled(BackupKind.Purchased, BackupTimeZone.FromId("Europe/Berlin"), s_enabledAt);

        var run = BackupScheduler.Next(backup, ScheduleHistory.Empty, BackupSchedulePolicy.Default, s_enabledAt.AddSeconds(-30)).Run!;

        Assert.Equal((BackupRunKind.Full, ScheduleReason.FirstFull, s_enabledAt), (run.Kind, run.Reason, run.DueAt));
        Assert.False(run.IsDue(s_enabledAt.AddSeconds(-30)));
    }
}
