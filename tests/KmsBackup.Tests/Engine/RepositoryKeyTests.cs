using System.Buffers.Binary;
using System.Text;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// Keys derived per pack and per object, repository key rotation and rekey (issue 13, finding 7;
/// docs/repository-format.md, "Keys").
/// </summary>
public class RepositoryKeyTests
{
    private const string Owner = EngineHarness.Owner;
    private const string Objects = $"{EngineHarness.StoreRoot}/objects";
    private static readonly DateOnly DayTwo = new(2026, 5, 2);

    [Fact]
    [Trait("Rule", "D4")]
    public async Task No_key_seals_more_than_one_pack_or_one_object_each_has_its_own_salt()
    {
        await using var h = await EngineHarness.CreateAsync();
        await BackUpTwoDaysAsync(h, keysPerDay: 300);

        var packs = PackHeaders(h);
        Assert.True(packs.Count >= 2, $"expected several packs, found {packs.Count}");
        Assert.All(packs, p => Assert.Equal(1u, p.Generation));
        Assert.Equal(packs.Count, packs.Select(p => Convert.ToHexString(p.Salt)).Distinct().Count());

        var standalone = StandaloneObjects(h).ToList();
        Assert.True(standalone.Count >= 6, $"expected points, catalog entries and indexes, found {standalone.Count}");
        Assert.All(standalone, o => Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(o.Bytes)));
        Assert.Equal(standalone.Count, standalone.Select(o => Convert.ToHexString(o.Bytes.AsSpan(4, 16))).Distinct().Count());
    }

    [Fact]
    [Trait("Rule", "D4")]
    public async Task After_a_rotation_new_data_is_sealed_under_the_new_generation_and_old_data_stays_readable_on_every_host()
    {
        await using var h = await EngineHarness.CreateAsync();
        var backup = await BackUpTwoDaysAsync(h, keysPerDay: 50);
        using var otherHost = await h.OpenAnotherClientAsync("other-host"); // opened before the rotation
        var before = await AllViewsAsync(h.Client, backup);

        var rotation = await h.Client.RotateRepositoryKeyAsync();
        Assert.Equal(2, rotation.KeyGeneration);
        Assert.Matches("^[0-9a-f]{8}$", rotation.GenerationId);
        await h.Kms.GenerateKeyAsync("kst-a", "after-rotation", Owner);
        await h.RunUntilAsync(h.Clock.GetUtcNow().AddMinutes(10), TimeSpan.FromMinutes(5));

        Assert.Contains(PackHeaders(h), p => p.Generation == IdOf(rotation));
        Assert.Contains(PackHeaders(h), p => p.Generation == 1);
        var verification = await h.Client.VerifyAsync();
        Assert.True(verification.IsClean, string.Join("; ", verification.Problems.Select(p => p.Description)));
        Assert.Equal(2, verification.CurrentKeyGeneration);
        Assert.Equal([1L, 2L], verification.PacksByKeyGeneration.Keys.Order());

        // The host opened before the rotation learns the new generation from the first object sealed under it.
        var after = await AllViewsAsync(otherHost, backup);
        Assert.Equal(DayOne(before), DayOne(after));
        Assert.Contains(after, v => v.StartsWith("2026-05-02 IncrementallyBackedUpKeys", StringComparison.Ordinal) && v.Contains("after-rotation", StringComparison.Ordinal));
    }

    [Fact]
    [Trait("Rule", "D4")]
    public async Task Rekey_and_the_prunes_after_it_leave_no_pack_under_an_older_generation_and_every_view_unchanged()
    {
        await using var h = await EngineHarness.CreateAsync(o => o.PruneGracePeriod = TimeSpan.FromHours(1));
        var backup = await BackUpTwoDaysAsync(h, keysPerDay: 200);
        var before = await AllViewsAsync(h.Client, backup);
        var oldPacks = PackHeaders(h).Select(p => p.Path).ToHashSet();

        var rotation = await h.Client.RotateRepositoryKeyAsync();
        var first = await h.Client.RekeyAsync(maximumPacks: 1);
        Assert.Equal(1, first.PacksRewritten);
        Assert.False(first.IsComplete);
        var rest = await h.Client.RekeyAsync();
        Assert.True(rest.IsComplete);
        Assert.Equal(oldPacks.Count, first.PacksRewritten + rest.PacksRewritten);
        Assert.Equal(before, await AllViewsAsync(h.Client, backup));

        // Marked now; deleted by a prune at least the grace period later.
        await h.Client.PruneAsync();
        Assert.All(oldPacks, p => Assert.True(h.Files.File.Exists(p), $"{p} was deleted before the grace period"));
        h.Clock.Advance(TimeSpan.FromHours(2));
        var prune = await h.Client.PruneAsync();
        Assert.Equal(oldPacks.Count, prune.PacksDeleted);
        Assert.All(oldPacks, p => Assert.False(h.Files.File.Exists(p), $"{p} is still there"));
        Assert.All(PackHeaders(h), p => Assert.Equal(IdOf(rotation), p.Generation));

        using var fresh = await h.OpenAnotherClientAsync("reader");
        var verification = await fresh.VerifyAsync();
        Assert.True(verification.IsClean, string.Join("; ", verification.Problems.Select(p => p.Description)));
        Assert.Equal([2L], verification.PacksByKeyGeneration.Keys);
        Assert.Equal(before, await AllViewsAsync(fresh, backup));
        Assert.Equal(0, (await fresh.RekeyAsync()).PacksRewritten);
    }

    [Fact]
    [Trait("Rule", "D4")]
    public async Task A_rekey_killed_at_any_write_loses_nothing_and_the_next_rekey_finishes()
    {
        var killedAt = new List<int>();
        for (var killAtWrite = 1; ; killAtWrite++)
        {
            Assert.True(killAtWrite < 50, "a rekey never completed");
            await using var h = await EngineHarness.CreateAsync(o => o.PruneGracePeriod = TimeSpan.FromHours(1));
            var backup = await BackUpTwoDaysAsync(h, keysPerDay: 200);
            var before = await AllViewsAsync(h.Client, backup);
            await h.Client.RotateRepositoryKeyAsync();

            var writes = 0;
            var killed = false;
            ControlledStore? controlled = null;
            using (var dying = await h.OpenAnotherClientAsync("dying", wrapStore: s => controlled = new ControlledStore(s)))
            {
                controlled!.Before = call =>
                {
                    if (call.Kind == StoreCallKind.Create && ++writes == killAtWrite)
                    {
                        killed = true;
                        throw new IOException("the process died here");
                    }

                    return Task.CompletedTask;
                };
                try
                {
                    await dying.RekeyAsync();
                }
                catch (Exception) when (killed)
                {
                }
            }

            // Nothing lost, whatever prunes run after the death; the next rekey finishes the work.
            Assert.Equal(before, await AllViewsAsync(h.Client, backup));
            await h.Client.PruneAsync();
            h.Clock.Advance(TimeSpan.FromHours(2));
            await h.Client.PruneAsync();
            Assert.Equal(before, await AllViewsAsync(h.Client, backup));

            Assert.True((await h.Client.RekeyAsync()).IsComplete);
            await h.Client.PruneAsync();
            h.Clock.Advance(TimeSpan.FromHours(2));
            await h.Client.PruneAsync();
            using var fresh = await h.OpenAnotherClientAsync("reader");
            var verification = await fresh.VerifyAsync();
            Assert.True(verification.IsClean, $"killed at write {killAtWrite}: " + string.Join("; ", verification.Problems.Select(p => p.Description)));
            Assert.Equal([2L], verification.PacksByKeyGeneration.Keys);
            Assert.Equal(before, await AllViewsAsync(fresh, backup));
            if (!killed)
            {
                break; // the rekey had fewer writes than this: every write has been a point of death
            }

            killedAt.Add(killAtWrite);
        }

        Assert.True(killedAt.Count >= 3, $"the rekey made only {killedAt.Count} writes");
    }

    [Fact]
    [Trait("Rule", "D4")]
    public async Task A_writer_racing_a_rekey_and_prune_keeps_every_point_whole()
    {
        await using var h = await EngineHarness.CreateAsync(o => o.PruneGracePeriod = TimeSpan.FromHours(1));
        var backup = await BackUpTwoDaysAsync(h, keysPerDay: 100);

        // A second host, opened before the rotation, keeps backing up (under generation 1 until it meets an object
        // of generation 2) while rekeys and prunes run.
        using var writer = await h.OpenAnotherClientAsync("writer");
        await h.Client.RotateRepositoryKeyAsync();
        for (var round = 0; round < 4; round++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"round-{round}", Owner);
            h.Clock.Advance(TimeSpan.FromMinutes(40));
            var runs = (await writer.RunDueBackupsAsync()).ThrowIfAnyFailed();
            Assert.True(runs.Count > 0, $"round {round}: no run");
            await h.Client.RekeyAsync();
            await h.Client.PruneAsync();
        }

        h.Clock.Advance(TimeSpan.FromHours(2));
        await h.Client.PruneAsync();
        await h.Client.RekeyAsync();
        h.Clock.Advance(TimeSpan.FromHours(2));
        await h.Client.PruneAsync();
        h.Clock.Advance(TimeSpan.FromHours(2));
        await h.Client.PruneAsync();

        using var fresh = await h.OpenAnotherClientAsync("reader");
        var verification = await fresh.VerifyAsync();
        Assert.True(verification.IsClean, string.Join("; ", verification.Problems.Select(p => p.Description)));
        Assert.Equal([2L], verification.PacksByKeyGeneration.Keys);
        var today = DateOnly.FromDateTime(h.Clock.GetUtcNow().UtcDateTime);
        var names = (await fresh.GetDataPageAsync(Owner, backup.Id, today, BackupDataType.IncrementallyBackedUpKeys, new BackupDataQuery { PageSize = 1000 })).Items.Select(i => i.Name).ToList();
        Assert.All(Enumerable.Range(0, 4), r => Assert.Contains($"round-{r}", names));
    }

    [Fact]
    [Trait("Rule", "D4")]
    public async Task A_planted_or_damaged_key_record_changes_nothing_and_verify_names_it()
    {
        await using var h = await EngineHarness.CreateAsync();
        var backup = await BackUpTwoDaysAsync(h, keysPerDay: 20);
        var before = await AllViewsAsync(h.Client, backup);
        h.Files.Directory.CreateDirectory($"{Objects}/keys");
        h.Files.File.WriteAllBytes($"{Objects}/keys/00000000000000000002-deadbeef", Encoding.UTF8.GetBytes("KBKEYG01 planted by someone without the repository's keys"));
        h.Files.File.WriteAllBytes($"{Objects}/keys/4294967295", [1, 2, 3]);
        h.Files.File.WriteAllBytes($"{Objects}/keys/18446744073709551615-0000000a", [1, 2, 3]);

        using var fresh = await h.OpenAnotherClientAsync("reader");
        Assert.Equal(before, await AllViewsAsync(fresh, backup));
        var verification = await fresh.VerifyAsync();
        Assert.Equal(3, verification.Problems.Count);
        Assert.Contains(verification.Problems, p => p.Item.Contains("keys/00000000000000000002-deadbeef", StringComparison.Ordinal));
        Assert.Contains(verification.Problems, p => p.Item.Contains("keys/4294967295", StringComparison.Ordinal));
        Assert.Equal(1, verification.CurrentKeyGeneration);

        // Names that do not authenticate take no part: a rotation is the second generation, under an ID of its own.
        var rotation = await fresh.RotateRepositoryKeyAsync();
        Assert.Equal(2, rotation.KeyGeneration);
        Assert.NotEqual("deadbeef", rotation.GenerationId);
        Assert.Equal(3, (await fresh.RotateRepositoryKeyAsync()).KeyGeneration);
        await h.Kms.GenerateKeyAsync("kst-a", "after-rotation", Owner);
        h.Clock.Advance(TimeSpan.FromMinutes(10));
        (await fresh.RunDueBackupsAsync()).ThrowIfAnyFailed();
        Assert.Equal(DayOne(before), DayOne(await AllViewsAsync(h.Client, backup)));
        Assert.Contains("after-rotation", (await AllViewsAsync(h.Client, backup)).Single(v => v.StartsWith("2026-05-02 IncrementallyBackedUpKeys", StringComparison.Ordinal)), StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "D4")]
    public async Task Two_hosts_rotating_at_once_make_two_generations_that_every_host_reads_and_converge_on_one()
    {
        await using var h = await EngineHarness.CreateAsync();
        var backup = await BackUpTwoDaysAsync(h, keysPerDay: 5);
        using var other = await h.OpenAnotherClientAsync("other-host");
        var rotations = await Task.WhenAll(h.Client.RotateRepositoryKeyAsync(), other.RotateRepositoryKeyAsync());
        Assert.Equal(2, rotations.Select(r => r.GenerationId).Distinct().Count());
        Assert.Equal(2, h.Files.Directory.GetFiles($"{Objects}/keys").Length);

        // Each host seals under the generation it knows; a reader meeting the other's reads the records again.
        await h.Kms.GenerateKeyAsync("kst-a", "by-first-host", Owner);
        h.Clock.Advance(TimeSpan.FromMinutes(10));
        (await h.Client.RunDueBackupsAsync()).ThrowIfAnyFailed();
        await h.Kms.GenerateKeyAsync("kst-a", "by-other-host", Owner);
        h.Clock.Advance(TimeSpan.FromMinutes(10));
        (await other.RunDueBackupsAsync()).ThrowIfAnyFailed();

        using var fresh = await h.OpenAnotherClientAsync("reader");
        var verification = await fresh.VerifyAsync();
        Assert.True(verification.IsClean, string.Join("; ", verification.Problems.Select(p => p.Description)));
        Assert.Equal(rotations.Max(r => r.KeyGeneration), verification.CurrentKeyGeneration);
        var added = (await AllViewsAsync(fresh, backup)).Single(v => v.StartsWith("2026-05-02 IncrementallyBackedUpKeys", StringComparison.Ordinal));
        Assert.Contains("by-first-host", added, StringComparison.Ordinal);
        Assert.Contains("by-other-host", added, StringComparison.Ordinal);
    }

    private static async Task<BackupDetails> BackUpTwoDaysAsync(EngineHarness h, int keysPerDay)
    {
        await h.CreateInstanceAsync("kst-a");
        for (var i = 0; i < keysPerDay; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"day-one-{i:D4}", Owner);
        }

        var backup = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);
        for (var i = 0; i < keysPerDay; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"day-two-{i:D4}", Owner);
        }

        await h.RunUntilAsync(EngineHarness.Start.AddDays(1).AddHours(1), TimeSpan.FromHours(1));
        return backup;
    }

    /// <summary>Every view of every day the backup holds, as text: what a rekey must not change.</summary>
    private static async Task<List<string>> AllViewsAsync(BackupClient client, BackupDetails backup)
    {
        var views = new List<string>();
        foreach (var date in new[] { new DateOnly(2026, 5, 1), DayTwo })
        {
            foreach (var type in Enum.GetValues<BackupDataType>())
            {
                var page = await client.GetDataPageAsync(Owner, backup.Id, date, type, new BackupDataQuery { PageSize = 1000 });
                views.Add($"{date:yyyy-MM-dd} {type}: " + string.Join(",", page.Items.Select(i => i.Name)));
            }
        }

        foreach (var date in new[] { new DateOnly(2026, 5, 1), DayTwo })
        {
            var points = await client.ListRecoveryPointsAsync(Owner, backup.Id, date);
            views.Add($"{date:yyyy-MM-dd} points: " + string.Join(",", points.Select(p => $"{p.Sequence}:{p.Kind}")));
        }

        return views;
    }

    private static uint IdOf(RepositoryKeyRotation rotation) => Convert.ToUInt32(rotation.GenerationId, 16);

    private static List<string> DayOne(List<string> views) => [.. views.Where(v => v.StartsWith("2026-05-01", StringComparison.Ordinal))];

    private static List<(string Path, uint Generation, byte[] Salt)> PackHeaders(EngineHarness h) =>
        [.. h.Files.AllFiles
            .Where(p => p.StartsWith($"{Objects}/packs/", StringComparison.Ordinal))
            .Select(p => h.Files.File.ReadAllBytes(p) is var b && Encoding.ASCII.GetString(b, 0, 8) == "KBPACK02"
                ? (p, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(8)), b.AsSpan(12, 32).ToArray())
                : throw new Xunit.Sdk.XunitException($"{p} has no pack header of format 3 (it starts '{Encoding.ASCII.GetString(b, 0, Math.Min(8, b.Length))}')"))];

    private static IEnumerable<(string Path, byte[] Bytes)> StandaloneObjects(EngineHarness h) =>
        h.Files.AllFiles
            .Where(p => p.StartsWith($"{Objects}/points/", StringComparison.Ordinal) || p.StartsWith($"{Objects}/catalog/", StringComparison.Ordinal) || p.StartsWith($"{Objects}/index/", StringComparison.Ordinal))
            .Select(p => (p, h.Files.File.ReadAllBytes(p)));
}
