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

    public async Task<LocalFolder> FolderAsync(CancellationToken cancellationToken) =>
        _folder ??= await LocalFolder.OpenAsync(Host, globals.Paths(Result, Host), Time, cancellationToken).ConfigureAwait(false);

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
