namespace KmsBackup.Tests.Engine;

/// <summary>
/// Issue 15, item 4: a scheduler tick costs store calls in proportion to the backups due, not to the backups on the
/// store. Catalog entries are immutable per version and kept decoded, and the first look at whether a backup is due
/// works from the points this client knows; only a backup that looks due is listed again, under its lease.
/// </summary>
public sealed class FleetTickTests
{
    [Fact]
    [Trait("Rule", "S3")]
    public async Task A_tick_with_nothing_due_costs_the_same_few_store_calls_for_4_backups_as_for_40()
    {
        var few = await CallsOfAQuietTickAsync(4);
        var many = await CallsOfAQuietTickAsync(40);
        Assert.Equal(few, many);
        Assert.InRange(many.Reads + many.Listings, 1, 4); // the store's time and the catalog's listing
    }

    /// <summary>A point another host committed is seen: the backup looks due to this host, which lists under the lease and does not run it again.</summary>
    [Fact]
    [Trait("Rule", "S3")]
    public async Task A_point_another_host_committed_is_not_run_again_by_a_host_that_had_not_seen_it()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.Kms.GenerateKeyAsync("kst-a", "orders", EngineHarness.Owner);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;
        using var other = await h.OpenAnotherClientAsync("other-host");
        (await other.RunDueBackupsAsync()).ThrowIfAnyFailed(); // the other host knows the backup and its full

        h.Clock.Advance(TimeSpan.FromMinutes(5));
        var first = Assert.Single((await h.Client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        Assert.Equal(BackupRunKind.Incremental, first.Point.Kind);

        // The other host still knows only the full: the incremental looks due to it, and is not run twice.
        h.Clock.Advance(TimeSpan.FromMinutes(1));
        Assert.Empty((await other.RunDueBackupsAsync()).ThrowIfAnyFailed());
        var date = DateOnly.FromDateTime(EngineHarness.Start.UtcDateTime);
        Assert.Equal(2, (await other.ListRecoveryPointsAsync(EngineHarness.Owner, backup.Id, date)).Count);
    }

    private static async Task<(int Reads, int Listings)> CallsOfAQuietTickAsync(int backups)
    {
        await using var h = await EngineHarness.CreateAsync();
        ControlledStore? controlled = null;
        using var client = await h.OpenAnotherClientAsync("ticking-host", wrapStore: s => controlled = new ControlledStore(s));
        for (var i = 0; i < backups; i++)
        {
            await h.CreateInstanceAsync($"kst-{i:D3}");
            await h.Kms.GenerateKeyAsync($"kst-{i:D3}", $"orders-{i:D3}", EngineHarness.Owner);
            await client.OnInstanceEnabledAsync($"kst-{i:D3}");
        }

        // 5 minutes on, every backup's incremental is due; a minute later nothing is.
        h.Clock.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(backups, (await client.RunDueBackupsAsync()).ThrowIfAnyFailed().Count);
        h.Clock.Advance(TimeSpan.FromMinutes(1));
        int reads = 0, listings = 0;
        controlled!.Before = call =>
        {
            if (call.Kind == StoreCallKind.Read)
            {
                Interlocked.Increment(ref reads);
            }
            else if (call.Kind == StoreCallKind.List)
            {
                Interlocked.Increment(ref listings);
            }

            return Task.CompletedTask;
        };

        Assert.Empty((await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        return (reads, listings);
    }
}
