namespace KmsBackup.Tests.Engine;

/// <summary>The schedule rules S1–S5 through the engine, over weeks of simulated time on a fake clock.</summary>
public class EngineScheduleTests
{
    private static readonly TimeSpan FiveMinutes = TimeSpan.FromMinutes(5);

    [Fact]
    [Trait("Rule", "S1")]
    [Trait("Rule", "K4")]
    public async Task Enabling_an_instance_creates_its_automatic_backup_and_runs_a_full_at_once()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.Kms.GenerateKeyAsync("kst-a", "orders", EngineHarness.Owner);

        var backup = await h.Client.OnInstanceEnabledAsync("kst-a");

        Assert.NotNull(backup);
        Assert.Equal("System Created", backup.Label);
        Assert.Equal(BackupStatus.Enabled, backup.Status);
        var first = Assert.IsType<RecoveryPoint>(backup.LatestPoint);
        Assert.Equal((BackupRunKind.Full, ScheduleReason.FirstFull, 1L, 1L), (first.Kind, first.Reason, first.Sequence, first.KeyCount));
        Assert.Equal(EngineHarness.Start, first.TakenAt);
        Assert.Null(await h.Client.OnInstanceEnabledAsync("kst-a")); // K5: one automatic backup per instance
    }

    [Fact]
    [Trait("Rule", "S2")]
    [Trait("Rule", "S3")]
    public async Task Fulls_run_daily_at_midnight_and_incrementals_every_five_minutes_after_each_full()
    {
        await using var h = await EngineHarness.CreateAsync(o => o.TimeZone = BackupTimeZone.FromId("Asia/Shanghai"));
        await h.CreateInstanceAsync("kst-a");
        await h.Kms.GenerateKeyAsync("kst-a", "orders", EngineHarness.Owner);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;

        var runs = await h.RunUntilAsync(EngineHarness.Start.AddDays(3), FiveMinutes);

        var zone = backup.TimeZone;
        var fulls = runs.Where(r => r.Point.Kind == BackupRunKind.Full).Select(r => r.Point).ToList();
        // 2026-05-01 09:00 UTC is 17:00 in Shanghai: the next three local midnights fall in the window.
        Assert.Equal([new DateOnly(2026, 5, 2), new DateOnly(2026, 5, 3), new DateOnly(2026, 5, 4)], fulls.Select(f => f.Date));
        Assert.All(fulls, f => Assert.Equal(TimeOnly.MinValue, TimeOnly.FromDateTime(zone.ToLocal(f.TakenAt).DateTime)));
        Assert.All(fulls, f => Assert.Equal(ScheduleReason.DailyFull, f.Reason));

        // Between fulls, an incremental every 5 minutes, none skipped, none doubled.
        var all = runs.Select(r => r.Point).Prepend(backup.LatestPoint!).ToList();
        for (var i = 1; i < all.Count; i++)
        {
            if (all[i].Kind == BackupRunKind.Incremental)
            {
                Assert.Equal(FiveMinutes, all[i].TakenAt - all[i - 1].TakenAt);
            }
        }

        Assert.Equal(all.Count, all.Select(p => p.Sequence).Distinct().Count());
        Assert.Equal(3 * 288, runs.Count); // 3 days of 5-minute slots, each a full or an incremental
        Assert.Equal((3 * 288) - 3, runs.Count(r => r.Point.Kind == BackupRunKind.Incremental));
    }

    [Fact]
    [Trait("Rule", "S4")]
    public async Task After_downtime_one_catch_up_full_runs_and_missed_runs_are_not_replayed()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.Client.OnInstanceEnabledAsync("kst-a");
        await h.RunUntilAsync(EngineHarness.Start.AddHours(2), FiveMinutes);

        // The host is down for three days and two hours (from 11:00 to 13:00 three days later), then ticks again.
        h.Clock.Advance(TimeSpan.FromDays(3) + TimeSpan.FromHours(2));
        var afterDowntime = (await h.Client.RunDueBackupsAsync()).ThrowIfAnyFailed();
        var catchUp = Assert.Single(afterDowntime).Point;
        Assert.Equal((BackupRunKind.Full, ScheduleReason.CatchUpFull), (catchUp.Kind, catchUp.Reason));
        Assert.Empty((await h.Client.RunDueBackupsAsync()).ThrowIfAnyFailed()); // nothing else is due at the same instant

        // A short outage within a day: one incremental covers the gap.
        await h.RunUntilAsync(h.Clock.GetUtcNow().AddMinutes(30), FiveMinutes);
        h.Clock.Advance(TimeSpan.FromMinutes(47));
        var gap = Assert.Single((await h.Client.RunDueBackupsAsync()).ThrowIfAnyFailed()).Point;
        Assert.Equal((BackupRunKind.Incremental, ScheduleReason.CatchUpIncremental), (gap.Kind, gap.Reason));
        Assert.Empty((await h.Client.RunDueBackupsAsync()).ThrowIfAnyFailed());
    }

    [Fact]
    [Trait("Rule", "S4")]
    public async Task A_week_of_hourly_ticks_gives_one_full_per_day_and_one_incremental_per_tick()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.Client.OnInstanceEnabledAsync("kst-a");

        var runs = await h.RunUntilAsync(EngineHarness.Start.AddDays(7), TimeSpan.FromHours(1));

        var fulls = runs.Where(r => r.Point.Kind == BackupRunKind.Full).ToList();
        Assert.Equal(7, fulls.Count);
        Assert.Equal(7, fulls.Select(f => f.Point.Date).Distinct().Count());
        Assert.Equal(7 * 24 - 7, runs.Count(r => r.Point.Kind == BackupRunKind.Incremental));
    }

    [Fact]
    [Trait("Rule", "S5")]
    public async Task Nothing_runs_for_unbound_expired_or_released_backups_or_after_the_instance_is_released()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.CreateInstanceAsync("kst-b");
        var automatic = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;
        var unbound = await h.Client.CreateDefaultBackupAsync(EngineHarness.Owner);
        var purchased = (await h.Client.PurchaseBackupsAsync(EngineHarness.Owner, new PurchaseOrder(EngineHarness.Region, 30, PurchaseTerm.FromMonths(1))))[0];
        await h.Client.EnableBackupAsync(EngineHarness.Owner, purchased.Id, "kst-b", InstanceKind.Software);

        await h.Kms.ReleaseInstanceAsync("kst-a");
        await h.Client.OnInstanceReleasedAsync("kst-a");

        // Forty days later: the purchased backup expired after one month (and is not yet released); the automatic one's instance is gone.
        var runs = await h.RunUntilAsync(EngineHarness.Start.AddMonths(1).AddDays(10), TimeSpan.FromHours(6));
        Assert.DoesNotContain(runs, r => r.Point.BackupId == automatic.Id);
        Assert.DoesNotContain(runs, r => r.Point.BackupId == unbound.Id);
        Assert.All(runs.Where(r => r.Point.BackupId == purchased.Id), r => Assert.True(r.Point.TakenAt < EngineHarness.Start.AddMonths(1)));
        Assert.Equal(BackupStatus.Expired, (await h.Client.GetBackupAsync(EngineHarness.Owner, purchased.Id)).Status);
    }

    /// <summary>
    /// Issue 16, finding 6: a host that never reports a release (no <see cref="BackupClient.OnInstanceReleasedAsync"/>)
    /// still stops the automatic backup and starts its 90-day clock: the scheduler learns the release from the gateway,
    /// dated when the instance was released, not when the host noticed.
    /// </summary>
    [Fact]
    [Trait("Rule", "S5")]
    [Trait("Rule", "L2")]
    public async Task A_release_the_host_never_reports_is_learned_from_the_gateway_by_the_scheduler()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        var automatic = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;
        var released = await h.Kms.ReleaseInstanceAsync("kst-a");
        var releasedAt = released.ReleasedAt!.Value;

        h.Clock.Advance(TimeSpan.FromHours(1)); // the host's scheduler ticks an hour later
        var runs = await h.RunUntilAsync(h.Clock.GetUtcNow().AddDays(2), TimeSpan.FromHours(1));
        Assert.DoesNotContain(runs, r => r.Point.BackupId == automatic.Id);

        var details = await h.Client.GetBackupAsync(EngineHarness.Owner, automatic.Id);
        Assert.Equal(releasedAt.AddDays(90), details.ReleaseDueAt);
    }

    /// <summary>Issue 16, finding 6: an instance that gets no automatic backup is told why, as a typed error.</summary>
    [Fact]
    [Trait("Rule", "K4")]
    [Trait("Rule", "K5")]
    public async Task Creating_an_automatic_backup_says_why_an_instance_gets_none()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        var first = await h.Client.CreateAutomaticBackupAsync("kst-a");

        var again = await Assert.ThrowsAsync<BackupException>(() => h.Client.CreateAutomaticBackupAsync("kst-a"));
        Assert.Equal(BackupErrorCode.AutomaticBackupExists, again.Code);
        Assert.Contains(first.Id, again.Message, StringComparison.Ordinal);
        Assert.Null(await h.Client.OnInstanceEnabledAsync("kst-a")); // the event handler still answers null

        await h.Kms.CreateInstanceAsync(new DevelopmentKms.EmbeddedInstanceSpec("kst-old", InstanceKind.Software, EngineHarness.Region, EngineHarness.Owner)
        {
            CreatedAt = new DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero),
        });
        var old = await Assert.ThrowsAsync<BackupException>(() => h.Client.CreateAutomaticBackupAsync("kst-old"));
        Assert.Equal(BackupErrorCode.InstanceNotEligible, old.Code);
        Assert.Contains("default or purchased", old.Remedy, StringComparison.Ordinal);

        await h.Kms.ReleaseInstanceAsync("kst-a");
        await h.CreateInstanceAsync("kst-b");
        await h.Kms.ReleaseInstanceAsync("kst-b");
        var released = await Assert.ThrowsAsync<BackupException>(() => h.Client.CreateAutomaticBackupAsync("kst-b"));
        Assert.Equal(BackupErrorCode.InstanceNotEnabled, released.Code);
    }
}
