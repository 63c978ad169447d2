// Sample3_HardwareRestore: the seed's "Restore a hardware instance" walkthrough on real SoftHSM2
// tokens. A hardware key management instance keeps its keys' metadata in KMS and their material in
// an HSM cluster; KMS backup protects the metadata and the secrets, HSM backup the material. The
// sample backs up both, loses the instance, shows the refusals on the way (never into the original
// instance: R3; never into an enabled cluster or one in a single zone: H5; never a key whose material
// no image holds: H7), restores the most recent Auto Create image into a new cluster, creates a new
// hardware instance on it, restores the keys' metadata and then the secrets, and decrypts, with a
// restored key, data encrypted before the loss. On a simulated clock: it takes seconds.
//
//   dotnet run --project samples/Sample3_HardwareRestore [-- <folder to keep>]
//
// Needs SoftHSM2 (Debian/Ubuntu: apt-get install softhsm2): the PKCS#11 library (KMSBACKUP_PKCS11_LIBRARY,
// default /usr/lib/softhsm/libsofthsm2.so) and softhsm2-util on the PATH. The tokens live in a token
// folder of the sample's own (SOFTHSM2_CONF points there), never in the machine's default one.
// Exit codes: 0 done as shown; 1 an unexpected failure; 2 the folder given is not empty; 3 SoftHSM2 is missing.
using System.Diagnostics;
using System.Globalization;
using System.IO.Abstractions;
using System.Security.Cryptography;
using KmsBackup;
using KmsBackup.Hsm.Pkcs11;
using KmsBackup.DevelopmentKms;
using KmsBackup.Storage;
using Microsoft.Extensions.Time.Testing;
using Sample3_HardwareRestore;
using KmsBackup.Samples;

const string Account = "acct-demo";
const string Region = "cn-hangzhou";
const string ZoneH = "cn-hangzhou-h";
const string ZoneI = "cn-hangzhou-i";

var stopwatch = Stopwatch.StartNew();
var keep = args.Length > 0 ? Path.GetFullPath(args[0]) : null;
if (keep is not null && Directory.Exists(keep) && Directory.EnumerateFileSystemEntries(keep).Any())
{
    Console.Error.WriteLine($"The folder '{keep}' is not empty; give a new or empty folder.");
    return 2;
}

var libraryPath = SoftHsmTokens.DefaultLibraryPath;
var utility = SoftHsmTokens.FindUtility();
if (!File.Exists(libraryPath) || utility is null)
{
    Console.Error.WriteLine("SoftHSM2 is missing: this sample needs its PKCS#11 library " +
        $"({(File.Exists(libraryPath) ? "found" : "not found")} at '{libraryPath}'; set KMSBACKUP_PKCS11_LIBRARY to use another path) " +
        $"and softhsm2-util on the PATH ({(utility is null ? "not found" : "found")}).");
    Console.Error.WriteLine("Install it (Debian/Ubuntu: sudo apt-get install softhsm2) and run the sample again.");
    return 3;
}

var root = keep ?? Directory.CreateTempSubdirectory("kmsbackup-hardware-").FullName;

// Hardware instances created after 2026-04-01 get an automatic backup: the story starts in May 2026.
var clock = new FakeTimeProvider(new DateTimeOffset(2026, 5, 1, 9, 0, 0, TimeSpan.Zero));
var timeline = new Timeline(clock);
var files = new FileSystem();
var unexpected = 0;
var points = 0;

// A step that should go as shown; when it does not, the sample says so and exits 1.
void Expect(bool ok, string what)
{
    if (!ok)
    {
        unexpected++;
        Console.Error.WriteLine($"UNEXPECTED: {what}");
    }
}

