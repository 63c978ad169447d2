using System.CommandLine;
using KmsBackup.Cli.Output;
using Spectre.Console;

namespace KmsBackup.Cli.Commands;

internal static partial class CommandTree
{
    private static Command InitCommand(CliHost host, GlobalOptions globals)
    {
        var command = new Command("init", "Create a new, empty folder: the repository key file, the embedded key management service and the backup store. The only command that creates them; it refuses a folder that has any of them.");
        Handle(command, host, globals, async (inv, ct) =>
        {
            await inv.InitializeFolderAsync(ct).ConfigureAwait(false);
            var paths = inv.Paths;
            inv.Write(new JsonInit(paths.Store, paths.Kms, paths.KeyFile), c =>
            {
                c.MarkupLine("[green]Created[/] a new KmsBackup folder:");
                c.MarkupLine($"  store     {Markup.Escape(paths.Store)}");
                c.MarkupLine($"  service   {Markup.Escape(paths.Kms)}");
                c.MarkupLine($"  key file  {Markup.Escape(paths.KeyFile)} (keep it safe: without it the store cannot be read)");
            });
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command ExtendCommand(CliHost host, GlobalOptions globals)
    {
        var id = BackupIdArgument();
        var days = WholeNumberOption("--days", "The new viewable days (purchased backups only; upward only, at most 600).", required: true);
        var command = new Command("extend", "Extend a purchased backup's viewable days, so that older dates become queryable (never dates before it was enabled).") { id, days };
        Handle(command, host, globals, async (inv, ct) =>
        {
            var backup = await (await inv.ClientAsync(ct).ConfigureAwait(false)).ExtendViewableDaysAsync(inv.Account, inv.Value(id), inv.Value(days), ct).ConfigureAwait(false);
            inv.Write(JsonBackup.From(backup), c =>
            {
                c.MarkupLine($"Extended {Markup.Escape(backup.Id)} to {backup.ViewableDays} viewable days.");
                Render.Backup(c, backup);
            });
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command ResetCommand(CliHost host, GlobalOptions globals)
    {
        var id = BackupIdArgument();
        var yes = new Option<bool>("--yes") { Description = "Confirm: reset permanently deletes all data of the backup." };
        var command = new Command("reset", "Reset a default or purchased backup: permanently delete all its data and unbind it (status Disabled); it can then be enabled again.") { id, yes };
        Handle(command, host, globals, async (inv, ct) =>
        {
            if (!inv.Value(yes))
            {
                throw new UsageException("Reset permanently deletes all backed-up data of the backup; add --yes to confirm.");
            }

            var backup = await (await inv.ClientAsync(ct).ConfigureAwait(false)).ResetBackupAsync(inv.Account, inv.Value(id), ct).ConfigureAwait(false);
            inv.Write(JsonBackup.From(backup), c => c.MarkupLine($"Reset {Markup.Escape(backup.Id)}: its data is deleted and it is {Names.Of(backup.Status)}."));
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command DeleteCommand(CliHost host, GlobalOptions globals)
    {
        var id = BackupIdArgument();
        var yes = new Option<bool>("--yes") { Description = "Confirm: delete permanently deletes the uploaded backup and its data." };
        var command = new Command("delete", "Delete an uploaded backup with its data (only uploaded backups can be deleted; reset a default or purchased one).") { id, yes };
        Handle(command, host, globals, async (inv, ct) =>
        {
            if (!inv.Value(yes))
            {
                throw new UsageException("Delete permanently deletes the uploaded backup and its data; add --yes to confirm.");
            }

            var backup = await (await inv.ClientAsync(ct).ConfigureAwait(false)).DeleteBackupAsync(inv.Account, inv.Value(id), ct).ConfigureAwait(false);
            inv.Write(JsonBackup.From(backup), c => c.MarkupLine($"Deleted {Markup.Escape(backup.Id)} and its data; it is {Names.Of(backup.Status)}."));
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command RenewCommand(CliHost host, GlobalOptions globals)
    {
        var id = BackupIdArgument();
        var months = WholeNumberOption("--months", "The renewal duration in months (1 to 120).", required: true);
        var command = new Command("renew", "Renew a purchased backup: extends an active one, reactivates an expired one before its release.") { id, months };
        Handle(command, host, globals, async (inv, ct) =>
        {
            if (!PurchaseTerm.TryFromMonths(inv.Value(months), out var term, out var refusal))
            {
                throw refusal!.ToException();
            }

            var backup = await (await inv.ClientAsync(ct).ConfigureAwait(false)).RenewBackupAsync(inv.Account, inv.Value(id), term, ct).ConfigureAwait(false);
            inv.Write(JsonBackup.From(backup), c => c.MarkupLine($"Renewed {Markup.Escape(backup.Id)}: {Names.Of(backup.Status)}, expires {Names.Instant(backup.ExpiresAt)}."));
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command ClockCommand(CliHost host, GlobalOptions globals)
    {
        var show = new Command("show", "Compare this host's clock with the latest time the store has seen, and say whether deletions are held. Changes nothing.");
        Handle(show, host, globals, async (inv, ct) =>
        {
            var status = await (await inv.ClientAsync(ct).ConfigureAwait(false)).GetStoreClockAsync(ct).ConfigureAwait(false);
            inv.Write(JsonStoreClock.From(status), c => Render.Clock(c, status));
            return ExitCodes.Ok;
        });

        var yes = new Option<bool>("--yes") { Description = "Confirm: deletions held until now (retention, releases, pack collection) happen at the next run or prune." };
        var confirm = new Command("confirm", "Confirm that this host's clock is right: record it as the store's time (discarding any later time), which ends a hold of deletions.") { yes };
        Handle(confirm, host, globals, async (inv, ct) =>
        {
            if (!inv.Value(yes))
            {
                throw new UsageException("Confirming the clock lets deletions that were held go ahead; check the clock, then add --yes.");
            }

            var status = await (await inv.ClientAsync(ct).ConfigureAwait(false)).ConfirmClockAsync(ct).ConfigureAwait(false);
            inv.Write(JsonStoreClock.From(status), c => Render.Clock(c, status));
            return ExitCodes.Ok;
        });

        return new Command("clock", "The store's time: deletions are held while this host's clock is too far ahead of it.") { show, confirm };
    }

    private static Command RepositoryKeyCommand(CliHost host, GlobalOptions globals)
    {
        var yes = new Option<bool>("--yes") { Description = "Confirm: from now on new data is sealed under a new key, wrapped by the repository's key provider." };
        var rotate = new Command("rotate", "Rotate the repository key: add a key generation that new data is sealed under. Re-encrypts nothing; run 'rekey' for older data.") { yes };
        Handle(rotate, host, globals, async (inv, ct) =>
        {
            if (!inv.Value(yes))
            {
                throw new UsageException("Rotating adds a repository key that the key provider must be able to unwrap from now on; add --yes to confirm.");
            }

            var rotation = await (await inv.ClientAsync(ct).ConfigureAwait(false)).RotateRepositoryKeyAsync(ct).ConfigureAwait(false);
            inv.Write(new JsonKeyRotation(rotation.KeyGeneration, rotation.GenerationId), c => c.MarkupLine(
                $"New data is sealed under key generation {rotation.KeyGeneration} (ID {rotation.GenerationId}). Run 'kmsbackup repository-key rekey' to re-encrypt older data."));
            return ExitCodes.Ok;
        });

        var maxPacks = OptionalWholeNumberOption("--max-packs", "Rewrite at most this many old packs in this call (spread the work over several calls); all when left out.");
        var rekey = new Command("rekey", "Re-encrypt data sealed under older key generations into new packs under the current one; a prune at least the grace period later deletes the old packs.") { maxPacks };
        Handle(rekey, host, globals, async (inv, ct) =>
        {
            var limit = inv.Value(maxPacks);
            if (limit is < 1)
            {
                throw new UsageException("--max-packs must be at least 1.");
            }

            var summary = await (await inv.ClientAsync(ct).ConfigureAwait(false)).RekeyAsync(limit, ct).ConfigureAwait(false);
            inv.Write(
                new JsonRekey(summary.KeyGeneration, summary.PacksRewritten, summary.ObjectsCopied, summary.BytesWritten, summary.PacksRemaining, summary.IsComplete),
                c => c.MarkupLine($"Re-encrypted {summary.PacksRewritten} packs ({summary.ObjectsCopied} objects, {summary.BytesWritten} bytes) under key generation {summary.KeyGeneration}; "
                    + (summary.IsComplete ? "none left. The next prune past the grace period deletes the old packs." : $"{summary.PacksRemaining} left for the next rekey.")));
            return ExitCodes.Ok;
        });

        return new Command("repository-key", "The repository's encryption keys: rotate them, and re-encrypt older data under the newest.") { rotate, rekey };
    }

    private static Command VerifyCommand(CliHost host, GlobalOptions globals)
    {
        var command = new Command("verify", "Verify the whole store: every pack's hash, every object's MAC, every recovery point and reference. Changes nothing; exits 5 when damaged.");
        Handle(command, host, globals, async (inv, ct) =>
        {
            var client = await inv.ClientAsync(ct).ConfigureAwait(false);
            var result = inv.Json || !inv.Host.Interactive
                ? await client.VerifyAsync(ct).ConfigureAwait(false)
                : await inv.Console.Status().StartAsync("Verifying the store", _ => client.VerifyAsync(ct)).ConfigureAwait(false);
            inv.Write(
                new JsonStoreVerification(result.IsClean, result.PacksChecked, result.ObjectsChecked, result.PointsChecked, result.UnreferencedObjects,
                    result.UnreferencedPacks.Count, [.. result.Problems.Select(p => new JsonProblem(p.Item, p.Description))],
                    result.CurrentKeyGeneration, result.PacksByKeyGeneration.ToDictionary(g => g.Key.ToString(System.Globalization.CultureInfo.InvariantCulture), g => g.Value),
                    result.PackBytes, result.ReferencedBytes),
                c => Render.Verification(c, result));
            return result.IsClean ? ExitCodes.Ok : ExitCodes.Integrity;
        });
        return command;
    }

    private static Command RunCommand(CliHost host, GlobalOptions globals)
    {
        var command = new Command("run", "Run the backups that are due now (first fulls, the daily 00:00 full, 5-minute incrementals); call it from a timer.");
        Handle(command, host, globals, async (inv, ct) =>
        {
            var results = await (await inv.ClientAsync(ct).ConfigureAwait(false)).RunDueBackupsAsync(ct).ConfigureAwait(false);
            if (!inv.Json || results.Succeeded)
            {
                inv.Write(results.Select(r => new { backupId = r.Point.BackupId, point = JsonPoint.From(r.Point), r.BytesWritten, r.ObjectsWritten }).ToList(), c =>
                {
                    c.MarkupLine($"{results.Count} backup run(s).");
                    foreach (var r in results)
                    {
                        c.MarkupLine($"  {Markup.Escape(r.Point.BackupId)}: #{r.Point.Sequence} {Names.Of(r.Point.Kind)}, {Names.Count(r.Point.KeyCount, "key")}, {Names.Count(r.Point.SecretCount, "secret")}, {Names.Count(r.BytesWritten, "byte")} written");
                    }
                });
            }

            // Every failed backup is reported (as JSON, the first: one document per command); the exit code is the first's.
            var exitCode = ExitCodes.Ok;
            foreach (var failure in inv.Json ? results.Failures.Take(1) : results.Failures)
            {
                var code = ErrorReport.Write(inv, failure.Error);
                exitCode = exitCode == ExitCodes.Ok ? code : exitCode;
            }

            return exitCode;
        });
        return command;
    }
}
