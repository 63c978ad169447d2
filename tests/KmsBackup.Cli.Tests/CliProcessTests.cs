namespace KmsBackup.Cli.Tests;

/// <summary>
/// A test class whose tests run the built tool as a process over a fresh <see cref="CliFolder"/>, as the owner, with
/// <c>--now</c> and 200 columns.
/// </summary>
public abstract class CliProcessTests : IAsyncLifetime
{
    /// <summary>The store's time of the folder: its last backup run recorded it.</summary>
    protected const string StoreTime = "2026-05-02T01:00:00Z";

    /// <summary>The folder the tool runs over, made anew for each test.</summary>
    protected CliFolder Folder { get; private set; } = null!;

    public async Task InitializeAsync() => Folder = await CliFolder.CreateAsync();

    public async Task DisposeAsync() => await Folder.DisposeAsync();

    protected static void AssertExit(int expected, CliRun run) => Assert.True(run.ExitCode == expected, $"expected exit {expected}, got {run}");

    protected Task<CliRun> RunAtAsync(string now, params string[] args) => CliProcess.RunAsync(
        new Dictionary<string, string> { ["KMSBACKUP_ROOT"] = Folder.Root, ["KMSBACKUP_ACCOUNT"] = CliFolder.Owner, ["COLUMNS"] = "200" },
        [.. args, "--now", now]);
}
