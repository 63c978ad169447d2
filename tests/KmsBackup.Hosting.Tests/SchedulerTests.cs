using KmsBackup.Testing.Storage;
using KmsBackup.DevelopmentKms;
using KmsBackup.Storage;
using System.IO.Abstractions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace KmsBackup.Hosting.Tests;

/// <summary>The hosted scheduler on a fake clock: it runs backups on time, survives failures and stops cleanly.</summary>
public class SchedulerTests
{
    [Fact]
    [Trait("Rule", "S2")]
    [Trait("Rule", "S3")]
    public async Task Over_a_simulated_day_the_scheduler_runs_a_full_at_midnight_and_an_incremental_every_five_minutes()
    {
        await using var h = HostHarness.Create();
        await h.CreateInstanceAsync("kst-a");
        await h.Kms.GenerateKeyAsync("kst-a", "orders", HostHarness.Owner);
        var backup = (await (await h.ClientAsync()).OnInstanceEnabledAsync("kst-a"))!;
        Assert.Equal(BackupRunKind.Full, backup.LatestPoint!.Kind);
        await h.StartHostAsync();
        Assert.Empty((await h.NextTickAsync()).Runs); // nothing is due right after the first full

        var runs = new List<BackupRunResult>();
        for (var i = 0; i < 288; i++)
        {
            var tick = await h.AdvanceAsync();
            Assert.Null(tick.Error);
            Assert.Empty(tick.Failures);
            runs.AddRange(tick.Runs);
        }

        // 2026-05-01 09:00 UTC to 2026-05-02 09:00 UTC: one daily full at midnight, incrementals every 5 minutes otherwise.
        var full = Assert.Single(runs, r => r.Point.Kind == BackupRunKind.Full).Point;
        Assert.Equal((ScheduleReason.DailyFull, new DateTimeOffset(2026, 5, 2, 0, 0, 0, TimeSpan.Zero)), (full.Reason, full.TakenAt));
        Assert.Equal(287, runs.Count(r => r.Point.Kind == BackupRunKind.Incremental));
        Assert.All(runs, r => Assert.Equal(backup.Id, r.Point.BackupId));
        Assert.Equal(Enumerable.Range(2, 288).Select(i => (long)i), runs.Select(r => r.Point.Sequence));
    }

    [Fact]
    [Trait("Rule", "D4")]
    public async Task After_a_key_rotation_the_scheduler_rekeys_every_old_pack_in_the_background_a_budget_per_tick()
    {
        await using var h = HostHarness.Create(o => o.Scheduler.RekeyPacksPerTick = 1);
        await h.CreateInstanceAsync("kst-a");
        for (var i = 0; i < 40; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"key-{i:D3}", HostHarness.Owner);
        }

