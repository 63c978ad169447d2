using Azure.Storage.Blobs;

using KmsBackup.Testing.Engine;

using Xunit.Abstractions;

namespace KmsBackup.Storage.AzureBlob.Tests;

/// <summary>
/// The interleaving test on Azure Blob Storage (Azurite): fewer schedules than on the file system, since every store
/// call is a request; each schedule gets a prefix of its own in one container.
/// </summary>
public sealed class AzureBlobInterleavingTests(ITestOutputHelper output) : InterleavingContractTests(output), IAsyncLifetime
{
    private readonly string _container = Azurite.NewContainerName();
    private string _connectionString = string.Empty;

    protected override string TestProject => "tests/KmsBackup.Storage.AzureBlob.Tests";

    protected override int Schedules => 50;

    protected override int RekeySchedules => 20;

    // Requests wait on Azurite, not on the cores.
    protected override int Parallelism => 8;

    public async Task InitializeAsync() => _connectionString = await Azurite.ConnectionStringAsync();

    public Task DisposeAsync() => new BlobContainerClient(_connectionString, _container).DeleteIfExistsAsync();

    protected override BackupStore CreateStore(TimeProvider clock, string space) =>
        new AzureBlobBackupStore(new BlobContainerClient(_connectionString, _container, Azurite.ClientOptions()), Azurite.SmallPagesAndBlocks($"{space}/"), clock);
}
