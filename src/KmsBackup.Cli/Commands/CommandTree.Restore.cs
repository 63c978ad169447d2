using System.CommandLine;
using System.Globalization;
using KmsBackup.Cli.Output;
using Spectre.Console;

namespace KmsBackup.Cli.Commands;

internal static partial class CommandTree
{
    /// <summary>The options of 'restore plan' and 'restore run', which take the same request.</summary>
    private sealed class RestoreOptions
    {
        public Argument<string> BackupId { get; } = BackupIdArgument();

        public Option<string> Target { get; } = new("--target") { Description = "The instance to restore into: any enabled software instance of the account, in any region.", Required = true };

        public Option<DateOnly> Date { get; } = DateOption(required: false);

        public Option<BackupDataType?> Type { get; } = DataTypeOption("Restore the items as this view of the date shows them (the seed's way: e.g. fully-backed-up-keys).");

        public Option<DateTimeOffset?> At { get; } = new("--at")
        {
            Description = "Instead of --date: the latest recovery point taken at or before this instant (ISO 8601).",
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

        public Option<string[]> Keys { get; } = new("--key") { Description = "A key to restore, by name; repeat for more.", AllowMultipleArgumentsPerToken = false };

        public Option<string[]> Secrets { get; } = new("--secret") { Description = "A secret to restore, by name; repeat for more. Its key must be in the target or restored in the same batch." };

        public Option<bool> All { get; } = new("--all") { Description = "Restore every item of the chosen data instead of naming them." };

        public Option<string?> OperationId { get; } = new("--operation-id") { Description = "The restore operation's ID (from a plan, or your own); a rerun with the same ID restores nothing twice, and an interrupted restore is resumed or rolled back by it." };

        public void AddTo(Command command)
        {
            command.Add(BackupId);
            command.Add(Target);
            command.Add(Date);
            command.Add(Type);
            command.Add(At);
            command.Add(Keys);
            command.Add(Secrets);
            command.Add(All);
            command.Add(OperationId);
        }

        public RestoreRequest Request(Invocation inv)
        {
            var r = inv.Result;
            var hasDate = r.GetResult(Date) is not null;
            var request = new RestoreRequest
            {
                CallerAccount = inv.Account,
                BackupId = inv.Value(BackupId),
                TargetInstanceId = inv.Value(Target),
                BackupDate = hasDate ? r.GetValue(Date) : null,
                DataType = r.GetValue(Type),
                PointInTime = r.GetValue(At),
                KeyNames = r.GetValue(Keys) ?? [],
                SecretNames = r.GetValue(Secrets) ?? [],
                AllItems = r.GetValue(All),
                OperationId = r.GetValue(OperationId),
            };
            try
            {
                request.Validate();
            }
            catch (ArgumentException e)
            {
                // The request's own checks, said with the tool's option names.
                throw new UsageException(e.Message
                    .Replace("BackupDate", "--date", StringComparison.Ordinal)
                    .Replace("PointInTime", "--at", StringComparison.Ordinal)
                    .Replace("DataType", "--type", StringComparison.Ordinal)
                    .Replace("AllItems", "--all", StringComparison.Ordinal)
                    .Split(" (Parameter", 2)[0]);
            }

            return request;
        }
    }

