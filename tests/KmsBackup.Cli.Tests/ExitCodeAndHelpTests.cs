using System.Text.RegularExpressions;

namespace KmsBackup.Cli.Tests;

/// <summary>
/// Issue 16, finding 4: exit codes, help and the documentation agree. An error code exits the same way whether a
/// command throws it or a restore plan reports it; a refused plan shows no item as restored; <c>--type</c> help
/// names the spellings the tool accepts; <c>health</c> exists; a missing command says which commands there are;
/// the READMEs' exit-code tables are the code's. The tool runs as a process.
/// </summary>
public sealed partial class ExitCodeAndHelpTests : IAsyncLifetime
{
    private CliFolder _folder = null!;

    public async Task InitializeAsync() => _folder = await CliFolder.CreateAsync();

    public async Task DisposeAsync() => await _folder.DisposeAsync();

    private static void AssertExit(int expected, CliRun run) => Assert.True(run.ExitCode == expected, $"expected exit {expected}, got {run}");

    private Task<CliRun> RunAtAsync(string now, params string[] args) => CliProcess.RunAsync(
        new Dictionary<string, string> { ["KMSBACKUP_ROOT"] = _folder.Root, ["KMSBACKUP_ACCOUNT"] = CliFolder.Owner, ["COLUMNS"] = "120" },
        [.. args, "--now", now]);

    private Task<CliRun> RunAsync(params string[] args) => RunAtAsync("2026-05-02T01:00:00Z", args);

