// README.md, "Hardware instances": a fragment, the seed's hardware walkthrough of samples/Sample3_HardwareRestore in
// short. Given (outside the region), on a simulated clock from 2026-05-01: SoftHSM2 tokens in a folder of their own
// making clusters cls-orig and cls-new (two HSMs in two zones each, owned by acct-1) and a backup vault; hsm, the
// gateway over them; kms, the embedded service with hardware instance kst-hw on cls-orig (key "orders", material inside
// the cluster; secret "db-password"); client, opened with hsmClusters: hsm; owner, the account; backupId, kst-hw's
// automatic backup, with daily fulls and an Auto Create image of cls-orig a day after; at, the end of its first day;
// keysRequest and secretsRequest, restores of that day's key and secret into kst-hw-2.
using System.IO.Abstractions;
using System.Security.Cryptography;
using KmsBackup;
using KmsBackup.DevelopmentKms;
using KmsBackup.Hsm.Pkcs11;
using KmsBackup.Storage;
using Microsoft.Extensions.Time.Testing;

const string owner = "acct-1";
var root = Directory.CreateTempSubdirectory("kmsbackup-snippet-").FullName;
SoftHsmTokens.UseFolder(Path.Combine(root, "softhsm2"));
var clock = new FakeTimeProvider(new DateTimeOffset(2026, 5, 1, 9, 0, 0, TimeSpan.Zero));

Pkcs11ClusterDefinition Cluster(string id)
{
    var hsms = new List<Pkcs11HsmDefinition>();
    foreach (var (hsmId, zone) in new[] { ($"{id}-a", "cn-hangzhou-h"), ($"{id}-b", "cn-hangzhou-i") })
    {
        var (pin, soPin) = (SoftHsmTokens.NewPin(), SoftHsmTokens.NewPin());
        SoftHsmTokens.Initialize(hsmId, pin, soPin);
        hsms.Add(new Pkcs11HsmDefinition(hsmId, zone, new Pkcs11TokenAccess(hsmId, pin, soPin)));
    }

    return new Pkcs11ClusterDefinition(id, "cn-hangzhou", hsms) { Backup = new HsmBackupPolicy(true, 90, TimeSpan.FromDays(1)), OwnerAccount = owner };
}

var vaultPin = SoftHsmTokens.NewPin();
SoftHsmTokens.Initialize("vault", vaultPin, SoftHsmTokens.NewPin());
var hsmOptions = new Pkcs11HsmClusterGatewayOptions { LibraryPath = SoftHsmTokens.LibraryPath, BackupVault = new("vault", vaultPin), TimeProvider = clock };
hsmOptions.Clusters.Add(Cluster("cls-orig"));
hsmOptions.Clusters.Add(Cluster("cls-new"));
using var hsm = Pkcs11HsmClusterGateway.Open(hsmOptions);
var files = new FileSystem();
using var kms = new EmbeddedKeyManagementService(files, Path.Combine(root, "kms"), clock,
    new EmbeddedKeyManagementServiceOptions { HardwareKeys = new Pkcs11HardwareKeyOperations(hsm) });
using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, Path.Combine(root, "keys", "repository.key"));
var store = new FileSystemBackupStore(files, Path.Combine(root, "store"), clock);
using var client = await BackupClient.OpenAsync(store, keys, kms, hsmClusters: hsm, new BackupClientOptions { TimeProvider = clock });