try
{
    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("SoftHSM2: HSM clusters made of tokens");
    var tokens = SoftHsmTokens.Create(Path.Combine(root, "softhsm2"), libraryPath, utility);

    // A cluster: HSMs (tokens) with zone labels, HSM backup enabled one day after the KMS backup,
    // with as many mirror images as the automatic backup's 90 viewable days.
    Pkcs11ClusterDefinition Cluster(string id, params string[] zones) =>
        new(id, Region, zones.Select((zone, i) => new Pkcs11HsmDefinition($"{id}-hsm-{(char)('a' + i)}", zone, tokens.NewToken($"{id}-{(char)('a' + i)}", withSoPin: true))).ToList())
        {
            Backup = new HsmBackupPolicy(true, 90, TimeSpan.FromDays(1)),
            OwnerAccount = Account,   // only the owner's account may restore an image into the cluster
        };

    var clusters = new[]
    {
        Cluster("cls-orig", ZoneH, ZoneI),     // serves the hardware instance that will be lost
        Cluster("cls-busy", ZoneH, ZoneI),     // enabled: serves another instance
        Cluster("cls-one-zone", ZoneH, ZoneH), // two HSMs, one zone
        Cluster("cls-new", ZoneH, ZoneI),      // purchased for the restore and never enabled
    };
    var vault = tokens.NewToken("backup-vault");
    var repositoryToken = tokens.NewToken("repository");
    timeline.Say($"Initialised {tokens.Count} SoftHSM2 tokens with softhsm2-util in the sample's own token folder (random PINs, never printed).");
    foreach (var cluster in clusters)
    {
        Timeline.Detail($"{cluster.ClusterId,-13} {string.Join(", ", cluster.Hsms.Select(h => $"{h.HsmId} in {h.Zone}"))}");
    }

    Timeline.Detail("backup-vault  holds the HSM backup key and the backup images (keys wrapped under it, inside the tokens)");
    Timeline.Detail("repository    holds the key that wraps the backup store's repository key");

    var gatewayOptions = new Pkcs11HsmClusterGatewayOptions { LibraryPath = libraryPath, BackupVault = vault, TimeProvider = clock };
    foreach (var cluster in clusters)
    {
        gatewayOptions.Clusters.Add(cluster);
    }

    using var hsm = Pkcs11HsmClusterGateway.Open(gatewayOptions);
    using var kms = new EmbeddedKeyManagementService(files, Path.Combine(root, "kms"), clock,
        new EmbeddedKeyManagementServiceOptions { HardwareKeys = new Pkcs11HardwareKeyOperations(hsm) });
    using var repositoryKey = Pkcs11RepositoryKeyProvider.Open(libraryPath, repositoryToken);
    using var client = await BackupClient.OpenAsync(
        new FileSystemBackupStore(files, Path.Combine(root, "store"), clock), repositoryKey, kms,
        hsmClusters: hsm, new BackupClientOptions { TimeProvider = clock });

    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("Day 1: a hardware instance on cls-orig, a key, a secret, data encrypted with the key");
    await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-hw", InstanceKind.Hardware, Region, Account)
    {
        CreatedAt = clock.GetUtcNow().AddDays(-1),
        ImageVersion = new Version(3, 9, 1),
    });
    await hsm.ConnectInstanceAsync("cls-orig", "kst-hw");
    timeline.Say("Hardware instance kst-hw (image 3.9.1) in cn-hangzhou, enabled and connected to HSM cluster cls-orig.");

    var orders = await kms.GenerateKeyAsync("kst-hw", "orders", Account, "order encryption");
    var inCluster = await hsm.IsKeyMaterialPresentAsync("cls-orig", orders.Id);
    Expect(!orders.HasMaterial && inCluster, "the key's material should be in the HSM cluster, not in the instance");
    timeline.Say($"Key orders ({orders.Id}): metadata in kst-hw, material generated inside cls-orig (in both HSMs: {(inCluster ? "yes" : "NO")}).");

    var secretValue = "correct horse battery staple"u8.ToArray();
    await kms.StoreSecretAsync("kst-hw", "db-password", "orders", secretValue, Account);
    timeline.Say($"Secret db-password ({secretValue.Length} bytes), encrypted by key orders.");

    var invoice = "invoice 2026-0042: 1,250.00 EUR"u8.ToArray();
    var encryptedBeforeLoss = await kms.EncryptAsync("kst-hw", "orders", invoice);
    timeline.Say($"Encrypted a {invoice.Length}-byte invoice with key orders: {encryptedBeforeLoss.Length} bytes of ciphertext, kept by the application.");

    await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-hw-other", InstanceKind.Hardware, Region, Account) { ImageVersion = new Version(3, 9, 1) });
    await hsm.ConnectInstanceAsync("cls-busy", "kst-hw-other");
    timeline.Say("Another hardware instance, kst-hw-other, is enabled on cluster cls-busy.");

    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("Both backups: KMS backup of the metadata and secrets, HSM backup of the material one day later");
    var backup = (await client.OnInstanceEnabledAsync("kst-hw"))!;
    points++;
    backup = await client.GetBackupAsync(Account, backup.Id);
    timeline.Say($"Automatic backup {backup.Id} ({backup.Label}, {backup.ViewableDays} viewable days) of kst-hw; its first full backup ran at once.");
    Timeline.Detail($"Associated HSM: cluster {backup.Hsm?.ClusterId}, primary HSM {backup.Hsm?.PrimaryHsmId}.");
    var protection = await client.GetProtectionAsync(Account, "kst-hw");
    Expect(protection.Level == ProtectionLevel.Full && protection.Warnings.Count == 0, "kst-hw should be fully protected, without warnings");
    Timeline.Detail($"Protection of kst-hw: {protection.Level} (KMS backup {(protection.KmsBackupEnabled ? "on" : "off")}, HSM backup {(protection.HsmBackupEnabled ? "on" : "off")}), {protection.Warnings.Count} warnings.");

    clock.SetUtcNow(new DateTimeOffset(2026, 5, 2, 0, 0, 0, TimeSpan.Zero));
    points += (await client.RunDueBackupsAsync()).Count;
    timeline.Say("Daily full KMS backup.");
    clock.SetUtcNow(new DateTimeOffset(2026, 5, 2, 0, 30, 0, TimeSpan.Zero));
    var image = await hsm.TakeBackupImageAsync("cls-orig");
    var manual = await hsm.TakeBackupImageAsync("cls-orig", HsmBackupImageType.Manual);
    timeline.Say($"HSM backup of cls-orig: image {image.ImageId} ({image.TypeLabel}, {image.KeyCount} key wrapped inside the HSM); an operator also took {manual.ImageId} ({manual.TypeLabel}).");
    var joint = await client.GetJointlyRestorableDatesAsync(Account, backup.Id);
    Expect(joint.Contains(new DateOnly(2026, 5, 1)), "2026-05-01 should be jointly restorable");
    Timeline.Detail($"Jointly restorable dates (KMS metadata of day D, HSM image of day D+1): {string.Join(", ", joint.Select(d => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)))}.");

    clock.SetUtcNow(new DateTimeOffset(2026, 5, 2, 1, 0, 0, TimeSpan.Zero));
    await kms.GenerateKeyAsync("kst-hw", "late-key", Account);
    clock.SetUtcNow(new DateTimeOffset(2026, 5, 2, 1, 5, 0, TimeSpan.Zero));
    points += (await client.RunDueBackupsAsync()).Count;
    timeline.Say("Key late-key created after the image: the next incremental backs up its metadata; no image holds its material yet.");
    var (_, backedUp) = await client.GetStateAtAsync(Account, backup.Id, clock.GetUtcNow());
    Expect(backedUp.Keys.Length > 0 && backedUp.Keys.All(k => !k.HasMaterial), "the backup should hold key metadata only");
    Timeline.Detail($"The backup holds {backedUp.Keys.Length} keys, {backedUp.Keys.Count(k => k.HasMaterial)} with material (hardware keys: metadata only), and {backedUp.Secrets.Length} secret.");

    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("Restore into the original instance? Refused (R3)");
    var may1 = new DateOnly(2026, 5, 1);
    var toOriginal = await client.PlanRestoreAsync(new RestoreRequest
    {
        CallerAccount = Account, BackupId = backup.Id, TargetInstanceId = "kst-hw", BackupDate = may1, AllItems = true,
    });
    Expect(!toOriginal.CanExecute && toOriginal.AllRefusals.Any(r => r.Code == BackupErrorCode.RestoreTargetNotAllowed), "a restore into the original instance should be refused");
    foreach (var refusal in toOriginal.AllRefusals.Where(r => r.Code == BackupErrorCode.RestoreTargetNotAllowed))
    {
        timeline.Refused(refusal);
    }

    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("The instance is lost");
    clock.SetUtcNow(new DateTimeOffset(2026, 5, 2, 9, 0, 0, TimeSpan.Zero));
    points += (await client.RunDueBackupsAsync()).Count;
    await kms.ReleaseInstanceAsync("kst-hw");
    await client.OnInstanceReleasedAsync("kst-hw");
    timeline.Say("Hardware instance kst-hw is released; its automatic backup takes no new data and stays viewable.");

    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("Step 1: an HSM cluster to restore into (H5), and the most recent Auto Create image");
    try
    {
        await client.RestoreHsmImageAsync(Account, backup.Id, "cls-one-zone");
        Expect(false, "a restore into a cluster in one zone should be refused");
    }
    catch (BackupException e) when (e.Code == BackupErrorCode.ClusterTooFewHsms)
    {
        timeline.Refused(e);
    }

    var busyRefusals = await client.CheckHsmRestoreTargetAsync(Account, "cls-busy", Region);
    Expect(busyRefusals.Any(r => r.Code == BackupErrorCode.ClusterEnabled), "a restore into an enabled cluster should be refused");
    foreach (var refusal in busyRefusals)
    {
        timeline.Refused(refusal);
    }

    var freshRefusals = await client.CheckHsmRestoreTargetAsync(Account, "cls-new", Region);
    Expect(freshRefusals.Count == 0, "cls-new should take the restore");
    timeline.Say($"cls-new: two HSMs across {ZoneH} and {ZoneI}, in {Region}, never enabled, empty: {(freshRefusals.Count == 0 ? "accepted" : "REFUSED")}.");

    var images = await hsm.ListBackupImagesAsync("cls-orig");
    Timeline.Detail($"Images of cls-orig: {string.Join(", ", images.Select(i => $"{i.ImageId} ({i.TypeLabel}, {i.TakenAt:yyyy-MM-dd HH:mm})"))}.");
    var restoredImage = await client.RestoreHsmImageAsync(Account, backup.Id, "cls-new");
    Expect(restoredImage.ImageId == image.ImageId, "the most recent Auto Create image should be restored");
    var materialRestored = await hsm.IsKeyMaterialPresentAsync("cls-new", orders.Id);
    Expect(materialRestored, "the key's material should be in cls-new after the image restore");
    timeline.Say($"Restored image {restoredImage.ImageId} ({restoredImage.TypeLabel}) into cls-new: {restoredImage.KeyCount} key unwrapped inside each HSM; orders present: {(materialRestored ? "yes" : "NO")}.");

    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("Step 2: a new hardware instance connected to the new cluster");
    await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-hw-2", InstanceKind.Hardware, Region, Account) { ImageVersion = new Version(3, 9, 1) });
    await hsm.ConnectInstanceAsync("cls-new", "kst-hw-2");
    timeline.Say("Hardware instance kst-hw-2 (image 3.9.1) created, enabled and connected to cls-new.");

    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("Step 3: restore the keys' metadata, then the secrets");
    var flagged = await client.CheckHardwareRestoreAsync(Account, backup.Id, clock.GetUtcNow(), "kst-hw-2");
    Expect(flagged.Count == 1 && flagged[0].Code == BackupErrorCode.KeyMaterialMissing, "late-key should be flagged before restoring today's state");
    timeline.Say("Today's state, checked before anything is restored (H7):");
    foreach (var refusal in flagged)
    {
        timeline.Refused(refusal);
    }

    var endOfMay1 = new DateTimeOffset(2026, 5, 1, 23, 59, 0, TimeSpan.Zero);
    var may1Check = await client.CheckHardwareRestoreAsync(Account, backup.Id, endOfMay1, "kst-hw-2");
    Expect(may1Check.Count == 0, "2026-05-01 should restore without refusals");
    timeline.Say($"2026-05-01, a jointly restorable date: {may1Check.Count} refusals; every key's material is in cls-new.");

    RestoreRequest Request(BackupDataType type, string[]? keys = null, string[]? secrets = null) => new()
    {
        CallerAccount = Account, BackupId = backup.Id, TargetInstanceId = "kst-hw-2", BackupDate = may1,
        DataType = type, KeyNames = keys ?? [], SecretNames = secrets ?? [],
    };

    var secretsFirst = await client.PlanRestoreAsync(Request(BackupDataType.FullyBackedUpSecrets, secrets: ["db-password"]));
    Expect(!secretsFirst.CanExecute, "the secret should not restore before the key that encrypts it");
    timeline.Say("The secret first? The target must hold the key that encrypts it:");
    foreach (var refusal in secretsFirst.AllRefusals)
    {
        timeline.Refused(refusal);
    }

    var progress = new InlineProgress(p => Timeline.Detail($"{p.Phase} {p.Completed}/{p.Total}: {p.Item?.ToString() ?? $"operation {p.OperationId}"}"));
    var keysPlan = await client.PlanRestoreAsync(Request(BackupDataType.FullyBackedUpKeys, keys: ["orders"]));
    Expect(keysPlan.CanExecute && keysPlan.KeysToRestore == 1, "the key orders should be restorable");
    timeline.Say($"Plan (Fully Backed up Keys, 2026-05-01): {keysPlan.KeysToRestore} key to restore, {keysPlan.AllRefusals.Count()} refusals.");
    var keysRestored = await client.RestoreAsync(Request(BackupDataType.FullyBackedUpKeys, keys: ["orders"]), progress);
    timeline.Say($"Restored key {string.Join(", ", keysRestored.Restored.Select(i => i.Name))} into kst-hw-2 (operation {keysRestored.OperationId}).");

    var secretsPlan = await client.PlanRestoreAsync(Request(BackupDataType.FullyBackedUpSecrets, secrets: ["db-password"]));
    Expect(secretsPlan.CanExecute && secretsPlan.SecretsToRestore == 1, "the secret should be restorable once its key is");
    timeline.Say($"Plan (Fully Backed up Secrets, 2026-05-01): {secretsPlan.SecretsToRestore} secret to restore, {secretsPlan.AllRefusals.Count()} refusals.");
    var secretsRestored = await client.RestoreAsync(Request(BackupDataType.FullyBackedUpSecrets, secrets: ["db-password"]), progress);
    timeline.Say($"Restored secret {string.Join(", ", secretsRestored.Restored.Select(i => i.Name))} into kst-hw-2 (operation {secretsRestored.OperationId}).");

    // ---------------------------------------------------------------------------------------------
    Timeline.Chapter("After the restore: the old data decrypts inside the new cluster");
    var plaintext = await kms.DecryptAsync("kst-hw-2", encryptedBeforeLoss);
    var decrypted = CryptographicOperations.FixedTimeEquals(plaintext.Span, invoice);
    plaintext.Clear();
    Expect(decrypted, "the restored key should decrypt the data encrypted before the loss");
    timeline.Say($"The invoice encrypted on 2026-05-01 with key orders of kst-hw: decrypted OK with the restored key in kst-hw-2; matches the original: {(decrypted ? "yes" : "NO")} ({invoice.Length} bytes, never printed).");
    var secret = await kms.GetSecretValueAsync("kst-hw-2", "db-password");
    var secretMatches = CryptographicOperations.FixedTimeEquals(secret.Span, secretValue);
    secret.Clear();
    Expect(secretMatches, "the restored secret should read back its value");
    timeline.Say($"Secret db-password reads back from kst-hw-2; matches its value of 2026-05-01: {(secretMatches ? "yes" : "NO")} (values are never printed).");
    var restoredKey = await kms.GetKeyAsync("kst-hw-2", "orders");
    Expect(restoredKey?.Id == orders.Id, "the restored key should keep its key ID");
    Timeline.Detail($"Key orders keeps its key ID {restoredKey?.Id}, the CKA_ID of its material in the HSMs.");
    var verification = await client.VerifyAsync();
    Expect(verification.IsClean, "the backup store should verify clean");
    timeline.Say($"Verified the backup store: {verification}.");

    // ---------------------------------------------------------------------------------------------
    Console.WriteLine();
    if (keep is not null)
    {
        // The kmsbackup tool opens a folder by its repository key file (keys/repository.key). This store's repository
        // key is wrapped by a key inside the SoftHSM2 token 'repository', whose PIN was random and goes with this
        // process: nothing can open the store again, the tool included. Say so, rather than let a user find out.
        Console.WriteLine($"The folder '{keep}' keeps the SoftHSM2 token folder (softhsm2/), the embedded service (kms/) and the backup store (store/) to inspect their files.");
        Console.WriteLine("No kmsbackup command opens it, and nothing else can: the store's repository key is wrapped by a key inside the SoftHSM2 token 'repository', whose PIN was random and is gone with this process (the tokens' PINs were never printed), "
            + "and the tool opens a folder by its repository key file (keys/repository.key), which this folder has none of: "
            + $"'kmsbackup backups list --root \"{keep}\"' exits 4 naming the missing key file. To explore a folder with the tool, keep the quick start's: dotnet run --project samples/Sample1_QuickStart -- ./quickstart-data");
    }

    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"Summary: hardware instance kst-hw restored into kst-hw-2 on cluster cls-new from Auto Create image {restoredImage.ImageId} and backup {backup.Id} of 2026-05-01: " +
        $"{keysRestored.Restored.Count} key and {secretsRestored.Restored.Count} secret restored, old data {(decrypted ? "decrypted OK" : "NOT decrypted")}, " +
        $"{timeline.Refusals} refusals shown, {points} recovery points, store {(verification.IsClean ? "verified clean" : "DAMAGED")}; " +
        $"{tokens.Count} SoftHSM2 tokens, simulated 2026-05-01..{clock.GetUtcNow():yyyy-MM-dd} in {stopwatch.Elapsed.TotalSeconds:F1} s."));
    if (unexpected > 0)
    {
        Console.Error.WriteLine($"{unexpected} steps did not go as expected.");
        return 1;
    }

    return 0;
}
catch (Exception e)
{
    // BackupException messages name items and causes, never key material, PINs or secret values.
    Console.Error.WriteLine($"Unexpected failure: {e.GetType().Name}: {e.Message}");
    return 1;
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
