namespace KmsBackup.Cli.Tests;

/// <summary>
/// Issue 16, finding 8: an option that takes a whole number, given something else, says so, naming the option, not
/// a .NET type ("expected type 'System.Int32'"). The tool runs as a process.
/// </summary>
public sealed class WholeNumberOptionTests : CliProcessTests
{
    [Theory]
    [InlineData("--days", "extend", "{backup}", "--days", "abc")]
    [InlineData("--months", "renew", "{backup}", "--months", "1.5")]
    [InlineData("--max-packs", "repository-key", "rekey", "--max-packs", "x")]
    public async Task A_value_that_is_not_a_whole_number_is_named_so_without_a_dotnet_type(string option, params string[] command)
    {
        var args = command.Select(a => a.Replace("{backup}", Folder.BackupId, StringComparison.Ordinal)).ToArray();
        var before = CliProcess.Image(Folder.Root);

        var text = await RunAtAsync(StoreTime, args);
        var json = await RunAtAsync(StoreTime, [.. args, "--json"]);

        AssertExit(ExitCodes.Usage, text);
        Assert.StartsWith($"Usage: {option} takes a whole number, e.g. {option} 3; '{command[^1]}' is not one.", text.Error, StringComparison.Ordinal);
        AssertExit(ExitCodes.Usage, json);
        var message = json.Json().GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains($"{option} takes a whole number", message, StringComparison.Ordinal);
        foreach (var printed in new[] { text.Error, text.Output, json.Output })
        {
            Assert.DoesNotContain("System.", printed, StringComparison.Ordinal);
            Assert.DoesNotContain("expected type", printed, StringComparison.Ordinal);
        }

        Assert.Equal(before, CliProcess.Image(Folder.Root));
    }
}