    private static Command RestoreCommand(CliHost host, GlobalOptions globals)
    {
        var planOptions = new RestoreOptions();
        var plan = new Command("plan", "Plan a restore without writing anything: every item with its outcome, every violated precondition with its code and remedy. A refused plan exits as its first violation's code does: 4 for a backup, date or target that does not exist, 3 for a rule.");
        planOptions.AddTo(plan);
        Handle(plan, host, globals, async (inv, ct) =>
        {
            var request = planOptions.Request(inv);
            var result = await (await inv.ClientAsync(ct).ConfigureAwait(false)).PlanRestoreAsync(request, ct).ConfigureAwait(false);
            if (!result.CanExecute)
            {
                // Refused as 'restore run' of this plan is, with its first violation: the same exit code, the same
                // text and the same JSON document ({"error": ..., "plan": ...}), whichever of the two was run.
                throw new RestoreException(result.AllRefusals.First(), result);
            }

            inv.Write(JsonPlan.From(result), c => Render.Plan(c, result, inv.Wide));
            return ExitCodes.Ok;
        });

        var runOptions = new RestoreOptions();
        var run = new Command("run", "Restore all or nothing: plans first and refuses with every violation; keys before the secrets they encrypt; a failure removes what the run wrote. The operation ID is printed (on standard error) before the first write.");
        runOptions.AddTo(run);
        Handle(run, host, globals, async (inv, ct) =>
        {
            var request = runOptions.Request(inv);
            var client = await inv.ClientAsync(ct).ConfigureAwait(false);
            var result = await WithRestoreProgressAsync(inv, "Restoring", progress => client.RestoreAsync(request, progress, ct)).ConfigureAwait(false);
            WriteRestored(inv, result);
            return ExitCodes.Ok;
        });

        var list = new Command("list", "List the account's restores that began writing and did not finish (their process died, or they still run elsewhere), with the items each holds in its target. Writes nothing.");
        Handle(list, host, globals, async (inv, ct) =>
        {
            var client = await inv.ClientAsync(ct).ConfigureAwait(false);
            var operations = new List<RestoreOperation>();
            await foreach (var operation in client.ListUnfinishedRestoresAsync(inv.Account, ct).ConfigureAwait(false))
            {
                operations.Add(operation);
            }

            inv.Write(operations.Select(JsonRestoreOperation.From).ToList(), c => Render.RestoreOperations(c, operations, inv.Wide));
            return ExitCodes.Ok;
        });

        var resumeId = OperationIdArgument();
        var resume = new Command("resume", "Resume an unfinished restore by its operation ID: restore the rest of its items from the same data, skipping what it created already; all or nothing.") { resumeId };
        Handle(resume, host, globals, async (inv, ct) =>
        {
            var operationId = OperationIdOf(inv, resumeId);
            var client = await inv.ClientAsync(ct).ConfigureAwait(false);
            var result = await WithRestoreProgressAsync(inv, "Resuming", progress => client.ResumeRestoreAsync(inv.Account, operationId, progress, ct)).ConfigureAwait(false);
            WriteRestored(inv, result);
            return ExitCodes.Ok;
        });

        var rollbackId = OperationIdArgument();
        var rollback = new Command("rollback", "Roll an unfinished restore back by its operation ID: remove from its target exactly the items it created, secrets before their keys.") { rollbackId };
        Handle(rollback, host, globals, async (inv, ct) =>
        {
            var operationId = OperationIdOf(inv, rollbackId);
            var client = await inv.ClientAsync(ct).ConfigureAwait(false);
            var result = await WithRestoreProgressAsync(inv, "Rolling back", progress => client.RollBackRestoreAsync(inv.Account, operationId, progress, ct)).ConfigureAwait(false);
            inv.Write(
                new JsonRollback(result.OperationId, result.TargetInstanceId, [.. result.Removed.Select(JsonOperationItem.From)], [.. result.Skipped.Select(JsonOperationItem.From)]),
                c => Render.Rollback(c, result));
            return ExitCodes.Ok;
        });

        return new Command("restore", "Plan and run restores of keys and secrets into an instance; list, resume and roll back unfinished ones.") { plan, run, list, resume, rollback };
    }

    private static Argument<string> OperationIdArgument() => new("operation-id") { Description = "The restore operation's ID (see 'kmsbackup restore list')." };

    private static string OperationIdOf(Invocation inv, Argument<string> argument)
    {
        var operationId = inv.Value(argument);
        try
        {
            RestoreRequest.ValidateOperationId(operationId);
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message.Split(" (Parameter", 2)[0]);
        }

        return operationId;
    }

    /// <summary>
    /// Runs a restore, resume or rollback with progress: a bar on a terminal; in every mode, the operation ID on
    /// standard error as soon as the restore has journaled it, before its first write, so that a script or a user
    /// whose process dies still has the ID that 'restore resume' and 'restore rollback' take.
    /// </summary>
    private static async Task<T> WithRestoreProgressAsync<T>(Invocation inv, string title, Func<IProgress<RestoreProgress>, Task<T>> work)
    {
        void Announce(RestoreProgress p)
        {
            if (p.Phase == RestorePhase.Started)
            {
                inv.Host.Error.WriteLine($"Restore operation {p.OperationId} started: if it is interrupted, resume or roll it back with this ID.");
                inv.Host.Error.Flush();
            }
        }

        if (inv.Json || !inv.Host.Interactive)
        {
            return await work(new InlineProgress<RestoreProgress>(Announce)).ConfigureAwait(false);
        }

        return await inv.Console.Progress().StartAsync(async ctx =>
        {
            var task = ctx.AddTask(title, autoStart: true);
            task.IsIndeterminate = true;
            return await work(new InlineProgress<RestoreProgress>(p =>
            {
                Announce(p);
                if (p.Item is not { } item)
                {
                    return;
                }

                task.IsIndeterminate = false;
                task.Description = $"{(p.Phase == RestorePhase.RollingBack ? "Rolling back" : "Restoring")} {Markup.Escape(item.Name)}";
                task.MaxValue = p.Total;
                task.Value = p.Completed;
            })).ConfigureAwait(false);
        }).ConfigureAwait(false);
    }

    private static void WriteRestored(Invocation inv, RestoreResult result) => inv.Write(
        new JsonRestore(result.OperationId, [.. result.Restored.Select(i => i.Name)], [.. result.AlreadyRestored.Select(i => i.Name)], JsonPlan.From(result.Plan)),
        c =>
        {
            Render.Plan(c, result.Plan, inv.Wide);
            c.MarkupLine($"[green]Restored[/] {result.Restored.Count} item(s) into {Markup.Escape(result.Plan.TargetInstanceId)} (operation {Markup.Escape(result.OperationId)})"
                + (result.AlreadyRestored.Count > 0 ? $"; {result.AlreadyRestored.Count} already restored by an earlier run." : "."));
        });
}

/// <summary>Reports progress on the caller's thread at once (<see cref="Progress{T}"/> would post it to the thread pool, out of order).</summary>
internal sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
