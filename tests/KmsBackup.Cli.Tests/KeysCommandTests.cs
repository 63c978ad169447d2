using System.Text.Json;

namespace KmsBackup.Cli.Tests;

/// <summary><c>kmsbackup keys list/add/remove</c> (issue 17), run as a process over a fresh folder.</summary>
public sealed class KeysCommandTests : CliProcessTests
{
    private const string Passphrase = "correct horse battery staple";

    private Task<CliRun> RunAsync(string? input, params string[] args) => CliProcess.RunWithInputAsync(
        new Dictionary<string, string> { ["KMSBACKUP_ROOT"] = Folder.Root, ["KMSBACKUP_ACCOUNT"] = CliFolder.Owner, ["COLUMNS"] = "200" },
        input, [.. args, "--now", StoreTime]);

    private static List<(string Kind, string KeyId)> Providers(CliRun run) =>
        [.. run.Json().EnumerateArray().Select(p => (p.GetProperty("kind").GetString()!, p.GetProperty("keyId").GetString()!))];

    [Fact]
    [Trait("Issue", "17")]
    public async Task Keys_add_list_and_remove_each_provider_kind_print_shares_once_and_refuse_the_last()
    {
        var listed = await RunAsync(null, "keys", "list", "--json");
        AssertExit(ExitCodes.Ok, listed);
        var (kind, original) = Assert.Single(Providers(listed));
        Assert.Equal("keyfile", kind);
        Assert.Equal(JsonValueKind.Null, listed.Json()[0].GetProperty("addedAt").ValueKind);

        AssertExit(ExitCodes.Usage, await RunAsync(null, "keys", "add"));
        AssertExit(ExitCodes.Usage, await RunAsync(null, "keys", "add", "--recovery-shares", "3"));
        AssertExit(ExitCodes.Usage, await RunAsync(null, "keys", "add", "--recovery-shares", "2", "--threshold", "3"));
        AssertExit(ExitCodes.Usage, await RunAsync("too short\n", "keys", "add", "--passphrase-stdin"));

        var recovery = await RunAsync(null, "keys", "add", "--recovery-shares", "3", "--threshold", "2", "--json");
        AssertExit(ExitCodes.Ok, recovery);
        Assert.Equal("recovery", recovery.Json().GetProperty("kind").GetString());
        Assert.Equal(2, recovery.Json().GetProperty("threshold").GetInt32());
        var shares = recovery.Json().GetProperty("shares").EnumerateArray().Select(s => s.GetString()!).ToList();
        Assert.Equal(3, shares.Count);
        Assert.All(shares, s => Assert.StartsWith("kbr1-", s, StringComparison.Ordinal));

        var passphrase = await RunAsync(Passphrase + "\n", "keys", "add", "--passphrase-stdin", "--json");
        AssertExit(ExitCodes.Ok, passphrase);
        Assert.Equal("passphrase", passphrase.Json().GetProperty("kind").GetString());
        Assert.DoesNotContain(Passphrase, passphrase.Output + passphrase.Error, StringComparison.Ordinal);

        var secondKeyFile = Path.Combine(Folder.Root, "second.key");
        var keyFile = await RunAsync(null, "keys", "add", "--add-key-file", secondKeyFile);
        AssertExit(ExitCodes.Ok, keyFile);
        Assert.True(File.Exists(secondKeyFile));

        listed = await RunAsync(null, "keys", "list", "--json");
        AssertExit(ExitCodes.Ok, listed);
        var providers = Providers(listed);
        Assert.Equal(["keyfile", "keyfile", "passphrase", "recovery"], providers.Select(p => p.Kind).Order(StringComparer.Ordinal));
        var text = await RunAsync(null, "keys", "list");
        AssertExit(ExitCodes.Ok, text);
        Assert.All(shares, s => Assert.DoesNotContain(s.Split('-')[4], text.Output, StringComparison.Ordinal));

        var recoveryId = recovery.Json().GetProperty("keyId").GetString()!;
        var removed = await RunAsync(null, "keys", "remove", recoveryId, "--json");
        AssertExit(ExitCodes.Ok, removed);
        AssertExit(ExitCodes.NotFound, await RunAsync(null, "keys", "remove", recoveryId));

        // The folder opens with its key file; once that provider is removed, only with another.
        AssertExit(ExitCodes.Ok, await RunAsync(null, "keys", "remove", passphrase.Json().GetProperty("keyId").GetString()!));
        AssertExit(ExitCodes.Ok, await RunAsync(null, "keys", "remove", original));
        var refused = await RunAsync(null, "backups", "list", "--json");
        AssertExit(ExitCodes.Integrity, refused);
        Assert.Equal("KeyProviderNotRegistered", refused.Json().GetProperty("error").GetProperty("code").GetString());

        var last = await RunAsync(null, "keys", "remove", Providers(await RunAsync(null, "keys", "list", "--json", "--key-file", secondKeyFile)).Single().KeyId, "--key-file", secondKeyFile, "--json");
        AssertExit(ExitCodes.Refused, last);
        Assert.Equal("LastKeyProvider", last.Json().GetProperty("error").GetProperty("code").GetString());
        AssertExit(ExitCodes.Ok, await RunAsync(null, "backups", "list", "--key-file", secondKeyFile));
    }
}
