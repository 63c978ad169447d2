using System.CommandLine;
using System.CommandLine.Parsing;
using KmsBackup.Cli.Output;
using KmsBackup.Cli.Workspace;
using Spectre.Console;

namespace KmsBackup.Cli.Commands;

/// <summary>A usage error found by a handler (a value the parser cannot check, such as two options that exclude each other).</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>One run of a command: its parse result, the host, and the folder opened on first use.</summary>
internal sealed class Invocation(ParseResult result, CliHost host, GlobalOptions globals) : IAsyncDisposable
{
    private LocalFolder? _folder;

    public ParseResult Result { get; } = result;

    public CliHost Host { get; } = host;

    public bool Json { get; } = result.GetValue(globals.Json);

    /// <summary>Whether tables show every column, however wide (<c>--wide</c>); else they fit the width.</summary>
    public bool Wide { get; } = result.GetValue(globals.Wide);

    public IAnsiConsole Console => Host.Console;

    public TimeProvider Time { get; } = globals.TimeOf(result, host);

    /// <summary>The acting account; a usage error when neither --account nor its variable is set.</summary>
    public string Account => globals.AccountOf(Result, Host)
        ?? throw new UsageException($"Name the acting account with --account or ${GlobalOptions.AccountVariable}.");

    public async Task<LocalFolder> FolderAsync(CancellationToken cancellationToken)
    {
        if (_folder is null)
        {
            var folder = await LocalFolder.OpenAsync(Host, globals.Paths(Result, Host), Time, Unlock(), cancellationToken).ConfigureAwait(false);
            try
            {
                await RefuseNowBeforeStoreTimeAsync(folder, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                await folder.DisposeAsync().ConfigureAwait(false);
                throw;
            }

            _folder = folder;
        }

        return _folder;
    }

    /// <summary>
    /// The key provider <c>--unlock-passphrase-stdin</c> or <c>--unlock-shares</c> asks the folder to be opened with
    /// instead of its key file; <see langword="null"/> for the key file.
    /// </summary>
    private Func<CancellationToken, Task<RepositoryKeyProvider>>? Unlock()
    {
        var passphrase = Result.GetValue(globals.UnlockPassphraseStdin);
        var sharesFile = Result.GetValue(globals.UnlockShares);
        if (passphrase && sharesFile is not null)
        {
            throw new UsageException("Open the repository one way: --unlock-passphrase-stdin or --unlock-shares, not both.");
        }

        if (passphrase)
        {
            return async ct =>
            {
                var line = await Host.Input.ReadLineAsync(ct).ConfigureAwait(false);
                if (string.IsNullOrEmpty(line))
                {
                    throw new UsageException("--unlock-passphrase-stdin reads the passphrase from the first line of standard input, which is empty.");
                }

                return new PassphraseRepositoryKeyProvider(line);
            };
        }

        if (sharesFile is null)
        {
            return null;
        }

        return async ct =>
        {
            var path = Host.FileSystem.Path.GetFullPath(sharesFile);
            if (!Host.FileSystem.File.Exists(path))
            {
                throw new BackupException(new Refusal(
                    BackupErrorCode.NotFound, $"file '{path}'", $"There is no recovery shares file '{path}'.", "Check the path given to --unlock-shares: a file with one share per line."));
            }

            var lines = await Host.FileSystem.File.ReadAllLinesAsync(path, ct).ConfigureAwait(false);
            return RecoveryKeyRepositoryKeyProvider.FromShares(lines.Where(l => !string.IsNullOrWhiteSpace(l)));
        };
    }

    /// <summary>
    /// Refuses a <c>--now</c> before the store's time (the latest time a writer of the store recorded, as
    /// <c>kmsbackup clock show</c> reports it), before the command reads or writes anything: the store would be shown
    /// as it never was, and changed out of order. The clock commands are exempt: they show the store's time, and
    /// <c>clock confirm</c> is how a wrong (later) store time is discarded.
    /// </summary>
    private async Task RefuseNowBeforeStoreTimeAsync(LocalFolder folder, CancellationToken cancellationToken)
    {
        if (Result.GetValue(globals.Now) is not { } now || Result.CommandResult.Parent is CommandResult { Command.Name: "clock" })
        {
            return;
        }

        var status = await folder.Client.GetStoreClockAsync(cancellationToken).ConfigureAwait(false);

        // To the second, as the store's time is shown: --now set to the shown time is not before it.
        if (status.StoreTime is { } storeTime && now < storeTime.AddTicks(-(storeTime.UtcTicks % TimeSpan.TicksPerSecond)))
        {
            var shown = Names.Instant(storeTime);
            throw new BackupException(new Refusal(
                GlobalOptions.NowBeforeStoreTime, "--now",
                $"--now {Names.Instant(now)} is before the store's time, {shown}: the latest time a writer of this store recorded. Acting as of an earlier time would show the store as it never was and could change it out of order. Nothing was written.",
                $"Give --now {shown} or later, or leave --now out to use this host's clock; 'kmsbackup clock show' shows the store's time."));
        }
    }

    /// <summary>Creates a new folder (the one command that does) and keeps it open as this run's folder.</summary>
    public async Task<LocalFolder> InitializeFolderAsync(CancellationToken cancellationToken) =>
        _folder ??= await LocalFolder.InitializeAsync(Host, globals.Paths(Result, Host), Time, cancellationToken).ConfigureAwait(false);

    /// <summary>Where this run's folder is.</summary>
    public LocalFolderPaths Paths => globals.Paths(Result, Host);

    public async Task<BackupClient> ClientAsync(CancellationToken cancellationToken) =>
        (await FolderAsync(cancellationToken).ConfigureAwait(false)).Client;

    /// <summary>The command line's command, as typed after the tool's name (e.g. <c>kmsbackup restore plan</c>), for remedies that name it.</summary>
    public string CommandPath => PathOf(Result);

    /// <summary>The path of the command <paramref name="result"/> parsed to, from the tool's name.</summary>
    public static string PathOf(ParseResult result)
    {
        var names = new List<string>();
        for (SymbolResult? symbol = result.CommandResult; symbol is CommandResult command; symbol = command.Parent)
        {
            names.Insert(0, command.Command.Name);
        }

        return string.Join(' ', names);
    }

    public T Value<T>(Option<T> option) => Result.GetValue(option)!;

    public T Value<T>(Argument<T> argument) => Result.GetValue(argument)!;

    /// <summary>Writes a result: the JSON document with --json, else the rich rendering.</summary>
    public void Write<T>(T json, Action<IAnsiConsole> render)
    {
        if (Json)
        {
            Output.Json.Write(Host.Output, json);
        }
        else
        {
            render(Console);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_folder is not null)
        {
            await _folder.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Runs a handler and turns what it throws into an exit code and a message (or a JSON error document).</summary>
    public static async Task<int> RunAsync(ParseResult result, CliHost host, GlobalOptions globals, Func<Invocation, CancellationToken, Task<int>> handler, CancellationToken cancellationToken)
    {
        var invocation = new Invocation(result, host, globals);
        await using (invocation.ConfigureAwait(false))
        {
            try
            {
                return await handler(invocation, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (ErrorReport.Handles(e))
            {
                return ErrorReport.Write(invocation, e);
            }
        }
    }
}
