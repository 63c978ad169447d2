// README.md, "The domain in a few lines": a whole program (packages KmsBackup, KmsBackup.DevelopmentKms and
// Microsoft.Extensions.TimeProvider.Testing for the simulated clock).
#region snippet
using System.IO.Abstractions;
using KmsBackup;
using KmsBackup.DevelopmentKms;
using KmsBackup.Storage;
using Microsoft.Extensions.Time.Testing;

// The seed's May example on a simulated clock, in a fresh folder: three weeks pass in a few seconds.
var clock = new FakeTimeProvider(new DateTimeOffset(2024, 5, 1, 9, 0, 0, TimeSpan.Zero));
var folder = Directory.CreateTempSubdirectory("kmsbackup-may-").FullName;
var files = new FileSystem();
using var kms = new EmbeddedKeyManagementService(files, Path.Combine(folder, "kms"), clock);
await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-1", InstanceKind.Software, "cn-hangzhou", "acct-1"));
await kms.GenerateKeyAsync("kst-1", "orders", "acct-1");
using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, Path.Combine(folder, "keys", "repository.key"));
using var client = await BackupClient.OpenAsync(new FileSystemBackupStore(files, Path.Combine(folder, "store"), clock), keys, kms,
    options: new BackupClientOptions { TimeProvider = clock });

// Buy a backup with 10 viewable days and bind it to the instance: its first full runs at once.
var backup = (await client.PurchaseBackupsAsync("acct-1", new PurchaseOrder("cn-hangzhou", 10, PurchaseTerm.FromYears(1)))).Single();
backup = await client.EnableBackupAsync("acct-1", backup.Id, "kst-1", InstanceKind.Software, "prod");
while (clock.GetUtcNow() < new DateTimeOffset(2024, 5, 20, 12, 0, 0, TimeSpan.Zero))
{
    clock.Advance(TimeSpan.FromHours(6));
    await client.RunDueBackupsAsync();          // what is due: a full daily at 00:00, incrementals every 5 minutes
}

// On 2024-05-20 the window is 05-11..05-20; reading (or restoring) 05-05 needs 16 viewable days.
var may5 = new DateOnly(2024, 5, 5);
try
{
    await client.GetDataPageAsync("acct-1", backup.Id, may5, BackupDataType.FullyBackedUpKeys);
}
catch (BackupException e) when (e.Code == BackupErrorCode.DateOutsideWindow)
{
    // DateOutsideWindow: ... it needs 16 viewable days, and the backup has 10. Remedy: Extend the viewable days to at least 16, then retry.
    Console.WriteLine($"{e.Code}: {e.Message} Remedy: {e.Remedy}");
}

backup = await client.ExtendViewableDaysAsync("acct-1", backup.Id, 16);
var page = await client.GetDataPageAsync("acct-1", backup.Id, may5, BackupDataType.FullyBackedUpKeys);   // May 5's keys: orders
#endregion

Console.WriteLine($"snippet Domain: {backup.ViewableDays} viewable days, queryable range {backup.QueryableRange}, May 5 keys: {string.Join(", ", page.Items.Select(i => i.Name))}");
client.Dispose();
keys.Dispose();
kms.Dispose();
Directory.Delete(folder, recursive: true);
