using System.IO.Abstractions.TestingHelpers;
using KmsBackup.Storage;
using KmsBackup.Tests.Storage;

namespace KmsBackup.Tests.Engine;

/// <summary>Faults: a write failing at any point of a run, flipped bits in any stored object, a second writer.</summary>
public class EngineFaultTests
{
    private static readonly TimeSpan FiveMinutes = TimeSpan.FromMinutes(5);

    private static async Task<Dictionary<long, InstanceSnapshot>> CommittedStatesAsync(BackupClient client, string backupId, DateOnly date)
    {
        var states = new Dictionary<long, InstanceSnapshot>();
        foreach (var point in await client.ListRecoveryPointsAsync(EngineHarness.Owner, backupId, date))
        {
            states[point.Sequence] = (await client.GetStateAtAsync(EngineHarness.Owner, backupId, point.TakenAt)).Snapshot;
        }

        return states;
    }

    [Fact]
    public async Task A_write_failing_at_any_point_of_a_run_leaves_every_committed_point_readable()
    {
        var date = new DateOnly(2026, 5, 1);
        var failures = 0;
        for (var k = 1; ; k++)
        {
            FaultyFileSystem? faulty = null;
            await using var h = await EngineHarness.CreateAsync(wrapStoreFiles: fs => faulty = new FaultyFileSystem(fs, 0));
            await h.CreateInstanceAsync("kst-a");
            for (var i = 0; i < 40; i++)
            {
                await h.Kms.GenerateKeyAsync("kst-a", $"key-{i:D3}", EngineHarness.Owner);
            }

            var backup = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;
            await h.Kms.RotateKeyAsync("kst-a", "key-010");
            await h.RunUntilAsync(EngineHarness.Start.AddMinutes(10), FiveMinutes);
            var committed = await CommittedStatesAsync(h.Client, backup.Id, date);

            // The next run changes two items; its k-th write fails, and every write after it (a crash).
            await h.Kms.GenerateKeyAsync("kst-a", "key-new", EngineHarness.Owner);
            await h.Kms.DeleteKeyAsync("kst-a", "key-030");
            faulty!.FailAt = faulty.WriteCount + k;
            h.Clock.Advance(FiveMinutes);
            try
            {
                (await h.Client.RunDueBackupsAsync()).ThrowIfAnyFailed();
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.StoreUnavailable)
            {
            }

            if (!faulty.HasFailed)
            {
                Assert.True(failures >= 5, $"a run should make several writes; only {failures} failure points were tried");
                return; // k is past the run's last write: every failure point has been tried
            }

            failures++;

            // A restarted process sees the inner file system as the crash left it.
            var restarted = await h.OpenAnotherClientAsync("restarted-host");
            var verification = await restarted.VerifyAsync();
            Assert.True(verification.IsClean, $"k={k}: {string.Join("; ", verification.Problems)}");
            var after = await CommittedStatesAsync(restarted, backup.Id, date);
            foreach (var (sequence, snapshot) in committed)
            {
                Assert.Equal(snapshot.Keys.ToList(), after[sequence].Keys.ToList());
                Assert.Equal(snapshot.Secrets.ToList(), after[sequence].Secrets.ToList());
            }

            // Once the crashed writer's lease has lapsed, the restarted process backs up again, and two prunes
            // remove what the crash left behind.
            h.Clock.Advance(h.Options.LeaseDuration + TimeSpan.FromMinutes(1));
            var next = (await restarted.RunDueBackupsAsync()).ThrowIfAnyFailed();
            Assert.Single(next);
            await restarted.PruneAsync();
            h.Clock.Advance(TimeSpan.FromHours(2));
            await restarted.PruneAsync();
            var clean = await restarted.VerifyAsync();
            Assert.True(clean.IsClean, $"k={k}: {string.Join("; ", clean.Problems)}");
            Assert.Equal(0, clean.UnreferencedObjects);
            Assert.Equal(0, clean.PacksWithoutIndex);
            restarted.Dispose();
        }
    }

