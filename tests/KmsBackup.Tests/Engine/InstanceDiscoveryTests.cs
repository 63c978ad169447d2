using KmsBackup.DevelopmentKms;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// An instance gets exactly one automatic backup (rules K4, K5) whether or not the host reports its enable, and however
/// many hosts learn of it at once (issue 16, finding 6).
/// </summary>
public class InstanceDiscoveryTests
{
    [Fact]
    [Trait("Rule", "K5")]
    public async Task Two_hosts_told_of_one_enable_at_the_same_moment_create_one_automatic_backup()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");

        // Both hosts list the catalog (no automatic backup yet) before either creates its entry.
        var gate = new CatalogCreateGate(participants: 2);
        using var first = await h.OpenAnotherClientAsync("host-1", wrapStore: s => new ControlledStore(s) { Before = gate.BeforeAsync });
        using var second = await h.OpenAnotherClientAsync("host-2", wrapStore: s => new ControlledStore(s) { Before = gate.BeforeAsync });

        var outcomes = await Task.WhenAll(
            CaptureAsync(() => first.CreateAutomaticBackupAsync("kst-a")),
            CaptureAsync(() => second.CreateAutomaticBackupAsync("kst-a")));

        Assert.True(gate.AllArrived, "both hosts should have reached the catalog write together");
        var created = Assert.Single(outcomes, o => o.Backup is not null).Backup!;
        var refused = Assert.Single(outcomes, o => o.Error is not null).Error!;
        Assert.Equal(BackupErrorCode.AutomaticBackupExists, refused.Code);
        Assert.Contains(created.Id, refused.Message, StringComparison.Ordinal);
        Assert.Contains(created.Id, refused.Refusal.Remedy, StringComparison.Ordinal);

