// README.md, "The engine in a few lines": a whole program, as pasted into a new console project's Program.cs.
// Run twice in one folder by tests/KmsBackup.Samples.Tests (SnippetTests); the lines after the region check what it did.
#region snippet
using System.IO.Abstractions;
using KmsBackup;
using KmsBackup.DevelopmentKms;
using KmsBackup.Storage;

var files = new FileSystem();
using var kms = new EmbeddedKeyManagementService(files, "data/kms", TimeProvider.System);
if (await kms.GetInstanceAsync("kst-1") is null)                  // the folder outlives the run: create the instance once
{
    await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-1", InstanceKind.Software, "cn-hangzhou", "acct-1"));
    await kms.GenerateKeyAsync("kst-1", "orders", "acct-1");
}

// Keep the key file apart from the store: whoever has both can read the backups.
using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, "secrets/repository.key");
using var client = await BackupClient.OpenAsync(new FileSystemBackupStore(files, "data/backups"), keys, kms);

// The automatic backup: created, with its first full at once, when the instance is enabled; null when it has one already.
var backup = await client.OnInstanceEnabledAsync("kst-1")
    ?? await client.ListBackupsAsync("acct-1").FirstAsync(b => b.Instance?.Id == "kst-1");
await client.RunDueBackupsAsync();                              // call on a timer: fulls at 00:00, incrementals every 5 minutes
var today = DateOnly.FromDateTime(DateTime.UtcNow);             // the backup's days are UTC days unless BackupClientOptions.TimeZone says otherwise
var page = await client.GetDataPageAsync("acct-1", backup.Id, today, BackupDataType.FullyBackedUpKeys);
var verification = await client.VerifyAsync();                 // every pack, object MAC and reference

// A day as an encrypted file; the data key is returned once and stored nowhere: keep it apart from the file.
await using (var file = File.Create("today.kbf"))
{
    using var download = await client.DownloadAsync("acct-1", backup.Id, today, file);
    await File.WriteAllBytesAsync("secrets/today.key", download.DataKey.Span.ToArray());
}
#endregion

// What the test checks: the backup holds the key, the store verifies, and the file opens under its key and uploads back.
var dataKey = await File.ReadAllBytesAsync("secrets/today.key");
long plaintext;
await using (var file = File.OpenRead("today.kbf"))
{
    plaintext = await BackupFileCodec.VerifyAsync(file, dataKey);
}

BackupDetails uploaded;
await using (var file = File.OpenRead("today.kbf"))
{
    uploaded = await client.UploadAsync("acct-1", file, dataKey, $"engine snippet upload {Guid.NewGuid():N}");
}

var uploads = await client.ListBackupsAsync("acct-1").CountAsync(b => b.Kind == BackupKind.Uploaded);
Console.WriteLine($"snippet Engine: backup {backup.Label} of {backup.Instance?.Id}, fully backed up keys: {string.Join(", ", page.Items.Select(i => i.Name))}, " +
    $"store {(verification.IsClean ? "clean" : "DAMAGED")}, file {new FileInfo("today.kbf").Length} bytes ({plaintext} plaintext bytes authenticated), " +
    $"uploaded back as {uploaded.Label} ({uploads} uploads in the store)");
