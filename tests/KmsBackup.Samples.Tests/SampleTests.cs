namespace KmsBackup.Samples.Tests;

/// <summary>The samples run as users run them, from their built output, and end as the README says.</summary>
public class SampleTests
{
    [Fact]
    public async Task The_quick_start_runs_the_whole_lifecycle_and_ends_with_its_summary()
    {
        var dll = Repository.OutputOf(Path.Combine("samples", "Sample1_QuickStart"), "Sample1_QuickStart.dll");
        Assert.True(File.Exists(dll), $"Build the solution first: {dll} is missing.");

        var run = await Repository.DotnetAsync(Repository.Root, TimeSpan.FromMinutes(3), dll);

        Assert.True(run.ExitCode == 0, run.ToString());
        var lines = run.Output.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var summary = lines[^1];
        // kst-hz-1's three backups, the upload, and the automatic backups the scheduler gave kst-hz-2 and kst-sh-1,
        // enabled in the service and never reported.
        Assert.StartsWith("Summary: 6 backups (System Created, Default, Paid, Upload)", summary, StringComparison.Ordinal);
        Assert.Contains(lines, l => l.Contains("kst-hz-2 is enabled in the service, but nobody reported it", StringComparison.Ordinal));
        Assert.Contains("store verified clean", summary, StringComparison.Ordinal);

        // The seed's May example and the refusals on the way to the restore are in the timeline.
        Assert.Contains(lines, l => l.Contains("REFUSED DateOutsideWindow", StringComparison.Ordinal) && l.Contains("needs 16 viewable days", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("queryable range 2024-05-05..2024-05-20", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("REFUSED EncryptionKeyMissing", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("REFUSED NameConflict", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("REFUSED InsufficientQuota", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("decrypts to its value of May 5: yes", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("REFUSED BackupExpired", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("Released", StringComparison.Ordinal));
        Assert.Empty(run.Error);
    }

    [Fact]
    public void The_readmes_tool_walkthrough_defines_kmsbackup_as_the_built_tool_not_dotnet_run()
    {
        var block = ToolWalkthrough();

        // 'dotnet run --project src/KmsBackup.Cli --' builds before every command: 9 to 18 seconds each.
        Assert.DoesNotContain(block, l => l.Contains("dotnet run --project src/KmsBackup.Cli", StringComparison.Ordinal));
        var build = Assert.Single(block, l => l.StartsWith("dotnet build ", StringComparison.Ordinal));
        Assert.StartsWith("dotnet build src/KmsBackup.Cli -c Release", build, StringComparison.Ordinal);
        var alias = Assert.Single(block, l => l.StartsWith("alias kmsbackup=", StringComparison.Ordinal));
        const string Prefix = "alias kmsbackup=\"dotnet $PWD/";
        Assert.StartsWith(Prefix, alias, StringComparison.Ordinal);
        var dll = alias[Prefix.Length..^1];
        Assert.Equal(Repository.OutputOf(Path.Combine("src", "KmsBackup.Cli"), "KmsBackup.Cli.dll"), Path.Combine(Repository.Root, dll));
        Assert.True(File.Exists(Path.Combine(Repository.Root, dll)), $"the alias runs {dll}, which the build does not write");
    }

    /// <summary>The lines of README.md's code block under "The kmsbackup tool", without comments.</summary>
    private static string[] ToolWalkthrough()
    {
        var readme = File.ReadAllText(Path.Combine(Repository.Root, "README.md")).ReplaceLineEndings("\n");
        var section = readme[readme.IndexOf("\n## The kmsbackup tool\n", StringComparison.Ordinal)..];
        var start = section.IndexOf("```bash\n", StringComparison.Ordinal) + "```bash\n".Length;
        var block = section[start..section.IndexOf("\n```", start, StringComparison.Ordinal)];
        return [.. block.Split('\n').Select(l => (l.IndexOf(" #", StringComparison.Ordinal) is var hash and >= 0 ? l[..hash] : l).TrimEnd())];
    }

    [Fact]
    public async Task A_kept_quick_start_folder_is_explored_by_the_printed_tool_commands_verbatim_download_then_upload_with_the_key()
    {
        var dll = Repository.OutputOf(Path.Combine("samples", "Sample1_QuickStart"), "Sample1_QuickStart.dll");
        var tool = Repository.OutputOf(Path.Combine("src", "KmsBackup.Cli"), "KmsBackup.Cli.dll");
        Assert.True(File.Exists(dll) && File.Exists(tool), $"Build the solution first: {dll} or {tool} is missing.");
        var work = Directory.CreateTempSubdirectory("kmsbackup-walkthrough-").FullName;
        try
        {
            var folder = Path.Combine(work, "quickstart-data");
            var run = await Repository.DotnetAsync(Repository.Root, TimeSpan.FromMinutes(3), dll, folder);
            Assert.True(run.ExitCode == 0, run.ToString());

            // No file is left that nobody can open: the sample's own download lost its key when the sample ended.
            Assert.Empty(Directory.EnumerateFiles(folder, "*.kbf", SearchOption.AllDirectories));

            // The closing lines: an export, then the commands, each run as printed (kmsbackup being the built tool).
            var lines = run.Output.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            var export = Assert.Single(lines, l => l.StartsWith("export ", StringComparison.Ordinal));
            var environment = Words(export[7..]).Select(w => w.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
            Assert.Equal(folder, environment["KMSBACKUP_ROOT"]);
            var commands = lines.Where(l => l.StartsWith("kmsbackup ", StringComparison.Ordinal)).Select(l => Words(l)[1..]).ToList();
            Assert.Equal(["backups", "data", "restore", "download", "verify-file", "upload", "verify"], commands.Select(c => c[0]).ToArray());

            // README.md's walk-through is these commands, with the backup's ID left for the reader to fill in.
            var id = commands[1][1];
            Assert.Equal(
                lines.Where(l => l.StartsWith("kmsbackup ", StringComparison.Ordinal)).ToArray(),
                ToolWalkthrough().Where(l => l.StartsWith("kmsbackup ", StringComparison.Ordinal)).Select(l => l.Replace("<automatic-backup-id>", id, StringComparison.Ordinal)).ToArray());
            var outputs = new List<string>();
            foreach (var command in commands)
            {
                var result = await Repository.RunAsync("dotnet", work, TimeSpan.FromMinutes(2), environment, ["exec", tool, .. command]);
                Assert.True(result.ExitCode == 0, $"kmsbackup {string.Join(' ', command)}: {result}");
                outputs.Add(result.Output);
            }

            Assert.True(File.Exists(Path.Combine(work, "may-5.kbf")) && File.Exists(Path.Combine(work, "may-5.key")));
            Assert.Contains("Authentic", outputs[4], StringComparison.Ordinal);
            Assert.Contains("Uploaded as backup", outputs[5], StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>A command line's words as a POSIX shell splits them, for the double quotes the sample prints around a path.</summary>
    private static string[] Words(string line)
    {
        var words = new List<string>();
        var word = new System.Text.StringBuilder();
        var quoted = false;
        var any = false;
        foreach (var c in line)
        {
            if (c == '"')
            {
                quoted = !quoted;
                any = true;
            }
            else if (c == ' ' && !quoted)
            {
                if (any)
                {
                    words.Add(word.ToString());
                    word.Clear();
                    any = false;
                }
            }
            else
            {
                word.Append(c);
                any = true;
            }
        }

        if (any)
        {
            words.Add(word.ToString());
        }

        return [.. words];
    }

    [SoftHsmFact]
    public async Task The_hardware_restore_walkthrough_restores_a_lost_hardware_instance_on_SoftHSM2_and_ends_with_its_summary()
    {
        var dll = Repository.OutputOf(Path.Combine("samples", "Sample3_HardwareRestore"), "Sample3_HardwareRestore.dll");
        Assert.True(File.Exists(dll), $"Build the solution first: {dll} is missing.");

        var run = await Repository.DotnetAsync(Repository.Root, TimeSpan.FromMinutes(3), dll);

        Assert.True(run.ExitCode == 0, run.ToString());
        var lines = run.Output.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var summary = lines[^1];
        Assert.StartsWith("Summary: hardware instance kst-hw restored into kst-hw-2 on cluster cls-new from Auto Create image", summary, StringComparison.Ordinal);
        Assert.Contains("1 key and 1 secret restored, old data decrypted OK", summary, StringComparison.Ordinal);
        Assert.Contains("store verified clean", summary, StringComparison.Ordinal);

        // The refusals on the way: the original instance (R3), clusters in one zone or enabled (H5), a key
        // whose material no image holds (H7), a secret before its key; then the old data decrypts.
        Assert.Contains(lines, l => l.Contains("REFUSED RestoreTargetNotAllowed", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("REFUSED ClusterTooFewHsms", StringComparison.Ordinal) && l.Contains("cls-one-zone", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("REFUSED ClusterEnabled", StringComparison.Ordinal) && l.Contains("cls-busy", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("Remedy: Do not enable the HSM instance after the purchase", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("REFUSED KeyMaterialMissing", StringComparison.Ordinal) && l.Contains("late-key", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("REFUSED EncryptionKeyMissing", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("decrypted OK with the restored key in kst-hw-2; matches the original: yes", StringComparison.Ordinal));
        Assert.Empty(run.Error);
    }

    [SoftHsmFact]
    public async Task A_kept_hardware_restore_folder_says_no_tool_command_opens_it_and_the_one_it_names_refuses_writing_nothing()
    {
        var dll = Repository.OutputOf(Path.Combine("samples", "Sample3_HardwareRestore"), "Sample3_HardwareRestore.dll");
        var tool = Repository.OutputOf(Path.Combine("src", "KmsBackup.Cli"), "KmsBackup.Cli.dll");
        Assert.True(File.Exists(dll) && File.Exists(tool), $"Build the solution first: {dll} or {tool} is missing.");
        var work = Directory.CreateTempSubdirectory("kmsbackup-hardware-kept-").FullName;
        try
        {
            var folder = Path.Combine(work, "hardware-data");
            var run = await Repository.DotnetAsync(Repository.Root, TimeSpan.FromMinutes(3), dll, folder);
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.True(Directory.Exists(Path.Combine(folder, "store")) && Directory.Exists(Path.Combine(folder, "kms")), run.ToString());

            // Why the tool cannot open it, said where the user reads it, with the command that shows it.
            Assert.Contains("No kmsbackup command opens it", run.Output, StringComparison.Ordinal);
            Assert.Contains("whose PIN was random and is gone", run.Output, StringComparison.Ordinal);
            var quoted = $"'kmsbackup backups list --root \"{folder}\"'";
            Assert.Contains(quoted, run.Output, StringComparison.Ordinal);

            var before = Image(folder);
            var list = await Repository.RunAsync("dotnet", work, TimeSpan.FromMinutes(2),
                new Dictionary<string, string> { ["KMSBACKUP_ACCOUNT"] = "acct-demo" }, "exec", tool, "backups", "list", "--root", folder);
            Assert.True(list.ExitCode == 4, list.ToString());
            Assert.Contains(Path.Combine(folder, "keys", "repository.key"), list.Error, StringComparison.Ordinal);
            Assert.Equal(before, Image(folder));
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }

        static string[] Image(string root) =>
            [.. Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories).Select(e => Path.GetRelativePath(root, e)).Order(StringComparer.Ordinal)];
    }

    [Fact]
    public async Task The_hardware_restore_walkthrough_says_SoftHSM2_is_missing_and_exits_3()
    {
        var dll = Repository.OutputOf(Path.Combine("samples", "Sample3_HardwareRestore"), "Sample3_HardwareRestore.dll");
        Assert.True(File.Exists(dll), $"Build the solution first: {dll} is missing.");
        var missing = Path.Combine(Path.GetTempPath(), "no-softhsm-" + Guid.NewGuid().ToString("N"), "libsofthsm2.so");

        var run = await Repository.RunAsync("dotnet", Repository.Root, TimeSpan.FromMinutes(1),
            new Dictionary<string, string> { ["KMSBACKUP_PKCS11_LIBRARY"] = missing }, dll);

        Assert.True(run.ExitCode == 3, run.ToString());
        Assert.Contains("SoftHSM2 is missing", run.Error, StringComparison.Ordinal);
        Assert.Contains("apt-get install softhsm2", run.Error, StringComparison.Ordinal);
        Assert.Empty(run.Output);
    }
}
