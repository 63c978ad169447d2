// README.md, "Backups on Azure Blob Storage (or Azurite)": a whole program (packages KmsBackup.Storage.AzureBlob and,
// for the key management service it backs up here, KmsBackup.DevelopmentKms). The test runs it twice in one folder
// against an Azurite of its own, whose connection string it passes in AZURE_STORAGE_CONNECTION_STRING.
#region snippet
using System.IO.Abstractions;
using Azure.Core;
using Azure.Storage.Blobs;
using KmsBackup;
using KmsBackup.DevelopmentKms;
using KmsBackup.Storage.AzureBlob;

var clientOptions = new BlobClientOptions();
clientOptions.Retry.Mode = RetryMode.Exponential;     // the Azure SDK retries transient failures
clientOptions.Retry.MaxRetries = 5;
clientOptions.Retry.NetworkTimeout = TimeSpan.FromSeconds(100);

// Azure: new BlobContainerClient(new Uri("https://<account>.blob.core.windows.net/kms-backups"), new DefaultAzureCredential(), clientOptions)
// Azurite (the emulator; its well-known development account): "UseDevelopmentStorage=true", or its
// connection string with BlobEndpoint=http://127.0.0.1:<port>/devstoreaccount1
var connectionString = Environment.GetEnvironmentVariable("AZURE_STORAGE_CONNECTION_STRING") ?? "UseDevelopmentStorage=true";
var container = new BlobContainerClient(connectionString, "kms-backups", clientOptions);

var store = new AzureBlobBackupStore(container, new AzureBlobBackupStoreOptions
{
    Prefix = "prod/",                  // several stores can share one container
    CreateContainerIfMissing = true,   // default; turn off when the identity may only read and write blobs
    ListPageSize = 1000,               // blobs per listing request (1..5000)
    SingleUploadLimit = 32 << 20,      // larger objects go up as blocks and appear at the final commit
    BlockSize = 8 << 20,
});

// The key management service to back up (here the embedded one) and the repository key, as in "The engine in a few lines".
var files = new FileSystem();
using var kms = new EmbeddedKeyManagementService(files, "data/kms", TimeProvider.System);
using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, "secrets/repository.key");
using var client = await BackupClient.OpenAsync(store, keys, kms, options: new BackupClientOptions { LeaseHolder = "host-a" });
#endregion

// What the test checks: a backup of an instance goes into the container, and the store verifies.
if (await kms.GetInstanceAsync("kst-1") is null)
{
    await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-1", InstanceKind.Software, "cn-hangzhou", "acct-1"));
    await kms.GenerateKeyAsync("kst-1", "orders", "acct-1");
}

var backup = await client.OnInstanceEnabledAsync("kst-1") ?? await client.ListBackupsAsync("acct-1").FirstAsync(b => b.Instance?.Id == "kst-1");
await client.RunDueBackupsAsync();
var verification = await client.VerifyAsync();
var blobs = await container.GetBlobsAsync(Azure.Storage.Blobs.Models.BlobTraits.None, Azure.Storage.Blobs.Models.BlobStates.None, "prod/", CancellationToken.None).CountAsync();
Console.WriteLine($"snippet AzureBlob: backup {backup.Label} of {backup.Instance?.Id}, {blobs} blobs under prod/ in container {container.Name}, " +
    $"{verification.PointsChecked} points checked, store {(verification.IsClean ? "clean" : "DAMAGED")}");
