using System.CommandLine;
using System.Globalization;
using Azure.Storage.Blobs;
using KmsBackup.Cli.Output;
using KmsBackup.Storage;
using KmsBackup.Storage.AzureBlob;
using Spectre.Console;

namespace KmsBackup.Cli.Commands;

// kmsbackup copy: recovery points into a second store with its own key.
internal static partial class CommandTree
{
    /// <summary>The environment variable holding the Azure Storage connection string of an <c>azure:</c> destination.</summary>
    public const string AzureConnectionVariable = "KMSBACKUP_AZURE_CONNECTION_STRING";

    private const string AzurePrefix = "azure:";

    private static Command CopyCommand(CliHost host, GlobalOptions globals)
    {
        var toStore = new Option<string>("--to-store")
        {
            Description = $"The destination store: a folder, or '{AzurePrefix}<container>' (Azure Blob Storage, connection string in ${AzureConnectionVariable}).",
            Required = true,
        };
        var toKeyFile = new Option<string>("--to-key-file")
        {
            Description = "The destination repository's own key file (not the source's: a copy has its own keys).",
            Required = true,
        };
        var backups = new Option<string[]>("--backup") { Description = "A backup to copy, by ID; repeat for more. Default: every backup." };
        var init = new Option<bool>("--init-destination")
        {
            Description = "Create the destination repository (and its key file) when there is none. Without it, a missing destination is 'not found' and nothing is created.",
        };
        var command = new Command(
            "copy",
            "Copy backups (all, or those given with --backup) into a second store with its own key: only what the destination lacks, every object authenticated on the way. "
            + "Rerun to resume after a crash. Exits 0 when everything was copied, 5 when a source point is damaged (it is not copied), 6 when the destination is busy.")
        {
            toStore, toKeyFile, backups, init,
        };
        Handle(command, host, globals, async (inv, ct) =>
        {
            var source = await inv.ClientAsync(ct).ConfigureAwait(false);
            var (destination, destinationKeys) = await OpenDestinationAsync(inv, inv.Value(toStore), inv.Value(toKeyFile), inv.Value(init), ct).ConfigureAwait(false);
            using var destinationClient = destination;
            using var destinationKeyProvider = destinationKeys;
            var options = new BackupCopyOptions { BackupIds = inv.Value(backups) is { Length: > 0 } ids ? ids : null };
            var report = inv.Json || !inv.Host.Interactive
                ? await source.CopyToAsync(destination, options, ct).ConfigureAwait(false)
                : await inv.Console.Status().StartAsync("Copying", _ => source.CopyToAsync(destination, options, ct)).ConfigureAwait(false);
            inv.Write(JsonCopyReport.From(report), c =>
            {
                c.MarkupLine(Markup.Escape(
                    $"{Names.Count(report.Backups.Count, "backup")}: {Names.Count(report.PointsCopied, "point")} copied, {report.PointsPresent} already there, {Names.Count(report.BytesWritten, "byte")} written."));
                foreach (var b in report.Backups.Where(b => b.PointsCopied.Count > 0 || b.StateCopied))
                {
                    c.MarkupLine(Markup.Escape($"  {b.BackupId}: {Names.Count(b.PointsCopied.Count, "point")} copied{(b.StateCopied ? ", state copied" : string.Empty)}"));
                }

                foreach (var p in report.Problems)
                {
                    c.MarkupLine("[red]" + Markup.Escape($"  not copied: {p.BackupId}{(p.Point is { } n ? " " + n : string.Empty)} ({p.Kind}): {p.Error.Message}") + "[/]");
                }
            });
            return ExitCodeOf(report);
        });
        return command;
    }

    private static int ExitCodeOf(BackupCopyReport report)
    {
        if (report.IsComplete)
        {
            return ExitCodes.Ok;
        }

        if (report.Problems.Any(p => p.Kind == BackupCopyProblemKind.SourceDamaged))
        {
            return ExitCodes.Integrity;
        }

        return report.Problems.Any(p => p.Kind is BackupCopyProblemKind.LeaseHeld or BackupCopyProblemKind.DestinationFailed)
            ? ExitCodes.Unavailable
            : ExitCodes.Of(report.Problems[0].Error.Code);
    }

    /// <summary>
    /// Opens the destination repository. Without <paramref name="initialize"/>, its key file and its repository must exist;
    /// with it, they are created when missing, but a missing key file beside an existing repository is still refused (a new
    /// key would not open it).
    /// </summary>
    private static async Task<(BackupClient Client, KeyFileRepositoryKeyProvider Keys)> OpenDestinationAsync(Invocation inv, string where, string keyFile, bool initialize, CancellationToken cancellationToken)
    {
        var files = inv.Host.FileSystem;
        keyFile = files.Path.GetFullPath(keyFile);
        BackupStore store;
        string described;
        if (where.StartsWith(AzurePrefix, StringComparison.Ordinal))
        {
            var container = where[AzurePrefix.Length..];
            var connection = inv.Host.Environment(AzureConnectionVariable);
            if (string.IsNullOrWhiteSpace(connection) || string.IsNullOrWhiteSpace(container))
            {
                throw new UsageException($"An Azure destination is '{AzurePrefix}<container>', with the storage account's connection string in ${AzureConnectionVariable}.");
            }

            described = $"Azure container '{container}'";
            store = new AzureBlobBackupStore(new BlobContainerClient(connection, container), new AzureBlobBackupStoreOptions { CreateContainerIfMissing = initialize }, inv.Time);
        }
        else
        {
            var folder = files.Path.GetFullPath(where);
            described = $"store folder '{folder}'";
            store = new FileSystemBackupStore(files, folder, inv.Time);
        }

        var hasRepository = await store.TryReadAsync("config", cancellationToken).ConfigureAwait(false) is not null;
        var hasKey = files.File.Exists(keyFile);
        if (!initialize && (!hasRepository || !hasKey))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, hasKey ? described : $"key file '{keyFile}'",
                hasKey
                    ? $"There is no repository in the destination {described}; the tool does not create one by mistake."
                    : $"There is no destination key file at '{keyFile}'.",
                "Check --to-store and --to-key-file; to create the destination, add --init-destination."));
        }

        if (hasRepository && !hasKey)
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, $"key file '{keyFile}'",
                $"The destination {described} holds a repository, but there is no key file at '{keyFile}'; a new key would not open it.",
                "Give --to-key-file the key file the destination was created with."));
        }

        var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, keyFile, cancellationToken).ConfigureAwait(false);
        try
        {
            // The copy reads only the destination's catalog and points; the local service is its instance gateway.
            var local = await inv.FolderAsync(cancellationToken).ConfigureAwait(false);
            var options = new BackupClientOptions
            {
                TimeProvider = inv.Time,
                LeaseHolder = string.Create(CultureInfo.InvariantCulture, $"kmsbackup-copy-{Environment.ProcessId}"),
            };
            return (await BackupClient.OpenAsync(store, keys, local.Kms, hsmClusters: null, options, cancellationToken).ConfigureAwait(false), keys);
        }
        catch
        {
            keys.Dispose();
            throw;
        }
    }
}
