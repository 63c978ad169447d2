namespace KmsBackup.Cli.Tests;

/// <summary>
/// Issue 17: <c>kmsbackup copy</c> run as a process. A missing destination is not created without
/// <c>--init-destination</c>; with it, the copy lands, a second run copies nothing, and the destination opens alone under
/// its own key (verify through the tool, pointed at it).
/// </summary>
[Trait("Issue", "17")]
public sealed class CopyCommandTests : CliProcessTests
{
    [Fact]
    public async Task Copy_needs_init_destination_to_create_then_copies_once_and_the_copy_verifies_alone()
    {
        var destination = Folder.PathOf("copy-store");
        var destinationKey = Folder.PathOf("copy.key");

        var missing = await RunAtAsync(StoreTime, "copy", "--to-store", destination, "--to-key-file", destinationKey, "--json");
        AssertExit(ExitCodes.NotFound, missing);
        Assert.Equal("NotFound", missing.Json().GetProperty("error").GetProperty("code").GetString());
        Assert.False(Directory.Exists(destination));
        Assert.False(File.Exists(destinationKey));

        var first = await RunAtAsync(StoreTime, "copy", "--to-store", destination, "--to-key-file", destinationKey, "--init-destination", "--json");
        AssertExit(ExitCodes.Ok, first);
        var report = first.Json();
        Assert.True(report.GetProperty("complete").GetBoolean());
        Assert.True(report.GetProperty("pointsCopied").GetInt32() > 0);
        Assert.Equal(Folder.BackupId, report.GetProperty("backups")[0].GetProperty("backupId").GetString());

        var second = await RunAtAsync(StoreTime, "copy", "--to-store", destination, "--to-key-file", destinationKey, "--backup", Folder.BackupId);
        AssertExit(ExitCodes.Ok, second);
        Assert.Contains("0 points copied", second.Output, StringComparison.Ordinal);

        // The copy, under its own key, opened by the tool as a store of its own.
        Assert.NotEqual(await File.ReadAllBytesAsync(Folder.PathOf("keys/repository.key")), await File.ReadAllBytesAsync(destinationKey));
        var verify = await RunAtAsync(StoreTime, "verify", "--store", destination, "--key-file", destinationKey, "--json");
        AssertExit(ExitCodes.Ok, verify);
        Assert.True(verify.Json().GetProperty("clean").GetBoolean());
        var listed = await RunAtAsync(StoreTime, "backups", "list", "--store", destination, "--key-file", destinationKey, "--json");
        AssertExit(ExitCodes.Ok, listed);
        Assert.Contains(Folder.BackupId, listed.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Copy_into_the_source_store_itself_is_refused()
    {
        var run = await RunAtAsync(StoreTime, "copy", "--to-store", Folder.PathOf("store"), "--to-key-file", Folder.PathOf("keys/repository.key"), "--json");
        AssertExit(ExitCodes.Refused, run);
        Assert.Equal("CopySameRepository", run.Json().GetProperty("error").GetProperty("code").GetString());
    }
}
