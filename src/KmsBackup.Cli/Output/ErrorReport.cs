using KmsBackup.Cli.Commands;
using Spectre.Console;

namespace KmsBackup.Cli.Output;

/// <summary>Maps what a command throws to an exit code (<see cref="ExitCodes"/>) and tells the user the code, the item and the remedy.</summary>
internal static class ErrorReport
{
    public static bool Handles(Exception e) => e is BackupException or UsageException or ArgumentException or OperationCanceledException or IOException or UnauthorizedAccessException;

    public static int ExitCodeOf(Exception e) => e switch
    {
        UsageException or ArgumentException => ExitCodes.Usage,
        BackupFileException or BackupIntegrityException => ExitCodes.Integrity,
        BackupException b => ExitCodes.Of(b.Code),
        OperationCanceledException => ExitCodes.Cancelled,
        FileNotFoundException or DirectoryNotFoundException => ExitCodes.NotFound,
        _ => ExitCodes.Error,
    };

    public static int Write(Invocation invocation, Exception e)
    {
        var exitCode = ExitCodeOf(e);
        var error = e switch
        {
            BackupException b => new JsonError(b.Code.ToString(), b.Item, b.Refusal.Message, b.Remedy, exitCode),
            UsageException or ArgumentException => new JsonError("Usage", "", e.Message, $"Run '{invocation.CommandPath} --help' for the options.", exitCode),
            OperationCanceledException => new JsonError("Cancelled", "", "The command was cancelled.", "Run it again.", exitCode),
            _ => new JsonError("Error", "", e.Message, "Check the paths and permissions, then retry.", exitCode),
        };
        var plan = e is RestoreException r ? r.Plan : null;
        if (invocation.Json)
        {
            Json.Write(invocation.Host.Output, new JsonErrorDocument(error, plan is null ? null : JsonPlan.From(plan)));
            return exitCode;
        }

        if (plan is not null)
        {
            // The whole plan, so that every violation and its remedy is seen at once, not one per attempt.
            Render.Plan(invocation.Console, plan, invocation.Wide);
        }

        var console = invocation.Host.ErrorConsole;
        console.MarkupLine($"[red]{Markup.Escape(error.Code)}[/]: {Markup.Escape(error.Message)}");
        if (!string.IsNullOrEmpty(error.Remedy))
        {
            console.MarkupLine($"[yellow]Remedy[/]: {Markup.Escape(error.Remedy)}");
        }

        if (e is RestoreException { LeftInTarget.Count: > 0 } left)
        {
            console.MarkupLine($"[red]Left in the target[/]: {Markup.Escape(string.Join(", ", left.LeftInTarget.Select(i => $"{Names.Of(i.Type)} '{i.Name}'")))}");
        }

        return exitCode;
    }
}
