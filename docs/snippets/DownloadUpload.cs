// README.md, "Download and upload": a fragment. Given (outside the region): client, backup (the automatic backup of kst-1)
// and today (a day in its queryable range). The file goes to the working folder.
using KmsBackup;

using var setup = await EmbeddedSetup.StartAsync();
var client = setup.Client;
var backup = setup.Backup;
var today = setup.Today;

#region snippet
// A date as an encrypted file; the data key is returned once and stored nowhere (rule F1).
byte[] dataKey;
await using (var file = File.Create("backup.kbf"))
{
    using var download = await client.DownloadAsync("acct-1", backup.Id, today, file);
    dataKey = download.DataKey.Span.ToArray();   // keep it apart from the file: whoever has both reads the day
}

// And back, as a backup of kind Upload (rule F2), read from any stream, once, front to back:
await using (var file = File.OpenRead("backup.kbf"))
{
    var uploaded = await client.UploadAsync("acct-1", file, dataKey, "copy of today");
}
#endregion

var upload = await client.ListBackupsAsync("acct-1").SingleAsync(b => b.Kind == BackupKind.Uploaded);
var keys = await client.GetDataAsync("acct-1", upload.Id, today, BackupDataType.FullyBackedUpKeys).Select(i => i.Name).ToListAsync();
Console.WriteLine($"snippet DownloadUpload: file {new FileInfo("backup.kbf").Length} bytes, data key {dataKey.Length} bytes, " +
    $"uploaded as {upload.Label} '{upload.Alias}' holding keys: {string.Join(", ", keys)}");
