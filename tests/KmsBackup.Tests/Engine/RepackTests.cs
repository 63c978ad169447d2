using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// Prune repacks partly used packs (issue 15, item 4): once retention has deleted the points that used most of a
/// pack, its live objects are copied into new packs and it is deleted, so the store does not grow with churn.
/// </summary>
public class RepackTests
{
    private const string Owner = EngineHarness.Owner;

    /// <summary>
    /// 400 keys in one pack; the first 240 are rotated, so once the first day's points pass retention 60% of that pack is
    /// unused. Without repacking the store then holds 1.6 times what its points refer to.
    /// </summary>
    [Fact]
    [Trait("Rule", "W5")]
    public async Task A_pack_whose_points_passed_retention_is_repacked_and_every_kept_view_reads_the_same()
    {
        await using var h = await EngineHarness.CreateAsync();
        var backup = await RotateMostOfOnePackAsync(h);
        using var reader = await h.OpenAnotherClientAsync("reader"); // its index names the old packs
        var before = await KeptViewsAsync(reader, backup.Id);
        Assert.Contains(before, v => v.Contains("key-399", StringComparison.Ordinal));

        var first = await h.Client.PruneAsync();
        Assert.True(first.RecoveryPointsDeleted > 0, "the setup must let retention delete the first day's points");
        h.Clock.Advance(TimeSpan.FromHours(2));
        await h.Client.PruneAsync();

        using var fresh = await h.OpenAnotherClientAsync("fresh");
        var verification = await fresh.VerifyAsync();
        Assert.True(verification.IsClean, string.Join("; ", verification.Problems));
        var bound = verification.ReferencedBytes / (1 - h.Options.PruneRepackThreshold) + (64 * verification.PacksChecked);
        Assert.True(verification.PackBytes <= bound,
            $"the packs hold {verification.PackBytes:N0} bytes for {verification.ReferencedBytes:N0} referenced ({(double)verification.PackBytes / verification.ReferencedBytes:F2}x); bound {bound:N0}");

        Assert.Equal(before, await KeptViewsAsync(reader, backup.Id));
        Assert.Equal(before, await KeptViewsAsync(fresh, backup.Id));
    }

    /// <summary>Repacking off (threshold 1): the same history leaves the partly used pack, the baseline the test above beats.</summary>
    [Fact]
    [Trait("Rule", "W5")]
    public async Task With_repacking_off_the_partly_used_pack_stays()
    {
        await using var h = await EngineHarness.CreateAsync(o => o.PruneRepackThreshold = 1);
        await RotateMostOfOnePackAsync(h);
        var first = await h.Client.PruneAsync();
        h.Clock.Advance(TimeSpan.FromHours(2));
        var second = await h.Client.PruneAsync();
        Assert.Equal(0, first.PacksRepacked + second.PacksRepacked);

        var verification = await h.Client.VerifyAsync();
        Assert.True(verification.PackBytes > 1.4 * verification.ReferencedBytes,
            $"expected the old pack to stay partly used: {verification.PackBytes:N0} bytes for {verification.ReferencedBytes:N0} referenced");
    }

    /// <summary>
    /// Any history of daily churn (how many keys, which are rotated, added or deleted each day, how many days, the threshold,
    /// whether a prune runs each day): once retention and two prunes a grace period apart have run, no pack has the
    /// threshold or more unused (so the bound holds), verify is clean, and every kept day reads as it did before the prunes,
    /// on a host whose index still names the old packs and on a new one.
    /// </summary>
    [Property(MaxTest = 12)]
    [Trait("Rule", "W5")]
    public Property After_any_churn_and_two_prunes_the_packs_stay_within_the_threshold_and_every_kept_day_reads_the_same(PositiveInt seed) =>
        CheckChurnAsync(seed.Get).GetAwaiter().GetResult();

