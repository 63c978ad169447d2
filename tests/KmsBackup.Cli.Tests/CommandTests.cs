// Over 400 lines: every command of the tool run in one in-process fixture, one test per behaviour.
using System.Text.Json;

namespace KmsBackup.Cli.Tests;

/// <summary>The command tree run in-process over a temp folder: output shapes, exit codes, refusals with remedies.</summary>
public sealed class CommandTests : IAsyncLifetime
{
    private CliFolder _folder = null!;

    private string Backup => _folder.BackupId;

    public async Task InitializeAsync() => _folder = await CliFolder.CreateAsync();

    public async Task DisposeAsync() => await _folder.DisposeAsync();

    private static void AssertExit(int expected, CliRun run) => Assert.True(run.ExitCode == expected, $"expected exit {expected}, got {run}");

    [Fact]
    [Trait("Rule", "K1")]
    [Trait("Rule", "W2")]
    public async Task Backups_list_json_gives_each_backup_with_its_type_and_queryable_range()
    {
        var run = await _folder.RunAsync("backups", "list", "--json");

        AssertExit(ExitCodes.Ok, run);
        var backup = Assert.Single(run.Json().EnumerateArray().ToList());
        Assert.Equal(Backup, backup.GetProperty("id").GetString());
        Assert.Equal("System Created", backup.GetProperty("type").GetString());
        Assert.Equal("automatic", backup.GetProperty("kind").GetString());
        Assert.Equal("enabled", backup.GetProperty("status").GetString());
        Assert.Equal(90, backup.GetProperty("viewableDays").GetInt32());
        var range = backup.GetProperty("queryableRange");
        Assert.Equal("2026-05-01", range.GetProperty("start").GetString());
        Assert.Equal("2026-05-02", range.GetProperty("end").GetString());
        Assert.Equal("kst-src", backup.GetProperty("instance").GetProperty("id").GetString());
        Assert.Equal("incremental", backup.GetProperty("latestPoint").GetProperty("kind").GetString());
    }

