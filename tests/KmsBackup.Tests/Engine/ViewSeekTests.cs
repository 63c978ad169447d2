using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// Issue 15, item 2: a page of a day's full backup seeks through the tree to its position instead of reading the
/// whole day. Whatever the page size, paging shows exactly the items of the whole view, in order, once each; a
/// filtered view and a token of a name alone (the other views' kind) still page as before.
/// </summary>
public class ViewSeekTests
{
    private static readonly DateOnly May1 = new(2026, 5, 1);

    [Property(MaxTest = 12)]
    [Trait("Rule", "D3")]
    public Property Paging_a_full_view_shows_the_whole_view_in_order_whatever_the_page_size(PositiveInt keyCount, PositiveInt secretCount, PositiveInt pageSize)
    {
        var keys = keyCount.Get % 150;
        var secrets = secretCount.Get % 60;
        var size = 1 + (pageSize.Get % 40);
        return Prop.ToProperty(CheckPagingAsync(keys, secrets, size).GetAwaiter().GetResult());
    }

    /// <summary>
    /// Paging a full view by a name prefix (a prefix of some name, one between names, one before or after all, the empty
    /// one) shows exactly the names of the whole view that start with it, in order, once each, with positional tokens.
    /// </summary>
    [Property(MaxTest = 10)]
    [Trait("Rule", "D3")]
    public Property Paging_by_a_name_prefix_shows_exactly_the_names_with_that_prefix(PositiveInt keyCount, PositiveInt pageSize, PositiveInt seed) =>
        Prop.ToProperty(CheckPrefixPagingAsync(1 + (keyCount.Get % 150), 1 + (pageSize.Get % 12), seed.Get).GetAwaiter().GetResult());

    private static async Task<bool> CheckPrefixPagingAsync(int keys, int pageSize, int seed)
    {
        var random = new Random(seed);
        await using var h = await EngineHarness.CreateAsync();
        var backup = await BackUpAsync(h, keys, secrets: 0);
        var all = await AllAsync(h, backup.Id, BackupDataType.FullyBackedUpKeys);
        var some = all[random.Next(all.Count)];
        foreach (var prefix in new[] { some[..random.Next(1, some.Length + 1)], "app/key-", "app/key-5", "app/key-0", "app/key-999-", "a", "zzz", "0", "" })
        {
            var paged = await PageThroughAsync(h, backup.Id, BackupDataType.FullyBackedUpKeys, pageSize, null, prefix);
            Assert.Equal(all.Where(n => n.StartsWith(prefix, StringComparison.Ordinal)), paged);
        }

        return true;
    }

    [Fact]
    [Trait("Rule", "D3")]
    public async Task A_name_prefix_that_is_not_valid_text_is_refused()
    {
        await using var h = await EngineHarness.CreateAsync();
        var backup = await BackUpAsync(h, keys: 3, secrets: 0);
        var e = await Assert.ThrowsAsync<ArgumentException>(() => h.Client.GetDataPageAsync(EngineHarness.Owner, backup.Id, May1, BackupDataType.FullyBackedUpKeys,
            new BackupDataQuery { NamePrefix = "app\ud800" }));
        Assert.Contains("surrogate", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "D3")]
    public async Task A_token_that_names_an_item_but_no_position_and_a_filtered_view_page_as_before()
    {
        await using var h = await EngineHarness.CreateAsync();
        var backup = await BackUpAsync(h, keys: 30, secrets: 0);
        var all = await AllAsync(h, backup.Id, BackupDataType.FullyBackedUpKeys);

        var fromName = await h.Client.GetDataPageAsync(EngineHarness.Owner, backup.Id, May1, BackupDataType.FullyBackedUpKeys,
            new BackupDataQuery { PageSize = 5, ContinuationToken = BackupDataReader.EncodeToken(all[9]) });
        Assert.Equal(all.Skip(10).Take(5), fromName.Items.Select(i => i.Name));

        var filtered = await PageThroughAsync(h, backup.Id, BackupDataType.FullyBackedUpKeys, 4, "1");
        Assert.Equal(all.Where(n => n.Contains('1', StringComparison.Ordinal)), filtered);
        Assert.NotEmpty(filtered);
    }

