namespace KmsBackup.Cli.Tests;

/// <summary>
/// Issue 16, finding 8: a <c>--now</c> before the store's time is refused (<c>NowBeforeStoreTime</c>, exit 3), naming
/// the option, the store's time and the remedy, before anything is written. The tool runs as a process.
/// </summary>
public sealed class NowBeforeStoreTimeTests : CliProcessTests
{
    [Theory]
    [InlineData("backups", "list")]
    [InlineData("data", "{backup}", "--date", "2026-05-02")]
    [InlineData("run")]
    [InlineData("restore", "run", "{backup}", "--date", "2026-05-02", "--key", "orders", "--target", "kst-far")]
    [InlineData("extend", "{backup}", "--days", "100")]
    public async Task A_now_before_the_stores_time_is_refused_naming_the_option_the_time_and_the_remedy_and_nothing_is_written(params string[] command)
    {
        var args = command.Select(a => a.Replace("{backup}", Folder.BackupId, StringComparison.Ordinal)).ToArray();
        var before = CliProcess.Image(Folder.Root);

        var text = await RunAtAsync("2026-05-01T12:00:00Z", args);
        var json = await RunAtAsync("2026-05-02T00:59:59Z", [.. args, "--json"]);

        AssertExit(ExitCodes.Refused, text);
        Assert.StartsWith("NowBeforeStoreTime: --now 2026-05-01T12:00:00Z is before the store's time, 2026-05-02T01:00:00Z", text.Error, StringComparison.Ordinal);
        Assert.Contains("Remedy: Give --now 2026-05-02T01:00:00Z or later, or leave --now out", text.Error, StringComparison.Ordinal);
        AssertExit(ExitCodes.Refused, json);
        var error = json.Json().GetProperty("error");
        Assert.Equal("NowBeforeStoreTime", error.GetProperty("code").GetString());
        Assert.Equal("--now", error.GetProperty("item").GetString());
        Assert.Contains(StoreTime, error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("kmsbackup clock show", error.GetProperty("remedy").GetString(), StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Refused, error.GetProperty("exitCode").GetInt32());
        Assert.Equal(before, CliProcess.Image(Folder.Root));
    }

    [Fact]
    public async Task A_now_at_the_stores_time_or_later_is_taken_and_the_clock_commands_take_any()
    {
        AssertExit(ExitCodes.Ok, await RunAtAsync(StoreTime, "backups", "list"));
        AssertExit(ExitCodes.Ok, await RunAtAsync("2026-05-02T03:00:00+02:00", "backups", "list")); // the same instant
        var show = await RunAtAsync("2026-05-01T00:00:00Z", "clock", "show", "--json");
        AssertExit(ExitCodes.Ok, show);
        Assert.Equal(StoreTime, show.Json().GetProperty("storeTime").GetString());
    }
}
