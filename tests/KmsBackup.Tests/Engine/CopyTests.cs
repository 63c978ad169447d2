using KmsBackup.Storage;
using static KmsBackup.Tests.Restore.RestoreSetup;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// Copies of recovery points into a second repository with its own key (issue 17, item 2): what is copied, that a second
/// run copies nothing, that the copy opens alone and restores, a tampered source point, a crash at every write of the
/// destination, and prunes racing the copy on either side.
/// </summary>
[Trait("Issue", "17")]
public class CopyTests
{
    private const string CopyKeyFile = "/keys/copy.key";

    private sealed class Killed(string message) : Exception(message);

    /// <summary>A client of a second repository, in <paramref name="root"/> of the harness's file system, under its own key.</summary>
    private static async Task<BackupClient> OpenCopyAsync(EngineHarness h, string root, Func<BackupStore, BackupStore>? wrap = null, string holder = "copier")
    {
        BackupStore store = new FileSystemBackupStore(h.Files, root, h.Clock);
        store = wrap?.Invoke(store) ?? store;
        var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(h.Files, CopyKeyFile);
        return await BackupClient.OpenAsync(store, keys, h.Kms, null, new BackupClientOptions { TimeProvider = h.Clock, LeaseHolder = holder, InstanceDiscoveryInterval = null });
    }

    private static async Task<List<BackupDetails>> BackupsAsync(BackupClient client)
    {
        var list = new List<BackupDetails>();
        await foreach (var b in client.ListBackupsAsync(EngineHarness.Owner))
        {
            list.Add(b);
        }

        return list;
    }

    private static async Task<List<RecoveryPoint>> PointsAsync(BackupClient client, string backupId, params DateOnly[] days)
    {
        var points = new List<RecoveryPoint>();
        foreach (var day in days)
        {
            try
            {
                points.AddRange(await client.ListRecoveryPointsAsync(EngineHarness.Owner, backupId, day));
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.NotFound || e.Code == BackupErrorCode.DateOutsideWindow || e.Code == BackupErrorCode.DateNotReachable || e.Code == BackupErrorCode.DateBeforeEnabled)
            {
            }
        }

        return points;
    }

    private static readonly DateOnly Day1 = new(2026, 5, 1);

    private static async Task AssertCleanAsync(BackupClient client)
    {
        var verify = await client.VerifyAsync();
        Assert.True(verify.IsClean, string.Join("; ", verify.Problems));
    }

    [Fact]
    [Trait("Rule", "R1")]
    public async Task Copying_all_backups_copies_every_point_once_and_the_copy_opened_alone_with_its_own_key_restores_the_same_items()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        var sourcePoints = await PointsAsync(h.Client, backup.Id, Day1, Day2);
        Assert.True(sourcePoints.Count > 2);

        BackupCopyReport first;
        using (var copy = await OpenCopyAsync(h, "/copy"))
        {
            first = await h.Client.CopyToAsync(copy);
            Assert.True(first.IsComplete, string.Join("; ", first.Problems));
            var result = Assert.Single(first.Backups);
            Assert.Equal(backup.Id, result.BackupId);
            Assert.True(result.StateCopied);
            Assert.Equal(sourcePoints.Count, result.PointsCopied.Count);
            Assert.Equal(0, result.PointsPresent);
            Assert.True(first.BytesWritten > 0);

            // A second run finds everything there: it writes nothing.
            var second = await h.Client.CopyToAsync(copy);
            Assert.True(second.IsComplete);
            Assert.Equal(0, second.PointsCopied);
            Assert.Equal(sourcePoints.Count, second.PointsPresent);
            Assert.Equal(0, second.BytesWritten);
            Assert.False(Assert.Single(second.Backups).StateCopied);
        }

