// src/KmsBackup.Core/README.md: a fragment. Given (outside the region): a downloaded backup file "backup.kbf" in the
// working folder and dataKey, the data key its download returned.
using KmsBackup;

using var setup = await EmbeddedSetup.StartAsync();
byte[] dataKey;
await using (var download = File.Create("backup.kbf"))
{
    using var result = await setup.Client.DownloadAsync("acct-1", setup.Backup.Id, setup.Today, download);
    dataKey = result.DataKey.Span.ToArray();
}

if (args is ["--wrong-key"])
{
    dataKey = new byte[dataKey.Length];
}

#region snippet
// A downloaded backup file and the data key returned with it: check the file before keeping it.
await using var file = File.OpenRead("backup.kbf");
try
{
    var length = await BackupFileCodec.VerifyAsync(file, dataKey);   // plaintext bytes that authenticate
}
catch (BackupFileException e)                                   // WrongFileKey, FileCorrupt, FileTruncated, ...
{
    Console.WriteLine($"{e.Code}: {e.Message} Remedy: {e.Remedy}");
}

var term = PurchaseTerm.FromYears(1);                                 // P12M
var order = new PurchaseOrder("cn-hangzhou", ViewableDays: 10, term); // for BackupClient.PurchaseBackupsAsync
#endregion

var bought = await setup.Client.PurchaseBackupsAsync("acct-1", order);
file.Position = 0;
long authenticated;
try
{
    authenticated = await BackupFileCodec.VerifyAsync(file, dataKey);
}
catch (BackupFileException)
{
    authenticated = -1;
}

Console.WriteLine($"snippet CorePackage: file {file.Length} bytes, {authenticated} plaintext bytes authenticate under the key used, term {term}, bought {bought.Count} backup of {bought[0].ViewableDays} viewable days");
