namespace KmsBackup.Cli.Tests;

/// <summary>
/// Issue 16, finding 3: tables at 80 and 120 columns. IDs and names are never split over lines; a narrow terminal
/// gets fewer columns (and is told which are hidden), <c>--wide</c> gets them all. The width comes from COLUMNS
/// here, as a terminal's would from the console; the tool runs as a process.
/// </summary>
public sealed class TableWidthTests : IAsyncLifetime
{
    private static readonly string[] s_backupHeaders = ["ID", "Type", "Status", "Backup object", "Alias", "Viewable days", "Queryable range", "Expires", "Latest point"];
    private CliFolder _folder = null!;

    public async Task InitializeAsync() => _folder = await CliFolder.CreateAsync();

    public async Task DisposeAsync() => await _folder.DisposeAsync();

    private Task<CliRun> RunAsync(int columns, params string[] args) => CliProcess.RunAsync(
        new Dictionary<string, string>
        {
            ["KMSBACKUP_ROOT"] = _folder.Root,
            ["KMSBACKUP_ACCOUNT"] = CliFolder.Owner,
            ["COLUMNS"] = columns.ToString(System.Globalization.CultureInfo.InvariantCulture),
        },
        [.. args, "--now", "2026-05-02T01:00:00Z"]);

    private static string[] Lines(CliRun run) => run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();

    private static void AssertFits(int columns, CliRun run)
    {
        Assert.True(run.ExitCode is 0 or 3, run.ToString());
        foreach (var line in Lines(run))
        {
            Assert.True(line.Length <= columns, $"a line of {line.Length} columns at {columns}: '{line}'\n{run}");
        }
    }

    /// <summary>The whole text on one line of the output (a table cell split over lines would leave a part on each).</summary>
    private static void AssertWhole(string text, CliRun run) =>
        Assert.True(Lines(run).Any(l => l.Contains(text, StringComparison.Ordinal)), $"'{text}' is not whole on any line:\n{run}");

    private static string[] HeadersIn(CliRun run, IEnumerable<string> headers) =>
        [.. headers.Where(h => Lines(run).Any(l => l.Contains($" {h} ", StringComparison.Ordinal)))];

    [Theory]
    [InlineData(80)]
    [InlineData(120)]
    public async Task Backups_list_fits_the_terminal_with_whole_ids_and_says_which_columns_it_hid(int columns)
    {
        var run = await RunAsync(columns, "backups", "list");

        AssertFits(columns, run);
        AssertWhole(_folder.BackupId, run);
        AssertWhole("2026-05-01..2026-05-02", run);
        var shown = HeadersIn(run, s_backupHeaders);
        Assert.Contains("ID", shown);
        Assert.Contains("Status", shown);
        if (columns >= 120)
        {
            Assert.Contains("Backup object", shown);
            AssertWhole("kst-src (software, cn-hangzhou)", run);
        }

        Assert.Contains("--wide", run.Output, StringComparison.Ordinal);
        var afterTable = string.Join(" ", Lines(run).SkipWhile(l => !l.StartsWith('└')).Skip(1));
        foreach (var hidden in s_backupHeaders.Except(shown))
        {
            Assert.Contains(hidden, afterTable, StringComparison.Ordinal);
        }
    }

    /// <summary>Issue 16, finding 5: the secrets view's ID column is the encrypting key's, and says so.</summary>
    [Fact]
    public async Task The_secrets_view_names_its_key_column_for_what_it_is()
    {
        var secrets = await RunAsync(160, "data", _folder.BackupId, "--date", "2026-05-02", "--type", "fully-backed-up-secrets", "--wide");
        Assert.Equal(ExitCodes.Ok, secrets.ExitCode);
        Assert.Contains(Lines(secrets), l => l.Contains(" Encrypting key ID ", StringComparison.Ordinal));
        Assert.DoesNotContain("key key-", secrets.Output, StringComparison.Ordinal);

        var keys = await RunAsync(160, "data", _folder.BackupId, "--date", "2026-05-02", "--type", "fully-backed-up-keys", "--wide");
        Assert.Contains(Lines(keys), l => l.Contains(" Key ID ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_wider_terminal_shows_more_columns_and_wide_shows_them_all()
    {
        var narrow = HeadersIn(await RunAsync(80, "backups", "list"), s_backupHeaders);
        var wider = HeadersIn(await RunAsync(120, "backups", "list"), s_backupHeaders);
        var wide = await RunAsync(80, "backups", "list", "--wide");

        Assert.True(wider.Length > narrow.Length, $"80: {string.Join(", ", narrow)}; 120: {string.Join(", ", wider)}");
        Assert.Equal(s_backupHeaders, HeadersIn(wide, s_backupHeaders));
        AssertWhole(_folder.BackupId, wide);
        Assert.DoesNotContain("--wide", wide.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(80)]
    [InlineData(120)]
    public async Task Data_and_restore_plan_and_instances_keep_names_and_ids_whole(int columns)
    {
        var data = await RunAsync(columns, "data", _folder.BackupId, "--date", "2026-05-02", "--json");
        var keyIds = data.Json().GetProperty("views").EnumerateArray()
            .SelectMany(v => v.GetProperty("items").EnumerateArray())
            .Select(i => i.GetProperty("keyId").GetString() ?? i.GetProperty("encryptionKeyId").GetString()!)
            .ToList();
        Assert.NotEmpty(keyIds);

        var table = await RunAsync(columns, "data", _folder.BackupId, "--date", "2026-05-02");
        AssertFits(columns, table);
        foreach (var text in keyIds.Concat(["orders", "billing", "db-password"]))
        {
            AssertWhole(text, table);
        }

        var plan = await RunAsync(columns, "restore", "plan", _folder.BackupId, "--date", "2026-05-02", "--all", "--target", "kst-far");
        AssertFits(columns, plan);
        foreach (var text in keyIds.Concat(["orders", "billing", "db-password"]))
        {
            AssertWhole(text, plan);
        }

        var instances = await RunAsync(columns, "instances", "list");
        AssertFits(columns, instances);
        foreach (var text in new[] { "kst-src", "kst-small", "kst-far", "cn-hangzhou", CliFolder.Owner })
        {
            AssertWhole(text, instances);
        }
    }
}
