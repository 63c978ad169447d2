// The quick start: the whole backup lifecycle of KmsBackup.Sdk on its embedded defaults — the
// file-system backup store and the embedded software key management service, in a local folder —
// on a simulated clock, so that eleven weeks pass in seconds.
//
//   dotnet run --project samples/Sample1_QuickStart [-- <folder to keep>]
//
// With a folder, the data stays there for the kmsbackup tool to explore (the last lines say how).
using System.Diagnostics;
using System.Globalization;
using System.IO.Abstractions;
using System.Security.Cryptography;
using KmsBackup;
using KmsBackup.DevelopmentKms;
using KmsBackup.Storage;
using Microsoft.Extensions.Time.Testing;
using KmsBackup.Samples;

const string Account = "acct-demo";
const string Hangzhou = "cn-hangzhou";
const string Shanghai = "cn-shanghai";

var stopwatch = Stopwatch.StartNew();
var keep = args.Length > 0 ? Path.GetFullPath(args[0]) : null;
var root = keep ?? Directory.CreateTempSubdirectory("kmsbackup-quickstart-").FullName;
if (keep is not null && Directory.Exists(keep) && Directory.EnumerateFileSystemEntries(keep).Any())
{
    Console.Error.WriteLine($"The folder '{keep}' is not empty; give a new or empty folder.");
    return 2;
}

// The seed's example starts on 2024-05-01: a backup enabled that day with 10 viewable days.
var clock = new FakeTimeProvider(new DateTimeOffset(2024, 5, 1, 8, 0, 0, TimeSpan.Zero));
var timeline = new Timeline(clock);
var files = new FileSystem();
var points = 0;
var restores = 0;