    [Fact]
    public async Task A_flipped_bit_in_any_stored_object_is_reported_by_verify_and_by_any_read_that_touches_it()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        for (var i = 0; i < 60; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"key-{i:D3}", EngineHarness.Owner);
        }

        var backup = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;
        await h.Kms.RotateKeyAsync("kst-a", "key-007");
        await h.RunUntilAsync(EngineHarness.Start.AddMinutes(10), FiveMinutes);
        Assert.True((await h.Client.VerifyAsync()).IsClean);

        var objects = h.Files.AllFiles
            .Where(p => p.StartsWith(EngineHarness.StoreRoot + "/", StringComparison.Ordinal))
            .Where(p => p.Contains("/packs/", StringComparison.Ordinal) || p.Contains("/index/", StringComparison.Ordinal) ||
                        p.Contains("/points/", StringComparison.Ordinal) || p.Contains("/catalog/", StringComparison.Ordinal))
            .ToList();
        Assert.True(objects.Count >= 6);
        var random = new Random(1234);
        foreach (var path in objects)
        {
            var original = h.Files.File.ReadAllBytes(path);
            var flipped = (byte[])original.Clone();
            var at = random.Next(original.Length);
            flipped[at] ^= (byte)(1 << random.Next(8));
            h.Files.File.WriteAllBytes(path, flipped);
            try
            {
                var client = await h.OpenAnotherClientAsync("verifier");
                var verification = await client.VerifyAsync();
                Assert.False(verification.IsClean, $"a flipped bit at {at} of {path} went unnoticed");

                // Every read of every point either returns exactly what was stored or throws a typed integrity error.
                var (points, listingFailed) = await ListPointsOrIntegrityAsync(client, backup.Id);
                var touched = listingFailed;
                foreach (var point in points)
                {
                    try
                    {
                        await client.GetStateAtAsync(EngineHarness.Owner, backup.Id, point.TakenAt);
                    }
                    catch (BackupIntegrityException e)
                    {
                        touched = true;
                        Assert.Equal(BackupErrorCode.IntegrityViolation, e.Code);
                        Assert.False(string.IsNullOrEmpty(e.Item));
                    }
                }

                if (path.Contains("/packs/", StringComparison.Ordinal) && !path.EndsWith("00000000", StringComparison.Ordinal))
                {
                    Assert.Contains(verification.Problems, p => p.Item.StartsWith("object ", StringComparison.Ordinal) || p.Item.StartsWith("pack ", StringComparison.Ordinal));
                }

                Assert.True(touched || !path.Contains("/points/", StringComparison.Ordinal), $"reading the points did not notice the damage in {path}");
                client.Dispose();
            }
            catch (BackupIntegrityException) when (path.Contains("/index/", StringComparison.Ordinal) || path.Contains("/catalog/", StringComparison.Ordinal))
            {
                // A damaged index or catalog stops the client from opening or listing, with a typed error: also a refusal to use wrong data.
            }
            finally
            {
                h.Files.File.WriteAllBytes(path, original);
            }
        }

        Assert.True((await h.Client.VerifyAsync()).IsClean);
    }

    private static async Task<(IReadOnlyList<RecoveryPoint> Points, bool Failed)> ListPointsOrIntegrityAsync(BackupClient client, string backupId)
    {
        try
        {
            return (await client.ListRecoveryPointsAsync(EngineHarness.Owner, backupId, new DateOnly(2026, 5, 1)), false);
        }
        catch (BackupIntegrityException e)
        {
            Assert.Equal(BackupErrorCode.IntegrityViolation, e.Code);
            return ([], true);
        }
    }

    [Fact]
    public async Task A_second_writer_of_the_same_backup_is_told_who_holds_the_lease()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;
        var store = new FileSystemBackupStore(h.Files, EngineHarness.StoreRoot, h.Clock);
        await using var held = await store.AcquireLeaseAsync($"backups/{backup.Id}", "host-7:4242", TimeSpan.FromHours(1));

        h.Clock.Advance(FiveMinutes);
        var error = await Assert.ThrowsAsync<BackupException>(() => h.Client.RunIfDueAsync(backup.Id));
        Assert.Equal(BackupErrorCode.LeaseHeld, error.Code);
        Assert.Contains("host-7:4242", error.Message, StringComparison.Ordinal);
        Assert.Empty((await h.Client.RunDueBackupsAsync()).ThrowIfAnyFailed()); // the scheduler skips a backup another host runs
    }

    [Fact]
    public async Task Two_clients_backing_up_different_instances_into_one_store_both_succeed()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.CreateInstanceAsync("kst-b");
        var other = await h.OpenAnotherClientAsync("host-b");
        for (var i = 0; i < 50; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"a-{i:D3}", EngineHarness.Owner);
            await h.Kms.GenerateKeyAsync("kst-b", $"b-{i:D3}", EngineHarness.Owner);
        }

        var a = h.Client.OnInstanceEnabledAsync("kst-a");
        var b = other.OnInstanceEnabledAsync("kst-b");
        var backups = await Task.WhenAll(a, b);
        for (var step = 0; step < 6; step++)
        {
            await h.Kms.RotateKeyAsync("kst-a", $"a-{step:D3}");
            await h.Kms.RotateKeyAsync("kst-b", $"b-{step:D3}");
            h.Clock.Advance(FiveMinutes);
            await Task.WhenAll(h.Client.RunIfDueAsync(backups[0]!.Id), other.RunIfDueAsync(backups[1]!.Id));
        }

        var verification = await h.Client.VerifyAsync();
        Assert.True(verification.IsClean, string.Join("; ", verification.Problems));
        Assert.Equal(14, verification.PointsChecked);
        other.Dispose();
    }

    [Fact]
    public async Task A_wrong_repository_key_is_refused_before_anything_is_read()
    {
        await using var h = await EngineHarness.CreateAsync();
        var files = new MockFileSystem();
        var otherKey = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, "/other.key");
        var error = await Assert.ThrowsAsync<BackupException>(() =>
            BackupClient.OpenAsync(new FileSystemBackupStore(h.Files, EngineHarness.StoreRoot, h.Clock), otherKey, h.Kms, hsmClusters: null, h.Options));
        Assert.Equal(BackupErrorCode.KeyProviderNotRegistered, error.Code);
        Assert.Contains(otherKey.KeyId, error.Message, StringComparison.Ordinal);
        Assert.Contains("key", error.Remedy, StringComparison.Ordinal);
    }
}