    [Fact]
    public async Task A_restore_plan_into_a_missing_target_exits_4_like_a_restore_run_and_shows_no_item_as_restored()
    {
        string[] request = [_folder.BackupId, "--date", "2026-05-02", "--all", "--target", "kst-nope"];
        var before = CliProcess.Image(_folder.PathOf("kms"));

        var plan = await RunAsync(["restore", "plan", .. request]);
        var planJson = await RunAsync(["restore", "plan", .. request, "--json"]);
        var run = await RunAsync(["restore", "run", .. request, "--json"]);

        AssertExit(ExitCodes.NotFound, plan);
        AssertExit(ExitCodes.NotFound, planJson);
        AssertExit(ExitCodes.NotFound, run);
        Assert.Contains("NotFound", plan.Output, StringComparison.Ordinal);
        Assert.Contains("kst-nope", plan.Output, StringComparison.Ordinal);
        Assert.Equal("NotFound", run.Json().GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("NotFound", planJson.Json().GetProperty("error").GetProperty("code").GetString());
        Assert.False(planJson.Json().GetProperty("plan").GetProperty("canExecute").GetBoolean());

        // The outcome column: no item of a refused plan reads as restored.
        var outcomes = plan.Output.Split('\n').Where(l => l.StartsWith('│')).Select(l => l.Split('│', StringSplitOptions.TrimEntries)[^2]).Skip(1).ToList();
        Assert.Equal(3, outcomes.Count);
        Assert.DoesNotContain("restore", outcomes);
        Assert.All(outcomes, o => Assert.Equal("not restored", o));
        Assert.Equal(before, CliProcess.Image(_folder.PathOf("kms")));
    }

    [Fact]
    public async Task A_plan_with_rule_violations_still_exits_3()
    {
        var plan = await RunAsync("restore", "plan", _folder.BackupId, "--date", "2026-05-02", "--secret", "db-password", "--target", "kst-src");

        AssertExit(ExitCodes.Refused, plan);
        Assert.Contains("EncryptionKeyMissing", plan.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Type_help_names_the_spellings_the_tool_accepts_and_both_spellings_work()
    {
        var help = await RunAsync("data", "--help");

        AssertExit(ExitCodes.Ok, help);
        Assert.Contains("fully-backed-up-keys", help.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("<FullyBackedUpKeys|", help.Output, StringComparison.Ordinal);

        var kebab = await RunAsync("data", _folder.BackupId, "--date", "2026-05-02", "--type", "fully-backed-up-keys", "--json");
        var pascal = await RunAsync("data", _folder.BackupId, "--date", "2026-05-02", "--type", "FullyBackedUpKeys", "--json");
        AssertExit(ExitCodes.Ok, kebab);
        AssertExit(ExitCodes.Ok, pascal);
        Assert.Equal(kebab.Output, pascal.Output);
    }

    [Fact]
    public async Task Health_reports_each_backup_as_a_table_and_as_json()
    {
        var json = await RunAsync("health", "--json");

        AssertExit(ExitCodes.Ok, json);
        var backup = Assert.Single(json.Json().EnumerateArray().ToList());
        Assert.Equal(_folder.BackupId, backup.GetProperty("backupId").GetString());
        Assert.Equal("kst-src", backup.GetProperty("instance").GetString());
        Assert.Equal("enabled", backup.GetProperty("status").GetString());
        Assert.Equal("2026-05-02T01:00:00Z", backup.GetProperty("lastSuccessAt").GetString());
        Assert.Equal(0, backup.GetProperty("consecutiveFailures").GetInt32());
        Assert.Equal("incremental", backup.GetProperty("nextRun").GetProperty("kind").GetString());

        // A day later the daily full is overdue: the lag says by how much.
        var late = await RunAtAsync("2026-05-03T00:30:00Z", "health", "--json");
        var lagging = Assert.Single(late.Json().EnumerateArray().ToList());
        Assert.Equal("full", lagging.GetProperty("nextRun").GetProperty("kind").GetString());
        Assert.True(lagging.GetProperty("lagSeconds").GetDouble() > 0);

        var table = await RunAtAsync("2026-05-03T00:30:00Z", "health");
        AssertExit(ExitCodes.Ok, table);
        Assert.Contains(_folder.BackupId, table.Output, StringComparison.Ordinal);
        Assert.Contains("full due 2026-05-03T00:00:00Z", table.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Health_on_a_mistyped_service_exits_4_and_creates_nothing()
    {
        var typo = Path.Combine(Path.GetTempPath(), "kmsbackup-typo-" + Guid.NewGuid().ToString("N"));

        var run = await RunAsync("health", "--kms", typo);

        AssertExit(ExitCodes.NotFound, run);
        Assert.False(Directory.Exists(typo));
    }

    [Theory]
    [InlineData("", "backups, ")]
    [InlineData("restore", "plan, run, list, resume, rollback")]
    [InlineData("backups", "list, show")]
    public async Task A_missing_command_exits_2_and_names_the_commands_there_are(string group, string listed)
    {
        var run = await CliProcess.RunAsync(new Dictionary<string, string>(), group.Length == 0 ? [] : [group]);

        AssertExit(ExitCodes.Usage, run);
        Assert.DoesNotContain("Required command was not provided", run.Error, StringComparison.Ordinal);
        Assert.Contains($"'kmsbackup{(group.Length == 0 ? "" : " " + group)}' needs a command", run.Error, StringComparison.Ordinal);
        Assert.Contains(listed, run.Error, StringComparison.Ordinal);
        if (group.Length == 0)
        {
            Assert.Contains("health", run.Error, StringComparison.Ordinal);
            Assert.Contains("init", run.Error, StringComparison.Ordinal);
        }
    }

    /// <summary>Issue 16, finding 8: JSON output keeps quotes and '+' as they are (a base64 data key copied from it must be the key).</summary>
    [Fact]
    public async Task Json_output_does_not_escape_quotes_or_plus()
    {
        var run = await CliProcess.RunAsync(new Dictionary<string, string>(), "restore", "--json");

        AssertExit(ExitCodes.Usage, run);
        Assert.Contains("'kmsbackup restore' needs a command", run.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("\\u0027", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_lists_every_exit_code_the_code_defines()
    {
        var help = await CliProcess.RunAsync(new Dictionary<string, string>(), "--help");

        AssertExit(ExitCodes.Ok, help);
        foreach (var exit in ExitCodes.All)
        {
            Assert.Contains($"  {exit.Code,-5}{exit.Help}", help.Output, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("README.md")]
    [InlineData("src/KmsBackup.Cli/README.md")]
    public void The_readmes_exit_code_table_is_the_one_the_code_defines(string readme)
    {
        // To regenerate after changing ExitCodes.cs: KMSBACKUP_UPDATE_DOCS=1 dotnet test tests/KmsBackup.Cli.Tests --filter The_readmes_exit_code_table
        var path = Path.Combine(RepositoryRoot(), readme);
        var text = File.ReadAllText(path).ReplaceLineEndings("\n");
        var match = GeneratedBlock().Match(text);
        Assert.True(match.Success, $"{readme} has no block between '{Begin}' and '{End}'");
        var expected = ExitCodes.MarkdownTable();
        if (match.Groups["table"].Value != expected && Environment.GetEnvironmentVariable("KMSBACKUP_UPDATE_DOCS") == "1")
        {
            File.WriteAllText(path, text[..match.Groups["table"].Index] + expected + text[(match.Groups["table"].Index + match.Groups["table"].Length)..]);
            return;
        }

        Assert.Equal(expected, match.Groups["table"].Value);
    }

    private const string Begin = "<!-- exit-codes: generated from src/KmsBackup.Cli/ExitCodes.cs; a test checks it -->";
    private const string End = "<!-- /exit-codes -->";

    [GeneratedRegex(@"<!-- exit-codes: generated from src/KmsBackup\.Cli/ExitCodes\.cs; a test checks it -->\n\n(?<table>.*?)\n<!-- /exit-codes -->", RegexOptions.Singleline)]
    private static partial Regex GeneratedBlock();

    private static string RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "KmsBackup.Sdk.sln")))
            {
                return folder.FullName;
            }
        }

        throw new InvalidOperationException($"No KmsBackup.Sdk.sln above {AppContext.BaseDirectory}.");
    }
}
