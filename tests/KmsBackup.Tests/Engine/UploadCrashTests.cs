using System.Security.Cryptography;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// An upload that dies or is cancelled at any write, or that races a prune, leaves no backup and nothing that
/// makes listing, views, prune or verify fail; what it leaves is garbage that prunes remove
/// (docs/repository-format.md, "Writers and maintenance").
/// </summary>
public class UploadCrashTests
{
    private sealed class Killed : Exception
    {
        public Killed(string message)
            : base(message)
        {
        }

        public Killed()
        {
        }

        public Killed(string message, Exception inner)
            : base(message, inner)
        {
        }
    }

    private static async Task<(EngineHarness H, byte[] File, byte[] Key)> ArrangeAsync()
    {
        var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.Kms.GenerateKeyAsync("kst-a", "orders", EngineHarness.Owner);
        await h.Client.OnInstanceEnabledAsync("kst-a");
        var key = RandomNumberGenerator.GetBytes(32);
        return (h, await CraftedFile.EncryptAsync(UploadAttackTests.ValidDay().Encode(), key), key);
    }

    /// <summary>The objects of a store that hold data: the store's time and prune markers are bookkeeping of the prunes run to compare.</summary>
    private static List<string> DataObjects(EngineHarness h) =>
        UploadChecks.ObjectKeys(h).Where(k => !k.Contains("/objects/clock/", StringComparison.Ordinal) && !k.Contains("/objects/prune/", StringComparison.Ordinal)).ToList();

    private static async Task<List<BackupDetails>> UploadedAsync(EngineHarness h)
    {
        var uploaded = new List<BackupDetails>();
        await foreach (var b in h.Client.ListBackupsAsync(EngineHarness.Owner))
        {
            if (b.Kind == BackupKind.Uploaded)
            {
                uploaded.Add(b);
            }
        }

        return uploaded;
    }