        // The copy is sealed under its own key: nothing of the source's key opens it, and it opens alone.
        Assert.NotEqual(h.Files.File.ReadAllBytes(EngineHarness.KeyFile), h.Files.File.ReadAllBytes(CopyKeyFile));
        using var alone = await OpenCopyAsync(h, "/copy", holder: "other-region");
        await AssertCleanAsync(alone);
        await AssertCleanAsync(h.Client);
        var copied = Assert.Single(await BackupsAsync(alone));
        Assert.Equal(backup.Id, copied.Id);
        Assert.Equal(backup.Kind, copied.Kind);
        Assert.Equal(backup.Instance, copied.Instance);
        Assert.Equal(BackupStatus.Enabled, copied.Status);
        var copiedPoints = await PointsAsync(alone, backup.Id, Day1, Day2);
        Assert.Equal(sourcePoints.Select(p => (p.Sequence, p.Kind, p.TakenAt)), copiedPoints.Select(p => (p.Sequence, p.Kind, p.TakenAt)));

        // Every point reads back as the same keys and secrets, material and ciphertexts included.
        foreach (var point in sourcePoints)
        {
            using var ours = await h.Client.GetStateAtAsync(EngineHarness.Owner, backup.Id, point.TakenAt.AddSeconds(1));
            using var theirs = await alone.GetStateAtAsync(EngineHarness.Owner, backup.Id, point.TakenAt.AddSeconds(1));
            Assert.True(ours.Snapshot.Keys.SequenceEqual(theirs.Snapshot.Keys), $"point {point.Sequence}: keys differ");
            Assert.True(ours.Snapshot.Secrets.SequenceEqual(theirs.Snapshot.Secrets), $"point {point.Sequence}: secrets differ");
        }