        var automatic = await AutomaticBackupsAsync(h.Client);
        Assert.Equal(created.Id, Assert.Single(automatic).Id);
        Assert.NotNull(Assert.Single(automatic).LatestPoint);
    }

    [Fact]
    [Trait("Rule", "K4")]
    public async Task A_tick_learns_an_enable_the_host_never_reported_and_runs_its_first_full()
    {
        await using var h = await EngineHarness.CreateAsync(Discovering);
        await h.CreateInstanceAsync("kst-a");
        await h.Kms.GenerateKeyAsync("kst-a", "orders", EngineHarness.Owner);

        var report = await h.Client.RunDueBackupsAsync();

        var backup = Assert.Single(await AutomaticBackupsAsync(h.Client));
        Assert.Equal("kst-a", backup.Instance!.Id);
        Assert.Equal(BackupStatus.Enabled, backup.Status);
        var run = Assert.Single(report.ThrowIfAnyFailed());
        Assert.Equal(backup.Id, run.Point.BackupId);
        var page = await h.Client.GetDataPageAsync(EngineHarness.Owner, backup.Id, DateOnly.FromDateTime(h.Clock.GetUtcNow().UtcDateTime), BackupDataType.FullyBackedUpKeys);
        Assert.Equal("orders", Assert.Single(page.Items).Name);

        // Reporting the enable afterwards changes nothing, and says why.
        Assert.Null(await h.Client.OnInstanceEnabledAsync("kst-a"));
        var exists = await Assert.ThrowsAsync<BackupException>(() => h.Client.CreateAutomaticBackupAsync("kst-a"));
        Assert.Equal(BackupErrorCode.AutomaticBackupExists, exists.Code);
        Assert.Contains(backup.Id, exists.Message, StringComparison.Ordinal);

        // Later ticks keep the one backup.
        await h.RunUntilAsync(h.Clock.GetUtcNow().AddMinutes(30), TimeSpan.FromMinutes(5));
        Assert.Single(await AutomaticBackupsAsync(h.Client));
    }

    [Fact]
    [Trait("Rule", "K4")]
    public async Task Ineligible_disabled_and_released_instances_get_no_automatic_backup_from_a_tick()
    {
        await using var h = await EngineHarness.CreateAsync(Discovering);
        await h.Kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-old", InstanceKind.Software, EngineHarness.Region, EngineHarness.Owner) { CreatedAt = new DateTimeOffset(2024, 4, 1, 0, 0, 0, TimeSpan.Zero) });
        await h.Kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-off", InstanceKind.Software, EngineHarness.Region, EngineHarness.Owner) { CreatedAt = h.Clock.GetUtcNow().AddDays(-1), IsEnabled = false });
        await h.Kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-hw-old", InstanceKind.Hardware, EngineHarness.Region, EngineHarness.Owner) { CreatedAt = h.Clock.GetUtcNow().AddDays(-1), ImageVersion = new Version(3, 9, 0) });
        await h.CreateInstanceAsync("kst-gone");
        await h.Kms.ReleaseInstanceAsync("kst-gone");

        Assert.Empty((await h.Client.RunDueBackupsAsync()).ThrowIfAnyFailed());

        Assert.Empty(await AutomaticBackupsAsync(h.Client));
        Assert.DoesNotContain(h.Files.AllFiles, p => p.StartsWith($"{EngineHarness.StoreRoot}/catalog/", StringComparison.Ordinal));
    }

    [Fact]
    [Trait("Rule", "K4")]
    public async Task An_instance_enabled_between_listings_is_learned_at_the_next_listing_and_never_with_discovery_off()
    {
        await using var h = await EngineHarness.CreateAsync(Discovering);
        Assert.Empty(await h.Client.RunDueBackupsAsync());
        await h.CreateInstanceAsync("kst-late");

        // The gateway is listed once per interval (5 minutes by default).
        h.Clock.Advance(TimeSpan.FromMinutes(4));
        Assert.Empty(await h.Client.RunDueBackupsAsync());
        Assert.Empty(await AutomaticBackupsAsync(h.Client));
        h.Clock.Advance(TimeSpan.FromMinutes(1));
        Assert.Single((await h.Client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        Assert.Single(await AutomaticBackupsAsync(h.Client));

        using var off = await h.OpenAnotherClientAsync("host-off", configure: o => o.InstanceDiscoveryInterval = null);
        await h.CreateInstanceAsync("kst-unreported");
        h.Clock.Advance(TimeSpan.FromMinutes(10));
        await off.RunDueBackupsAsync();
        Assert.DoesNotContain(await AutomaticBackupsAsync(off), b => b.Instance!.Id == "kst-unreported");
    }

    [Fact]
    [Trait("Rule", "K5")]
    public async Task Two_hosts_whose_ticks_learn_one_enable_at_the_same_moment_create_one_automatic_backup()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        var gate = new CatalogCreateGate(participants: 2);
        using var first = await h.OpenAnotherClientAsync("host-1", wrapStore: s => new ControlledStore(s) { Before = gate.BeforeAsync }, configure: Discovering);
        using var second = await h.OpenAnotherClientAsync("host-2", wrapStore: s => new ControlledStore(s) { Before = gate.BeforeAsync }, configure: Discovering);

        var reports = await Task.WhenAll(first.RunDueBackupsAsync(), second.RunDueBackupsAsync());

        Assert.True(gate.AllArrived, "both ticks should have reached the catalog write together");
        Assert.All(reports, r => Assert.True(r.Succeeded, r.ToString()));
        var backup = Assert.Single(await AutomaticBackupsAsync(h.Client));
        Assert.Equal(backup.Id, Assert.Single(reports.SelectMany(r => r)).Point.BackupId);
    }

    [Fact]
    [Trait("Rule", "K4")]
    public async Task A_gateway_that_cannot_list_costs_no_run_and_the_next_tick_learns_the_enable()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.CreateInstanceAsync("kst-b");
        var reported = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;
        var gateway = new KmsBackup.Tests.Restore.FailingGateway(h.Kms) { FailListing = true };
        using var host = await h.OpenAnotherClientAsync("host-2", gateway, configure: Discovering);

        h.Clock.Advance(TimeSpan.FromMinutes(5));
        var failedListing = await host.RunDueBackupsAsync();

        // kst-a's incremental ran; kst-b waits for a listing; nothing failed that the host can act on.
        Assert.True(failedListing.Succeeded, failedListing.ToString());
        Assert.Equal(reported.Id, Assert.Single(failedListing).Point.BackupId);
        Assert.Equal(1, gateway.Listings);

        // The failed listing is tried again at the next tick, not an interval later.
        gateway.FailListing = false;
        h.Clock.Advance(TimeSpan.FromMinutes(1));
        var learned = Assert.Single((await host.RunDueBackupsAsync()).ThrowIfAnyFailed());
        Assert.Equal(2, gateway.Listings);
        Assert.Equal("kst-b", (await h.Client.GetBackupAsync(EngineHarness.Owner, learned.Point.BackupId)).Instance!.Id);
    }

    [Fact]
    public void The_discovery_interval_is_validated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new BackupClientOptions { InstanceDiscoveryInterval = TimeSpan.FromSeconds(30) }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new BackupClientOptions { InstanceDiscoveryInterval = TimeSpan.FromDays(2) }.Validate());
        new BackupClientOptions { InstanceDiscoveryInterval = null }.Validate();
        Assert.Equal(TimeSpan.FromMinutes(5), new BackupClientOptions().InstanceDiscoveryInterval);
    }

    /// <summary>The default discovery interval (the test harness turns discovery off for tests of other rules).</summary>
    private static void Discovering(BackupClientOptions options) => options.InstanceDiscoveryInterval = new BackupClientOptions().InstanceDiscoveryInterval;

    private static async Task<List<BackupDetails>> AutomaticBackupsAsync(BackupClient client)
    {
        var list = new List<BackupDetails>();
        await foreach (var backup in client.ListBackupsAsync(EngineHarness.Owner))
        {
            if (backup.Kind == BackupKind.Automatic)
            {
                list.Add(backup);
            }
        }

        return list;
    }

    private static async Task<(BackupDetails? Backup, BackupException? Error)> CaptureAsync(Func<Task<BackupDetails>> create)
    {
        try
        {
            return (await create(), null);
        }
        catch (BackupException e)
        {
            return (null, e);
        }
    }

    /// <summary>Holds each host's first catalog write until every host has reached one: both decided on the same listing.</summary>
    private sealed class CatalogCreateGate(int participants)
    {
        private readonly TaskCompletionSource _all = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _arrived;

        public bool AllArrived => _all.Task.IsCompletedSuccessfully;

        public async Task BeforeAsync(StoreCall call)
        {
            if (call.Kind == StoreCallKind.Create && call.Key.StartsWith("catalog/", StringComparison.Ordinal) && !_all.Task.IsCompleted)
            {
                if (Interlocked.Increment(ref _arrived) >= participants)
                {
                    _all.TrySetResult();
                }

                await _all.Task.WaitAsync(TimeSpan.FromSeconds(20));
            }
        }
    }
}