    [Fact]
    [Trait("Rule", "D3")]
    public async Task A_positional_token_whose_item_is_not_there_falls_back_to_the_name_and_a_forged_one_is_refused()
    {
        await using var h = await EngineHarness.CreateAsync();
        var backup = await BackUpAsync(h, keys: 20, secrets: 0);
        var all = await AllAsync(h, backup.Id, BackupDataType.FullyBackedUpKeys);

        // Position 3 holds all[2], not all[9]: the page continues after the name the token carries.
        var moved = await h.Client.GetDataPageAsync(EngineHarness.Owner, backup.Id, May1, BackupDataType.FullyBackedUpKeys,
            new BackupDataQuery { PageSize = 3, ContinuationToken = BackupDataReader.EncodeToken(all[9], position: 3) });
        Assert.Equal(all.Skip(10).Take(3), moved.Items.Select(i => i.Name));

        foreach (var forged in new[] { "p0.YQ==", "p.YQ==", "q5.YQ==", "p5.not base64!", "x.y" })
        {
            await Assert.ThrowsAnyAsync<ArgumentException>(() => h.Client.GetDataPageAsync(EngineHarness.Owner, backup.Id, May1, BackupDataType.FullyBackedUpKeys,
                new BackupDataQuery { PageSize = 3, ContinuationToken = forged }));
        }
    }

    private static async Task<bool> CheckPagingAsync(int keys, int secrets, int pageSize)
    {
        await using var h = await EngineHarness.CreateAsync();
        var backup = await BackUpAsync(h, keys, secrets);
        foreach (var type in new[] { BackupDataType.FullyBackedUpKeys, BackupDataType.FullyBackedUpSecrets })
        {
            var all = await AllAsync(h, backup.Id, type);
            var paged = await PageThroughAsync(h, backup.Id, type, pageSize, null);
            Assert.Equal(type == BackupDataType.FullyBackedUpKeys ? keys : secrets, all.Count);
            Assert.Equal(all, paged);
        }

        return true;
    }

    private static async Task<BackupDetails> BackUpAsync(EngineHarness h, int keys, int secrets)
    {
        await h.CreateInstanceAsync("kst-a", keyQuota: 1000);
        for (var i = 0; i < Math.Max(keys, secrets == 0 ? 0 : 1); i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"app/key-{i * 7919 % 1000:D3}-{i}", EngineHarness.Owner);
        }

        for (var i = 0; i < secrets; i++)
        {
            await h.Kms.StoreSecretAsync("kst-a", $"secret-{i * 31 % 97:D2}-{i}", "app/key-000-0", new byte[] { (byte)i }, EngineHarness.Owner);
        }

        return (await h.Client.OnInstanceEnabledAsync("kst-a"))!;
    }

    private static async Task<List<string>> AllAsync(EngineHarness h, string backupId, BackupDataType type)
    {
        var names = new List<string>();
        // A filter every name matches takes the path that reads the whole view: the reference the seeking pages must match.
        await foreach (var item in h.Client.GetDataAsync(EngineHarness.Owner, backupId, May1, type, nameContains: ""))
        {
            names.Add(item.Name);
        }

        return names;
    }

    private static async Task<List<string>> PageThroughAsync(EngineHarness h, string backupId, BackupDataType type, int pageSize, string? nameContains, string? namePrefix = null)
    {
        var names = new List<string>();
        string? token = null;
        do
        {
            var page = await h.Client.GetDataPageAsync(EngineHarness.Owner, backupId, May1, type,
                new BackupDataQuery { PageSize = pageSize, ContinuationToken = token, NameContains = nameContains, NamePrefix = namePrefix });
            Assert.True(page.Items.Count <= pageSize);
            Assert.True(page.ContinuationToken is null || page.Items.Count == pageSize);
            names.AddRange(page.Items.Select(i => i.Name));
            token = page.ContinuationToken;

            // An unfiltered full view's pages seek, and say where the next one starts: a token of a name alone would
            // mean this page was read whole (the seek found the token's item elsewhere and fell back).
            Assert.True(token is null || nameContains is not null || token.StartsWith('p'), $"the token '{token}' is not positional");
        }
        while (token is not null);

        return names;
    }
}
