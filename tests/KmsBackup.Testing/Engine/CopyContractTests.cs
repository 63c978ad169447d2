using System.IO.Abstractions.TestingHelpers;
using System.Text;

using KmsBackup.DevelopmentKms;
using KmsBackup.Storage;
using KmsBackup.Testing.Storage;

using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Testing.Engine;

/// <summary>
/// Copies of backups from a file-system repository into a repository on the store under test, under its own key (issue 17,
/// item 2): all and chosen backups, a second run that copies nothing, the copy opened alone and restored from into another
/// region, and the crash sweep (the copy killed before each write of the destination, then resumed). Every store runs it;
/// subclass it and implement <see cref="CreateDestination"/>.
/// </summary>
[Trait("Issue", "17")]
public abstract class CopyContractTests
{
    /// <summary>The owner account of the instances.</summary>
    protected const string Owner = "acct-owner";

    private const string SourceKeyFile = "/keys/source.key";
    private const string CopyKeyFile = "/keys/copy.key";
    private static readonly DateOnly s_may1 = new(2026, 5, 1);
    private static readonly DateOnly s_may2 = new(2026, 5, 2);

    private sealed class Killed(string message) : Exception(message);

    /// <summary>The clock of the engine and the stores.</summary>
    protected FakeTimeProvider Clock { get; } = new(new DateTimeOffset(2026, 5, 1, 9, 0, 0, TimeSpan.Zero));

    /// <summary>Holds the source store, the embedded instances and the key files.</summary>
    protected MockFileSystem Files { get; } = new();

    /// <summary>Every how many writes the crash sweep kills the copy (1: before every write).</summary>
    protected virtual int SweepStride => 1;

    /// <summary>A store of the destination named <paramref name="space"/>: the same space gives the same data; each new space starts empty.</summary>
    protected abstract BackupStore CreateDestination(TimeProvider clock, string space);

    private static BackupClientOptions Options(TimeProvider clock, string holder) => new() { TimeProvider = clock, LeaseHolder = holder, InstanceDiscoveryInterval = null };

    private async Task<BackupClient> OpenCopyAsync(EmbeddedKeyManagementService kms, string space, Func<BackupStore, BackupStore>? wrap = null, string holder = "copier")
    {
        var store = CreateDestination(Clock, space);
        var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(Files, CopyKeyFile);
        return await BackupClient.OpenAsync(wrap?.Invoke(store) ?? store, keys, kms, hsmClusters: null, Options(Clock, holder));
    }

    /// <summary>A file-system source with two backups: kst-a's (a day of points) and kst-b's (its first full).</summary>
    private async Task<(EmbeddedKeyManagementService Kms, BackupClient Source, string A, string B)> SourceAsync()
    {
        var kms = new EmbeddedKeyManagementService(Files, "/kms", Clock);
        var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(Files, SourceKeyFile);
        var source = await BackupClient.OpenAsync(new FileSystemBackupStore(Files, "/source", Clock), keys, kms, hsmClusters: null, Options(Clock, "host-a"));
        foreach (var id in new[] { "kst-a", "kst-b" })
        {
            await kms.CreateInstanceAsync(new EmbeddedInstanceSpec(id, InstanceKind.Software, "cn-hangzhou", Owner) { CreatedAt = Clock.GetUtcNow().AddDays(-1), KeyQuota = 1000 });
        }

        await kms.GenerateKeyAsync("kst-a", "orders", Owner);
        await kms.StoreSecretAsync("kst-a", "db-password", "orders", Encoding.UTF8.GetBytes("hunter2-the-value"), Owner);
        await kms.GenerateKeyAsync("kst-b", "billing", Owner);
        var a = (await source.OnInstanceEnabledAsync("kst-a"))!.Id;
        var b = (await source.OnInstanceEnabledAsync("kst-b"))!.Id;
        for (var hour = 0; hour < 16; hour++)
        {
            Clock.Advance(TimeSpan.FromHours(1));
            await kms.GenerateKeyAsync("kst-a", $"key-{hour}", Owner);
            if (hour % 4 == 0)
            {
                await kms.RotateKeyAsync("kst-a", "orders");
            }

            await source.RunIfDueAsync(a);
        }

        return (kms, source, a, b);
    }