        // Restoring from the copy alone into an instance in another region gives the source's items (rule R1).
        var original = await ContentOfAsync(h, Source);
        await h.CreateInstanceAsync("kst-far", region: OtherRegion);
        var restored = await alone.RestoreAsync(Request(backup.Id, "kst-far"));
        Assert.Equal(4, restored.Restored.Count);
        var far = await ContentOfAsync(h, "kst-far");
        Assert.Equal(original.Keys.Select(k => (k.Name, k.Id)), far.Keys.Select(k => (k.Name, k.Id)));
        Assert.Equal(original.Secrets.Select(s => s.Name), far.Secrets.Select(s => s.Name));
    }

    [Fact]
    public async Task Copying_chosen_backups_copies_only_those_and_reports_an_unknown_id()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync("kst-other");
        await h.Kms.GenerateKeyAsync("kst-other", "other-key", EngineHarness.Owner);
        var other = (await h.Client.OnInstanceEnabledAsync("kst-other"))!;
        Assert.NotEqual(backup.Id, other.Id);

        using var copy = await OpenCopyAsync(h, "/copy");
        var report = await h.Client.CopyToAsync(copy, new BackupCopyOptions { BackupIds = [other.Id, "bk-missing"] });
        Assert.Equal(other.Id, Assert.Single(report.Backups).BackupId);
        var problem = Assert.Single(report.Problems);
        Assert.Equal(("bk-missing", BackupCopyProblemKind.NotFound), (problem.BackupId, problem.Kind));
        Assert.Equal(other.Id, Assert.Single(await BackupsAsync(copy)).Id);

        // Then all: the first backup is added, the second is found there.
        var all = await h.Client.CopyToAsync(copy);
        Assert.True(all.IsComplete);
        Assert.Equal(2, (await BackupsAsync(copy)).Count);
        Assert.Empty(all.Backups.Single(b => b.BackupId == other.Id).PointsCopied);
        await AssertCleanAsync(copy);
    }

    [Fact]
    public async Task A_destination_whose_backup_was_run_by_its_own_writer_is_reported_as_a_conflict_and_not_copied_over()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        using var copy = await OpenCopyAsync(h, "/copy");
        Assert.True((await h.Client.CopyToAsync(copy)).IsComplete);

        // Someone runs the backup against the copy: its next point is not the source's next point.
        h.Clock.Advance(TimeSpan.FromMinutes(5));
        Assert.NotNull(await copy.RunIfDueAsync(backup.Id));
        h.Clock.Advance(TimeSpan.FromMinutes(1));
        Assert.NotNull(await h.Client.RunIfDueAsync(backup.Id));

        var report = await h.Client.CopyToAsync(copy);
        var problem = Assert.Single(report.Problems);
        Assert.Equal((backup.Id, BackupCopyProblemKind.Conflict), (problem.BackupId, problem.Kind));
        Assert.Equal(BackupErrorCode.CopyConflict, problem.Error.Code);
        Assert.Empty(report.Backups);
        await AssertCleanAsync(copy);
    }

    [Fact]
    public async Task An_incremental_whose_previous_point_the_copy_holds_is_copied_at_the_cost_of_its_changes()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-big", keyQuota: 5000);
        for (var i = 0; i < 3000; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-big", $"key-{i:D5}", EngineHarness.Owner);
        }

        var backup = (await h.Client.OnInstanceEnabledAsync("kst-big"))!;
        using var copy = await OpenCopyAsync(h, "/copy");
        var first = await h.Client.CopyToAsync(copy);
        Assert.True(first.ObjectsWritten > 20, first.ToString());

        h.Clock.Advance(TimeSpan.FromMinutes(5));
        await h.Kms.GenerateKeyAsync("kst-big", "key-01500-new", EngineHarness.Owner);
        await h.Kms.DeleteKeyAsync("kst-big", "key-00007");
        Assert.NotNull(await h.Client.RunIfDueAsync(backup.Id));

        // The changed leaves and their paths only; and the copied point reads as the source's.
        var second = await h.Client.CopyToAsync(copy);
        Assert.Equal(1, second.PointsCopied);
        Assert.InRange(second.ObjectsWritten, 1, 8);
        var point = (await PointsAsync(h.Client, backup.Id, Day1))[^1];
        using var ours = await h.Client.GetStateAtAsync(EngineHarness.Owner, backup.Id, point.TakenAt.AddSeconds(1));
        using var theirs = await copy.GetStateAtAsync(EngineHarness.Owner, backup.Id, point.TakenAt.AddSeconds(1));
        Assert.True(ours.Snapshot.Keys.SequenceEqual(theirs.Snapshot.Keys));
        Assert.Contains(theirs.Snapshot.Keys, k => k.Name == "key-01500-new");
        Assert.DoesNotContain(theirs.Snapshot.Keys, k => k.Name == "key-00007");
        Assert.Equal(point.ChangeCount, (await PointsAsync(copy, backup.Id, Day1))[^1].ChangeCount);
        await AssertCleanAsync(copy);
    }

    [Fact]
    public async Task A_copy_into_its_own_repository_is_refused()
    {
        await using var h = await EngineHarness.CreateAsync();
        using var same = await h.OpenAnotherClientAsync("same");
        var refused = await Assert.ThrowsAsync<BackupException>(() => h.Client.CopyToAsync(same));
        Assert.Equal(BackupErrorCode.CopySameRepository, refused.Code);
    }

    [Fact]
    public async Task A_tampered_source_point_is_reported_with_its_backup_and_point_and_not_copied_and_the_others_are()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        var points = await PointsAsync(h.Client, backup.Id, Day1, Day2);
        var victim = points[points.Count / 2];

        // The attacker flips a byte of one point's manifest in the source store.
        var path = $"{EngineHarness.StoreRoot}/objects/points/{backup.Id}/{victim.Date:yyyy-MM-dd}/{victim.Sequence:D12}";
        var bytes = h.Files.File.ReadAllBytes(path);
        bytes[^5] ^= 0x40;
        h.Files.File.WriteAllBytes(path, bytes);

        using var copy = await OpenCopyAsync(h, "/copy");
        var report = await h.Client.CopyToAsync(copy);
        Assert.False(report.IsComplete);
        var problem = Assert.Single(report.Problems);
        Assert.Equal(BackupCopyProblemKind.SourceDamaged, problem.Kind);
        Assert.Equal(backup.Id, problem.BackupId);
        Assert.Equal(new RecoveryPointName(victim.Date, victim.Sequence), problem.Point);
        Assert.IsType<BackupIntegrityException>(problem.Error);
        Assert.Contains(backup.Id, problem.Error.Message, StringComparison.Ordinal);
        Assert.Equal(points.Count - 1, report.PointsCopied);

        var copied = await PointsAsync(copy, backup.Id, Day1, Day2);
        Assert.DoesNotContain(copied, p => p.Sequence == victim.Sequence);
        await AssertCleanAsync(copy);

        // It stays reported, and nothing else is copied again.
        var again = await h.Client.CopyToAsync(copy);
        Assert.Equal(BackupCopyProblemKind.SourceDamaged, Assert.Single(again.Problems).Kind);
        Assert.Equal(0, again.PointsCopied);
    }

    [Fact]
    public async Task A_copy_killed_at_any_write_of_the_destination_leaves_both_repositories_clean_and_resumes_without_rewriting_what_landed()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        var sourcePoints = await PointsAsync(h.Client, backup.Id, Day1, Day2);
        var sourceFiles = UploadChecks.ObjectKeys(h);

        // A whole copy, counting its writes.
        ControlledStore? counter = null;
        BackupCopyReport full;
        var total = 0;
        // Every destination starts as a copy of one new repository, so that all hold the same keys and cut the same
        // objects: what the resumed copy writes is then comparable with what the whole copy wrote.
        using (await OpenCopyAsync(h, "/copy-template"))
        {
        }

        var template = h.Files.AllFiles.Where(f => f.StartsWith("/copy-template/", StringComparison.Ordinal)).ToList();
        void Plant(string root)
        {
            foreach (var file in template)
            {
                var target = root + file["/copy-template".Length..];
                h.Files.Directory.CreateDirectory(h.Files.Path.GetDirectoryName(target)!);
                h.Files.File.WriteAllBytes(target, h.Files.File.ReadAllBytes(file));
            }
        }

        Plant("/copy-count");
        using (var copy = await OpenCopyAsync(h, "/copy-count", s => counter = new ControlledStore(s)))
        {
            counter!.Before = call =>
            {
                total += call.IsWrite ? 1 : 0;
                return Task.CompletedTask;
            };
            full = await h.Client.CopyToAsync(copy);
        }

        Assert.True(full.IsComplete);
        Assert.InRange(total, sourcePoints.Count * 3, 2000);

        for (var k = 1; k <= total; k++)
        {
            var root = $"/copy-{k}";
            Plant(root); // the repository exists before the copy starts: the sweep is over the copy's writes

            ControlledStore? controlled = null;
            using (var dying = await OpenCopyAsync(h, root, s => controlled = new ControlledStore(s)))
            {
                var writes = 0;
                var dead = false;
                controlled!.Before = call =>
                {
                    if (dead || (call.IsWrite && ++writes == k))
                    {
                        dead = true;
                        throw new Killed($"killed before write {k}: {call}");
                    }

                    return Task.CompletedTask;
                };
                try
                {
                    var partial = await h.Client.CopyToAsync(dying);
                    Assert.False(partial.IsComplete, $"write {k}");
                }
                catch (Killed)
                {
                }
            }

            // The source is only read; the destination verifies clean and shows only whole points.
            Assert.Equal(sourceFiles, UploadChecks.ObjectKeys(h));
            using var after = await OpenCopyAsync(h, root, holder: "resumer");
            var crashed = await after.VerifyAsync();
            Assert.True(crashed.IsClean, $"write {k}: {string.Join("; ", crashed.Problems)}");
            var landed = (await BackupsAsync(after)).Count == 0 ? [] : await PointsAsync(after, backup.Id, Day1, Day2);
            Assert.All(landed, p => Assert.Contains(sourcePoints, s => s.Sequence == p.Sequence && s.TakenAt == p.TakenAt));

            // The resumed copy completes, copies only the points that had not landed, and writes only objects the
            // destination did not hold in indexed packs.
            h.Clock.Advance(TimeSpan.FromMinutes(6)); // past the dead copier's lease
            var resumed = await h.Client.CopyToAsync(after);
            Assert.True(resumed.IsComplete, $"write {k}: {string.Join("; ", resumed.Problems)}");
            Assert.Equal(sourcePoints.Count - landed.Count, resumed.PointsCopied);
            Assert.Equal(landed.Count, resumed.PointsPresent);
            Assert.True(resumed.ObjectsWritten <= full.ObjectsWritten, $"write {k}: {resumed.ObjectsWritten} > {full.ObjectsWritten}");
            Assert.True(full.ObjectsWritten - crashed.ObjectsChecked == resumed.ObjectsWritten, $"write {k}: {full.ObjectsWritten} - {crashed.ObjectsChecked} landed != {resumed.ObjectsWritten}");
            await AssertCleanAsync(after);
            Assert.Equal(sourcePoints.Count, (await PointsAsync(after, backup.Id, Day1, Day2)).Count);
        }
    }

    [Fact]
    public async Task A_prune_on_either_side_racing_the_copy_leaves_both_clean_and_a_point_pruned_at_the_source_is_reported_not_half_copied()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-default");
        await h.Kms.GenerateKeyAsync("kst-default", "k1", EngineHarness.Owner);
        var created = await h.Client.CreateDefaultBackupAsync(EngineHarness.Owner);
        await h.Client.EnableBackupAsync(EngineHarness.Owner, created.Id, "kst-default", InstanceKind.Software, "daily");
        var start = h.Clock.GetUtcNow();
        await h.RunUntilAsync(start.AddDays(9), TimeSpan.FromHours(6), async _ => await h.Kms.GenerateKeyAsync("kst-default", $"k-{h.Clock.GetUtcNow().UtcTicks}", EngineHarness.Owner));
        var days = Enumerable.Range(0, 10).Select(d => DateOnly.FromDateTime(start.UtcDateTime).AddDays(d)).ToArray();

        ControlledStore? source = null;
        using var reader = await h.OpenAnotherClientAsync("reader", wrapStore: s => source = new ControlledStore(s));
        using var copy = await OpenCopyAsync(h, "/copy");
        var raced = false;
        PruneSummary? sourcePrune = null;
        source!.Before = async call =>
        {
            // At the first point the copy reads, a prune of the source (past retention) and one of the destination run.
            if (!raced && call.Kind == StoreCallKind.Read && call.Key.StartsWith("points/", StringComparison.Ordinal))
            {
                raced = true;
                sourcePrune = await h.Client.PruneAsync();
                await copy.PruneAsync();
            }
        };

        var report = await reader.CopyToAsync(copy);
        Assert.True(raced);
        Assert.True(sourcePrune!.RecoveryPointsDeleted > 0);
        Assert.All(report.Problems, p => Assert.Equal(BackupCopyProblemKind.DeletedAtSource, p.Kind));
        Assert.NotEmpty(report.Problems);
        Assert.Equal(sourcePrune.RecoveryPointsDeleted, report.Problems.Count);

        await AssertCleanAsync(h.Client);
        await AssertCleanAsync(copy);
        var remaining = await PointsAsync(h.Client, created.Id, days);
        var copied = await PointsAsync(copy, created.Id, days);
        Assert.Equal(remaining.Select(p => (p.Sequence, p.TakenAt)), copied.Select(p => (p.Sequence, p.TakenAt)));

        // A prune of the destination afterwards keeps every copied point, and a second copy has nothing to do.
        await copy.PruneAsync();
        Assert.Equal(copied.Count, (await PointsAsync(copy, created.Id, days)).Count);
        var again = await reader.CopyToAsync(copy);
        Assert.True(again.IsComplete);
        Assert.Equal(0, again.PointsCopied);
    }
}
