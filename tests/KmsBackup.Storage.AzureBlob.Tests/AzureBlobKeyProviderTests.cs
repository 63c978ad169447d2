using Azure.Storage.Blobs;

using KmsBackup.Testing.Engine;

namespace KmsBackup.Storage.AzureBlob.Tests;

/// <summary>Several key providers per repository (issue 17), on Azure Blob Storage (Azurite).</summary>
public sealed class AzureBlobKeyProviderTests : KeyProviderContractTests, IAsyncLifetime
{
    private readonly string _container = Azurite.NewContainerName();
    private string _connectionString = string.Empty;

    public async Task InitializeAsync() => _connectionString = await Azurite.ConnectionStringAsync();

    public Task DisposeAsync() => new BlobContainerClient(_connectionString, _container).DeleteIfExistsAsync();

    protected override BackupStore CreateStore(TimeProvider clock) =>
        new AzureBlobBackupStore(new BlobContainerClient(_connectionString, _container, Azurite.ClientOptions()), Azurite.SmallPagesAndBlocks(), clock);
}