    private static async Task<List<RecoveryPoint>> PointsAsync(BackupClient client, string backupId)
    {
        var points = new List<RecoveryPoint>();
        foreach (var day in new[] { s_may1, s_may2 })
        {
            try
            {
                points.AddRange(await client.ListRecoveryPointsAsync(Owner, backupId, day));
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.NotFound)
            {
            }
        }

        return points;
    }

    private static async Task AssertCleanAsync(BackupClient client)
    {
        var verify = await client.VerifyAsync();
        Assert.True(verify.IsClean, string.Join("; ", verify.Problems));
    }

    /// <summary>Copy all, then again (nothing), then the copy alone: same points, same items, and a restore into another region.</summary>
    [Fact]
    [Trait("Rule", "R1")]
    public async Task Copy_all_then_nothing_then_the_copy_alone_restores_the_sources_items_in_another_region()
    {
        var (kms, source, a, b) = await SourceAsync();
        using var _ = source;
        using (var copy = await OpenCopyAsync(kms, "all"))
        {
            var first = await source.CopyToAsync(copy);
            Assert.True(first.IsComplete, string.Join("; ", first.Problems));
            Assert.Equal(new[] { a, b }.Order(StringComparer.Ordinal), first.Backups.Select(r => r.BackupId).Order(StringComparer.Ordinal));
            Assert.Equal((await PointsAsync(source, a)).Count + (await PointsAsync(source, b)).Count, first.PointsCopied);

            var second = await source.CopyToAsync(copy);
            Assert.Equal((0, 0L), (second.PointsCopied, second.BytesWritten));
            Assert.All(second.Backups, r => Assert.False(r.StateCopied));
        }

        using var alone = await OpenCopyAsync(kms, "all", holder: "other-region");
        await AssertCleanAsync(alone);
        foreach (var id in new[] { a, b })
        {
            var ours = await PointsAsync(source, id);
            var theirs = await PointsAsync(alone, id);
            Assert.Equal(ours.Select(p => (p.Sequence, p.Kind, p.TakenAt, p.KeyCount, p.SecretCount)), theirs.Select(p => (p.Sequence, p.Kind, p.TakenAt, p.KeyCount, p.SecretCount)));
            using var sourceState = await source.GetStateAtAsync(Owner, id, Clock.GetUtcNow());
            using var copyState = await alone.GetStateAtAsync(Owner, id, Clock.GetUtcNow());
            Assert.True(sourceState.Snapshot.Keys.SequenceEqual(copyState.Snapshot.Keys));
            Assert.True(sourceState.Snapshot.Secrets.SequenceEqual(copyState.Snapshot.Secrets));
        }

        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-far", InstanceKind.Software, "cn-shanghai", Owner) { CreatedAt = Clock.GetUtcNow().AddDays(-1), KeyQuota = 1000 });
        var restored = await alone.RestoreAsync(new RestoreRequest
        {
            CallerAccount = Owner,
            BackupId = a,
            TargetInstanceId = "kst-far",
            BackupDate = s_may1,
            AllItems = true,
        });
        Assert.Contains(restored.Restored, i => i.Name == "db-password");
        Assert.Equal("hunter2-the-value", Encoding.UTF8.GetString((await kms.GetSecretValueAsync("kst-far", "db-password")).Span));
    }