    private static async Task<Property> CheckChurnAsync(int seed)
    {
        var random = new Random(seed);
        var threshold = new[] { 0.1, 0.25, 0.5 }[random.Next(3)];
        await using var h = await EngineHarness.CreateAsync(o => o.PruneRepackThreshold = threshold);
        await h.CreateInstanceAsync("kst-a", keyQuota: 5000);
        var names = new List<string>();
        var next = 0;
        for (var count = random.Next(20, 300); next < count; next++)
        {
            names.Add($"key-{next:D4}");
            await h.Kms.GenerateKeyAsync("kst-a", names[^1], Owner, description: new string('d', random.Next(0, 300)));
        }

        var backup = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);
        var days = random.Next(8, 12);
        var pruneDaily = random.Next(2) == 0;
        for (var day = 1; day <= days; day++)
        {
            // A contiguous block or scattered keys rotated; a few added and deleted.
            var start = random.Next(names.Count);
            var length = random.Next(names.Count / 2 + 1);
            var scattered = random.Next(2) == 0;
            foreach (var name in names.Where((_, i) => scattered ? random.Next(4) == 0 : i >= start && i < start + length).ToList())
            {
                await h.Kms.RotateKeyAsync("kst-a", name);
            }

            for (var i = random.Next(5); i > 0 && names.Count > 1; i--)
            {
                var gone = names[random.Next(names.Count)];
                await h.Kms.DeleteKeyAsync("kst-a", gone);
                names.Remove(gone);
            }

            for (var i = random.Next(8); i > 0; i--, next++)
            {
                names.Add($"key-{next:D4}");
                await h.Kms.GenerateKeyAsync("kst-a", names[^1], Owner);
            }

            await h.RunUntilAsync(EngineHarness.Start.AddDays(day), TimeSpan.FromHours(8));
            if (pruneDaily)
            {
                await h.Client.PruneAsync();
            }
        }

        using var reader = await h.OpenAnotherClientAsync("reader");
        var before = await KeptViewsAsync(reader, backup.Id, DateOnly.FromDateTime(h.Clock.GetUtcNow().UtcDateTime));
        await h.Client.PruneAsync();
        h.Clock.Advance(TimeSpan.FromHours(2));
        await h.Client.PruneAsync();

        using var fresh = await h.OpenAnotherClientAsync("fresh");
        var verification = await fresh.VerifyAsync();
        var bound = verification.ReferencedBytes / (1 - threshold) + (64 * verification.PacksChecked);
        var afterReader = await KeptViewsAsync(reader, backup.Id, DateOnly.FromDateTime(h.Clock.GetUtcNow().UtcDateTime));
        var afterFresh = await KeptViewsAsync(fresh, backup.Id, DateOnly.FromDateTime(h.Clock.GetUtcNow().UtcDateTime));
        return (verification.IsClean && verification.PackBytes <= bound && before.SequenceEqual(afterReader) && before.SequenceEqual(afterFresh))
            .Label($"seed {seed}, threshold {threshold}, {days} days, prune daily {pruneDaily}: {verification}; packs {verification.PackBytes:N0} for {verification.ReferencedBytes:N0} referenced (bound {bound:N0}); views equal {before.SequenceEqual(afterReader)}/{before.SequenceEqual(afterFresh)}");
    }

    [Fact]
    public void The_repack_threshold_is_checked()
    {
        foreach (var bad in new[] { 0, 0.01, 1.5, double.NaN })
        {
            var options = new BackupClientOptions { PruneRepackThreshold = bad };
            var e = Assert.Throws<ArgumentOutOfRangeException>(options.Validate);
            Assert.Equal(nameof(BackupClientOptions.PruneRepackThreshold), e.ParamName);
        }
    }

    /// <summary>400 keys backed up in one pack, the first 240 rotated, then ten days of daily runs: the first day's points leave the default backup's 7 days.</summary>
    private static async Task<BackupDetails> RotateMostOfOnePackAsync(EngineHarness h)
    {
        await h.CreateInstanceAsync("kst-a", keyQuota: 1000);
        for (var i = 0; i < 400; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"key-{i:D3}", Owner, description: new string('d', 200));
        }

        var backup = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);
        for (var i = 0; i < 240; i++)
        {
            await h.Kms.RotateKeyAsync("kst-a", $"key-{i:D3}");
        }

        await h.RunUntilAsync(EngineHarness.Start.AddDays(10), TimeSpan.FromDays(1));
        return backup;
    }

    private static async Task<List<string>> KeptViewsAsync(BackupClient client, string backupId, DateOnly? today = null)
    {
        var last = today ?? new DateOnly(2026, 5, 11);
        var views = new List<string>();
        for (var date = last.AddDays(-6); date <= last; date = date.AddDays(1))
        {
            var points = await client.ListRecoveryPointsAsync(Owner, backupId, date);
            if (points.Count == 0)
            {
                continue;
            }

            var page = await client.GetDataPageAsync(Owner, backupId, date, BackupDataType.FullyBackedUpKeys, new BackupDataQuery { PageSize = 1000 });
            views.Add($"{date:yyyy-MM-dd} ({points.Count} points): " + string.Join(",", page.Items.Select(i => $"{i.Name}@{i.VersionCount}")));
        }

        return views;
    }
}