    [Fact]
    public async Task Clock_show_tells_a_hold_of_deletions_that_reads_leave_alone_and_confirm_ends()
    {
        const string Later = "2026-09-01T00:00:00Z"; // months after the folder's last run: a clock the store cannot trust
        string[] StoreImage() => [.. Directory.EnumerateFiles(_folder.PathOf("store"), "*", SearchOption.AllDirectories)
            .Where(p => !p.Contains($"{Path.DirectorySeparatorChar}leases{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Select(p => $"{p} {new FileInfo(p).Length}").Order(StringComparer.Ordinal)];
        var before = StoreImage();

        AssertExit(ExitCodes.Ok, await _folder.RunAsync("backups", "list", "--now", Later));
        AssertExit(ExitCodes.Ok, await _folder.RunAsync("backups", "show", Backup, "--now", Later));
        var show = await _folder.RunAsync("clock", "show", "--json", "--now", Later);
        AssertExit(ExitCodes.Ok, show);
        Assert.True(show.Json().GetProperty("deletionsHeld").GetBoolean());
        Assert.Equal("2026-05-02T01:00:00Z", show.Json().GetProperty("storeTime").GetString());
        Assert.Equal(before, StoreImage());

        AssertExit(ExitCodes.Usage, await _folder.RunAsync("clock", "confirm", "--now", Later));
        var confirm = await _folder.RunAsync("clock", "confirm", "--yes", "--json", "--now", Later);
        AssertExit(ExitCodes.Ok, confirm);
        Assert.False(confirm.Json().GetProperty("deletionsHeld").GetBoolean());
        Assert.Equal(Later, confirm.Json().GetProperty("storeTime").GetString());
        Assert.False((await _folder.RunAsync("clock", "show", "--json", "--now", Later)).Json().GetProperty("deletionsHeld").GetBoolean());
    }

    [Fact]
    [Trait("Rule", "D4")]
    public async Task Repository_key_rotate_needs_yes_and_rekey_moves_every_pack_to_the_new_generation()
    {
        AssertExit(ExitCodes.Usage, await _folder.RunAsync("repository-key", "rotate"));
        var rotate = await _folder.RunAsync("repository-key", "rotate", "--yes", "--json");
        AssertExit(ExitCodes.Ok, rotate);
        Assert.Equal(2, rotate.Json().GetProperty("keyGeneration").GetInt32());

        AssertExit(ExitCodes.Usage, await _folder.RunAsync("repository-key", "rekey", "--max-packs", "0"));
        var rekey = await _folder.RunAsync("repository-key", "rekey", "--json");
        AssertExit(ExitCodes.Ok, rekey);
        Assert.True(rekey.Json().GetProperty("complete").GetBoolean());
        Assert.True(rekey.Json().GetProperty("packsRewritten").GetInt32() > 0);

        var verify = await _folder.RunAsync("verify", "--json");
        AssertExit(ExitCodes.Ok, verify);
        Assert.Equal(2, verify.Json().GetProperty("keyGeneration").GetInt32());
        Assert.True(verify.Json().GetProperty("packsByKeyGeneration").GetProperty("2").GetInt32() > 0);
        var view = await _folder.RunAsync("backups", "show", Backup);
        AssertExit(ExitCodes.Ok, view);
    }

    [Fact]
    public async Task Backups_list_as_a_table_shows_the_label_and_range()
    {
        var run = await _folder.RunAsync("backups", "list");

        AssertExit(ExitCodes.Ok, run);
        Assert.Contains("System Created", run.Output, StringComparison.Ordinal);
        Assert.Contains("2026-05-01..2026-05-02", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Now_evaluates_the_window_at_another_instant()
    {
        var run = await _folder.RunAsync("backups", "show", Backup, "--json", "--now", "2026-05-20T10:00:00Z");

        AssertExit(ExitCodes.Ok, run);
        Assert.Equal("2026-05-20", run.Json().GetProperty("queryableRange").GetProperty("end").GetString());
    }

    [Fact]
    [Trait("Rule", "D2")]
    public async Task Data_json_gives_the_six_views_of_a_date_with_metadata_and_never_a_secret_value()
    {
        var run = await _folder.RunAsync("data", Backup, "--date", "2026-05-02", "--json");

        AssertExit(ExitCodes.Ok, run);
        var json = run.Json();
        Assert.Equal("2026-05-02", json.GetProperty("date").GetString());
        var views = json.GetProperty("views").EnumerateArray().ToDictionary(v => v.GetProperty("type").GetString()!);
        Assert.Equal(
            ["fully-backed-up-keys", "incrementally-backed-up-keys", "rotated-keys", "fully-backed-up-secrets", "incrementally-backed-up-secrets", "rotated-secrets"],
            views.Keys.ToArray());
        var keys = views["fully-backed-up-keys"].GetProperty("items").EnumerateArray().Select(i => i.GetProperty("name").GetString()).ToList();
        Assert.Equal(["billing", "orders"], keys);
        var secret = Assert.Single(views["fully-backed-up-secrets"].GetProperty("items").EnumerateArray().ToList());
        Assert.Equal("db-password", secret.GetProperty("name").GetString());
        Assert.StartsWith("key-", secret.GetProperty("encryptionKeyId").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain(CliFolder.SecretValue, run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Data_of_one_type_as_a_table_uses_the_seeds_title()
    {
        var run = await _folder.RunAsync("data", Backup, "--date", "2026-05-02", "--type", "fully-backed-up-keys");

        AssertExit(ExitCodes.Ok, run);
        Assert.Contains("Fully Backed up Keys", run.Output, StringComparison.Ordinal);
        Assert.Contains("orders", run.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Rotated Keys", run.Output, StringComparison.Ordinal);

        var prefixed = await _folder.RunAsync("data", Backup, "--date", "2026-05-02", "--type", "fully-backed-up-keys", "--name-prefix", "ord", "--json");
        AssertExit(ExitCodes.Ok, prefixed);
        var names = prefixed.Json().GetProperty("views")[0].GetProperty("items").EnumerateArray().Select(i => i.GetProperty("name").GetString()).ToList();
        Assert.Equal(["orders"], names);
    }

    [Fact]
    [Trait("Rule", "W2")]
    [Trait("Rule", "W4")]
    public async Task A_date_outside_the_window_is_refused_with_exit_3_and_the_viewable_days_it_needs()
    {
        var run = await _folder.RunAsync("data", Backup, "--date", "2026-04-01", "--json");

        AssertExit(ExitCodes.Refused, run);
        var error = run.Json().GetProperty("error");
        Assert.Equal("DateBeforeEnabled", error.GetProperty("code").GetString());
        Assert.Equal(ExitCodes.Refused, error.GetProperty("exitCode").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("remedy").GetString()));
    }

    [Fact]
    [Trait("Rule", "R4")]
    [Trait("Rule", "R6")]
    public async Task A_restore_plan_with_a_missing_key_prints_the_code_and_the_remedy_and_exits_3()
    {
        var run = await _folder.RunAsync("restore", "plan", Backup, "--date", "2026-05-02", "--secret", "db-password", "--target", "kst-src");

        AssertExit(ExitCodes.Refused, run);
        Assert.Contains("db-password", run.Output, StringComparison.Ordinal);
        Assert.Contains("refused", run.Output, StringComparison.Ordinal);
        Assert.Contains("EncryptionKeyMissing", run.Output, StringComparison.Ordinal);
        Assert.Contains("Remedy: Restore the key", run.Output, StringComparison.Ordinal);
        Assert.Contains("Refused: 1 violation(s); nothing would be written.", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "R6")]
    [Trait("Rule", "R8")]
    public async Task A_restore_plan_json_lists_every_item_with_its_outcome_and_refusals()
    {
        var run = await _folder.RunAsync("restore", "plan", Backup, "--date", "2026-05-02", "--all", "--target", "kst-src", "--json");

        AssertExit(ExitCodes.Refused, run);
        var plan = run.Json().GetProperty("plan"); // a refused plan is an error document, as a refused run is
        Assert.Equal("NameConflict", run.Json().GetProperty("error").GetProperty("code").GetString());
        Assert.False(plan.GetProperty("canExecute").GetBoolean());
        Assert.Equal("kst-src", plan.GetProperty("targetInstance").GetString());
        var items = plan.GetProperty("items").EnumerateArray().ToDictionary(i => i.GetProperty("name").GetString()!);
        Assert.Equal(["billing", "orders", "db-password"], items.Keys.ToArray());
        Assert.Equal("refused", items["billing"].GetProperty("outcome").GetString());
        var refusals = items["billing"].GetProperty("refusals").EnumerateArray().ToList();
        Assert.All(refusals, r => Assert.Equal("NameConflict", r.GetProperty("code").GetString()));
        var conflict = refusals[0];
        Assert.Equal("key 'billing'", conflict.GetProperty("item").GetString());
        Assert.Contains("kst-src", conflict.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("Delete the conflicting item", conflict.GetProperty("remedy").GetString(), StringComparison.Ordinal);
        Assert.Equal("restore", items["orders"].GetProperty("outcome").GetString());
    }

    [Fact]
    [Trait("Rule", "R4")]
    public async Task A_refused_restore_run_exits_3_writes_nothing_and_gives_the_error_with_the_plan()
    {
        var run = await _folder.RunAsync("restore", "run", Backup, "--date", "2026-05-02", "--all", "--target", "kst-small", "--json");

        AssertExit(ExitCodes.Refused, run);
        var json = run.Json();
        Assert.Equal("InsufficientQuota", json.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("upgrade the target instance", json.GetProperty("error").GetProperty("remedy").GetString(), StringComparison.Ordinal);
        Assert.False(json.GetProperty("plan").GetProperty("canExecute").GetBoolean());

        var instances = await _folder.RunAsync("instances", "list", "--json");
        AssertExit(ExitCodes.Ok, instances);
        Assert.Contains(instances.Json().EnumerateArray(), i => i.GetProperty("id").GetString() == "kst-small");
    }

    [Fact]
    [Trait("Rule", "R7")]
    public async Task A_restore_run_restores_the_key_before_its_secret_and_a_rerun_with_its_operation_id_restores_nothing_twice()
    {
        var args = new[] { "restore", "run", Backup, "--date", "2026-05-02", "--key", "orders", "--secret", "db-password", "--target", "kst-src", "--operation-id", "op-cli-1", "--json" };
        var run = await _folder.RunAsync(args);

        AssertExit(ExitCodes.Ok, run);
        var json = run.Json();
        Assert.Equal("op-cli-1", json.GetProperty("operationId").GetString());
        Assert.Equal(["orders", "db-password"], json.GetProperty("restored").EnumerateArray().Select(e => e.GetString()!).ToArray());

        var again = await _folder.RunAsync(args);
        AssertExit(ExitCodes.Ok, again);
        Assert.Empty(again.Json().GetProperty("restored").EnumerateArray());
        Assert.Equal(2, again.Json().GetProperty("alreadyRestored").GetArrayLength());
    }

    [Fact]
    public async Task A_restore_run_in_text_prints_the_plan_and_what_was_restored()
    {
        var run = await _folder.RunAsync("restore", "run", Backup, "--date", "2026-05-02", "--type", "fully-backed-up-keys", "--key", "orders", "--target", "kst-far");

        AssertExit(ExitCodes.Ok, run);
        Assert.Contains("Restore plan", run.Output, StringComparison.Ordinal);
        Assert.Contains("Restored 1 item(s) into kst-far", run.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("restore", "plan", "BACKUP", "--date", "2026-05-02", "--all")] // --target is required
    [InlineData("restore", "plan", "BACKUP", "--date", "2026-13-01", "--all", "--target", "kst-src")] // not a date
    [InlineData("restore", "plan", "BACKUP", "--all", "--target", "kst-src")] // neither --date nor --at
    [InlineData("restore", "plan", "BACKUP", "--date", "2026-05-02", "--at", "2026-05-02T00:00:00Z", "--all", "--target", "kst-src")] // both
    [InlineData("restore", "plan", "BACKUP", "--date", "2026-05-02", "--all", "--key", "orders", "--target", "kst-src")] // names and --all
    [InlineData("data", "BACKUP", "--date", "2026-05-02", "--type", "all-the-keys")] // not a data type
    [InlineData("backups", "frobnicate")] // no such command
    [InlineData("reset", "BACKUP")] // reset without --yes
    [InlineData("download", "BACKUP", "--date", "2026-05-02")] // --out is required
    public async Task Bad_usage_exits_2_with_a_message(params string[] args)
    {
        var run = await _folder.RunAsync([.. args.Select(a => a == "BACKUP" ? Backup : a)]);

        AssertExit(ExitCodes.Usage, run);
        Assert.False(string.IsNullOrWhiteSpace(run.Error + run.Output));
    }

    [Fact]
    public async Task Bad_usage_in_json_is_an_error_document()
    {
        var run = await _folder.RunAsync("restore", "plan", Backup, "--all", "--target", "kst-src", "--json");

        AssertExit(ExitCodes.Usage, run);
        Assert.Equal("Usage", run.Json().GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("--date", run.Json().GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("Run 'kmsbackup restore plan --help' for the options.", run.Json().GetProperty("error").GetProperty("remedy").GetString()); // the command itself, not '<command>'

        var reset = await _folder.RunAsync("reset", Backup, "--json");
        Assert.Equal("Run 'kmsbackup reset --help' for the options.", reset.Json().GetProperty("error").GetProperty("remedy").GetString());
    }

    [Fact]
    public async Task A_parse_error_in_json_is_an_error_document_too()
    {
        var run = await _folder.RunAsync("data", Backup, "--date", "not-a-date", "--json");

        AssertExit(ExitCodes.Usage, run);
        var error = run.Json().GetProperty("error");
        Assert.Equal("Usage", error.GetProperty("code").GetString());
        Assert.Contains("not-a-date", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, error.GetProperty("exitCode").GetInt32());
    }

    [Fact]
    public async Task A_missing_account_is_bad_usage()
    {
        var run = await _folder.RunWithEnvironmentAsync(new Dictionary<string, string> { ["KMSBACKUP_ROOT"] = _folder.Root }, "backups", "list");

        AssertExit(ExitCodes.Usage, run);
        Assert.Contains("--account", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_backup_and_a_folder_without_a_store_exit_4()
    {
        var unknown = await _folder.RunAsync("backups", "show", "bka-nope", "--json");
        AssertExit(ExitCodes.NotFound, unknown);
        Assert.Equal("NotFound", unknown.Json().GetProperty("error").GetProperty("code").GetString());

        var empty = Directory.CreateTempSubdirectory("kmsbackup-cli-empty-");
        try
        {
            var noFolder = await _folder.RunAsync("backups", "list", "--root", empty.FullName);
            AssertExit(ExitCodes.NotFound, noFolder);
            Assert.Contains("Remedy", noFolder.Error, StringComparison.Ordinal);
            Assert.Empty(Directory.EnumerateFileSystemEntries(empty.FullName));
        }
        finally
        {
            empty.Delete(recursive: true);
        }
    }

    [Fact]
    [Trait("Rule", "R2")]
    public async Task Another_account_is_denied_with_exit_3()
    {
        var run = await _folder.RunAsync("backups", "show", Backup, "--account", "acct-intruder", "--json");

        AssertExit(ExitCodes.Refused, run);
        Assert.Equal("AccessDenied", run.Json().GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    [Trait("Rule", "L5")]
    [Trait("Rule", "L6")]
    public async Task Extending_an_automatic_backup_and_resetting_it_are_refused()
    {
        var extend = await _folder.RunAsync("extend", Backup, "--days", "120", "--json");
        AssertExit(ExitCodes.Refused, extend);

        var reset = await _folder.RunAsync("reset", Backup, "--yes");
        AssertExit(ExitCodes.Refused, reset);
        Assert.Contains("Remedy", reset.Error, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "F1")]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F4")]
    public async Task Download_prints_the_data_key_once_marked_then_verify_file_and_upload_accept_it()
    {
        var file = _folder.PathOf("day2.kbf");
        var download = await _folder.RunAsync("download", Backup, "--date", "2026-05-02", "--out", file);

        AssertExit(ExitCodes.Ok, download);
        var lines = download.Output.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var marker = Array.FindIndex(lines, l => l.StartsWith("DATA KEY (base64), shown once", StringComparison.Ordinal));
        Assert.True(marker >= 0, download.ToString());
        var key = lines[marker + 1];
        Assert.Equal(32, Convert.FromBase64String(key).Length);
        Assert.Single(lines, l => l.Contains(key, StringComparison.Ordinal));

        var verify = await _folder.RunWithEnvironmentAsync(
            new Dictionary<string, string> { ["KMSBACKUP_ROOT"] = _folder.Root, ["KMSBACKUP_ACCOUNT"] = CliFolder.Owner, ["KMSBACKUP_DATA_KEY"] = key },
            "verify-file", file, "--json");
        AssertExit(ExitCodes.Ok, verify);
        Assert.True(verify.Json().GetProperty("authentic").GetBoolean());

        var upload = await _folder.RunAsync("upload", file, "--name", "day2-upload", "--data-key", key, "--json");
        AssertExit(ExitCodes.Ok, upload);
        Assert.Equal("Upload", upload.Json().GetProperty("type").GetString());
        Assert.Equal("2026-05-02", upload.Json().GetProperty("queryableRange").GetProperty("start").GetString());

        // One name, one upload; an uploaded backup can be deleted (with --yes), a default one cannot.
        var again = await _folder.RunAsync("upload", file, "--name", "day2-upload", "--data-key", key, "--json");
        Assert.Equal("NameConflict", again.Json().GetProperty("error").GetProperty("code").GetString());
        var uploaded = upload.Json().GetProperty("id").GetString()!;
        AssertExit(ExitCodes.Usage, await _folder.RunAsync("delete", uploaded));
        var notUploaded = await _folder.RunAsync("delete", Backup, "--yes", "--json");
        Assert.Equal("OperationNotSupported", notUploaded.Json().GetProperty("error").GetProperty("code").GetString());
        var deleted = await _folder.RunAsync("delete", uploaded, "--yes", "--json");
        AssertExit(ExitCodes.Ok, deleted);
        Assert.Equal("released", deleted.Json().GetProperty("status").GetString());
        AssertExit(ExitCodes.Ok, await _folder.RunAsync("upload", file, "--name", "day2-upload", "--data-key", key));
    }

    [Fact]
    [Trait("Rule", "F1")]
    public async Task Download_with_a_key_file_keeps_the_key_out_of_the_output_and_the_file_is_owner_only()
    {
        var file = _folder.PathOf("day2.kbf");
        var keyFile = _folder.PathOf("day2.key");
        var download = await _folder.RunAsync("download", Backup, "--date", "2026-05-02", "--out", file, "--data-key-out", keyFile, "--json");

        AssertExit(ExitCodes.Ok, download);
        var json = download.Json();
        Assert.Equal(JsonValueKind.Null, json.GetProperty("dataKey").ValueKind);
        Assert.Equal(keyFile, json.GetProperty("dataKeyFile").GetString());
        var key = File.ReadAllText(keyFile).Trim();
        Assert.DoesNotContain(key, download.Output, StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile));
        }

        var verify = await _folder.RunAsync("verify-file", file, "--data-key-file", keyFile);
        AssertExit(ExitCodes.Ok, verify);
        Assert.Contains("Authentic", verify.Output, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "F1")]
    public async Task The_data_key_file_is_created_exclusively_before_the_download_so_a_link_planted_meanwhile_gets_nothing()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var file = _folder.PathOf("day2.kbf");
        var keyFile = _folder.PathOf("day2.key");
        var victim = _folder.PathOf("somewhere-the-attacker-reads.txt");
        File.WriteAllText(victim, "the attacker's file\n");
        File.SetUnixFileMode(victim, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        // The attacker plants a link at the key file's path once the tool has checked that the path is free and starts downloading.
        var planted = false;
        var files = new HookedFileSystem(new System.IO.Abstractions.FileSystem(), path =>
        {
            if (path == file && !File.Exists(keyFile))
            {
                File.CreateSymbolicLink(keyFile, victim);
                planted = true;
            }
        });
        var download = await _folder.RunWithFilesAsync(files, "download", Backup, "--date", "2026-05-02", "--out", file, "--data-key-out", keyFile, "--json");

        AssertExit(ExitCodes.Ok, download);
        Assert.Equal("the attacker's file\n", File.ReadAllText(victim));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(victim));
        Assert.False(planted, "the key file should exist before the download starts, leaving no moment to plant a link");
        Assert.Null(new FileInfo(keyFile).LinkTarget);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile));
        AssertExit(ExitCodes.Ok, await _folder.RunAsync("verify-file", file, "--data-key-file", keyFile));
    }

    [Fact]
    [Trait("Rule", "F1")]
    public async Task A_download_that_fails_leaves_no_key_file_and_an_existing_key_file_is_never_touched()
    {
        var file = _folder.PathOf("day9.kbf");
        var keyFile = _folder.PathOf("day9.key");
        var refused = await _folder.RunAsync("download", Backup, "--date", "2026-04-20", "--out", file, "--data-key-out", keyFile);
        AssertExit(ExitCodes.Refused, refused);
        Assert.False(File.Exists(keyFile));
        Assert.False(File.Exists(file));

        File.WriteAllText(keyFile, "an older key\n");
        var exists = await _folder.RunAsync("download", Backup, "--date", "2026-05-02", "--out", file, "--data-key-out", keyFile);
        AssertExit(ExitCodes.Usage, exists);
        Assert.Equal("an older key\n", File.ReadAllText(keyFile));
        Assert.False(File.Exists(file));
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task A_damaged_file_or_a_wrong_key_exits_5_and_imports_nothing()
    {
        var file = _folder.PathOf("day2.kbf");
        var keyFile = _folder.PathOf("day2.key");
        AssertExit(ExitCodes.Ok, await _folder.RunAsync("download", Backup, "--date", "2026-05-02", "--out", file, "--data-key-out", keyFile));

        var wrongKey = Convert.ToBase64String(new byte[32]);
        var wrong = await _folder.RunAsync("verify-file", file, "--data-key", wrongKey, "--json");
        AssertExit(ExitCodes.Integrity, wrong);
        Assert.Equal("WrongFileKey", wrong.Json().GetProperty("error").GetProperty("code").GetString());

        var bytes = File.ReadAllBytes(file);
        bytes[^5] ^= 0x40;
        File.WriteAllBytes(file, bytes);
        var damaged = await _folder.RunAsync("upload", file, "--name", "damaged", "--data-key-file", keyFile, "--json");
        AssertExit(ExitCodes.Integrity, damaged);
        Assert.Equal("FileCorrupt", damaged.Json().GetProperty("error").GetProperty("code").GetString());

        var list = await _folder.RunAsync("backups", "list", "--json");
        Assert.Single(list.Json().EnumerateArray());
    }

    [Fact]
    public async Task Download_refuses_to_overwrite_a_file()
    {
        var file = _folder.PathOf("exists.kbf");
        File.WriteAllText(file, "keep me");

        var run = await _folder.RunAsync("download", Backup, "--date", "2026-05-02", "--out", file);

        AssertExit(ExitCodes.Usage, run);
        Assert.Equal("keep me", File.ReadAllText(file));
    }

    [Fact]
    public async Task Verify_reports_a_clean_store_and_exit_5_for_a_damaged_one()
    {
        var clean = await _folder.RunAsync("verify", "--json");
        AssertExit(ExitCodes.Ok, clean);
        Assert.True(clean.Json().GetProperty("clean").GetBoolean());
        Assert.True(clean.Json().GetProperty("pointsChecked").GetInt32() > 0);
        Assert.True(clean.Json().GetProperty("packBytes").GetInt64() >= clean.Json().GetProperty("referencedBytes").GetInt64());
        var text = await _folder.RunAsync("verify");
        Assert.Contains("Clean: ", text.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Clean: clean:", text.Output, StringComparison.Ordinal); // issue 16, finding 8
        Assert.Contains("MB that recovery points refer to", text.Output, StringComparison.Ordinal);

        var pack = Directory.EnumerateFiles(Path.Combine(_folder.Root, "store"), "*", SearchOption.AllDirectories)
            .Where(p => p.Contains($"{Path.DirectorySeparatorChar}packs{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .OrderByDescending(p => new FileInfo(p).Length)
            .First();
        var bytes = File.ReadAllBytes(pack);
        bytes[bytes.Length / 2] ^= 0x01;
        File.WriteAllBytes(pack, bytes);

        var damaged = await _folder.RunAsync("verify");
        AssertExit(ExitCodes.Integrity, damaged);
        Assert.Contains("Damaged", damaged.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_of_a_store_holding_a_link_below_its_folder_exits_5_and_names_the_link()
    {
        var canary = _folder.PathOf("canary");
        Directory.CreateDirectory(canary);
        File.WriteAllText(Path.Combine(canary, new string('e', 64)), "not a pack of this store");
        Directory.CreateSymbolicLink(Path.Combine(_folder.Root, "store", "objects", "packs", "ee"), canary);

        var verify = await _folder.RunAsync("verify", "--json");

        AssertExit(ExitCodes.Integrity, verify);
        var error = verify.Json().GetProperty("error");
        Assert.Equal("StoreLinkRefused", error.GetProperty("code").GetString());
        Assert.Equal("store link 'objects/packs/ee'", error.GetProperty("item").GetString());
        Assert.Equal("not a pack of this store", File.ReadAllText(Path.Combine(canary, new string('e', 64))));
    }

    [Fact]
    public async Task Run_runs_the_backups_that_are_due()
    {
        _folder.Clock.Advance(TimeSpan.FromMinutes(10));

        var run = await _folder.RunAsync("run", "--json");

        AssertExit(ExitCodes.Ok, run);
        var points = run.Json().EnumerateArray().ToList();
        var incremental = Assert.Single(points, p => p.GetProperty("backupId").GetString() == _folder.BackupId);
        Assert.Equal("incremental", incremental.GetProperty("point").GetProperty("kind").GetString());

        // The two restore-target instances were enabled in the service and never reported: the run learns them and
        // gives each its automatic backup, with a first full.
        var learned = points.Where(p => p.GetProperty("backupId").GetString() != _folder.BackupId).ToList();
        Assert.Equal(2, learned.Count);
        Assert.All(learned, p => Assert.Equal("full", p.GetProperty("point").GetProperty("kind").GetString()));
        var list = await _folder.RunAsync("backups", "list", "--json");
        AssertExit(ExitCodes.Ok, list);
        var instances = list.Json().EnumerateArray().Where(b => b.GetProperty("type").GetString() == "System Created")
            .Select(b => b.GetProperty("instance").GetProperty("id").GetString()).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["kst-far", "kst-small", "kst-src"], instances);

        // Nothing is due a moment later, and nothing is created twice.
        var again = await _folder.RunAsync("run", "--json");
        AssertExit(ExitCodes.Ok, again);
        Assert.Empty(again.Json().EnumerateArray().ToList());
    }

    [Fact]
    public async Task Help_documents_the_exit_codes()
    {
        var run = await _folder.RunAsync("--help");

        AssertExit(ExitCodes.Ok, run);
        Assert.Contains("kmsbackup", run.Output, StringComparison.Ordinal);
        Assert.Contains("Exit codes:", run.Output, StringComparison.Ordinal);
        Assert.Contains("3    refused by a rule", run.Output, StringComparison.Ordinal);
    }
}
