// src/KmsBackup.Hsm.Pkcs11/README.md: a fragment. Given (outside the region): SoftHSM2 tokens "vault", "hsm-a" and
// "hsm-b" in a token folder of their own, their PINs (vaultPin, pinA, soPinA, pinB, soPinB), and store, repositoryKeys
// and instances: a file-system store, a key file and the embedded key management service, in a fresh temporary folder.
using System.IO.Abstractions;
using KmsBackup;
using KmsBackup.DevelopmentKms;
using KmsBackup.Hsm.Pkcs11;
using KmsBackup.Storage;

var root = Directory.CreateTempSubdirectory("kmsbackup-snippet-").FullName;
SoftHsmTokens.UseFolder(Path.Combine(root, "softhsm2"));
var (vaultPin, pinA, soPinA, pinB, soPinB) = (SoftHsmTokens.NewPin(), SoftHsmTokens.NewPin(), SoftHsmTokens.NewPin(), SoftHsmTokens.NewPin(), SoftHsmTokens.NewPin());
SoftHsmTokens.Initialize("vault", vaultPin, SoftHsmTokens.NewPin());
SoftHsmTokens.Initialize("hsm-a", pinA, soPinA);
SoftHsmTokens.Initialize("hsm-b", pinB, soPinB);
var files = new FileSystem();
var store = new FileSystemBackupStore(files, Path.Combine(root, "store"));
var repositoryKeys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, Path.Combine(root, "keys", "repository.key"));
var instances = new EmbeddedKeyManagementService(files, Path.Combine(root, "kms"), TimeProvider.System);

#region snippet
var options = new Pkcs11HsmClusterGatewayOptions { BackupVault = new("vault", vaultPin) };
options.Clusters.Add(new Pkcs11ClusterDefinition("cls-1", "cn-hangzhou",
[
    new Pkcs11HsmDefinition("hsm-a", "cn-hangzhou-h", new("hsm-a", pinA, soPinA)),   // SO PIN: see below
    new Pkcs11HsmDefinition("hsm-b", "cn-hangzhou-i", new("hsm-b", pinB, soPinB)),
]) { Backup = new HsmBackupPolicy(true, 30, TimeSpan.FromDays(1)), OwnerAccount = "acct-1" });
using var hsm = Pkcs11HsmClusterGateway.Open(options);
using var client = await BackupClient.OpenAsync(store, repositoryKeys, instances, hsmClusters: hsm);
#endregion

// What the test checks: the cluster is there for its owner, a key made inside it goes into an image.
var refusals = await client.CheckHsmRestoreTargetAsync("acct-1", "cls-1", "cn-hangzhou");
await hsm.GenerateKeyAsync("cls-1", "key-1");
var image = await hsm.TakeBackupImageAsync("cls-1");
Console.WriteLine($"snippet Pkcs11Package: cls-1 as a restore target for acct-1: {(refusals.Count == 0 ? "accepted" : string.Join("; ", refusals.Select(r => r.Code)))}; " +
    $"image {image.TypeLabel} of cls-1 with {image.KeyCount} keys");
client.Dispose();
hsm.Dispose();
repositoryKeys.Dispose();
instances.Dispose();
Directory.Delete(root, recursive: true);