await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-hw", InstanceKind.Hardware, "cn-hangzhou", owner)
{
    CreatedAt = clock.GetUtcNow().AddDays(-1),
    ImageVersion = new Version(3, 9, 1),
});
await hsm.ConnectInstanceAsync("cls-orig", "kst-hw");
var orders = await kms.GenerateKeyAsync("kst-hw", "orders", owner);
var secretValue = "correct horse battery staple"u8.ToArray();
await kms.StoreSecretAsync("kst-hw", "db-password", "orders", secretValue, owner);
var invoice = "invoice 2026-0042"u8.ToArray();
var encryptedBeforeLoss = await kms.EncryptAsync("kst-hw", "orders", invoice);
var backupId = (await client.OnInstanceEnabledAsync("kst-hw") ?? throw new InvalidOperationException("kst-hw got no automatic backup.")).Id;
clock.SetUtcNow(new DateTimeOffset(2026, 5, 2, 0, 0, 0, TimeSpan.Zero));
await client.RunDueBackupsAsync();
clock.SetUtcNow(new DateTimeOffset(2026, 5, 2, 0, 30, 0, TimeSpan.Zero));
await hsm.TakeBackupImageAsync("cls-orig");
clock.SetUtcNow(new DateTimeOffset(2026, 5, 2, 9, 0, 0, TimeSpan.Zero));
var at = new DateTimeOffset(2026, 5, 1, 23, 59, 0, TimeSpan.Zero);
RestoreRequest Request(BackupDataType type, string name) => new()
{
    CallerAccount = owner, BackupId = backupId, TargetInstanceId = "kst-hw-2", BackupDate = DateOnly.FromDateTime(at.UtcDateTime), DataType = type,
    KeyNames = type == BackupDataType.FullyBackedUpKeys ? [name] : [],
    SecretNames = type == BackupDataType.FullyBackedUpSecrets ? [name] : [],
};
var keysRequest = Request(BackupDataType.FullyBackedUpKeys, "orders");
var secretsRequest = Request(BackupDataType.FullyBackedUpSecrets, "db-password");

#region snippet
// hsm: Pkcs11HsmClusterGateway.Open(hsmOptions), clusters of PKCS#11 tokens (src/KmsBackup.Hsm.Pkcs11/README.md);
// client: await BackupClient.OpenAsync(store, keys, kms, hsmClusters: hsm).
var protection = await client.GetProtectionAsync(owner, "kst-hw");              // H2-H4: Full, or "Metadata only: HSM backup disabled", offset and mirror-image warnings
var backup = await client.GetBackupAsync(owner, backupId);                      // H6: .Hsm = cluster ID and primary HSM
var dates = await client.GetJointlyRestorableDatesAsync(owner, backupId);       // H7: dates with metadata and an HSM image a day later

// The seed's hardware restore (H5): the original instance is lost (here the embedded service releases it).
await kms.ReleaseInstanceAsync("kst-hw");
await client.OnInstanceReleasedAsync("kst-hw");
await client.CheckHsmRestoreTargetAsync(owner, "cls-new", "cn-hangzhou");    // the caller's cluster, same region, cluster mode, 2+ HSMs in 2+ zones, not enabled, not in use
await client.RestoreHsmImageAsync(owner, backupId, "cls-new");                 // the most recent Auto Create image, unwrapped inside the new HSMs
await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-hw-2", InstanceKind.Hardware, "cn-hangzhou", owner) { ImageVersion = new Version(3, 9, 1) });
await hsm.ConnectInstanceAsync("cls-new", "kst-hw-2");                         // a new hardware instance on the new cluster
await client.CheckHardwareRestoreAsync(owner, backupId, at, "kst-hw-2");        // R3 (never the original) and keys whose material is missing (H7)
await client.RestoreAsync(keysRequest);                                         // keys' metadata first, then the secrets
await client.RestoreAsync(secretsRequest);
#endregion

var plaintext = await kms.DecryptAsync("kst-hw-2", encryptedBeforeLoss);
var decrypted = CryptographicOperations.FixedTimeEquals(plaintext.Span, invoice);
plaintext.Clear();
var secret = await kms.GetSecretValueAsync("kst-hw-2", "db-password");
var secretMatches = CryptographicOperations.FixedTimeEquals(secret.Span, secretValue);
secret.Clear();
var restoredKey = await kms.GetKeyAsync("kst-hw-2", "orders");
Console.WriteLine($"snippet Hardware: protection {protection.Level}, cluster {backup.Hsm?.ClusterId}, jointly restorable {string.Join(", ", dates)}; " +
    $"kst-hw-2 holds orders with the same key ID: {restoredKey?.Id == orders.Id}, old data decrypts: {decrypted}, secret matches: {secretMatches}");
client.Dispose();
hsm.Dispose();
kms.Dispose();
Directory.Delete(root, recursive: true);
