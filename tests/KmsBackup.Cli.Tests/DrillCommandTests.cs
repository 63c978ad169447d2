namespace KmsBackup.Cli.Tests;

/// <summary>'kmsbackup drill' (issue 17, item 3): a sample restored into a scratch instance, compared, and deleted again.</summary>
[Trait("Issue", "17")]
public sealed class DrillCommandTests : IAsyncLifetime
{
    private CliFolder _folder = null!;

    public async Task InitializeAsync() => _folder = await CliFolder.CreateAsync();

    public async Task DisposeAsync() => await _folder.DisposeAsync();

    private static void AssertExit(int expected, CliRun run) => Assert.True(run.ExitCode == expected, $"expected exit {expected}, got {run}");

    [Fact]
    public async Task Drill_restores_the_sample_into_the_scratch_instance_reports_every_item_matched_and_empties_the_scratch_again()
    {
        var drill = await _folder.RunAsync("drill", _folder.BackupId, "--scratch", "kst-far", "--seed", "7", "--verify", "--json");

        AssertExit(ExitCodes.Ok, drill);
        var json = drill.Json();
        Assert.True(json.GetProperty("passed").GetBoolean());
        Assert.True(json.GetProperty("scratchCleared").GetBoolean());
        Assert.True(json.GetProperty("storeClean").GetBoolean());
        var items = json.GetProperty("items").EnumerateArray().Select(i => (i.GetProperty("type").GetString(), i.GetProperty("name").GetString(), i.GetProperty("outcome").GetString())).ToList();
        Assert.Equal([("key", "billing", "matched"), ("key", "orders", "matched"), ("secret", "db-password", "matched")], items);

        var table = await _folder.RunAsync("drill", _folder.BackupId, "--scratch", "kst-far", "--sample", "1", "--seed", "7");
        AssertExit(ExitCodes.Ok, table);
        Assert.Contains("Recoverable", table.Output, StringComparison.Ordinal);
        Assert.Contains("is empty again", table.Output, StringComparison.Ordinal);

        // The scratch instance is empty again: the same items restore into it without a conflict.
        var restore = await _folder.RunAsync("restore", "run", _folder.BackupId, "--date", "2026-05-02", "--key", "orders", "--secret", "db-password", "--target", "kst-far", "--json");
        AssertExit(ExitCodes.Ok, restore);
    }

    [Fact]
    public async Task Drill_into_the_backups_own_instance_or_a_busy_one_is_refused_with_the_remedy_and_a_bad_sample_is_a_usage_error()
    {
        var own = await _folder.RunAsync("drill", _folder.BackupId, "--scratch", "kst-src", "--json");
        AssertExit(ExitCodes.Refused, own);
        Assert.Equal("DrillTargetNotScratch", own.Json().GetProperty("error").GetProperty("code").GetString());

        var restore = await _folder.RunAsync("restore", "run", _folder.BackupId, "--date", "2026-05-02", "--key", "orders", "--target", "kst-far");
        AssertExit(ExitCodes.Ok, restore);
        var busy = await _folder.RunAsync("drill", _folder.BackupId, "--scratch", "kst-far");
        AssertExit(ExitCodes.Refused, busy);
        Assert.Contains("holds 1 key and 0 secrets", busy.Error, StringComparison.Ordinal);
        Assert.Contains("Remedy", busy.Error, StringComparison.Ordinal);

        var missing = await _folder.RunAsync("drill", "bka-nope", "--scratch", "kst-small");
        AssertExit(ExitCodes.NotFound, missing);

        var sample = await _folder.RunAsync("drill", _folder.BackupId, "--scratch", "kst-small", "--sample", "0");
        AssertExit(ExitCodes.Usage, sample);
        Assert.Contains("--sample", sample.Error, StringComparison.Ordinal);
    }
}
