using System.CommandLine;
using System.Globalization;
using KmsBackup.Cli.Output;
using KmsBackup.Cli.Workspace;

namespace KmsBackup.Cli.Commands;

/// <summary>The options every command takes: where the folder is, who acts, when "now" is, and the output form.</summary>
internal sealed class GlobalOptions
{
    public const string AccountVariable = "KMSBACKUP_ACCOUNT";

    /// <summary>The refusal of a <c>--now</c> before the store's time (the latest time a writer of the store recorded).</summary>
    public static BackupErrorCode NowBeforeStoreTime { get; } = new("NowBeforeStoreTime");

    public Option<string?> Root { get; } = new("--root")
    {
        Description = $"The KmsBackup folder (store/, kms/, keys/repository.key). Default: ${LocalFolderPaths.RootVariable}, else the current folder.",
        Recursive = true,
    };

    public Option<string?> Store { get; } = new("--store")
    {
        Description = $"The backup store folder, if not <root>/store. Default: ${LocalFolderPaths.StoreVariable}.",
        Recursive = true,
    };

    public Option<string?> Kms { get; } = new("--kms")
    {
        Description = $"The embedded key management service folder, if not <root>/kms. Default: ${LocalFolderPaths.KmsVariable}.",
        Recursive = true,
    };

    public Option<string?> KeyFile { get; } = new("--key-file")
    {
        Description = $"The repository key file, if not <root>/keys/repository.key. Default: ${LocalFolderPaths.KeyFileVariable}.",
        Recursive = true,
    };

    public Option<bool> UnlockPassphraseStdin { get; } = new("--unlock-passphrase-stdin")
    {
        Description = "Open the repository with a passphrase key provider, read from the first line of standard input, instead of the key file (which need not exist): for recovery after losing it, and for drills of the escrow.",
        Recursive = true,
    };

    public Option<string?> UnlockShares { get; } = new("--unlock-shares")
    {
        Description = "Open the repository with a recovery key rebuilt from the shares in this file (one per line; blank lines ignored; at least the threshold), instead of the key file (which need not exist).",
        HelpName = "file",
        Recursive = true,
    };

    public Option<string?> Account { get; } = new("--account")
    {
        Description = $"The account acting (only a backup's owner may view or restore it). Default: ${AccountVariable}.",
        Recursive = true,
    };

    public Option<DateTimeOffset?> Now { get; } = new("--now")
    {
        Description = "Act as of this instant (ISO 8601, e.g. 2024-05-20T10:00:00Z) instead of the system clock: for folders written on a simulated clock, such as the quick start's. Not before the store's time ('kmsbackup clock show'): that is refused (exit 3).",
        Recursive = true,
        CustomParser = result =>
        {
            var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
            if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var instant))
            {
                return instant;
            }

            result.AddError($"'{text}' is not an instant; use ISO 8601, e.g. 2024-05-20T10:00:00Z.");
            return null;
        },
    };

    public Option<bool> Json { get; } = new("--json")
    {
        Description = "Print one JSON document (also for errors) instead of tables, for scripts.",
        Recursive = true,
    };

    public Option<bool> Wide { get; } = new("--wide")
    {
        Description = $"Tables show every column, however wide. Without it they fit the terminal (or ${CliHost.ColumnsVariable}) by hiding the least needed columns, and say which; IDs and names are never split over lines.",
        Recursive = true,
    };

    public void AddTo(Command root)
    {
        root.Add(Root);
        root.Add(Store);
        root.Add(Kms);
        root.Add(KeyFile);
        root.Add(UnlockPassphraseStdin);
        root.Add(UnlockShares);
        root.Add(Account);
        root.Add(Now);
        root.Add(Json);
        root.Add(Wide);
    }

    public LocalFolderPaths Paths(ParseResult result, CliHost host)
    {
        var path = host.FileSystem.Path;
        var root = result.GetValue(Root) ?? host.Environment(LocalFolderPaths.RootVariable) ?? host.FileSystem.Directory.GetCurrentDirectory();
        var defaults = LocalFolderPaths.Under(path.GetFullPath(root), path.Combine);
        return new LocalFolderPaths(
            Full(result.GetValue(Store) ?? host.Environment(LocalFolderPaths.StoreVariable)) ?? defaults.Store,
            Full(result.GetValue(Kms) ?? host.Environment(LocalFolderPaths.KmsVariable)) ?? defaults.Kms,
            Full(result.GetValue(KeyFile) ?? host.Environment(LocalFolderPaths.KeyFileVariable)) ?? defaults.KeyFile);

        string? Full(string? p) => string.IsNullOrWhiteSpace(p) ? null : path.GetFullPath(p);
    }

    public string? AccountOf(ParseResult result, CliHost host)
    {
        var account = result.GetValue(Account) ?? host.Environment(AccountVariable);
        return string.IsNullOrWhiteSpace(account) ? null : account;
    }

    public TimeProvider TimeOf(ParseResult result, CliHost host) =>
        result.GetValue(Now) is { } now ? new FixedTimeProvider(now) : host.Time;
}
