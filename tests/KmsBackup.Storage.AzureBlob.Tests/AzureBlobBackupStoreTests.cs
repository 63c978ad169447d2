using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Storage.Blobs;

namespace KmsBackup.Storage.AzureBlob.Tests;

/// <summary>What only the Azure Blob store has: its layout, its options, retries, and how Azure failures reach callers.</summary>
public sealed class AzureBlobBackupStoreTests : AzuriteContainerTest
{
    private static async Task<List<StoreObject>> ListAsync(BackupStore store, string prefix)
    {
        var objects = new List<StoreObject>();
        await foreach (var o in store.ListAsync(prefix))
        {
            objects.Add(o);
        }

        return objects;
    }

    [Fact]
    public async Task Objects_and_leases_live_under_the_prefix_as_plain_blobs_and_stores_with_other_prefixes_do_not_see_them()
    {
        var a = new AzureBlobBackupStore(Container(), new AzureBlobBackupStoreOptions { Prefix = "tenant-a" });
        var b = new AzureBlobBackupStore(Container(), new AzureBlobBackupStoreOptions { Prefix = "tenant-b/" });
        Assert.True(await a.TryCreateAsync("data/1", "one"u8.ToArray()));
        Assert.True(await b.TryCreateAsync("data/1", "uno"u8.ToArray()));
        await using var lease = await a.AcquireLeaseAsync("backups/b-1", "host-a", TimeSpan.FromSeconds(30));
        await using var other = await b.AcquireLeaseAsync("backups/b-1", "host-b", TimeSpan.FromSeconds(30));

        Assert.Equal("one"u8.ToArray(), await a.TryReadAsync("data/1"));
        Assert.Equal("uno"u8.ToArray(), await b.TryReadAsync("data/1"));
        Assert.Equal([new StoreObject("data/1", 3)], await ListAsync(a, string.Empty));
        Assert.EndsWith($"/{ContainerName}/tenant-a/", a.Location, StringComparison.Ordinal);

        var blobs = new List<string>();
        await foreach (var blob in Container().GetBlobsAsync())
        {
            blobs.Add(blob.Name);
        }

        Assert.Equal(["tenant-a/objects/data/1", "tenant-a/objects/leases/backups__b-1/00000000000000000001", "tenant-b/objects/data/1", "tenant-b/objects/leases/backups__b-1/00000000000000000001"], blobs);
    }

