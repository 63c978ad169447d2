// src/KmsBackup.Storage.AzureBlob/README.md: a whole program. The test runs it twice in one folder against an Azurite of
// its own, whose connection string it passes in AZURE_STORAGE_CONNECTION_STRING.
#region snippet
using System.IO.Abstractions;
using Azure.Storage.Blobs;
using KmsBackup;
using KmsBackup.DevelopmentKms;
using KmsBackup.Storage.AzureBlob;

var connectionString = Environment.GetEnvironmentVariable("AZURE_STORAGE_CONNECTION_STRING") ?? "UseDevelopmentStorage=true";
var clientOptions = new BlobClientOptions();
clientOptions.Retry.MaxRetries = 5;
var container = new BlobContainerClient(connectionString, "kms-backups", clientOptions);
var store = new AzureBlobBackupStore(container, new AzureBlobBackupStoreOptions { Prefix = "prod/" });

// Your key management service and repository key; here the development ones (package KmsBackup.DevelopmentKms).
var files = new FileSystem();
using var instances = new EmbeddedKeyManagementService(files, "data/kms", TimeProvider.System);
using var repositoryKeys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, "secrets/repository.key");
using var client = await BackupClient.OpenAsync(store, repositoryKeys, instances);
#endregion

if (await instances.GetInstanceAsync("kst-1") is null)
{
    await instances.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-1", InstanceKind.Software, "cn-hangzhou", "acct-1"));
    await instances.GenerateKeyAsync("kst-1", "orders", "acct-1");
}

var backup = await client.OnInstanceEnabledAsync("kst-1") ?? await client.ListBackupsAsync("acct-1").FirstAsync(b => b.Instance?.Id == "kst-1");
var verification = await client.VerifyAsync();
var blobs = await container.GetBlobsAsync(Azure.Storage.Blobs.Models.BlobTraits.None, Azure.Storage.Blobs.Models.BlobStates.None, "prod/", CancellationToken.None).CountAsync();
Console.WriteLine($"snippet AzureBlobPackage: backup {backup.Label} of {backup.Instance?.Id}, {blobs} blobs under prod/ in container {container.Name}, " +
    $"{verification.PointsChecked} points checked, store {(verification.IsClean ? "clean" : "DAMAGED")}");
