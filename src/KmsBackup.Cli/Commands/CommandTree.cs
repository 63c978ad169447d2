using System.CommandLine;
using System.CommandLine.Help;
using System.Globalization;
using KmsBackup.Cli.Output;

namespace KmsBackup.Cli.Commands;

/// <summary>
/// The <c>kmsbackup</c> command tree. Each handler is thin: it reads its options, makes one or two
/// <see cref="BackupClient"/> calls and renders the result.
/// </summary>
internal static partial class CommandTree
{
    public const string Description =
        "Backups of key management instances in a local folder (the file-system store, the embedded key management service and the repository key file): "
        + "list backups and their queryable range, view a date's data, plan and run restores, extend, reset and renew, download, upload and verify backup files, verify the store.";

    /// <summary>Parses and runs a command line; returns the exit code (<see cref="ExitCodes"/>).</summary>
    public static async Task<int> InvokeAsync(string[] args, CliHost host, CancellationToken cancellationToken = default)
    {
        var root = Build(host);
        var result = root.Parse(args);
        if (result.Errors.Count > 0)
        {
            // Usage errors get their own exit code (the parser's default is 1, the same as any failure).
            if (args.Contains("--json", StringComparer.Ordinal))
            {
                var message = string.Join(" ", result.Errors.Select(e => e.Message));
                Json.Write(host.Output, new JsonErrorDocument(new JsonError("Usage", "", message, $"Run '{Invocation.PathOf(result)} --help' for the options.", ExitCodes.Usage)));
                return ExitCodes.Usage;
            }

            foreach (var error in result.Errors)
            {
                await host.Error.WriteLineAsync($"Usage: {error.Message}").ConfigureAwait(false);
            }

            await host.Error.WriteLineAsync($"Run '{Invocation.PathOf(result)} --help' for usage.").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        var exit = await result.InvokeAsync(new InvocationConfiguration { Output = host.Output, Error = host.Error }, cancellationToken).ConfigureAwait(false);
        await host.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
        return exit;
    }

    public static Command Build(CliHost host)
    {
        var globals = new GlobalOptions();

        // A plain command named as the tool (a RootCommand takes the process's name, 'KmsBackup.Cli' under 'dotnet run').
        var root = new Command("kmsbackup", Description + Environment.NewLine + Environment.NewLine + ExitCodes.Summary)
        {
            new HelpOption(),
            new VersionOption(),
        };
        globals.AddTo(root);
        root.Add(InitCommand(host, globals));
        root.Add(BackupsCommand(host, globals));
        root.Add(InstancesCommand(host, globals));
        root.Add(DataCommand(host, globals));
        root.Add(RestoreCommand(host, globals));
        root.Add(ExtendCommand(host, globals));
        root.Add(ResetCommand(host, globals));
        root.Add(DeleteCommand(host, globals));
        root.Add(RenewCommand(host, globals));
        root.Add(DownloadCommand(host, globals));
        root.Add(UploadCommand(host, globals));
        root.Add(VerifyFileCommand(host, globals));
        root.Add(VerifyCommand(host, globals));
        root.Add(DrillCommand(host, globals));
        root.Add(ClockCommand(host, globals));
        root.Add(RepositoryKeyCommand(host, globals));
        root.Add(KeysCommand(host, globals));
        root.Add(RunCommand(host, globals));
        root.Add(CopyCommand(host, globals));
        root.Add(HealthCommand(host, globals));
        RequireCommands(root, root.Name, host);
        return root;
    }

    /// <summary>
    /// Gives every command that only groups others (the tool itself, 'backups', 'restore', ...) an action that says
    /// which commands it has, instead of the parser's "Required command was not provided".
    /// </summary>
    private static void RequireCommands(Command command, string path, CliHost host)
    {
        if (command.Subcommands.Count == 0)
        {
            return;
        }

        if (command.Action is null)
        {
            var message = $"'{path}' needs a command: {string.Join(", ", command.Subcommands.Select(c => c.Name))}.";
            var remedy = $"Run '{path} --help' for what each does.";
            command.SetAction(async (result, cancellationToken) =>
            {
                if (result.GetValue<bool>("--json"))
                {
                    Json.Write(host.Output, new JsonErrorDocument(new JsonError("Usage", path, message, remedy, ExitCodes.Usage)));
                    return ExitCodes.Usage;
                }

                await host.Error.WriteLineAsync($"Usage: {message}").ConfigureAwait(false);
                await host.Error.WriteLineAsync(remedy).ConfigureAwait(false);
                return ExitCodes.Usage;
            });
        }

        foreach (var subcommand in command.Subcommands)
        {
            RequireCommands(subcommand, $"{path} {subcommand.Name}", host);
        }
    }

    private static void Handle(Command command, CliHost host, GlobalOptions globals, Func<Invocation, CancellationToken, Task<int>> handler) =>
        command.SetAction((result, cancellationToken) => Invocation.RunAsync(result, host, globals, handler, cancellationToken));

    private static Argument<string> BackupIdArgument() => new("backup-id") { Description = "The backup's ID (see 'kmsbackup backups list')." };

    private static Option<DateOnly> DateOption(bool required) => new("--date")
    {
        Description = "The backup date, yyyy-MM-dd, in the backup's time zone.",
        Required = required,
        CustomParser = result =>
        {
            var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
            if (DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
            {
                return date;
            }

            result.AddError($"'{text}' is not a date; use yyyy-MM-dd, e.g. 2024-05-05.");
            return default;
        },
    };

    /// <summary>
    /// An option that takes a whole number. The parser's own message for a value that is not one names a .NET type
    /// ("expected type 'System.Int32'"); this one names the option and the form it takes.
    /// </summary>
    private static Option<int> WholeNumberOption(string name, string description, bool required = false) => new(name)
    {
        Description = description,
        Required = required,
        HelpName = "number",
        CustomParser = result => ParseWholeNumber(result, name) ?? 0,
    };

    /// <summary>As <see cref="WholeNumberOption"/>, for an option that may be left out.</summary>
    private static Option<int?> OptionalWholeNumberOption(string name, string description) => new(name)
    {
        Description = description,
        HelpName = "number",
        CustomParser = result => ParseWholeNumber(result, name),
    };

    private static int? ParseWholeNumber(System.CommandLine.Parsing.ArgumentResult result, string name)
    {
        var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
        if (int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number))
        {
            return number;
        }

        result.AddError($"{name} takes a whole number, e.g. {name} 3; '{text}' is not one.");
        return null;
    }

    private static Option<BackupDataType?> DataTypeOption(string description) => new("--type")
    {
        // Without a help name the parser would show the enum's members, spellings the tool did not accept.
        HelpName = "type",
        Description = description + " One of: " + string.Join(", ", Names.DataTypeNames) + " (the SDK's names, such as FullyBackedUpKeys, work too).",
        CustomParser = result =>
        {
            var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
            if (Names.TryParseDataType(text, out var type))
            {
                return type;
            }

            result.AddError($"'{text}' is not a data type; use one of {string.Join(", ", Names.DataTypeNames)}.");
            return null;
        },
    };

    // ---- backups, instances, data ----------------------------------------------------------

    private static Command BackupsCommand(CliHost host, GlobalOptions globals)
    {
        var list = new Command("list", "List the account's backups with their type, status, backup object, viewable days and queryable range.");
        Handle(list, host, globals, async (inv, ct) =>
        {
            var client = await inv.ClientAsync(ct).ConfigureAwait(false);
            var backups = new List<BackupDetails>();
            await foreach (var backup in client.ListBackupsAsync(inv.Account, ct).ConfigureAwait(false))
            {
                backups.Add(backup);
            }

            inv.Write(backups.Select(JsonBackup.From).ToList(), c => Render.Backups(c, backups, inv.Wide));
            return ExitCodes.Ok;
        });

        var id = BackupIdArgument();
        var show = new Command("show", "Show one backup: its details, queryable range, expiry and latest recovery point.") { id };
        Handle(show, host, globals, async (inv, ct) =>
        {
            var backup = await (await inv.ClientAsync(ct).ConfigureAwait(false)).GetBackupAsync(inv.Account, inv.Value(id), ct).ConfigureAwait(false);
            inv.Write(JsonBackup.From(backup), c => Render.Backup(c, backup));
            return ExitCodes.Ok;
        });

        return new Command("backups", "List and show backups.") { list, show };
    }

    private static Command InstancesCommand(CliHost host, GlobalOptions globals)
    {
        var list = new Command("list", "List the key management instances of the embedded service (backup objects and restore targets).");
        Handle(list, host, globals, async (inv, ct) =>
        {
            var folder = await inv.FolderAsync(ct).ConfigureAwait(false);
            var instances = new List<InstanceDescription>();
            await foreach (var instance in folder.Kms.ListInstancesAsync(cancellationToken: ct).ConfigureAwait(false))
            {
                instances.Add(instance);
            }

            inv.Write(
                instances.Select(i => new JsonInstance(i.Info.Id, Names.Of(i.Info.Kind), i.Info.Region, i.OwnerAccount, i.Info.IsEnabled, Names.Instant(i.ReleasedAt))).ToList(),
                c => Render.Instances(c, instances, inv.Wide));
            return ExitCodes.Ok;
        });

        return new Command("instances", "The embedded service's instances.") { list };
    }

    private static Command DataCommand(CliHost host, GlobalOptions globals)
    {
        var id = BackupIdArgument();
        var date = DateOption(required: true);
        var type = DataTypeOption("Show only this data type; all six when omitted.");
        var nameContains = new Option<string?>("--name-contains") { Description = "Only items whose name contains this text (case-insensitive)." };
        var namePrefix = new Option<string?>("--name-prefix") { Description = "Only items whose name starts with this text (case-sensitive); the fully backed up views seek to it instead of reading the day." };
        var command = new Command("data", "Show a date's backup data by type: fully backed up, incrementally backed up and rotated keys and secrets. Metadata only: never key material or secret values.")
        {
            id, date, type, nameContains, namePrefix,
        };
        Handle(command, host, globals, async (inv, ct) =>
        {
            var client = await inv.ClientAsync(ct).ConfigureAwait(false);
            var backupId = inv.Value(id);
            var day = inv.Value(date);
            var types = inv.Result.GetValue(type) is { } one ? [one] : Names.DataTypes.ToList();
            var views = new List<(BackupDataType Type, List<BackupDataItem> Items)>();
            foreach (var t in types)
            {
                var items = new List<BackupDataItem>();
                string? token = null;
                do
                {
                    var page = await client.GetDataPageAsync(inv.Account, backupId, day, t, new BackupDataQuery
                    {
                        PageSize = BackupClient.MaximumPageSize,
                        NameContains = inv.Result.GetValue(nameContains),
                        NamePrefix = inv.Result.GetValue(namePrefix),
                        ContinuationToken = token,
                    }, ct).ConfigureAwait(false);
                    items.AddRange(page.Items);
                    token = page.ContinuationToken;
                }
                while (token is not null);

                views.Add((t, items));
            }

            inv.Write(
                new JsonData(backupId, Names.Date(day), [.. views.Select(v => new JsonView(Names.Of(v.Type), Names.Title(v.Type), v.Items.Count, [.. v.Items.Select(JsonItem.From)]))]),
                c =>
                {
                    foreach (var (t, items) in views)
                    {
                        Render.View(c, backupId, day, t, items, inv.Wide);
                    }
                });
            return ExitCodes.Ok;
        });
        return command;
    }
}
