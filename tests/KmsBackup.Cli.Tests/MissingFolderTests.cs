namespace KmsBackup.Cli.Tests;

/// <summary>
/// Issue 16, finding 2: a mistyped path never creates a store or a service. Only 'init' creates a folder; every
/// other command on a missing store, service or key file exits 4, names what is missing and the remedy, and
/// writes nothing. Run as a process, as a user meets the tool.
/// </summary>
public sealed class MissingFolderTests : IAsyncLifetime
{
    private const string Later = "2026-05-03T00:10:00Z"; // the daily full of 2026-05-03 is due
    private CliFolder _folder = null!;
    private string _typo = null!;

    public async Task InitializeAsync()
    {
        _folder = await CliFolder.CreateAsync();
        _typo = Path.Combine(Path.GetTempPath(), "kmsbackup-typo-" + Guid.NewGuid().ToString("N"));
    }

    public async Task DisposeAsync()
    {
        if (Directory.Exists(_typo))
        {
            Directory.Delete(_typo, recursive: true);
        }

        await _folder.DisposeAsync();
    }

    private static void AssertExit(int expected, CliRun run) => Assert.True(run.ExitCode == expected, $"expected exit {expected}, got {run}");

    private Task<CliRun> RunAsync(params string[] args) => CliProcess.RunAsync(
        new Dictionary<string, string> { ["KMSBACKUP_ROOT"] = _folder.Root, ["KMSBACKUP_ACCOUNT"] = CliFolder.Owner },
        [.. args, "--now", Later]);

    [Theory]
    [InlineData("--store", "backups", "list")]
    [InlineData("--store", "run")]
    [InlineData("--store", "verify")]
    [InlineData("--store", "clock", "show")]
    [InlineData("--kms", "backups", "list")]
    [InlineData("--kms", "instances", "list")]
    [InlineData("--kms", "run")]
    public async Task A_mistyped_store_or_service_folder_exits_4_and_creates_nothing(string option, params string[] command)
    {
        var before = CliProcess.Image(_folder.Root);

        var run = await RunAsync([.. command, option, _typo]);

        AssertExit(ExitCodes.NotFound, run);
        Assert.False(Directory.Exists(_typo) || File.Exists(_typo), $"{_typo} was created by: {run}");
        Assert.Equal(before, CliProcess.Image(_folder.Root));
        Assert.Contains(_typo, run.Error, StringComparison.Ordinal);
        Assert.Contains("Remedy", run.Error, StringComparison.Ordinal);
        Assert.Contains("kmsbackup init", run.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("backup run(s)", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_with_a_mistyped_service_does_not_report_zero_runs_while_a_daily_full_is_due()
    {
        var run = await RunAsync("run", "--kms", _typo, "--json");

        AssertExit(ExitCodes.NotFound, run);
        var error = run.Json().GetProperty("error");
        Assert.Equal("NotFound", error.GetProperty("code").GetString());
        Assert.Equal($"service folder '{_typo}'", error.GetProperty("item").GetString());
        Assert.False(Directory.Exists(_typo));
    }

    [Fact]
    public async Task A_download_from_a_mistyped_store_writes_neither_the_file_nor_the_key_file()
    {
        var output = Directory.CreateTempSubdirectory("kmsbackup-cli-out-");
        try
        {
            var run = await RunAsync(
                "download", _folder.BackupId, "--date", "2026-05-02", "--store", _typo,
                "--out", Path.Combine(output.FullName, "day2.kbf"), "--data-key-out", Path.Combine(output.FullName, "day2.key"));

            AssertExit(ExitCodes.NotFound, run);
            Assert.Empty(output.EnumerateFileSystemInfos());
            Assert.False(Directory.Exists(_typo));
        }
        finally
        {
            output.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task An_existing_empty_folder_is_no_store_and_no_service_and_stays_empty()
    {
        Directory.CreateDirectory(_typo);

        var store = await RunAsync("backups", "list", "--store", _typo);
        var kms = await RunAsync("instances", "list", "--kms", _typo);

        AssertExit(ExitCodes.NotFound, store);
        AssertExit(ExitCodes.NotFound, kms);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_typo));
    }

    [Fact]
    public async Task Only_init_creates_a_folder_and_it_never_initializes_one_twice()
    {
        var env = new Dictionary<string, string> { ["KMSBACKUP_ROOT"] = _typo, ["KMSBACKUP_ACCOUNT"] = CliFolder.Owner };

        var init = await CliProcess.RunAsync(env, "init");

        AssertExit(ExitCodes.Ok, init);
        Assert.True(File.Exists(Path.Combine(_typo, "keys", "repository.key")));
        Assert.True(File.Exists(Path.Combine(_typo, "kms", "service.key")));
        Assert.True(File.Exists(Path.Combine(_typo, "store", "objects", "config")));
        var list = await CliProcess.RunAsync(env, "backups", "list");
        AssertExit(ExitCodes.Ok, list);
        Assert.Contains("No backups", list.Output, StringComparison.Ordinal);

        var before = CliProcess.Image(_typo);
        var again = await CliProcess.RunAsync(env, "init", "--json");
        AssertExit(ExitCodes.Refused, again);
        Assert.Equal("FolderExists", again.Json().GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(before, CliProcess.Image(_typo));

        // An existing folder's store, service or key file is never joined by a new part either.
        var newStore = Path.Combine(_typo, "store-2");
        var partly = await CliProcess.RunAsync(env, "init", "--store", newStore);
        AssertExit(ExitCodes.Refused, partly);
        Assert.False(Directory.Exists(newStore));
    }
}
