namespace KmsBackup.Cli.Tests;

/// <summary>'restore list', 'restore resume' and 'restore rollback' over a folder where a restore's process died mid-way (rule R7).</summary>
public sealed class RestoreOperationCommandTests : IAsyncLifetime
{
    private CliFolder _folder = null!;

    public async Task InitializeAsync() => _folder = await CliFolder.CreateAsync();

    public async Task DisposeAsync() => await _folder.DisposeAsync();

    private static void AssertExit(int expected, CliRun run) => Assert.True(run.ExitCode == expected, $"expected exit {expected}, got {run}");

    /// <summary>Past the dead process's lease, which nobody can tell from a slow process's until it expires.</summary>
    private void AfterTheLeaseExpires() => _folder.Clock.Advance(new BackupClientOptions().LeaseDuration);

    [Fact]
    [Trait("Rule", "R7")]
    public async Task Restore_list_shows_an_interrupted_restore_and_rollback_by_its_id_removes_exactly_what_it_created()
    {
        var operationId = await _folder.InterruptRestoreAsync();

        var list = await _folder.RunAsync("restore", "list", "--json");
        AssertExit(ExitCodes.Ok, list);
        var operation = Assert.Single(list.Json().EnumerateArray().ToList());
        Assert.Equal(operationId, operation.GetProperty("operationId").GetString());
        Assert.Equal("kst-far", operation.GetProperty("targetInstance").GetString());
        Assert.Equal(1, operation.GetProperty("itemsInTarget").GetInt32());
        var items = operation.GetProperty("items").EnumerateArray().Select(i => (i.GetProperty("type").GetString(), i.GetProperty("name").GetString(), i.GetProperty("inTarget").GetBoolean())).ToList();
        Assert.Equal([("key", "orders", true), ("secret", "db-password", false)], items);

        var busy = await _folder.RunAsync("restore", "rollback", operationId, "--json");
        AssertExit(ExitCodes.Unavailable, busy);
        Assert.Equal("LeaseHeld", busy.Json().GetProperty("error").GetProperty("code").GetString());
        AfterTheLeaseExpires();

        var rollback = await _folder.RunAsync("restore", "rollback", operationId, "--json");
        AssertExit(ExitCodes.Ok, rollback);
        var removed = Assert.Single(rollback.Json().GetProperty("removed").EnumerateArray().ToList());
        Assert.Equal(("key", "orders"), (removed.GetProperty("type").GetString(), removed.GetProperty("name").GetString()));
        Assert.Equal("db-password", Assert.Single(rollback.Json().GetProperty("skipped").EnumerateArray().ToList()).GetProperty("name").GetString());

        var empty = await _folder.RunAsync("restore", "list", "--json");
        Assert.Empty(empty.Json().EnumerateArray());
        var again = await _folder.RunAsync("restore", "rollback", operationId, "--json");
        AssertExit(ExitCodes.Refused, again);
        Assert.Equal("RestoreOperationFinished", again.Json().GetProperty("error").GetProperty("code").GetString());

        // The target is as it was: a new restore of the same items meets no conflict.
        var run = await _folder.RunAsync("restore", "run", _folder.BackupId, "--date", "2026-05-02", "--key", "orders", "--secret", "db-password", "--target", "kst-far", "--json");
        AssertExit(ExitCodes.Ok, run);
    }

    [Fact]
    [Trait("Rule", "R7")]
    public async Task Restore_resume_finishes_an_interrupted_restore_by_its_id_restoring_nothing_twice()
    {
        var operationId = await _folder.InterruptRestoreAsync("op-cli-crash");
        Assert.Equal("op-cli-crash", operationId);
        AfterTheLeaseExpires();

        var resume = await _folder.RunAsync("restore", "resume", operationId, "--json");

        AssertExit(ExitCodes.Ok, resume);
        var json = resume.Json();
        Assert.Equal(operationId, json.GetProperty("operationId").GetString());
        Assert.Equal(["db-password"], json.GetProperty("restored").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.Equal(["orders"], json.GetProperty("alreadyRestored").EnumerateArray().Select(e => e.GetString()!).ToArray());
        var list = await _folder.RunAsync("restore", "list");
        AssertExit(ExitCodes.Ok, list);
        Assert.Contains("No unfinished restores", list.Output, StringComparison.Ordinal);
        var again = await _folder.RunAsync("restore", "resume", operationId);
        AssertExit(ExitCodes.Refused, again);
        Assert.Contains("RestoreOperationFinished", again.Error, StringComparison.Ordinal);
        Assert.Contains("Remedy", again.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Restore_list_as_a_table_names_the_operation_and_how_to_finish_it()
    {
        var operationId = await _folder.InterruptRestoreAsync();

        var run = await _folder.RunAsync("restore", "list");

        AssertExit(ExitCodes.Ok, run);
        Assert.Contains(operationId, run.Output, StringComparison.Ordinal);
        Assert.Contains("1 of 2", run.Output, StringComparison.Ordinal);
        Assert.Contains("kmsbackup restore resume", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "R2")]
    public async Task An_unknown_operation_exits_4_another_accounts_exits_3_and_a_malformed_id_exits_2()
    {
        var operationId = await _folder.InterruptRestoreAsync();
        AfterTheLeaseExpires();

        var unknown = await _folder.RunAsync("restore", "resume", "restore-unknown", "--json");
        AssertExit(ExitCodes.NotFound, unknown);
        Assert.Equal("NotFound", unknown.Json().GetProperty("error").GetProperty("code").GetString());

        var intruder = await _folder.RunAsync("restore", "rollback", operationId, "--account", "acct-intruder", "--json");
        AssertExit(ExitCodes.Refused, intruder);
        Assert.Equal("AccessDenied", intruder.Json().GetProperty("error").GetProperty("code").GetString());
        var intruderList = await _folder.RunAsync("restore", "list", "--account", "acct-intruder", "--json");
        Assert.Empty(intruderList.Json().EnumerateArray());

        var malformed = await _folder.RunAsync("restore", "rollback", "../store", "--json");
        AssertExit(ExitCodes.Usage, malformed);
        Assert.Contains("operation ID", malformed.Json().GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);

        // Still there for its owner.
        Assert.Single((await _folder.RunAsync("restore", "list", "--json")).Json().EnumerateArray());
    }

    [Fact]
    public async Task Restore_run_prints_the_operation_id_before_its_first_write()
    {
        var run = await _folder.RunAsync("restore", "run", _folder.BackupId, "--date", "2026-05-02", "--key", "orders", "--target", "kst-far", "--operation-id", "op-announced");

        AssertExit(ExitCodes.Ok, run);
        Assert.Contains("Restore operation op-announced started", run.Error, StringComparison.Ordinal);
    }
}
