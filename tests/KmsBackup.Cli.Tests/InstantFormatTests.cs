using System.Text.RegularExpressions;

namespace KmsBackup.Cli.Tests;

/// <summary>
/// Issue 16, finding 8: the tool writes every instant one way, ISO 8601 in UTC with <c>Z</c> (never <c>+00:00</c>), in
/// tables, lines, JSON and the SDK's refusals it prints. The tool runs as a process.
/// </summary>
public sealed partial class InstantFormatTests : CliProcessTests
{
    [Fact]
    public async Task Instants_read_in_iso_8601_utc_with_z_in_text_json_and_refusals()
    {
        var operationId = await Folder.InterruptRestoreAsync("op-instants"); // its lease is held until 01:05
        const string AfterTheLease = "2026-05-02T01:10:00Z";
        var runs = new List<CliRun>
        {
            await RunAtAsync("2026-05-02T03:00:00+02:00", "backups", "show", Folder.BackupId),
            await RunAtAsync("2026-05-02T03:00:00+02:00", "backups", "list", "--json"),
            await RunAtAsync(StoreTime, "clock", "show"),
            await RunAtAsync(StoreTime, "restore", "plan", Folder.BackupId, "--at", "2026-05-02T02:30:00+02:00", "--key", "billing", "--target", "kst-small"),
            await RunAtAsync(StoreTime, "restore", "list"),
            await RunAtAsync("2026-05-02T01:01:00Z", "restore", "rollback", operationId),
            await RunAtAsync("2026-05-02T01:01:00Z", "restore", "rollback", operationId, "--json"),
        };
        AssertExit(ExitCodes.Ok, await RunAtAsync(AfterTheLease, "restore", "rollback", operationId));
        runs.Add(await RunAtAsync(AfterTheLease, "restore", "rollback", operationId));
        runs.Add(await RunAtAsync(AfterTheLease, "restore", "resume", operationId, "--json"));

        Assert.Equal(ExitCodes.Unavailable, runs[5].ExitCode);        // LeaseHeld: its expiry
        Assert.Contains("2026-05-02T01:05:00Z", runs[5].Error, StringComparison.Ordinal);
        AssertExit(ExitCodes.Ok, runs[3]);                            // the point taken at or before 00:30 UTC
        Assert.Contains("(point of 2026-05-02T00:", runs[3].Output, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Refused, runs[^2].ExitCode);           // RestoreOperationFinished: when
        Assert.Contains("was rolled back at 2026-05-02T01:10:00Z", runs[^2].Error, StringComparison.Ordinal);
        foreach (var run in runs)
        {
            var printed = run.Output + run.Error;
            Assert.DoesNotContain("+00:00", printed, StringComparison.Ordinal);
            var instants = AnInstant().Matches(printed).Select(m => m.Value).ToList();
            Assert.True(instants.Count > 0, $"no instant in {run}");
            Assert.All(instants, i => Assert.Matches(@"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", i));
        }
    }

    /// <summary>Anything that looks like a date with a time, in whatever form.</summary>
    [GeneratedRegex(@"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?")]
    private static partial Regex AnInstant();
}
