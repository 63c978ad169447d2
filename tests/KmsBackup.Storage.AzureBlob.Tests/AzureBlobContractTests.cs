using Azure.Storage.Blobs;

using KmsBackup.Testing.Engine;
using KmsBackup.Testing.Storage;

namespace KmsBackup.Storage.AzureBlob.Tests;

/// <summary>The store contract every store passes, on Azure Blob Storage (Azurite), with listing pages of 50 and 1 MiB blocks.</summary>
public sealed class AzureBlobBackupStoreContractTests : BackupStoreContractTests, IAsyncLifetime
{
    private readonly string _container = Azurite.NewContainerName();
    private string _connectionString = string.Empty;

    public async Task InitializeAsync() => _connectionString = await Azurite.ConnectionStringAsync();

    public Task DisposeAsync() => new BlobContainerClient(_connectionString, _container).DeleteIfExistsAsync();

    protected override BackupStore CreateStore() =>
        new AzureBlobBackupStore(new BlobContainerClient(_connectionString, _container, Azurite.ClientOptions()), Azurite.SmallPagesAndBlocks("kms/"), Time);

    protected override async Task PutPastTheApiAsync(string key, byte[] content) =>
        await new BlobContainerClient(_connectionString, _container, Azurite.ClientOptions()).GetBlobClient($"kms/objects/{key}").UploadAsync(BinaryData.FromBytes(content), overwrite: true);
}

/// <summary>The engine cycle every store passes, on Azure Blob Storage (Azurite).</summary>
public sealed class AzureBlobEngineCycleTests : EngineCycleContractTests, IAsyncLifetime
{
    private readonly string _container = Azurite.NewContainerName();
    private string _connectionString = string.Empty;

    public async Task InitializeAsync() => _connectionString = await Azurite.ConnectionStringAsync();

    public Task DisposeAsync() => new BlobContainerClient(_connectionString, _container).DeleteIfExistsAsync();

    protected override BackupStore CreateStore(TimeProvider clock) =>
        new AzureBlobBackupStore(new BlobContainerClient(_connectionString, _container, Azurite.ClientOptions()), Azurite.SmallPagesAndBlocks(), clock);
}