    /// <summary>How many writes a whole upload makes.</summary>
    private static async Task<int> CountWritesAsync()
    {
        var (h, file, key) = await ArrangeAsync();
        await using var _ = h;
        ControlledStore? controlled = null;
        using var client = await h.OpenAnotherClientAsync("counter", wrapStore: s => controlled = new ControlledStore(s));
        var writes = 0;
        controlled!.Before = call =>
        {
            writes += call.IsWrite ? 1 : 0;
            return Task.CompletedTask;
        };
        await client.UploadAsync(EngineHarness.Owner, new MemoryStream(file), key, "counted");
        return writes;
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task A_process_that_dies_at_any_write_of_an_upload_leaves_no_backup_and_only_garbage_that_prunes_remove()
    {
        var total = await CountWritesAsync();
        Assert.InRange(total, 5, 40);
        for (var k = 1; k <= total; k++)
        {
            var (h, file, key) = await ArrangeAsync();
            await using var _ = h;
            var before = DataObjects(h);
            ControlledStore? controlled = null;
            using (var dying = await h.OpenAnotherClientAsync("dying", wrapStore: s => controlled = new ControlledStore(s)))
            {
                var writes = 0;
                var dead = false;
                controlled!.Before = call =>
                {
                    // A dead process writes nothing more, not even the clean-up of its catch blocks.
                    if (dead || (call.IsWrite && ++writes == k))
                    {
                        dead = true;
                        throw new Killed($"killed before write {k}: {call}");
                    }

                    return Task.CompletedTask;
                };
                await Assert.ThrowsAsync<Killed>(() => dying.UploadAsync(EngineHarness.Owner, new MemoryStream(file), key, "dying upload"));
            }

            Assert.Empty(await UploadedAsync(h));
            var left = DataObjects(h).Except(before).ToList();
            Assert.All(left, o => Assert.Matches("/objects/(packs|index|points|pins)/", o));
            await UploadChecks.AssertStoreWorksAsync(h);
            var verify = await h.Client.VerifyAsync();
            Assert.Equal(left.Count(o => o.Contains("/objects/points/", StringComparison.Ordinal)), verify.AbandonedPoints);

            // The dead writer's pins hold its packs until they lapse (a day). Then one prune marks what the dead
            // upload left, the next (a grace period later) deletes its points and marks the packs only they used, the
            // one after deletes those.
            if (left.Any(o => o.Contains("/objects/pins/", StringComparison.Ordinal)))
            {
                h.Clock.Advance(TimeSpan.FromHours(24) + TimeSpan.FromMinutes(1));
            }

            for (var prune = 0; prune < 3; prune++)
            {
                h.Clock.Advance(h.Options.PruneGracePeriod + TimeSpan.FromMinutes(1));
                await h.Client.PruneAsync();
            }

            Assert.Equal(before, DataObjects(h));
            await UploadChecks.AssertStoreWorksAsync(h);
        }
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task An_upload_cancelled_or_failing_at_any_write_removes_its_points_unless_its_catalog_entry_may_have_landed()
    {
        var total = await CountWritesAsync();
        for (var k = 1; k <= total; k++)
        {
            var (h, file, key) = await ArrangeAsync();
            await using var _ = h;
            var before = DataObjects(h);
            string? failed = null;
            ControlledStore? controlled = null;
            using (var client = await h.OpenAnotherClientAsync("failing", wrapStore: s => controlled = new ControlledStore(s)))
            {
                using var cancel = new CancellationTokenSource();
                var writes = 0;
                controlled!.Before = call =>
                {
                    if (call.IsWrite && ++writes == k)
                    {
                        failed = call.Key;
                        if (k % 2 == 0)
                        {
                            cancel.Cancel();
                            cancel.Token.ThrowIfCancellationRequested();
                        }

                        throw new BackupException(new Refusal(BackupErrorCode.StoreUnavailable, call.Key, "The store failed once.", "Retry."));
                    }

                    return Task.CompletedTask;
                };
                Exception? thrown = null;
                try
                {
                    await client.UploadAsync(EngineHarness.Owner, new MemoryStream(file), key, "failing upload", cancel.Token);
                }
                catch (Exception e)
                {
                    thrown = e;
                }

                // Deleting a pin after its point is committed is clean-up: when only that failed (and the upload was
                // not cancelled), the upload is complete and the pin is left to lapse.
                var pinCleanUp = failed!.StartsWith("pins/", StringComparison.Ordinal) && k % 2 == 1 && writes > k;
                if (pinCleanUp && thrown is null)
                {
                    Assert.Single(await UploadedAsync(h));
                    Assert.Equal([$"{EngineHarness.StoreRoot}/objects/{failed}"], DataObjects(h).Except(before).Where(o => o.Contains("/objects/pins/", StringComparison.Ordinal)));
                    await UploadChecks.AssertStoreWorksAsync(h);
                    continue;
                }

                Assert.NotNull(thrown);
            }

            Assert.Empty(await UploadedAsync(h));

            // The upload deletes its points again unless the write that failed was its catalog entry's: a failed
            // write may still land (a request that timed out), and a catalog entry without its points would be a
            // backup with no data. Its points are then left for prunes to mark and delete, as after a crash.
            var catalogFailed = failed!.StartsWith("catalog/", StringComparison.Ordinal);
            // A pin whose deletion failed is left too: it lapses after a day, and a prune deletes it.
            Assert.All(DataObjects(h).Except(before), o => Assert.Matches(catalogFailed ? "/objects/(packs|index|points|pins)/" : "/objects/(packs|index|pins)/", o));
            Assert.Equal(catalogFailed ? 2 : 0, (await h.Client.VerifyAsync()).AbandonedPoints);
            await UploadChecks.AssertStoreWorksAsync(h);
        }
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task An_upload_whose_points_a_prune_marked_before_its_catalog_entry_writes_them_again_under_a_new_ID()
    {
        var (h, file, key) = await ArrangeAsync();
        await using var _ = h;
        ControlledStore? controlled = null;
        using var uploader = await h.OpenAnotherClientAsync("uploader", wrapStore: s => controlled = new ControlledStore(s));
        var paused = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var resume = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        string? secondPoint = null;
        controlled!.Before = async call =>
        {
            if (call.Kind == StoreCallKind.Create && call.Key.StartsWith("points/", StringComparison.Ordinal) && call.Key.EndsWith("/000000000002", StringComparison.Ordinal))
            {
                secondPoint ??= call.Key;
            }
            else if (secondPoint is not null && call.Kind == StoreCallKind.List && call.Key == "prune/" && !paused.Task.IsCompleted)
            {
                paused.SetResult(secondPoint);
                await resume.Task;
            }
        };

        var upload = uploader.UploadAsync(EngineHarness.Owner, new MemoryStream(file), key, "raced upload");
        var firstAttempt = await paused.Task;
        var prune = await h.Client.PruneAsync(); // sees two points without a catalog entry: marks them
        Assert.Equal(0, prune.RecoveryPointsDeleted);
        resume.SetResult();
        var uploaded = await upload;

        Assert.DoesNotContain(uploaded.Id, firstAttempt, StringComparison.Ordinal);
        Assert.DoesNotContain(UploadChecks.ObjectKeys(h), o => o.EndsWith(firstAttempt, StringComparison.Ordinal));
        Assert.Equal([uploaded.Id], (await UploadedAsync(h)).Select(b => b.Id));

        // The marker names only the abandoned attempt: a prune past the grace period leaves the upload whole.
        h.Clock.Advance(h.Options.PruneGracePeriod + TimeSpan.FromMinutes(1));
        await h.Client.PruneAsync();
        await UploadPropertyTests.AssertViewsEqualAsync(h, uploaded, UploadAttackTests.ValidDay());
        await UploadChecks.AssertStoreWorksAsync(h);
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task Points_a_prune_marked_just_before_the_upload_wrote_its_catalog_entry_are_never_deleted()
    {
        var (h, file, key) = await ArrangeAsync();
        await using var _ = h;
        ControlledStore? controlled = null;
        using var uploader = await h.OpenAnotherClientAsync("uploader", wrapStore: s => controlled = new ControlledStore(s));
        var paused = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var resume = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        controlled!.Before = async call =>
        {
            if (call.Kind == StoreCallKind.Create && call.Key.StartsWith("catalog/bku-", StringComparison.Ordinal) && !paused.Task.IsCompleted)
            {
                paused.SetResult();
                await resume.Task;
            }
        };

        var upload = uploader.UploadAsync(EngineHarness.Owner, new MemoryStream(file), key, "late catalog");
        await paused.Task;
        await h.Client.PruneAsync(); // the upload checked the markers already: this prune marks its points
        resume.SetResult();
        var uploaded = await upload;

        h.Clock.Advance(h.Options.PruneGracePeriod + TimeSpan.FromMinutes(1));
        var summary = await h.Client.PruneAsync(); // the marker is due, but the backup has its catalog entry now
        Assert.Equal(0, summary.RecoveryPointsDeleted);
        await UploadPropertyTests.AssertViewsEqualAsync(h, uploaded, UploadAttackTests.ValidDay());
        Assert.Equal(0, (await h.Client.VerifyAsync()).AbandonedPoints);
        await UploadChecks.AssertStoreWorksAsync(h);
    }
}