try
{
    // The same layout the kmsbackup tool reads: store/, kms/, keys/repository.key.
    using var kms = new EmbeddedKeyManagementService(files, Path.Combine(root, "kms"), clock);
    using var repositoryKey = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, Path.Combine(root, "keys", "repository.key"));
    using var client = await BackupClient.OpenAsync(
        new FileSystemBackupStore(files, Path.Combine(root, "store"), clock), repositoryKey, kms,
        options: new BackupClientOptions { TimeProvider = clock });

    // Moves the simulated clock forward, running due backups at each step as a host's timer would.
    async Task AdvanceAsync(DateTimeOffset until, TimeSpan step)
    {
        while (clock.GetUtcNow() < until)
        {
            var next = clock.GetUtcNow() + step;
            clock.SetUtcNow(next > until ? until : next);
            points += (await client.RunDueBackupsAsync()).Count;
        }
    }

    static DateTimeOffset At(int month, int day, int hour = 0) => new(2024, month, day, hour, 0, 0, TimeSpan.Zero);
    static string Range(BackupDetails b) => b.QueryableRange?.ToString() ?? "none";

    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("Day 1: an instance, its keys and secrets, and three kinds of backup");
    await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-hz-1", InstanceKind.Software, Hangzhou, Account));
    await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-hz-2", InstanceKind.Software, Hangzhou, Account));
    await kms.GenerateKeyAsync("kst-hz-1", "orders", Account, "order signing");
    await kms.GenerateKeyAsync("kst-hz-1", "billing", Account);
    await kms.StoreSecretAsync("kst-hz-1", "db-password", "orders", "correct horse battery staple"u8.ToArray(), Account);
    await kms.StoreSecretAsync("kst-hz-1", "api-token", "billing", "tok-0001"u8.ToArray(), Account);
    timeline.Say("Software instances kst-hz-1 and kst-hz-2 in cn-hangzhou; kst-hz-1 holds keys orders, billing and secrets db-password, api-token.");

    var automatic = (await client.OnInstanceEnabledAsync("kst-hz-1"))!;
    points++;
    timeline.Say($"Instance enabled: automatic backup {automatic.Id} ({automatic.Label}, {automatic.ViewableDays} viewable days, free); its first full backup ran at once.");

    var defaultBackup = await client.CreateDefaultBackupAsync(Account);
    defaultBackup = await client.EnableBackupAsync(Account, defaultBackup.Id, "kst-hz-1", InstanceKind.Software, "default-hz-1");
    points++;
    timeline.Say($"Default backup {defaultBackup.Id} ({defaultBackup.Label}, {defaultBackup.ViewableDays} viewable days, free) enabled on kst-hz-1.");

    var paid = (await client.PurchaseBackupsAsync(Account, new PurchaseOrder(Hangzhou, 10, PurchaseTerm.FromMonths(1)))).Single();
    paid = await client.EnableBackupAsync(Account, paid.Id, "kst-hz-1", InstanceKind.Software, "paid-hz-1");
    points++;
    timeline.Say($"Purchased backup {paid.Id} ({paid.Label}, 10 viewable days, 1 month) enabled on kst-hz-1; expires {paid.ExpiresAt:yyyy-MM-dd}.");
    Timeline.Detail("Schedule: a full backup daily at 00:00, incrementals every 5 minutes after it.");

    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("Days 2-5: additions and rotations");
    await AdvanceAsync(At(5, 2, 10), TimeSpan.FromHours(4));
    await foreach (var learned in client.ListBackupsAsync(Account))
    {
        if (learned.Kind == BackupKind.Automatic && learned.Instance?.Id == "kst-hz-2")
        {
            timeline.Say($"kst-hz-2 is enabled in the service, but nobody reported it: the first scheduled run learned it from the service and gave it automatic backup {learned.Id}.");
        }
    }

    await kms.GenerateKeyAsync("kst-hz-1", "payments", Account);
    await kms.StoreSecretAsync("kst-hz-1", "card-vault", "payments", "vault-secret"u8.ToArray(), Account);
    timeline.Say("Added key payments and secret card-vault.");
    await AdvanceAsync(At(5, 3, 10), TimeSpan.FromHours(4));
    await kms.RotateKeyAsync("kst-hz-1", "orders");
    await kms.PutSecretValueAsync("kst-hz-1", "api-token", "tok-0002"u8.ToArray());
    timeline.Say("Rotated key orders; new version of secret api-token.");
    await AdvanceAsync(At(5, 5, 10), TimeSpan.FromHours(4));
    var ledgerDsn = "Server=ledger;Password=s3cret"u8.ToArray();
    await kms.GenerateKeyAsync("kst-hz-1", "ledger", Account, "ledger encryption");
    await kms.StoreSecretAsync("kst-hz-1", "ledger-dsn", "ledger", ledgerDsn, Account);
    await kms.RotateKeyAsync("kst-hz-1", "billing");
    await kms.PutSecretValueAsync("kst-hz-1", "db-password", "correct horse battery staple 2"u8.ToArray());
    timeline.Say("Added key ledger and secret ledger-dsn; rotated key billing; new version of secret db-password.");
    await AdvanceAsync(At(5, 5, 23), TimeSpan.FromHours(4));

    Timeline.Chapter("The six views of 2024-05-05 (automatic backup)");
    var may5 = new DateOnly(2024, 5, 5);
    foreach (var type in Enum.GetValues<BackupDataType>())
    {
        var names = new List<string>();
        await foreach (var item in client.GetDataAsync(Account, automatic.Id, may5, type))
        {
            names.Add(item.Name);
        }

        Timeline.Detail($"{type,-30} {names.Count}: {string.Join(", ", names)}");
    }

    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("Days 6-20: deletions, and a name taken elsewhere in the region");
    await AdvanceAsync(At(5, 12, 9), TimeSpan.FromHours(6));
    await kms.DeleteSecretAsync("kst-hz-1", "ledger-dsn");
    await kms.DeleteKeyAsync("kst-hz-1", "ledger");
    timeline.Say("By accident: secret ledger-dsn and its key ledger are deleted from kst-hz-1.");
    await AdvanceAsync(At(5, 15, 9), TimeSpan.FromHours(6));
    await kms.GenerateKeyAsync("kst-hz-2", "ledger", Account);
    timeline.Say("A new key named ledger is created in kst-hz-2 (same region: names are unique across a region).");
    await AdvanceAsync(At(5, 20, 10), TimeSpan.FromHours(6));
    paid = await client.GetBackupAsync(Account, paid.Id);
    timeline.Say($"Purchased backup {paid.Id}: {paid.ViewableDays} viewable days, queryable range {Range(paid)}.");

    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("The seed's May example: restore May 5 data on May 20");
    RestoreRequest Request(string backupId, string target, string[]? keys = null, string[]? secrets = null) => new()
    {
        CallerAccount = Account,
        BackupId = backupId,
        TargetInstanceId = target,
        BackupDate = may5,
        KeyNames = keys ?? [],
        SecretNames = secrets ?? [],
        AllItems = keys is null && secrets is null,
    };

    var plan = await client.PlanRestoreAsync(Request(paid.Id, "kst-hz-1", secrets: ["ledger-dsn"]));
    foreach (var refusal in plan.AllRefusals)
    {
        timeline.Refused(refusal);
    }

    paid = await client.ExtendViewableDaysAsync(Account, paid.Id, 16);
    timeline.Say($"Extended the purchased backup to {paid.ViewableDays} viewable days: queryable range {Range(paid)}.");

    plan = await client.PlanRestoreAsync(Request(paid.Id, "kst-hz-1", secrets: ["ledger-dsn"]));
    foreach (var refusal in plan.AllRefusals)
    {
        timeline.Refused(refusal);
    }

    timeline.Say("The seed's procedure: restore the key that encrypts the secret, then the secret, in one batch.");
    var both = Request(paid.Id, "kst-hz-1", keys: ["ledger"], secrets: ["ledger-dsn"]);
    plan = await client.PlanRestoreAsync(both);
    foreach (var refusal in plan.AllRefusals)
    {
        timeline.Refused(refusal);
    }

    await kms.DeleteKeyAsync("kst-hz-2", "ledger");
    timeline.Say("Deleted the conflicting key ledger in kst-hz-2 (to keep it, rename it first, or restore to another instance).");
    var restored = await client.RestoreAsync(both, new InlineProgress(p => Timeline.Detail($"{p.Phase} {p.Completed}/{p.Total}: {p.Item?.ToString() ?? $"operation {p.OperationId}"}")));
    restores++;
    var value = await kms.GetSecretValueAsync("kst-hz-1", "ledger-dsn");
    timeline.Say($"Restored {string.Join(", ", restored.Restored.Select(i => $"{(i.Type == ItemType.Key ? "key" : "secret")} {i.Name}"))} (operation {restored.OperationId}).");
    Timeline.Detail($"ledger-dsn decrypts to its value of May 5: {(CryptographicOperations.FixedTimeEquals(value.Span, ledgerDsn) ? "yes" : "NO")} (values are never printed).");

    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("A copy to another region for disaster recovery, and a quota refusal");
    await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-sh-1", InstanceKind.Software, Shanghai, Account) { KeyQuota = 2 });
    try
    {
        await client.RestoreAsync(Request(automatic.Id, "kst-sh-1"));
    }
    catch (RestoreException e)
    {
        timeline.Refused(e);
    }

    await kms.UpgradeInstanceAsync("kst-sh-1", keyQuota: 20, secretQuota: EmbeddedInstanceSpec.DefaultQuota);
    timeline.Say("Upgraded kst-sh-1 to a quota of 20 keys.");
    restored = await client.RestoreAsync(Request(automatic.Id, "kst-sh-1"));
    restores++;
    timeline.Say($"Restored all {restored.Restored.Count} items of May 5 into kst-sh-1 in {Shanghai}.");

    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("Download, verify, upload");
    var file = Path.Combine(root, "may-5.kbf");
    byte[] dataKey;
    await using (var stream = File.Create(file))
    {
        using var download = await client.DownloadAsync(Account, paid.Id, may5, stream);
        dataKey = download.DataKey.Span.ToArray();
        timeline.Say($"Downloaded May 5 of {paid.Id}: {download.Length:N0} bytes, encrypted under a fresh 256-bit data key returned once (kept apart from the file, never printed here).");
    }

    await using (var stream = File.OpenRead(file))
    {
        var length = await BackupFileCodec.VerifyAsync(stream, dataKey);
        timeline.Say($"Verified the file with its key: {length:N0} bytes of backup data authenticate.");
    }

    var tampered = File.ReadAllBytes(file);
    tampered[tampered.Length / 2] ^= 0x01;
    try
    {
        await BackupFileCodec.VerifyAsync(new MemoryStream(tampered), dataKey);
    }
    catch (BackupFileException e)
    {
        timeline.Refused(e);
    }

    try
    {
        await using var stream = File.OpenRead(file);
        await BackupFileCodec.VerifyAsync(stream, BackupFileCodec.GenerateDataKey());
    }
    catch (BackupFileException e)
    {
        timeline.Refused(e);
    }

    BackupDetails uploaded;
    await using (var stream = File.OpenRead(file))
    {
        uploaded = await client.UploadAsync(Account, stream, dataKey, "may-5-upload");
    }

    CryptographicOperations.ZeroMemory(dataKey);

    // Its data key is gone: a file nobody can open would only puzzle whoever explores a kept folder (the tool's
    // walk-through downloads one with its key instead).
    File.Delete(file);
    var uploadedKeys = 0;
    await foreach (var _ in client.GetDataAsync(Account, uploaded.Id, may5, BackupDataType.FullyBackedUpKeys))
    {
        uploadedKeys++;
    }

    timeline.Say($"Uploaded as backup {uploaded.Id} ({uploaded.Label}): queryable range {Range(uploaded)}, {uploadedKeys} fully backed up keys.");
    var verification = await client.VerifyAsync();
    timeline.Say($"Verified the store: {verification}.");

    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("Reset");
    await AdvanceAsync(At(5, 21, 9), TimeSpan.FromHours(6));
    defaultBackup = await client.ResetBackupAsync(Account, defaultBackup.Id);
    timeline.Say($"Reset the default backup: all its data deleted, status {defaultBackup.Status}.");
    try
    {
        await client.GetDataPageAsync(Account, defaultBackup.Id, new DateOnly(2024, 5, 20), BackupDataType.FullyBackedUpKeys);
    }
    catch (BackupException e)
    {
        timeline.Refused(e);
    }

    defaultBackup = await client.EnableBackupAsync(Account, defaultBackup.Id, "kst-sh-1", InstanceKind.Software, "default-sh-1");
    points++;
    timeline.Say($"Enabled it again, now for kst-sh-1: queryable range {Range(defaultBackup)} (never before enabling).");

    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("Expiry, renewal, release");
    await AdvanceAsync(At(6, 2, 9), TimeSpan.FromDays(1));
    paid = await client.GetBackupAsync(Account, paid.Id);
    timeline.Say($"Purchased backup {paid.Id} is {paid.Status} since {paid.ExpiresAt:yyyy-MM-dd}; released {paid.ReleaseDueAt:yyyy-MM-dd} unless renewed.");
    try
    {
        await client.GetDataPageAsync(Account, paid.Id, new DateOnly(2024, 5, 25), BackupDataType.FullyBackedUpKeys);
    }
    catch (BackupException e)
    {
        timeline.Refused(e);
    }

    paid = await client.RenewBackupAsync(Account, paid.Id, PurchaseTerm.FromMonths(1));
    timeline.Say($"Renewed for 1 month: {paid.Status}, expires {paid.ExpiresAt:yyyy-MM-dd}, queryable range {Range(paid)}.");
    await AdvanceAsync(paid.ReleaseDueAt!.Value.AddDays(1), TimeSpan.FromDays(1));
    paid = await client.GetBackupAsync(Account, paid.Id);
    timeline.Say($"Not renewed again: expired {paid.ExpiresAt:yyyy-MM-dd}, and 15 days later {paid.Status}: its data is deleted.");
    try
    {
        await client.RenewBackupAsync(Account, paid.Id, PurchaseTerm.FromMonths(1));
    }
    catch (BackupException e)
    {
        timeline.Refused(e);
    }

    await kms.ReleaseInstanceAsync("kst-hz-1");
    await client.OnInstanceReleasedAsync("kst-hz-1");
    automatic = await client.GetBackupAsync(Account, automatic.Id);
    timeline.Say($"Released instance kst-hz-1: its automatic backup takes no new data, stays viewable ({Range(automatic)}) and is deleted {automatic.ReleaseDueAt:yyyy-MM-dd}.");
    var pruned = await client.PruneAsync();
    verification = await client.VerifyAsync();
    timeline.Say($"Pruned {pruned.RecoveryPointsDeleted} recovery points past retention; verified the store: {verification}.");

    // ---------------------------------------------------------------------------------------------
    var backups = new List<BackupDetails>();
    await foreach (var backup in client.ListBackupsAsync(Account))
    {
        backups.Add(backup);
    }

    Console.WriteLine();
    if (keep is not null)
    {
        // The walk-through of README.md ("The kmsbackup tool"), with this run's folder and backup ID filled in.
        var now = clock.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        Console.WriteLine("Explore the folder with the kmsbackup tool as of the simulated end (build the tool once and define kmsbackup: README.md, \"The kmsbackup tool\"):");
        Console.WriteLine($"  export KMSBACKUP_ROOT=\"{keep}\" KMSBACKUP_ACCOUNT={Account}");
        Console.WriteLine($"  kmsbackup backups list --now {now}");
        Console.WriteLine($"  kmsbackup data {automatic.Id} --date 2024-05-05 --type fully-backed-up-keys --now {now}");
        Console.WriteLine($"  kmsbackup restore plan {automatic.Id} --date 2024-05-05 --all --target kst-hz-2 --now {now}");
        Console.WriteLine($"  kmsbackup download {automatic.Id} --date 2024-05-05 --out may-5.kbf --data-key-out may-5.key --now {now}");
        Console.WriteLine("  kmsbackup verify-file may-5.kbf --data-key-file may-5.key");
        Console.WriteLine($"  kmsbackup upload may-5.kbf --name may-5 --data-key-file may-5.key --now {now}");
        Console.WriteLine($"  kmsbackup verify --now {now}");
    }

    var kinds = string.Join(", ", backups.Select(b => b.Label).Distinct());
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"Summary: {backups.Count} backups ({kinds}), {points} recovery points, {restores} restores, {timeline.Refusals} refusals shown, store {(verification.IsClean ? "verified clean" : "DAMAGED")}; simulated 2024-05-01..{clock.GetUtcNow():yyyy-MM-dd} in {stopwatch.Elapsed.TotalSeconds:F1} s."));
    return verification.IsClean ? 0 : 1;
}
finally
{
    if (keep is null)
    {
        Directory.Delete(root, recursive: true);
    }
}

/// <summary>Reports restore progress at once, in order.</summary>
internal sealed class InlineProgress(Action<RestoreProgress> report) : IProgress<RestoreProgress>
{
    public void Report(RestoreProgress value) => report(value);
}
