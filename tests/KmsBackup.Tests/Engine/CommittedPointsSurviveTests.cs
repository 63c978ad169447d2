// Over 400 lines: each failure of issue 12 replayed as it was found, one test each.
using KmsBackup.Storage;
using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// Issue 12's failures, each replayed as it was found: a committed recovery point is never lost to a prune
/// by another process, a reset racing a run, a read, a wrong clock or one damaged object.
/// </summary>
public class CommittedPointsSurviveTests
{
    private const string Owner = EngineHarness.Owner;
    private static readonly DateOnly Today = DateOnly.FromDateTime(EngineHarness.Start.UtcDateTime);

    private static async Task AddKeysAsync(EngineHarness h, string instanceId, int count)
    {
        for (var i = 0; i < count; i++)
        {
            await h.Kms.GenerateKeyAsync(instanceId, $"key-{i:D3}", Owner);
        }
    }

    private static async Task<List<string>> PointKeysAsync(BackupStore store, string backupId)
    {
        var keys = new List<string>();
        await foreach (var entry in store.ListAsync($"points/{backupId}/"))
        {
            keys.Add(entry.Key);
        }

        return keys;
    }

    private static List<(string Path, string Bytes)> StoreImage(EngineHarness h) =>
        [.. h.StoreFilesContent().Where(f => !f.Path.Contains("/leases/", StringComparison.Ordinal))
            .Select(f => (f.Path, Convert.ToHexString(f.Bytes))).OrderBy(f => f.Path, StringComparer.Ordinal)];

