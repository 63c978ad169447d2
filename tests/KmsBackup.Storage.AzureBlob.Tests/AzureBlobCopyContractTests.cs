using Azure.Storage.Blobs;

using KmsBackup.Testing.Engine;

namespace KmsBackup.Storage.AzureBlob.Tests;

/// <summary>
/// The copy contract from a file-system repository into Azure Blob Storage (Azurite): each space a prefix of its own in one
/// container. The crash sweep kills the copy before every second write: every store call is a request.
/// </summary>
[Trait("Issue", "17")]
public sealed class AzureBlobCopyContractTests : CopyContractTests, IAsyncLifetime
{
    private readonly string _container = Azurite.NewContainerName();
    private string _connectionString = string.Empty;

    protected override int SweepStride => 2;

    public async Task InitializeAsync() => _connectionString = await Azurite.ConnectionStringAsync();

    public Task DisposeAsync() => new BlobContainerClient(_connectionString, _container).DeleteIfExistsAsync();

    protected override BackupStore CreateDestination(TimeProvider clock, string space) =>
        new AzureBlobBackupStore(new BlobContainerClient(_connectionString, _container, Azurite.ClientOptions()), Azurite.SmallPagesAndBlocks($"{space}/"), clock);
}
