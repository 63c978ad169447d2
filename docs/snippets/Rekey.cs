// README.md, "Keys: rotation and rekey": a fragment. Given (outside the region): client, over a store with a backup.
using KmsBackup;

using var setup = await EmbeddedSetup.StartAsync();
var client = setup.Client;
var before = await client.VerifyAsync();

#region snippet
await client.RotateRepositoryKeyAsync();
RekeySummary step;
do
{
    step = await client.RekeyAsync(maximumPacks: 50); // a background job: a few packs per call
}
while (!step.IsComplete);
// After PruneGracePeriod, PruneAsync deletes the old packs; VerifyAsync().PacksByKeyGeneration shows what is left.
#endregion

var after = await client.VerifyAsync();
static string Generations(RepositoryVerification v) => string.Join(", ", v.PacksByKeyGeneration.OrderBy(p => p.Key).Select(p => $"generation {p.Key}: {p.Value} packs"));
Console.WriteLine($"snippet Rekey: key generation {before.CurrentKeyGeneration} -> {after.CurrentKeyGeneration}, rekey complete: {step.IsComplete}, {step.PacksRemaining} packs remaining; " +
    $"before: {Generations(before)}; after: {Generations(after)} (the old ones until a prune past the grace period); store {(after.IsClean ? "clean" : "DAMAGED")}");