    [Fact]
    [Trait("Rule", "L5")]
    public async Task A_prune_by_another_process_never_deletes_packs_a_writer_then_reuses()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await AddKeysAsync(h, "kst-a", 40);
        var backup = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);
        await h.Client.ResetBackupAsync(Owner, backup.Id);

        // Another process prunes twice, past the grace period: the reset backup's packs are deleted.
        using (var pruner = await h.OpenAnotherClientAsync("pruner"))
        {
            await pruner.PruneAsync();
            h.Clock.Advance(TimeSpan.FromHours(2));
            var second = await pruner.PruneAsync();
            Assert.True(second.PacksDeleted > 0, "the setup must delete the packs the first client still has in its index");
        }

        // The first client still has those packs in its index; enabling again must not refer to them.
        var enabled = await h.Client.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);
        Assert.Equal(40, enabled.LatestPoint?.KeyCount);

        using var fresh = await h.OpenAnotherClientAsync("reader");
        var verification = await fresh.VerifyAsync();
        Assert.True(verification.IsClean, string.Join("; ", verification.Problems));
        var page = await fresh.GetDataPageAsync(Owner, backup.Id, DateOnly.FromDateTime(h.Clock.GetUtcNow().UtcDateTime), BackupDataType.FullyBackedUpKeys);
        Assert.Equal(40, page.Items.Count);
    }

    [Fact]
    [Trait("Rule", "L5")]
    public async Task A_run_racing_a_reset_never_puts_data_back_into_the_reset_backup()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await AddKeysAsync(h, "kst-a", 10);
        var backup = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);

        // Host B's scheduled run has read the backup's state and pauses before it takes the lease.
        var paused = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var resume = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        ControlledStore? controlled = null;
        using var hostB = await h.OpenAnotherClientAsync("host-b", wrapStore: s => controlled = new ControlledStore(s));
        controlled!.Before = async call =>
        {
            if (call.Kind == StoreCallKind.AcquireLease && !paused.Task.IsCompleted)
            {
                paused.SetResult();
                await resume.Task;
            }
        };
        h.Clock.Advance(TimeSpan.FromMinutes(5));
        var run = Task.Run(async () => (await hostB.RunDueBackupsAsync()).ThrowIfAnyFailed());
        await paused.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // Host A resets the backup meanwhile; then host B goes on.
        var reset = await h.Client.ResetBackupAsync(Owner, backup.Id);
        Assert.Equal(BackupStatus.Disabled, reset.Status);
        resume.SetResult();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        var details = await h.Client.GetBackupAsync(Owner, backup.Id);
        Assert.Equal(BackupStatus.Disabled, details.Status);
        Assert.Null(details.LatestPoint);
        Assert.Empty(await PointKeysAsync(controlled.Inner, backup.Id));
    }

    [Fact]
    [Trait("Rule", "L5")]
    public async Task A_reset_while_a_run_holds_the_lease_is_refused_and_the_run_commits()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await AddKeysAsync(h, "kst-a", 10);
        var backup = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);

        // Host B's run holds the lease and pauses before it writes its recovery point.
        var paused = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var resume = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        ControlledStore? controlled = null;
        using var hostB = await h.OpenAnotherClientAsync("host-b", wrapStore: s => controlled = new ControlledStore(s));
        controlled!.Before = async call =>
        {
            if (call.Kind == StoreCallKind.Create && call.Key.StartsWith("points/", StringComparison.Ordinal) && !paused.Task.IsCompleted)
            {
                paused.SetResult();
                await resume.Task;
            }
        };
        h.Clock.Advance(TimeSpan.FromMinutes(5));
        var run = Task.Run(async () => (await hostB.RunDueBackupsAsync()).ThrowIfAnyFailed());
        await paused.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var refused = await Assert.ThrowsAsync<BackupException>(() => h.Client.ResetBackupAsync(Owner, backup.Id));
        Assert.Equal(BackupErrorCode.LeaseHeld, refused.Code);
        Assert.Contains("host-b", refused.Message, StringComparison.Ordinal);
        resume.SetResult();
        var results = await run.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Single(results);

        var details = await h.Client.GetBackupAsync(Owner, backup.Id);
        Assert.Equal(BackupStatus.Enabled, details.Status);
        Assert.Equal(2, details.LatestPoint?.Sequence);
    }

    [Fact]
    [Trait("Rule", "L5")]
    public async Task A_reset_that_dies_while_deleting_leaves_a_disabled_backup_whose_leftovers_nothing_shows_and_prune_removes()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await AddKeysAsync(h, "kst-a", 4);
        var backup = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);
        await h.RunUntilAsync(EngineHarness.Start.AddMinutes(15), TimeSpan.FromMinutes(5));

        // The resetting process dies at its second deletion of a point: from then on it writes nothing.
        await ResetInAProcessThatDiesAtDeletionAsync(h, backup.Id, 2);

        var store = new FileSystemBackupStore(h.Files, EngineHarness.StoreRoot, h.Clock);
        Assert.NotEmpty(await PointKeysAsync(store, backup.Id));
        var details = await h.Client.GetBackupAsync(Owner, backup.Id);
        Assert.Equal(BackupStatus.Disabled, details.Status);
        Assert.Null(details.LatestPoint);
        Assert.Empty((await h.Client.RunDueBackupsAsync()).ThrowIfAnyFailed());

        // Enabling again (after the dead process's lease lapses) starts from nothing: the leftovers are gone first.
        h.Clock.Advance(h.Options.LeaseDuration);
        var enabled = await h.Client.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);
        Assert.Equal(1, enabled.LatestPoint?.Sequence);
        Assert.Equal([1L], (await h.Client.ListRecoveryPointsAsync(Owner, backup.Id, Today)).Select(p => p.Sequence));
        Assert.True((await h.Client.VerifyAsync()).IsClean);
    }

    [Fact]
    [Trait("Rule", "W5")]
    public async Task Prune_removes_the_points_a_dead_reset_left_behind()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await AddKeysAsync(h, "kst-a", 2);
        var backup = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);
        await h.RunUntilAsync(EngineHarness.Start.AddMinutes(10), TimeSpan.FromMinutes(5));
        await ResetInAProcessThatDiesAtDeletionAsync(h, backup.Id, 1);

        var store = new FileSystemBackupStore(h.Files, EngineHarness.StoreRoot, h.Clock);
        Assert.Equal(3, (await PointKeysAsync(store, backup.Id)).Count);
        h.Clock.Advance(h.Options.LeaseDuration);
        Assert.Equal(3, (await h.Client.PruneAsync()).RecoveryPointsDeleted);
        Assert.Empty(await PointKeysAsync(store, backup.Id));
    }

    [Fact]
    [Trait("Rule", "L5")]
    public async Task A_host_never_shows_points_another_host_deleted_when_it_reset_and_enabled_the_backup_again()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.CreateInstanceAsync("kst-b");
        await AddKeysAsync(h, "kst-a", 4);
        await h.Kms.GenerateKeyAsync("kst-b", "only-in-b", Owner);
        var backup = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);
        await h.RunUntilAsync(EngineHarness.Start.AddMinutes(10), TimeSpan.FromMinutes(5));
        Assert.Equal(4, (await h.Client.GetDataPageAsync(Owner, backup.Id, Today, BackupDataType.FullyBackedUpKeys)).Items.Count);
        Assert.Equal(3, (await h.Client.ListRecoveryPointsAsync(Owner, backup.Id, Today)).Count);

        // Another host resets the backup and enables it for another instance the same day: its points 1..
        // are new objects under the same names.
        using (var other = await h.OpenAnotherClientAsync("other-host"))
        {
            await other.ResetBackupAsync(Owner, backup.Id);
            h.Clock.Advance(TimeSpan.FromMinutes(1));
            await other.EnableBackupAsync(Owner, backup.Id, "kst-b", InstanceKind.Software);
        }

        var points = await h.Client.ListRecoveryPointsAsync(Owner, backup.Id, Today);
        Assert.Equal([(1L, 1)], points.Select(p => (p.Sequence, p.KeyCount)));
        var page = await h.Client.GetDataPageAsync(Owner, backup.Id, Today, BackupDataType.FullyBackedUpKeys);
        Assert.Equal(["only-in-b"], page.Items.Select(i => i.Name));
        h.Clock.Advance(TimeSpan.FromMinutes(5));
        var next = Assert.Single((await h.Client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        Assert.Equal((2L, 1, 0), (next.Point.Sequence, next.Point.KeyCount, next.Point.ChangeCount));
    }

    [Fact]
    [Trait("Rule", "L4")]
    [Trait("Rule", "L2")]
    public async Task Reads_change_nothing_in_the_store_even_when_lifecycle_deletions_are_due()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.CreateInstanceAsync("kst-b");
        await AddKeysAsync(h, "kst-a", 5);
        await h.Kms.GenerateKeyAsync("kst-b", "only", Owner);
        var purchased = (await h.Client.PurchaseBackupsAsync(Owner, new PurchaseOrder(EngineHarness.Region, 30, PurchaseTerm.FromMonths(1))))[0];
        await h.Client.EnableBackupAsync(Owner, purchased.Id, "kst-a", InstanceKind.Software);
        var automatic = (await h.Client.OnInstanceEnabledAsync("kst-b"))!;
        await h.RunUntilAsync(EngineHarness.Start.AddMinutes(30), TimeSpan.FromMinutes(5));
        await h.Kms.ReleaseInstanceAsync("kst-b");
        await h.Client.OnInstanceReleasedAsync("kst-b");

        // A reader whose clock is past the purchased backup's release (expiry + 15 days) and the automatic
        // backup's (instance release + 90 days): every read leaves the store as it was.
        var later = new FakeTimeProvider(EngineHarness.Start.AddDays(200));
        using var reader = await OpenClientAsync(h, "reader", later);
        var before = StoreImage(h);
        await foreach (var _ in reader.ListBackupsAsync(Owner))
        {
        }

        await reader.GetBackupAsync(Owner, purchased.Id);
        await reader.GetBackupAsync(Owner, automatic.Id);
        await Assert.ThrowsAsync<BackupException>(() => reader.GetDataPageAsync(Owner, purchased.Id, Today, BackupDataType.FullyBackedUpKeys));
        await Assert.ThrowsAsync<BackupException>(() => reader.ListRecoveryPointsAsync(Owner, automatic.Id, Today));
        await Assert.ThrowsAsync<BackupException>(() => reader.GetStateAtAsync(Owner, purchased.Id, EngineHarness.Start.AddMinutes(20)));
        using (var file = new MemoryStream())
        {
            await Assert.ThrowsAsync<BackupException>(() => reader.DownloadAsync(Owner, automatic.Id, Today, file));
        }

        await reader.PlanRestoreAsync(new RestoreRequest
        {
            CallerAccount = Owner, BackupId = purchased.Id, BackupDate = Today, AllItems = true, TargetInstanceId = "kst-a",
        });
        await reader.GetHealthAsync();
        await reader.VerifyAsync();
        Assert.Equal(before, StoreImage(h));

        // Deleting is maintenance's work, and only on a clock the store trusts: 200 days past the store's
        // time, the scheduled run and prune hold every deletion until an operator confirms the clock.
        Assert.True((await reader.GetStoreClockAsync()).DeletionsHeld);
        (await reader.RunDueBackupsAsync()).ThrowIfAnyFailed();
        Assert.True((await reader.PruneAsync()).DeletionsHeld);
        Assert.NotEmpty(await PointKeysAsync(new FileSystemBackupStore(h.Files, EngineHarness.StoreRoot, later), purchased.Id));
        await reader.ConfirmClockAsync();
        (await reader.RunDueBackupsAsync()).ThrowIfAnyFailed();
        await reader.PruneAsync();
        Assert.Empty(await PointKeysAsync(new FileSystemBackupStore(h.Files, EngineHarness.StoreRoot, later), purchased.Id));
        Assert.Empty(await PointKeysAsync(new FileSystemBackupStore(h.Files, EngineHarness.StoreRoot, later), automatic.Id));
        Assert.Equal(BackupStatus.Released, (await reader.GetBackupAsync(Owner, purchased.Id)).Status);
    }

    [Fact]
    [Trait("Rule", "W5")]
    public async Task A_clock_a_year_ahead_deletes_nothing_and_keeps_backing_up()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await AddKeysAsync(h, "kst-a", 5);
        var purchased = (await h.Client.PurchaseBackupsAsync(Owner, new PurchaseOrder(EngineHarness.Region, 30, PurchaseTerm.FromMonths(1))))[0];
        await h.Client.EnableBackupAsync(Owner, purchased.Id, "kst-a", InstanceKind.Software);
        var dflt = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, dflt.Id, "kst-a", InstanceKind.Software);
        await h.RunUntilAsync(EngineHarness.Start.AddMinutes(30), TimeSpan.FromMinutes(5));
        var store = new FileSystemBackupStore(h.Files, EngineHarness.StoreRoot, h.Clock);
        var purchasedPoints = await PointKeysAsync(store, purchased.Id);
        var defaultPoints = await PointKeysAsync(store, dflt.Id);

        // A host whose clock is wrong by a year runs and prunes.
        var wrong = new FakeTimeProvider(EngineHarness.Start.AddDays(365));
        using var wrongHost = await OpenClientAsync(h, "wrong-host", wrong);
        var runs = (await wrongHost.RunDueBackupsAsync()).ThrowIfAnyFailed();
        await wrongHost.PruneAsync();
        wrong.Advance(TimeSpan.FromHours(2));
        await wrongHost.PruneAsync();

        Assert.Equal(purchasedPoints, await PointKeysAsync(store, purchased.Id));
        Assert.Superset(defaultPoints.ToHashSet(), (await PointKeysAsync(store, dflt.Id)).ToHashSet());
        Assert.Contains(runs, r => r.Point.BackupId == dflt.Id);
        var health = await wrongHost.GetStoreClockAsync();
        Assert.True(health.DeletionsHeld);
        Assert.Equal(EngineHarness.Start.AddMinutes(30), health.StoreTime);

        // Once an operator confirms the time, deletions go ahead.
        await wrongHost.ConfirmClockAsync();
        Assert.False((await wrongHost.GetStoreClockAsync()).DeletionsHeld);
        (await wrongHost.RunDueBackupsAsync()).ThrowIfAnyFailed();
        await wrongHost.PruneAsync();
        Assert.Empty(await PointKeysAsync(store, purchased.Id));
    }

    [Fact]
    public async Task A_clock_behind_the_store_refuses_to_commit_naming_both_times()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await AddKeysAsync(h, "kst-a", 5);
        var dflt = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, dflt.Id, "kst-a", InstanceKind.Software);
        await h.RunUntilAsync(EngineHarness.Start.AddHours(1), TimeSpan.FromMinutes(5));

        var behind = new FakeTimeProvider(EngineHarness.Start.AddHours(1).AddMinutes(-30));
        using var behindHost = await OpenClientAsync(h, "behind-host", behind);
        var refused = await Assert.ThrowsAsync<BackupException>(() => behindHost.CreateDefaultBackupAsync(Owner));
        Assert.Equal(BackupErrorCode.ClockBehindStore, refused.Code);
        Assert.Contains("2026-05-01T10:00:00", refused.Message, StringComparison.Ordinal);
        Assert.Contains("2026-05-01T09:30:00", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task One_damaged_catalog_object_stays_local_to_its_backup()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.CreateInstanceAsync("kst-b");
        await AddKeysAsync(h, "kst-a", 3);
        await h.Kms.GenerateKeyAsync("kst-b", "b-key", Owner);
        var a = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, a.Id, "kst-a", InstanceKind.Software);
        var b = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, b.Id, "kst-b", InstanceKind.Software);

        var catalog = h.Files.AllFiles.Where(p => p.Contains($"/catalog/{a.Id}/", StringComparison.Ordinal)).Order(StringComparer.Ordinal).Last();
        var bytes = h.Files.File.ReadAllBytes(catalog);
        bytes[bytes.Length / 2] ^= 0x10;
        h.Files.File.WriteAllBytes(catalog, bytes);

        h.Clock.Advance(TimeSpan.FromMinutes(5));
        var failed = await Assert.ThrowsAsync<BackupIntegrityException>(async () => (await h.Client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        Assert.Contains(a.Id, failed.Message, StringComparison.Ordinal);
        var health = await h.Client.GetHealthAsync();
        Assert.Equal(2, (await h.Client.GetBackupAsync(Owner, b.Id)).LatestPoint?.Sequence);

        var listed = await h.Client.ListBackupsAsync(Owner).ToListAsync();
        Assert.Contains(listed, d => d.Id == b.Id && d.Damage is null);
        Assert.Contains(listed, d => d.Id == a.Id && d.Damage is { } damage && damage.Code == BackupErrorCode.IntegrityViolation);
        Assert.Contains(health, x => x.BackupId == a.Id && x.LastErrorType == BackupErrorCode.IntegrityViolation.ToString());
        var verification = await h.Client.VerifyAsync();
        Assert.Contains(verification.Problems, p => p.Item.Contains(a.Id, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_damaged_index_or_a_stray_index_name_never_stops_the_repository_from_opening()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await AddKeysAsync(h, "kst-a", 3);
        var a = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, a.Id, "kst-a", InstanceKind.Software);

        var index = h.Files.AllFiles.First(p => p.Contains("/objects/index/", StringComparison.Ordinal));
        var bytes = h.Files.File.ReadAllBytes(index);
        bytes[^3] ^= 0x01;
        h.Files.File.WriteAllBytes(index, bytes);
        h.Files.File.WriteAllBytes(h.Files.Path.Combine(h.Files.Path.GetDirectoryName(index)!, "ab"), [1, 2, 3]);

        using var reopened = await h.OpenAnotherClientAsync("reopened");
        var verification = await reopened.VerifyAsync();
        Assert.Contains(verification.Problems, p => p.Item.Contains("index", StringComparison.Ordinal) && p.Description.Contains("ab", StringComparison.Ordinal));
        Assert.Contains(verification.Problems, p => p.Item.Contains(h.Files.Path.GetFileName(index)[..12], StringComparison.Ordinal));
        Assert.Single(await reopened.ListBackupsAsync(Owner).ToListAsync());
    }

    /// <summary>Resets a backup in another process that dies at its <paramref name="deletion"/>-th deletion of a point, and writes nothing after.</summary>
    private static async Task ResetInAProcessThatDiesAtDeletionAsync(EngineHarness h, string backupId, int deletion)
    {
        ControlledStore? controlled = null;
        var deletions = 0;
        var dead = false;
        using var dying = await h.OpenAnotherClientAsync("dying", wrapStore: s => controlled = new ControlledStore(s));
        controlled!.Before = call =>
        {
            dead |= call.Kind == StoreCallKind.Delete && call.Key.StartsWith("points/", StringComparison.Ordinal) && ++deletions == deletion;
            return dead ? throw new IOException("the process died") : Task.CompletedTask;
        };
        await Assert.ThrowsAsync<IOException>(() => dying.ResetBackupAsync(Owner, backupId));
    }

    private static async Task<BackupClient> OpenClientAsync(EngineHarness h, string holder, FakeTimeProvider clock)
    {
        var options = new BackupClientOptions { TimeProvider = clock, LeaseHolder = holder };
        var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(h.Files, EngineHarness.KeyFile);
        return await BackupClient.OpenAsync(new FileSystemBackupStore(h.Files, EngineHarness.StoreRoot, clock), keys, h.Kms, hsmClusters: null, options);
    }
}
