using KmsBackup.DevelopmentKms;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// Issue 15, item 1: an incremental from the change feed updates the last point's trees on the changed paths. What it
/// commits is what reading the whole instance would have committed, it reads nothing per unchanged item, and it
/// commits nothing when the point it was built on goes away under it.
/// </summary>
public sealed class IncrementalUpdateTests
{
    /// <summary>
    /// The oracle is a run that reads the whole instance: right after a change-feed incremental, a client without a
    /// change feed backs the unchanged instance up and writes no object at all, which it could not if any leaf or
    /// branch of the updated trees differed from the trees of the whole snapshot. The views of the day show exactly
    /// the changes made.
    /// </summary>
    [Fact]
    [Trait("Rule", "D5")]
    public async Task A_change_feed_incremental_commits_the_trees_and_changes_a_whole_read_gives()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a", keyQuota: 5000);
        for (var i = 0; i < 1500; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"key-{i:D4}", EngineHarness.Owner);
        }

        for (var i = 0; i < 200; i++)
        {
            await h.Kms.StoreSecretAsync("kst-a", $"secret-{i:D3}", $"key-{i:D4}", new byte[] { 1, 2, (byte)i }, EngineHarness.Owner);
        }

        var backup = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;
        await h.RunUntilAsync(EngineHarness.Start.AddMinutes(5), TimeSpan.FromMinutes(5));

        // Changes all over the tree: rotations, additions (before, between and after the names there), deletions,
        // a description, new secret values, a deleted secret.
        var rotated = new[] { "key-0000", "key-0713", "key-1499" };
        foreach (var name in rotated)
        {
            await h.Kms.RotateKeyAsync("kst-a", name);
        }

        var added = new[] { "a-first", "key-0713a", "zz-last" };
        foreach (var name in added)
        {
            await h.Kms.GenerateKeyAsync("kst-a", name, EngineHarness.Owner);
        }

        await h.Kms.DeleteKeyAsync("kst-a", "key-1200");
        await h.Kms.SetDescriptionAsync("kst-a", ItemType.Key, "key-0300", "changed");
        await h.Kms.PutSecretValueAsync("kst-a", "secret-050", new byte[] { 9 });
        await h.Kms.DeleteSecretAsync("kst-a", "secret-199");

        var incremental = Assert.Single(await h.RunUntilAsync(EngineHarness.Start.AddMinutes(10), TimeSpan.FromMinutes(5)));
        Assert.True(incremental.UsedChangeFeed);
        Assert.Equal(10, incremental.Point.ChangeCount);
        var date = DateOnly.FromDateTime(EngineHarness.Start.UtcDateTime);
        var rotatedView = await h.Client.GetDataAsync(EngineHarness.Owner, backup.Id, date, BackupDataType.RotatedKeys).Select(i => i.Name).ToListAsync();
        Assert.Equal(rotated, rotatedView.Order(StringComparer.Ordinal));
        var incrementalKeys = await h.Client.GetDataAsync(EngineHarness.Owner, backup.Id, date, BackupDataType.IncrementallyBackedUpKeys).Select(i => i.Name).ToListAsync();
        Assert.Equal(added, incrementalKeys.Order(StringComparer.Ordinal));

        // The same instance read whole, by a client without a change feed: nothing new to write.
        using var whole = await h.OpenAnotherClientAsync("no-feed-host", gateway: new NoFeed(h.Kms));
        h.Clock.Advance(TimeSpan.FromMinutes(5));
        var check = Assert.Single((await whole.RunDueBackupsAsync()).ThrowIfAnyFailed());
        Assert.False(check.UsedChangeFeed);
        Assert.Equal(0, check.Point.ChangeCount);
        Assert.Equal(0, check.ObjectsWritten);
    }

    /// <summary>
    /// A change-feed incremental reads the last point's leaves that hold a change and the branches above them; nothing
    /// of the rest. On an instance whose tree spans two packs (long descriptions), rotating one key reads under a
    /// quarter of the bytes its first full wrote; reading the last point's items whole, as incrementals did, reads
    /// all of them.
    /// </summary>
    [Fact]
    [Trait("Rule", "S3")]
    public async Task A_change_feed_incremental_reads_the_changed_paths_not_the_instance()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a", keyQuota: 5000);
        for (var i = 0; i < 1500; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"key-{i:D4}", EngineHarness.Owner);
        }

        RangedReadTests.CountingStore? counting = null;
        using var client = await h.OpenAnotherClientAsync(
            "counting-host", gateway: new LongDescriptions(h.Kms), wrapStore: s => counting = new RangedReadTests.CountingStore(s));
        var first = await client.OnInstanceEnabledAsync("kst-a");
        var full = (await client.ListRecoveryPointsAsync(EngineHarness.Owner, first!.Id, DateOnly.FromDateTime(EngineHarness.Start.UtcDateTime))).Single();
        var fullBytes = counting!.BytesWritten;
        Assert.True(fullBytes > 12_000_000, $"{fullBytes} bytes"); // two packs

        await h.Kms.RotateKeyAsync("kst-a", "key-1234");
        h.Clock.Advance(TimeSpan.FromMinutes(5));
        counting.BytesRead.Clear();
        var run = Assert.Single((await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        Assert.True(run.UsedChangeFeed);
        Assert.Equal(1, run.Point.ChangeCount);
        var packBytes = counting.BytesRead.Where(r => r.Key.StartsWith("packs/", StringComparison.Ordinal)).Sum(r => (long)r.Value);
        Assert.InRange(packBytes, 1, fullBytes / 4); // a leaf of these keys is ~260 KB on average (up to 2 MB), and ranges under 256 KiB apart are read as one
        _ = full;
    }

    /// <summary>
    /// Restoring a named item, and the day's view of rotated keys, read those items' paths through the trees: under a
    /// quarter of the point's bytes, where they read the point's whole trees (all of its bytes) before.
    /// </summary>
    [Fact]
    [Trait("Rule", "R1")]
    public async Task A_restore_of_a_few_items_the_rotated_view_and_a_prefix_page_read_their_paths_not_the_point()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a", keyQuota: 5000);
        await h.CreateInstanceAsync("kst-target");
        for (var i = 0; i < 1500; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"key-{i:D4}", EngineHarness.Owner);
        }

        RangedReadTests.CountingStore? counting = null;
        using var client = await h.OpenAnotherClientAsync(
            "counting-host", gateway: new LongDescriptions(h.Kms), wrapStore: s => counting = new RangedReadTests.CountingStore(s));
        var backup = (await client.OnInstanceEnabledAsync("kst-a"))!;
        var fullBytes = counting!.BytesWritten;
        await h.Kms.RotateKeyAsync("kst-a", "key-0777");
        h.Clock.Advance(TimeSpan.FromMinutes(5));
        (await client.RunDueBackupsAsync()).ThrowIfAnyFailed();
        var date = DateOnly.FromDateTime(EngineHarness.Start.UtcDateTime);

        long PackBytes() => counting.BytesRead.Where(r => r.Key.StartsWith("packs/", StringComparison.Ordinal)).Sum(r => (long)r.Value);

        counting.BytesRead.Clear();
        var plan = await client.PlanRestoreAsync(new RestoreRequest
        {
            CallerAccount = EngineHarness.Owner, BackupId = backup.Id, TargetInstanceId = "kst-target", BackupDate = date,
            KeyNames = ["key-0777", "no-such-key"],
        });
        Assert.Equal(["key-0777"], plan.Items.Where(i => i.Type == ItemType.Key).Select(i => i.Name));
        Assert.Contains(plan.BatchRefusals, r => r.Message.Contains("no-such-key", StringComparison.Ordinal)); // a name the point does not hold
        Assert.InRange(PackBytes(), 1, fullBytes / 4);

        counting.BytesRead.Clear();
        var rotated = await client.GetDataAsync(EngineHarness.Owner, backup.Id, date, BackupDataType.RotatedKeys).ToListAsync();
        Assert.Equal("key-0777", Assert.Single(rotated).Name);
        Assert.InRange(PackBytes(), 1, fullBytes / 4);

        // A page of the full view filtered by a name prefix seeks to the prefix, and so does its next page.
        counting.BytesRead.Clear();
        var prefixed = await client.GetDataPageAsync(EngineHarness.Owner, backup.Id, date, BackupDataType.FullyBackedUpKeys,
            new BackupDataQuery { PageSize = 10, NamePrefix = "key-12" });
        Assert.Equal(Enumerable.Range(1200, 10).Select(i => $"key-{i:D4}"), prefixed.Items.Select(i => i.Name));
        var nextPrefixed = await client.GetDataPageAsync(EngineHarness.Owner, backup.Id, date, BackupDataType.FullyBackedUpKeys,
            new BackupDataQuery { PageSize = 10, NamePrefix = "key-12", ContinuationToken = prefixed.ContinuationToken });
        Assert.Equal(Enumerable.Range(1210, 10).Select(i => $"key-{i:D4}"), nextPrefixed.Items.Select(i => i.Name));
        Assert.InRange(PackBytes(), 1, fullBytes / 4);
    }

    /// <summary>
    /// The updated trees share the last point's unchanged subtrees, which only that point keeps live. When it is
    /// deleted before the new manifest is confirmed (here: by the writer whose lease lapsed, taking its point back), the
    /// new point is deleted again and the run fails with <see cref="BackupErrorCode.LeaseLost"/>; the next run commits.
    /// </summary>
    [Fact]
    [Trait("Rule", "S3")]
    public async Task An_incremental_whose_base_point_vanishes_before_it_is_confirmed_commits_nothing()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        for (var i = 0; i < 100; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"key-{i:D3}", EngineHarness.Owner);
        }

        ControlledStore? controlled = null;
        using var client = await h.OpenAnotherClientAsync("racing-host", wrapStore: s => controlled = new ControlledStore(s));
        var backup = (await client.OnInstanceEnabledAsync("kst-a"))!;
        var date = DateOnly.FromDateTime(EngineHarness.Start.UtcDateTime);
        var basePoint = Assert.Single(await client.ListRecoveryPointsAsync(EngineHarness.Owner, backup.Id, date));

        await h.Kms.RotateKeyAsync("kst-a", "key-050");
        h.Clock.Advance(TimeSpan.FromMinutes(5));
        // Another writer deletes the base point between the new manifest and its confirmation (as a writer whose lease
        // lapsed takes its own point back): the first read of the base point after the new manifest is written.
        var raw = controlled!.Inner;
        var newManifestWritten = false;
        controlled.Before = async call =>
        {
            if (call.Kind == StoreCallKind.Create && call.Key.StartsWith($"points/{backup.Id}/", StringComparison.Ordinal) && call.Key.EndsWith("000000000002", StringComparison.Ordinal))
            {
                newManifestWritten = true;
            }
            else if (newManifestWritten && call.Kind == StoreCallKind.Read && call.Key.StartsWith($"points/{backup.Id}/", StringComparison.Ordinal) && call.Key.EndsWith("000000000001", StringComparison.Ordinal))
            {
                controlled.Before = null;
                Assert.True(await raw.DeleteAsync(call.Key));
            }
        };

        var report = await client.RunDueBackupsAsync();
        var failure = Assert.Single(report.Failures);
        Assert.Equal(BackupErrorCode.LeaseLost, Assert.IsType<BackupException>(failure.Error).Code);
        Assert.Contains("built on", failure.Error.Message, StringComparison.Ordinal);
        Assert.True(newManifestWritten);
        Assert.Empty(await client.ListRecoveryPointsAsync(EngineHarness.Owner, backup.Id, date));

        // With its base gone, the next run reads the whole instance and commits.
        h.Clock.Advance(TimeSpan.FromMinutes(5));
        var next = Assert.Single((await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        Assert.False(next.UsedChangeFeed);
        Assert.Equal(basePoint.Sequence, next.Point.Sequence);
    }

    /// <summary>The embedded service whose keys each come with an 8 KiB description (the service itself keeps them short, to stay quick).</summary>
    private sealed class LongDescriptions(EmbeddedKeyManagementService inner) : NoFeed(inner)
    {
        private static readonly string s_description = new('d', 8192);

        public override bool SupportsChangeFeed => true;

        public override async Task<SnapshotRead> ReadSnapshotAsync(string instanceId, CancellationToken cancellationToken = default)
        {
            var read = await base.ReadSnapshotAsync(instanceId, cancellationToken);
            var snapshot = InstanceSnapshot.Create(read.Snapshot.Source, read.Snapshot.TakenAt, read.Snapshot.Keys.Select(k => k with { Description = s_description }), read.Snapshot.Secrets);
            return read with { Snapshot = snapshot };
        }

        public override async Task<InstanceChanges> ReadChangesAsync(string instanceId, string cursor, CancellationToken cancellationToken = default)
        {
            var changes = await Inner.ReadChangesAsync(instanceId, cursor, cancellationToken);
            return changes with { UpsertedKeys = changes.UpsertedKeys.Select(k => k with { Description = s_description }).ToList() };
        }
    }

    /// <summary>The embedded service without its change feed: every run reads the whole instance.</summary>
    private class NoFeed(EmbeddedKeyManagementService inner) : InstanceGateway
    {
        protected EmbeddedKeyManagementService Inner => inner;

        public override Task<InstanceDescription?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken = default) => inner.GetInstanceAsync(instanceId, cancellationToken);

        public override IAsyncEnumerable<InstanceDescription> ListInstancesAsync(string? region = null, CancellationToken cancellationToken = default) => inner.ListInstancesAsync(region, cancellationToken);

        public override Task<SnapshotRead> ReadSnapshotAsync(string instanceId, CancellationToken cancellationToken = default) => inner.ReadSnapshotAsync(instanceId, cancellationToken);

        public override Task<IReadOnlyList<NameInUse>> FindNamesInUseAsync(string region, ItemType type, IReadOnlyCollection<string> names, CancellationToken cancellationToken = default) =>
            inner.FindNamesInUseAsync(region, type, names, cancellationToken);

        public override Task<bool> CreateKeyAsync(string instanceId, KeyRecord key, string operationId, CancellationToken cancellationToken = default) => inner.CreateKeyAsync(instanceId, key, operationId, cancellationToken);

        public override Task<bool> CreateSecretAsync(string instanceId, SecretRecord secret, string operationId, CancellationToken cancellationToken = default) => inner.CreateSecretAsync(instanceId, secret, operationId, cancellationToken);

        public override Task<bool> DeleteRestoredItemAsync(string instanceId, ItemType type, string name, string operationId, CancellationToken cancellationToken = default) =>
            inner.DeleteRestoredItemAsync(instanceId, type, name, operationId, cancellationToken);
    }
}
