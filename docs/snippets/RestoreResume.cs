// README.md, "A restore whose process dies": a fragment. Given (outside the region): client, and operationId, the ID of
// a restore (all of kst-1's items, key "orders" and secret "db-password", into kst-shanghai-1) whose process died after
// its first write: a child process of this program ran it and exited in its progress report of that write. Its restore
// lease lasts 2 seconds here (BackupClientOptions.LeaseDuration; 5 minutes by default), and this process waits it out.
// The first argument says which way to end it: "resume" or "rollback".
using KmsBackup;

var options = new BackupClientOptions { LeaseDuration = TimeSpan.FromSeconds(2) };
if (args is ["--die-while-restoring", var folder])
{
    using var dying = await EmbeddedSetup.StartAsync(folder, options);
    await dying.Client.RestoreAsync(new RestoreRequest
    {
        CallerAccount = "acct-1",
        BackupId = dying.Backup.Id,
        PointInTime = DateTimeOffset.UtcNow,
        AllItems = true,
        TargetInstanceId = "kst-shanghai-1",
    }, new DieAfterFirstWrite(folder));
    throw new InvalidOperationException("The restore should not have finished.");
}

var keepWhatWasRestored = args is ["resume"];
var root = Directory.CreateTempSubdirectory("kmsbackup-snippet-").FullName;
using (await EmbeddedSetup.StartAsync(root))
{
    // Sets up the instances and the backup, and closes them for the child process.
}

using (var child = System.Diagnostics.Process.Start(DieAfterFirstWrite.StartInfo(root)) ?? throw new InvalidOperationException("The child process did not start."))
{
    var error = await child.StandardError.ReadToEndAsync();
    await child.WaitForExitAsync();
    if (child.ExitCode != DieAfterFirstWrite.ExitCode)
    {
        throw new InvalidOperationException($"The child process exited {child.ExitCode}: {error}");
    }
}

var restarted = await EmbeddedSetup.StartAsync(root, options);
var client = restarted.Client;
var operationId = await File.ReadAllTextAsync(Path.Combine(root, "operation-id"));
await Task.Delay(options.LeaseDuration + TimeSpan.FromSeconds(0.5));

#region snippet
await foreach (var unfinished in client.ListUnfinishedRestoresAsync("acct-1"))
{
    // e.g. restore restore-3f...: backup 'bka-...' -> instance 'kst-shanghai-1', 2 of 4 items in the target, unfinished
    Console.WriteLine(unfinished);
}

if (keepWhatWasRestored)
{
    var finished = await client.ResumeRestoreAsync("acct-1", operationId);    // the rest, from the same recovery point; nothing twice
}
else
{
    var undone = await client.RollBackRestoreAsync("acct-1", operationId);   // exactly what that operation created, secrets first
}
#endregion

var left = await client.ListUnfinishedRestoresAsync("acct-1").CountAsync();
var key = await restarted.Kms.GetKeyAsync("kst-shanghai-1", "orders");
var secret = await restarted.Kms.GetSecretAsync("kst-shanghai-1", "db-password");
restarted.Dispose();
Directory.Delete(root, recursive: true);
Console.WriteLine($"snippet RestoreResume: {(keepWhatWasRestored ? "resumed" : "rolled back")} {operationId}; " +
    $"kst-shanghai-1 holds key orders: {key is not null}, secret db-password: {secret is not null}; unfinished restores left: {left}");
