namespace KmsBackup.Tests.Engine;

/// <summary>A run that outlasts its lease keeps it renewed; a run whose lease is lost commits nothing.</summary>
public class EngineLeaseRenewalTests
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    /// <summary>An instance gateway whose snapshot and change-feed reads wait until released.</summary>
    private sealed class SlowGateway(InstanceGateway inner) : InstanceGateway
    {
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override bool SupportsChangeFeed => inner.SupportsChangeFeed;

        public override Task<InstanceDescription?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken = default) => inner.GetInstanceAsync(instanceId, cancellationToken);

        public override IAsyncEnumerable<InstanceDescription> ListInstancesAsync(string? region = null, CancellationToken cancellationToken = default) => inner.ListInstancesAsync(region, cancellationToken);

        public override async Task<SnapshotRead> ReadSnapshotAsync(string instanceId, CancellationToken cancellationToken = default)
        {
            await WaitAsync(cancellationToken);
            return await inner.ReadSnapshotAsync(instanceId, cancellationToken);
        }

        public override async Task<InstanceChanges> ReadChangesAsync(string instanceId, string cursor, CancellationToken cancellationToken = default)
        {
            await WaitAsync(cancellationToken);
            return await inner.ReadChangesAsync(instanceId, cursor, cancellationToken);
        }

        public override Task<IReadOnlyList<NameInUse>> FindNamesInUseAsync(string region, ItemType type, IReadOnlyCollection<string> names, CancellationToken cancellationToken = default) =>
            inner.FindNamesInUseAsync(region, type, names, cancellationToken);

        public override Task<bool> CreateKeyAsync(string instanceId, KeyRecord key, string operationId, CancellationToken cancellationToken = default) => inner.CreateKeyAsync(instanceId, key, operationId, cancellationToken);

        public override Task<bool> CreateSecretAsync(string instanceId, SecretRecord secret, string operationId, CancellationToken cancellationToken = default) => inner.CreateSecretAsync(instanceId, secret, operationId, cancellationToken);

        public override Task<bool> DeleteRestoredItemAsync(string instanceId, ItemType type, string name, string operationId, CancellationToken cancellationToken = default) =>
            inner.DeleteRestoredItemAsync(instanceId, type, name, operationId, cancellationToken);

        private async Task WaitAsync(CancellationToken cancellationToken)
        {
            Entered.TrySetResult();
            await Release.Task.WaitAsync(cancellationToken);
        }
    }

    /// <summary>A store whose leases cannot be renewed: another writer took them over.</summary>
    private sealed class LosingStore(BackupStore inner) : BackupStore
    {
        protected override Task<bool> TryCreateCoreAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) => inner.TryCreateAsync(key, content, cancellationToken);

        protected override Task<byte[]?> TryReadCoreAsync(string key, CancellationToken cancellationToken) => inner.TryReadAsync(key, cancellationToken);

        protected override IAsyncEnumerable<StoreObject> ListCoreAsync(string prefix, CancellationToken cancellationToken) => inner.ListAsync(prefix, cancellationToken);

        protected override Task<bool> DeleteCoreAsync(string key, CancellationToken cancellationToken) => inner.DeleteAsync(key, cancellationToken);

        public override async Task<StoreLease> AcquireLeaseAsync(string leaseName, string holder, TimeSpan duration, CancellationToken cancellationToken = default) =>
            new LostLease(await inner.AcquireLeaseAsync(leaseName, holder, duration, cancellationToken));

        private sealed class LostLease(StoreLease inner) : StoreLease(inner.Name, inner.Holder, inner.ExpiresAt)
        {
            public override Task RenewAsync(CancellationToken cancellationToken = default) =>
                throw new BackupException(new Refusal(BackupErrorCode.LeaseLost, $"lease '{Name}'", $"The lease '{Name}' was taken over by 'other-host' (injected).", "Let the other writer finish."));

            public override Task EnsureHeldAsync(CancellationToken cancellationToken = default) => inner.EnsureHeldAsync(cancellationToken);

            public override ValueTask DisposeAsync() => inner.DisposeAsync();
        }
    }

    private static async Task AdvanceAsync(EngineHarness h, TimeSpan total, TimeSpan step)
    {
        for (var passed = TimeSpan.Zero; passed < total; passed += step)
        {
            h.Clock.Advance(step);
            await Task.Delay(20); // let the renewal timer's continuation run
        }
    }

    [Fact]
    [Trait("Rule", "S3")]
    public async Task A_run_longer_than_its_lease_keeps_the_lease_and_commits()
    {
        await using var h = await EngineHarness.CreateAsync(o => o.LeaseDuration = Lease);
        await h.CreateInstanceAsync("kst-slow");
        await h.Kms.GenerateKeyAsync("kst-slow", "orders", EngineHarness.Owner);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-slow"))!;
        var slow = new SlowGateway(h.Kms);
        using var slowClient = await h.OpenAnotherClientAsync("slow-host", slow);
        h.Clock.Advance(TimeSpan.FromMinutes(5));

        var run = slowClient.RunIfDueAsync(backup.Id);
        await slow.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await AdvanceAsync(h, TimeSpan.FromMinutes(2), TimeSpan.FromSeconds(5)); // four lease durations

        var held = await Assert.ThrowsAsync<BackupException>(() => h.Client.RunIfDueAsync(backup.Id));
        Assert.Equal(BackupErrorCode.LeaseHeld, held.Code);
        Assert.Contains("slow-host", held.Message, StringComparison.Ordinal);

        slow.Release.SetResult();
        var result = await run.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.NotNull(result);
        Assert.Equal(2, result.Point.Sequence);
    }

    [Fact]
    public async Task A_run_whose_lease_is_taken_over_stops_before_it_commits()
    {
        await using var h = await EngineHarness.CreateAsync(o => o.LeaseDuration = Lease);
        await h.CreateInstanceAsync("kst-slow");
        await h.Kms.GenerateKeyAsync("kst-slow", "orders", EngineHarness.Owner);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-slow"))!;
        var slow = new SlowGateway(h.Kms);
        using var losing = await h.OpenAnotherClientAsync("losing-host", slow, s => new LosingStore(s));
        h.Clock.Advance(TimeSpan.FromMinutes(5));

        var run = losing.RunIfDueAsync(backup.Id);
        await slow.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await AdvanceAsync(h, TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(5)); // past the first renewal, at a third of the lease

        var lost = await Assert.ThrowsAsync<BackupException>(() => run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(BackupErrorCode.LeaseLost, lost.Code);
        Assert.Equal([1L], (await h.Client.ListRecoveryPointsAsync(EngineHarness.Owner, backup.Id, DateOnly.FromDateTime(h.Clock.GetUtcNow().UtcDateTime))).Select(p => p.Sequence).ToList());
    }
}
