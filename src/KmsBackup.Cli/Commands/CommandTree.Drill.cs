using System.CommandLine;
using KmsBackup.Cli.Output;
using Spectre.Console;

namespace KmsBackup.Cli.Commands;

internal static partial class CommandTree
{
    private static Command DrillCommand(CliHost host, GlobalOptions globals)
    {
        var id = BackupIdArgument();
        var scratch = new Option<string>("--scratch")
        {
            Description = "An empty instance of the account to restore the sample into (and delete it from again); in another region than the backup's instance, whose names it reuses.",
            Required = true,
        };
        var sample = OptionalWholeNumberOption("--sample", $"How many keys, and how many secrets, to sample (1 to {RecoveryDrillRequest.MaxSampleSize}); 20 when left out.");
        var seed = OptionalWholeNumberOption("--seed", "Seeds the sample, so that a later drill samples the same items; random when left out.");
        var at = new RestoreOptions().At;
        at.Description = "Drill the latest recovery point taken at or before this instant (ISO 8601); the latest point when left out.";
        var verify = new Option<bool>("--verify") { Description = "Also verify every object of the store first, as 'kmsbackup verify' does." };
        var command = new Command(
            "drill",
            "Prove a backup recoverable without touching production: restore a random sample of a recovery point into an empty scratch instance, compare every restored item with the backup (metadata, versions, key material, secret ciphertexts), and delete it again. Run it with only the escrowed key provider, or on the copy in a second store. Exits 0 when every item matched, 5 when one differs.")
        {
            id, scratch, sample, seed, at, verify,
        };
        Handle(command, host, globals, async (inv, ct) =>
        {
            var request = new RecoveryDrillRequest
            {
                CallerAccount = inv.Account,
                BackupId = inv.Value(id),
                ScratchInstanceId = inv.Value(scratch),
                PointInTime = inv.Result.GetValue(at),
                SampleSize = inv.Result.GetValue(sample) ?? 20,
                Seed = inv.Result.GetValue(seed),
                VerifyRepository = inv.Result.GetValue(verify),
            };
            try
            {
                request.Validate();
            }
            catch (ArgumentOutOfRangeException)
            {
                throw new UsageException($"--sample takes 1 to {RecoveryDrillRequest.MaxSampleSize} items; {request.SampleSize} is out of range.");
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message.Split(" (Parameter", 2)[0]);
            }

            var client = await inv.ClientAsync(ct).ConfigureAwait(false);
            var report = inv.Json || !inv.Host.Interactive
                ? await client.DrillAsync(request, ct).ConfigureAwait(false)
                : await inv.Console.Status().StartAsync("Drilling", _ => client.DrillAsync(request, ct)).ConfigureAwait(false);
            inv.Write(JsonDrill.From(report), c => Render.Drill(c, report));
            return report.Passed ? ExitCodes.Ok : ExitCodes.Integrity;
        });
        return command;
    }
}