    [Fact]
    public async Task Blobs_whose_names_are_not_store_keys_are_left_out_of_listings_and_every_account_keeps_working()
    {
        // A store in use: a backup of one account, run once.
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 5, 1, 9, 0, 0, TimeSpan.Zero));
        var files = new System.IO.Abstractions.TestingHelpers.MockFileSystem();
        var container = Container();
        var store = new AzureBlobBackupStore(container, new AzureBlobBackupStoreOptions { Prefix = "kms/" }, clock);
        using var kms = new KmsBackup.DevelopmentKms.EmbeddedKeyManagementService(files, "/kms", clock);
        using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, "/keys/repository.key");
        using var client = await BackupClient.OpenAsync(store, keys, kms, hsmClusters: null, new BackupClientOptions { TimeProvider = clock, LeaseHolder = "host-a" });
        await kms.CreateInstanceAsync(new KmsBackup.DevelopmentKms.EmbeddedInstanceSpec("kst-a", InstanceKind.Software, "cn-hangzhou", "acct-a") { CreatedAt = clock.GetUtcNow().AddDays(-1) });
        await kms.GenerateKeyAsync("kst-a", "orders", "acct-a");
        var backup = (await client.OnInstanceEnabledAsync("kst-a"))!;
        var valid = await ListAsync(store, string.Empty);

        // Someone who may write to the container plants blobs beside the store's objects whose names break the key rules.
        var folders = valid.Select(o => o.Key.Split('/')[0]).Distinct().ToList();
        foreach (var folder in folders)
        {
            foreach (var name in new[] { "has space", "n\u00e4me", "a//b", "semi;colon", new string('x', BackupStore.MaximumKeyLength) })
            {
                await container.GetBlobClient($"kms/objects/{folder}/{name}").UploadAsync(BinaryData.FromString("planted"));
            }
        }

        // The engine keeps listing, running and verifying for every account...
        Assert.Equal(backup.Id, Assert.Single(await client.ListBackupsAsync("acct-a").ToListAsync()).Id);
        clock.Advance(TimeSpan.FromMinutes(5));
        (await client.RunDueBackupsAsync()).ThrowIfAnyFailed();
        var verification = await client.VerifyAsync();
        Assert.True(verification.IsClean, verification.ToString());

        // ...because listings give exactly the store's own objects, each a key the store accepts.
        var after = await ListAsync(store, string.Empty);
        Assert.All(after, o => BackupStore.ValidateKey(o.Key));
        Assert.Equal(valid.Select(o => o.Key), after.Select(o => o.Key).Where(k => valid.Any(v => v.Key == k)));
        Assert.Equal(after.Count, after.Select(o => o.Key).Distinct().Count());
        foreach (var folder in folders)
        {
            var listed = await ListAsync(store, folder + "/");
            Assert.All(listed, o => BackupStore.ValidateKey(o.Key));
            Assert.DoesNotContain(listed, o => o.Length == "planted".Length);
        }
    }

    [Fact]
    public async Task An_unreachable_service_is_a_typed_StoreUnavailable_error_that_names_the_store_for_every_operation()
    {
        var port = AzuriteProcess.FreePort(); // nothing listens there
        var container = new BlobContainerClient(Azurite.ConnectionString(port), "backups", Azurite.ClientOptions(maxRetries: 1));
        var store = new AzureBlobBackupStore(container);

        Func<Task>[] operations =
        [
            () => store.TryCreateAsync("data/1", new byte[10]),
            () => store.TryReadAsync("data/1"),
            () => store.DeleteAsync("data/1"),
            () => ListAsync(store, "data/"),
            () => store.AcquireLeaseAsync("backups/b-1", "host-a", TimeSpan.FromSeconds(10)),
        ];
        foreach (var operation in operations)
        {
            var ex = await Assert.ThrowsAsync<BackupException>(operation);
            Assert.Equal(BackupErrorCode.StoreUnavailable, ex.Code);
            Assert.Contains($"127.0.0.1:{port}/devstoreaccount1/backups/", ex.Message, StringComparison.Ordinal);
            Assert.Contains("did not answer", ex.Message, StringComparison.Ordinal);
            Assert.Contains("reachable", ex.Remedy, StringComparison.Ordinal);
            Assert.NotNull(ex.InnerException);
        }
    }

    [Fact]
    public async Task A_SAS_token_in_the_container_URI_never_appears_in_an_error()
    {
        var port = AzuriteProcess.FreePort();
        var sas = new Uri($"http://127.0.0.1:{port}/devstoreaccount1/backups?sv=2024-08-04&sr=c&sp=rwdl&sig=SECRETSIGNATUREVALUE");
        var store = new AzureBlobBackupStore(new BlobContainerClient(sas, Azurite.ClientOptions(maxRetries: 0)));

        var ex = await Assert.ThrowsAsync<BackupException>(() => store.TryReadAsync("data/1"));

        Assert.DoesNotContain("SECRETSIGNATURE", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("SECRETSIGNATURE", ex.Remedy, StringComparison.Ordinal);
        Assert.DoesNotContain("SECRETSIGNATURE", store.Location, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_container_is_created_on_the_first_write_or_named_in_the_error_when_creating_is_off()
    {
        var strict = new AzureBlobBackupStore(Container(), new AzureBlobBackupStoreOptions { CreateContainerIfMissing = false });
        Assert.Null(await strict.TryReadAsync("data/1"));
        Assert.Empty(await ListAsync(strict, string.Empty));
        Assert.False(await strict.DeleteAsync("data/1"));
        var ex = await Assert.ThrowsAsync<BackupException>(() => strict.TryCreateAsync("data/1", new byte[3]));
        Assert.Equal(BackupErrorCode.StoreUnavailable, ex.Code);
        Assert.Contains("container does not exist", ex.Message, StringComparison.Ordinal);
        Assert.Contains("CreateContainerIfMissing", ex.Remedy, StringComparison.Ordinal);

        var creating = new AzureBlobBackupStore(Container());
        await using (await creating.AcquireLeaseAsync("backups/b-1", "host-a", TimeSpan.FromSeconds(10)))
        {
        }

        Assert.True(await strict.TryCreateAsync("data/1", new byte[3]));
    }

    [Fact]
    public async Task Transient_failures_are_retried_by_the_Azure_SDK_and_the_operation_succeeds()
    {
        var faults = new FaultInjectingPolicy { FailNext = 2 };
        var store = new AzureBlobBackupStore(Container(Azurite.ClientOptions(maxRetries: 3, faults)));

        Assert.True(await store.TryCreateAsync("data/1", "content"u8.ToArray()));
        Assert.Equal(0, faults.FailNext);
        faults.FailNext = 2;
        Assert.Equal("content"u8.ToArray(), await store.TryReadAsync("data/1"));
        faults.FailNext = 2;
        Assert.Equal(["data/1"], (await ListAsync(store, "data/")).Select(o => o.Key));
        faults.FailNext = 2;
        await using var lease = await store.AcquireLeaseAsync("backups/b-1", "host-a", TimeSpan.FromSeconds(10));
        Assert.Equal(8, faults.Injected);
    }

    [Fact]
    public async Task Failures_past_the_retries_are_a_typed_error_and_not_a_raw_Azure_exception()
    {
        var faults = new FaultInjectingPolicy { FailNext = 100 };
        var store = new AzureBlobBackupStore(Container(Azurite.ClientOptions(maxRetries: 2, faults)));

        var ex = await Assert.ThrowsAsync<BackupException>(() => store.TryCreateAsync("data/1", new byte[3]));

        Assert.Equal(BackupErrorCode.StoreUnavailable, ex.Code);
        Assert.Equal(3, faults.Injected);
        Assert.Equal("store object 'data/1'", ex.Item);
    }

    [Fact]
    public async Task A_create_whose_reply_was_lost_and_that_the_retry_finds_existing_is_still_reported_as_created()
    {
        var faults = new FaultInjectingPolicy();
        var store = new AzureBlobBackupStore(Container(Azurite.ClientOptions(maxRetries: 3, faults)));
        await store.TryCreateAsync("warm/up", new byte[1]); // the container exists, so the next PUT is the object's
        faults.LoseNextReplies = 1;

        Assert.True(await store.TryCreateAsync("data/1", "mine"u8.ToArray()));

        Assert.Equal(1, faults.LostReplies);
        Assert.False(await store.TryCreateAsync("data/1", "theirs"u8.ToArray()));
        Assert.Equal("mine"u8.ToArray(), await store.TryReadAsync("data/1"));
    }

    [Fact]
    public async Task An_error_response_is_mapped_by_status_without_quoting_the_service_message()
    {
        var store = new AzureBlobBackupStore(new BlobContainerClient(
            new Uri($"{Container().Uri}"), new StorageSharedKeyCredentialFake().Credential, Azurite.ClientOptions(maxRetries: 0)));

        var ex = await Assert.ThrowsAsync<BackupException>(() => store.TryCreateAsync("data/1", new byte[3]));

        Assert.Equal(BackupErrorCode.StoreUnavailable, ex.Code);
        Assert.Contains("refused access (HTTP 403", ex.Message, StringComparison.Ordinal);
        Assert.Contains("credentials", ex.Remedy, StringComparison.Ordinal);
        Assert.IsType<RequestFailedException>(ex.InnerException);
    }

    [Theory]
    [InlineData("bad prefix")]
    [InlineData("a//b")]
    [InlineData("../a")]
    public void A_prefix_that_is_not_a_key_is_refused(string prefix) =>
        Assert.Throws<ArgumentException>(() => new AzureBlobBackupStore(Container(), new AzureBlobBackupStoreOptions { Prefix = prefix }));

    [Fact]
    public void Numeric_options_out_of_range_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new AzureBlobBackupStore(Container(), new AzureBlobBackupStoreOptions { ListPageSize = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AzureBlobBackupStore(Container(), new AzureBlobBackupStoreOptions { ListPageSize = 5001 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AzureBlobBackupStore(Container(), new AzureBlobBackupStoreOptions { BlockSize = 1000 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AzureBlobBackupStore(Container(), new AzureBlobBackupStoreOptions { UploadConcurrency = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AzureBlobBackupStore(Container(), new AzureBlobBackupStoreOptions { SingleUploadLimit = 512 << 20 }));
    }

    private sealed class StorageSharedKeyCredentialFake
    {
        // A wrong key for the development account: the service refuses the signature with 403.
        public Azure.Storage.StorageSharedKeyCredential Credential { get; } = new("devstoreaccount1", Convert.ToBase64String(new byte[64]));
    }
}

/// <summary>
/// Fails requests the way a flaky network does, inside the Azure SDK's retry loop: <see cref="FailNext"/> requests
/// fail before they are sent (an <see cref="IOException"/>, which the SDK retries); <see cref="LoseNextReplies"/>
/// PUT requests reach the service and then fail as if the reply were lost.
/// </summary>
public sealed class FaultInjectingPolicy : HttpPipelinePolicy
{
    private int _failNext;
    private int _loseNextReplies;
    private int _injected;
    private int _lostReplies;

    public int FailNext { get => Volatile.Read(ref _failNext); set => Volatile.Write(ref _failNext, value); }

    public int LoseNextReplies { get => Volatile.Read(ref _loseNextReplies); set => Volatile.Write(ref _loseNextReplies, value); }

    public int Injected => Volatile.Read(ref _injected);

    public int LostReplies => Volatile.Read(ref _lostReplies);

    public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline) =>
        ProcessAsync(message, pipeline).AsTask().GetAwaiter().GetResult();

    public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        if (Interlocked.Decrement(ref _failNext) >= 0)
        {
            Interlocked.Increment(ref _injected);
            throw new IOException("Injected transient network failure.");
        }

        Interlocked.Exchange(ref _failNext, 0);
        await ProcessNextAsync(message, pipeline);
        if (message.Request.Method == RequestMethod.Put && Interlocked.Decrement(ref _loseNextReplies) >= 0)
        {
            Interlocked.Increment(ref _lostReplies);
            throw new IOException("Injected loss of the reply.");
        }

        Interlocked.Exchange(ref _loseNextReplies, Math.Max(0, LoseNextReplies));
    }
}