    /// <summary>Chosen backups: only those land.</summary>
    [Fact]
    public async Task Copy_of_a_chosen_backup_copies_only_it()
    {
        var (kms, source, a, b) = await SourceAsync();
        using var _ = source;
        using var copy = await OpenCopyAsync(kms, "chosen");
        var report = await source.CopyToAsync(copy, new BackupCopyOptions { BackupIds = [b] });
        Assert.True(report.IsComplete);
        Assert.Equal(b, Assert.Single(report.Backups).BackupId);
        var listed = new List<string>();
        await foreach (var backup in copy.ListBackupsAsync(Owner))
        {
            listed.Add(backup.Id);
        }

        Assert.Equal([b], listed);
        Assert.DoesNotContain(a, listed);
        await AssertCleanAsync(copy);
    }

    /// <summary>
    /// The crash sweep: the copy dies before write k of the destination (and writes nothing more), for every k (or every
    /// <see cref="SweepStride"/>-th); both repositories verify clean; the resumed copy completes, copies only the points
    /// that had not landed, and writes exactly the objects the whole copy wrote less those that landed in indexed packs.
    /// </summary>
    [Fact]
    public async Task A_copy_killed_at_any_write_leaves_both_clean_and_resumes_without_rewriting_what_landed()
    {
        var (kms, source, a, b) = await SourceAsync();
        using var _ = source;
        var sourcePoints = (await PointsAsync(source, a)).Count + (await PointsAsync(source, b)).Count;

        // Every destination starts as a copy of one new repository (its config and key records), so that all hold the same
        // keys and cut the same objects: what a resumed copy writes is comparable with what the whole copy wrote.
        using (await OpenCopyAsync(kms, "template"))
        {
        }

        var template = CreateDestination(Clock, "template");
        var planted = new List<(string Key, byte[] Bytes)>();
        await foreach (var o in template.ListAsync(string.Empty))
        {
            planted.Add((o.Key, (await template.TryReadAsync(o.Key))!));
        }

        async Task PlantAsync(string space)
        {
            var store = CreateDestination(Clock, space);
            foreach (var (key, bytes) in planted)
            {
                await store.TryCreateAsync(key, bytes);
            }
        }

        await PlantAsync("count");
        var total = 0;
        ControlledStore? counter = null;
        BackupCopyReport whole;
        using (var copy = await OpenCopyAsync(kms, "count", s => counter = new ControlledStore(s)))
        {
            counter!.Before = call =>
            {
                total += call.IsWrite ? 1 : 0;
                return Task.CompletedTask;
            };
            whole = await source.CopyToAsync(copy);
        }

        Assert.True(whole.IsComplete);
        Assert.InRange(total, sourcePoints * 3, 5000);
        for (var k = 1; k <= total; k += SweepStride)
        {
            var space = $"sweep-{k}";
            await PlantAsync(space);
            ControlledStore? controlled = null;
            using (var dying = await OpenCopyAsync(kms, space, s => controlled = new ControlledStore(s)))
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
                    Assert.False((await source.CopyToAsync(dying)).IsComplete, $"write {k}");
                }
                catch (Killed)
                {
                }
            }

            using var after = await OpenCopyAsync(kms, space, holder: "resumer");
            var crashed = await after.VerifyAsync();
            Assert.True(crashed.IsClean, $"write {k}: {string.Join("; ", crashed.Problems)}");
            var landed = 0;
            await foreach (var backup in after.ListBackupsAsync(Owner))
            {
                landed += (await PointsAsync(after, backup.Id)).Count;
            }

            Clock.Advance(TimeSpan.FromMinutes(6)); // past the dead copier's leases
            var resumed = await source.CopyToAsync(after);
            Assert.True(resumed.IsComplete, $"write {k}: {string.Join("; ", resumed.Problems)}");
            Assert.Equal(sourcePoints - landed, resumed.PointsCopied);
            Assert.True(whole.ObjectsWritten - crashed.ObjectsChecked == resumed.ObjectsWritten, $"write {k}: {whole.ObjectsWritten} - {crashed.ObjectsChecked} landed != {resumed.ObjectsWritten}");
            await AssertCleanAsync(after);
        }

        await AssertCleanAsync(source);
    }
}