        var backup = (await (await h.ClientAsync()).OnInstanceEnabledAsync("kst-a"))!;
        await h.StartHostAsync();
        await h.NextTickAsync();
        for (var i = 0; i < 3; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"later-{i}", HostHarness.Owner);
            await h.AdvanceAsync();
        }

        var client = await h.ClientAsync();
        var old = (await client.VerifyAsync()).PacksByKeyGeneration[1];
        Assert.True(old >= 3, $"expected several packs before the rotation, found {old}");
        await client.RotateRepositoryKeyAsync();

        // One old pack a tick: as many ticks as there were old packs, and the next finds nothing left.
        for (var i = 0; i < old + 1; i++)
        {
            Assert.Null((await h.AdvanceAsync()).Error);
        }

        Assert.Equal(0, (await client.RekeyAsync()).PacksRewritten);
        h.Clock.Advance(TimeSpan.FromHours(2));
        await client.PruneAsync();
        var verification = await client.VerifyAsync();
        Assert.True(verification.IsClean, string.Join("; ", verification.Problems.Select(p => p.Description)));
        Assert.Equal([2L], verification.PacksByKeyGeneration.Keys);
        Assert.NotEmpty(await client.ListRecoveryPointsAsync(HostHarness.Owner, backup.Id, new DateOnly(2026, 5, 1)));
    }

    [Fact]
    [Trait("Rule", "S1")]
    public async Task A_first_full_that_failed_when_the_instance_was_enabled_is_run_by_the_next_tick()
    {
        BrokenInstanceGateway? gateway = null;
        await using var h = HostHarness.Create(services: s => s.AddKmsBackup().UseInstanceGateway(p =>
            gateway = new BrokenInstanceGateway(new EmbeddedKeyManagementService(p.GetRequiredService<IFileSystem>(), "/data/kms", p.GetRequiredService<TimeProvider>()))));
        var client = await h.ClientAsync();
        var kms = (EmbeddedKeyManagementService)GetInner(gateway!);
        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-a", InstanceKind.Software, HostHarness.Region, HostHarness.Owner) { CreatedAt = h.Clock.GetUtcNow().AddDays(-1) });
        gateway!.Broken.Add("kst-a");

        await Assert.ThrowsAsync<IOException>(() => client.OnInstanceEnabledAsync("kst-a"));
        gateway.Broken.Clear();
        await h.StartHostAsync();

        var point = Assert.Single((await h.NextTickAsync()).Runs).Point;
        Assert.Equal((BackupRunKind.Full, ScheduleReason.FirstFull), (point.Kind, point.Reason));
    }

    [Fact]
    [Trait("Rule", "S1")]
    public async Task Enabling_a_backup_whose_first_full_another_writer_is_running_succeeds_and_leaves_the_run_to_it()
    {
        ControlledStore? controlled = null;
        await using var h = HostHarness.Create(services: s => s.AddKmsBackup().UseStore(p => controlled = new ControlledStore(
            new FileSystemBackupStore(p.GetRequiredService<IFileSystem>(), "/data/store", p.GetRequiredService<TimeProvider>()))));
        var client = await h.ClientAsync();
        await h.CreateInstanceAsync("kst-a");
        var backup = await client.CreateDefaultBackupAsync(HostHarness.Owner);

        // A scheduler on another host sees the backup enabled as soon as its state is stored, and takes its
        // lease to run the first full before the enabling call can.
        StoreLease? lease = null;
        var stateStored = false;
        controlled!.Before = async call =>
        {
            if (call.Kind == StoreCallKind.Create && call.Key.StartsWith($"catalog/{backup.Id}/", StringComparison.Ordinal))
            {
                stateStored = true;
            }
            else if (stateStored && lease is null && call.Kind == StoreCallKind.AcquireLease)
            {
                lease = await controlled.Inner.AcquireLeaseAsync(call.Key, "other-host", TimeSpan.FromMinutes(5));
            }
        };
        var enabled = await client.EnableBackupAsync(HostHarness.Owner, backup.Id, "kst-a", InstanceKind.Software);
        Assert.Equal(BackupStatus.Enabled, enabled.Status);
        Assert.Null(enabled.LatestPoint);
        Assert.NotNull(lease);

        // Had the other host failed, this host's scheduler runs the first full at its next tick.
        await lease.DisposeAsync();
        controlled.Before = null;
        await h.StartHostAsync();
        var runs = (await h.NextTickAsync()).Runs;
        var first = Assert.Single(runs, r => r.Point.BackupId == backup.Id).Point;
        Assert.Equal((backup.Id, ScheduleReason.FirstFull), (first.BackupId, first.Reason));

        // The same tick learned that kst-a is enabled (nobody reported it) and gave it its automatic backup too.
        var learned = Assert.Single(runs, r => r.Point.BackupId != backup.Id).Point;
        Assert.Equal(ScheduleReason.FirstFull, learned.Reason);
        Assert.Equal(BackupKind.Automatic, (await client.GetBackupAsync(HostHarness.Owner, learned.BackupId)).Kind);
    }

    [Fact]
    [Trait("Rule", "S4")]
    public async Task A_failed_run_is_logged_and_the_next_tick_catches_up_while_the_host_keeps_running()
    {
        await using var h = HostHarness.Create(services: s => s.AddKmsBackup().UseStore(p =>
            new FlakyStore(new FileSystemBackupStore(p.GetRequiredService<IFileSystem>(), "/data/store", p.GetRequiredService<TimeProvider>()))));
        var store = (FlakyStore)h.Services.GetRequiredService<BackupStore>();
        await h.CreateInstanceAsync("kst-a");
        var backup = (await (await h.ClientAsync()).OnInstanceEnabledAsync("kst-a"))!;
        await h.StartHostAsync();
        await h.NextTickAsync();
        Assert.Single((await h.AdvanceAsync()).Runs);

        store.FailWrites = true;
        for (var i = 1; i <= 3; i++)
        {
            var failed = await h.AdvanceAsync();
            Assert.Empty(failed.Runs);
            var failure = Assert.Single(failed.Failures);
            Assert.Equal(backup.Id, failure.BackupId);
            Assert.Equal(BackupErrorCode.StoreUnavailable, Assert.IsType<BackupException>(failure.Error).Code);
            var health = Assert.Single(await (await h.ClientAsync()).GetHealthAsync());
            Assert.Equal(i, health.ConsecutiveFailures);
            Assert.Equal("StoreUnavailable", health.LastErrorType);
        }

        Assert.False(h.Scheduler.ExecuteTask!.IsCompleted);
        store.FailWrites = false;
        var recovered = Assert.Single((await h.AdvanceAsync()).Runs).Point;

        // One incremental covers the 15 minutes that failed; nothing is replayed one by one.
        Assert.Equal((BackupRunKind.Incremental, ScheduleReason.CatchUpIncremental), (recovered.Kind, recovered.Reason));
        Assert.Empty((await h.AdvanceAsync()).Failures);
        var after = Assert.Single(await (await h.ClientAsync()).GetHealthAsync());
        Assert.Equal(0, after.ConsecutiveFailures);
        Assert.NotNull(after.LastFailureAt);
        Assert.Equal(3, h.Logs.GetSnapshot().Count(r => r.Id.Id == 1002 && r.Level == LogLevel.Error));
    }

    [Fact]
    public async Task A_tick_that_fails_whole_is_logged_and_the_next_tick_runs()
    {
        await using var h = HostHarness.Create(services: s => s.AddKmsBackup().UseStore(p =>
            new FlakyStore(new FileSystemBackupStore(p.GetRequiredService<IFileSystem>(), "/data/store", p.GetRequiredService<TimeProvider>()))));
        var store = (FlakyStore)h.Services.GetRequiredService<BackupStore>();

        // The store is down when the host starts: the client cannot even open.
        store.FailWrites = true;
        await h.StartHostAsync();
        var failed = await h.NextTickAsync();
        Assert.Equal(BackupErrorCode.StoreUnavailable, Assert.IsType<BackupException>(failed.Error).Code);
        Assert.Contains(h.Logs.GetSnapshot(), r => r.Id.Id == 2003);

        store.FailWrites = false;
        var next = await h.AdvanceAsync();
        Assert.Null(next.Error);
        Assert.False(h.Scheduler.ExecuteTask!.IsCompleted);
    }

    [Fact]
    public async Task One_backups_failure_does_not_stop_the_others()
    {
        BrokenInstanceGateway? gateway = null;
        await using var h = HostHarness.Create(services: s => s.AddKmsBackup().UseInstanceGateway(p =>
            gateway = new BrokenInstanceGateway(new EmbeddedKeyManagementService(p.GetRequiredService<IFileSystem>(), "/data/kms", p.GetRequiredService<TimeProvider>()))));
        var client = await h.ClientAsync();
        var kms = (EmbeddedKeyManagementService)GetInner(gateway!);
        var backups = new List<BackupDetails>();
        foreach (var id in new[] { "kst-a", "kst-b", "kst-c" })
        {
            await kms.CreateInstanceAsync(new EmbeddedInstanceSpec(id, InstanceKind.Software, HostHarness.Region, HostHarness.Owner) { CreatedAt = h.Clock.GetUtcNow().AddDays(-1) });
            backups.Add((await client.OnInstanceEnabledAsync(id))!);
        }

        // Straight through the client: the broken backup's error is thrown after the others ran.
        gateway!.Broken.Add("kst-b");
        h.Clock.Advance(HostHarness.Tick);
        await Assert.ThrowsAsync<IOException>(async () => (await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        Assert.Equal(2, (await client.GetBackupAsync(HostHarness.Owner, backups[0].Id)).LatestPoint!.Sequence);
        Assert.Equal(2, (await client.GetBackupAsync(HostHarness.Owner, backups[2].Id)).LatestPoint!.Sequence);

        // Two broken backups: both errors, the third still runs.
        gateway.Broken.Add("kst-a");
        h.Clock.Advance(HostHarness.Tick);
        var both = await Assert.ThrowsAsync<AggregateException>(async () => (await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        Assert.Equal(2, both.InnerExceptions.Count);
        Assert.Equal(3, (await client.GetBackupAsync(HostHarness.Owner, backups[2].Id)).LatestPoint!.Sequence);

        // The pass's report holds the run that committed beside the two failures: nothing is thrown, nothing hidden.
        h.Clock.Advance(HostHarness.Tick);
        var report = await client.RunDueBackupsAsync();
        Assert.False(report.Succeeded);
        Assert.Equal(backups[2].Id, Assert.Single(report).Point.BackupId);
        Assert.Equal(new[] { backups[0].Id, backups[1].Id }.Order(StringComparer.Ordinal), report.Failures.Select(f => f.BackupId).Order(StringComparer.Ordinal));
        Assert.All(report.Failures, f => Assert.IsType<IOException>(f.Error));
        Assert.Contains("2 failed", report.ToString(), StringComparison.Ordinal);

        // Through the scheduler: the tick reports the failures beside the runs.
        h.Clock.Advance(HostHarness.Tick);
        await h.StartHostAsync();
        var tick = await h.NextTickAsync();
        Assert.Equal(backups[2].Id, Assert.Single(tick.Runs).Point.BackupId);
        Assert.Equal(new[] { backups[0].Id, backups[1].Id }.Order(StringComparer.Ordinal), tick.Failures.Select(f => f.BackupId).Order(StringComparer.Ordinal));
    }

    /// <summary>The scheduler drives the client through its public, virtual pass (not an internal shortcut), so that a host's fake of the client is what runs.</summary>
    [Fact]
    public async Task The_scheduler_runs_backups_through_the_clients_public_pass()
    {
        var fake = new CountingClient(new InvalidOperationException("a fake failure"));
        await using var h = HostHarness.Create(services: s => s.AddSingleton<BackupClientProvider>(new SingleClientProvider(fake)));
        await h.StartHostAsync();
        var tick = await h.NextTickAsync();
        Assert.True(fake.Passes >= 1);
        Assert.Empty(tick.Runs);
        Assert.Equal("bka-fake", Assert.Single(tick.Failures).BackupId);
        Assert.Null(tick.Error);
    }

    private sealed class CountingClient(Exception failure) : BackupClient
    {
        public int Passes { get; private set; }

        public override Task<BackupRunReport> RunDueBackupsAsync(CancellationToken cancellationToken = default)
        {
            Passes++;
            return Task.FromResult(new BackupRunReport([], [new BackupRunFailure("bka-fake", failure)]));
        }
    }

    private sealed class SingleClientProvider(BackupClient client) : BackupClientProvider
    {
        public override IReadOnlyCollection<string> Names => [""];

        public override ValueTask<BackupClient> GetClientAsync(string? name = null, CancellationToken cancellationToken = default) => ValueTask.FromResult(client);
    }

    [Fact]
    public async Task Stopping_the_host_ends_the_scheduler_cleanly()
    {
        var h = await HostHarness.StartAsync();
        await h.NextTickAsync();

        await h.Host.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(h.Scheduler.ExecuteTask!.IsCompletedSuccessfully);
        Assert.Contains(h.Logs.GetSnapshot(), r => r.Id.Id == 2002);

        // The unnamed client is named in the logs (issue 16, finding 8: "scheduler started for : ...").
        var started = Assert.Single(h.Logs.GetSnapshot(), r => r.Id.Id == 2001);
        Assert.StartsWith("KmsBackup scheduler started for the default client: a tick every", started.Message, StringComparison.Ordinal);
        h.Host.Dispose();
    }

    [Fact]
    public async Task A_disabled_scheduler_does_not_tick()
    {
        await using var h = await HostHarness.StartAsync(o => o.Scheduler.Enabled = false);
        h.Clock.Advance(TimeSpan.FromHours(1));
        await h.Scheduler.ExecuteTask!.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Contains(h.Logs.GetSnapshot(), r => r.Id.Id == 2005);
    }

    private static InstanceGateway GetInner(BrokenInstanceGateway gateway) => gateway.Inner;
}
