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

    [Fact]
    public async Task After_the_key_file_is_lost_the_folder_opens_with_the_escrowed_shares_or_the_passphrase_alone_and_a_drill_proves_each()
    {
        const string passphrase = "correct horse battery staple";
        var shares = await _folder.RunAsync("keys", "add", "--recovery-shares", "3", "--threshold", "2", "--json");
        AssertExit(ExitCodes.Ok, shares);
        var printed = shares.Json().GetProperty("shares").EnumerateArray().Select(e => e.GetString()!).ToList();
        var recoveryId = shares.Json().GetProperty("keyId").GetString();
        AssertExit(ExitCodes.Ok, await _folder.RunWithInputAsync(passphrase + "\n", "keys", "add", "--passphrase-stdin"));

        // The key file is lost: the tool no longer opens the folder with it, and writes nothing.
        File.Delete(_folder.PathOf(Path.Combine("keys", "repository.key")));
        AssertExit(ExitCodes.NotFound, await _folder.RunAsync("drill", _folder.BackupId, "--scratch", "kst-far"));

        var sharesFile = _folder.PathOf("shares.txt");
        await File.WriteAllLinesAsync(sharesFile, [printed[2], "", printed[0]]);
        var byShares = await _folder.RunAsync("--unlock-shares", sharesFile, "drill", _folder.BackupId, "--scratch", "kst-far", "--json");
        AssertExit(ExitCodes.Ok, byShares);
        Assert.True(byShares.Json().GetProperty("passed").GetBoolean());
        Assert.Equal(recoveryId, byShares.Json().GetProperty("keyProvider").GetString());

        var byPassphrase = await _folder.RunWithInputAsync(passphrase + "\n", "--unlock-passphrase-stdin", "drill", _folder.BackupId, "--scratch", "kst-far", "--json");
        AssertExit(ExitCodes.Ok, byPassphrase);
        Assert.StartsWith("passphrase", byPassphrase.Json().GetProperty("keyProvider").GetString(), StringComparison.Ordinal);

        // Too few shares, a wrong passphrase: typed refusals, and nothing was opened.
        await File.WriteAllLinesAsync(sharesFile, [printed[1]]);
        var tooFew = await _folder.RunAsync("--unlock-shares", sharesFile, "drill", _folder.BackupId, "--scratch", "kst-far", "--json");
        Assert.Equal("TooFewRecoveryShares", tooFew.Json().GetProperty("error").GetProperty("code").GetString());
        var wrong = await _folder.RunWithInputAsync("not the passphrase at all\n", "--unlock-passphrase-stdin", "drill", _folder.BackupId, "--scratch", "kst-far", "--json");
        AssertExit(ExitCodes.Integrity, wrong);
        Assert.Equal("WrongPassphrase", wrong.Json().GetProperty("error").GetProperty("code").GetString());
        var both = await _folder.RunWithInputAsync(passphrase + "\n", "--unlock-passphrase-stdin", "--unlock-shares", sharesFile, "keys", "list");
        AssertExit(ExitCodes.Usage, both);
    }
}
