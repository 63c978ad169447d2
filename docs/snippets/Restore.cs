// README.md, "Restore": a fragment. Given (outside the region): client, backup (the automatic backup of kst-1, whose
// key is "orders"), today (a day in its queryable range) and kst-shanghai-1, an empty instance of the same account in cn-shanghai.
using KmsBackup;

using var setup = await EmbeddedSetup.StartAsync();
var client = setup.Client;
var backup = setup.Backup;
var today = setup.Today;

#region snippet
// The seed's way: a date and one of its views, then the items by name. Any region of the account.
var request = new RestoreRequest
{
    CallerAccount = "acct-1",
    BackupId = backup.Id,
    BackupDate = today,                          // a date in the backup's queryable range
    DataType = BackupDataType.FullyBackedUpKeys,
    KeyNames = ["orders"],
    TargetInstanceId = "kst-shanghai-1",
};
var plan = await client.PlanRestoreAsync(request);
foreach (var refusal in plan.AllRefusals)
{
    Console.WriteLine($"{refusal.Code}: {refusal.Message} Remedy: {refusal.Remedy}");
}

if (plan.CanExecute)
{
    var result = await client.RestoreAsync(request with { OperationId = plan.OperationId },
        new Progress<RestoreProgress>(p => Console.WriteLine($"{p.Phase} {p.Completed}/{p.Total} {p.Item}")));
}

// A whole recovery point (a released instance, say) by instant instead of date:
// new RestoreRequest { ..., PointInTime = someInstant, AllItems = true }
#endregion

var restored = await setup.Kms.GetKeyAsync("kst-shanghai-1", "orders");
var original = await setup.Kms.GetKeyAsync("kst-1", "orders");
Console.WriteLine($"snippet Restore: plan can execute: {plan.CanExecute}, {plan.KeysToRestore} key planned; " +
    $"kst-shanghai-1 holds orders: {restored is not null}, same key ID: {restored?.Id == original?.Id}");
