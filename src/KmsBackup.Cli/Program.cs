using KmsBackup.Cli.Commands;
using KmsBackup.Cli.Output;

using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    // The first Ctrl+C cancels the command cleanly (a restore rolls back); a second one ends the process.
    e.Cancel = !cancellation.IsCancellationRequested;
    cancellation.Cancel();
};
return await CommandTree.InvokeAsync(args, CliHost.System(), cancellation.Token).ConfigureAwait(false);
