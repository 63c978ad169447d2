using System.CommandLine;
using KmsBackup.Cli.Output;

namespace KmsBackup.Cli.Commands;

internal static partial class CommandTree
{
    private static Command HealthCommand(CliHost host, GlobalOptions globals)
    {
        var command = new Command("health", "Report how each backup run from this folder is doing: its last success, the next run and how far behind schedule it is, and when it expires. Changes nothing. Failures count only runs this process saw; 'kmsbackup run' reports its own.");
        Handle(command, host, globals, async (inv, ct) =>
        {
            var report = await (await inv.ClientAsync(ct).ConfigureAwait(false)).GetHealthAsync(ct).ConfigureAwait(false);
            inv.Write(report.Select(JsonHealth.From).ToList(), c => Render.Health(c, report, inv.Wide));
            return ExitCodes.Ok;
        });
        return command;
    }
}
