using System.IO.Abstractions;
using System.IO.Abstractions.TestingHelpers;
using KmsBackup.DevelopmentKms;
using KmsBackup.Storage;
using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// A whole engine on the embedded defaults: the file-system store and the embedded software key
/// management service, both over one in-memory file system, on a fake clock.
/// </summary>
public sealed class EngineHarness : IAsyncDisposable
{
    public const string Owner = "acct-owner";
    public const string Region = "cn-hangzhou";
    public const string StoreRoot = "/backups";
    public const string KmsRoot = "/kms";
    public const string KeyFile = "/keys/repository.key";

    private EngineHarness(MockFileSystem files, IFileSystem storeFiles, FakeTimeProvider clock, EmbeddedKeyManagementService kms, BackupClient client, BackupClientOptions options)
    {
        Files = files;
        StoreFiles = storeFiles;
        Clock = clock;
        Kms = kms;
        Client = client;
        Options = options;
    }

    public MockFileSystem Files { get; }

    public IFileSystem StoreFiles { get; }

    public FakeTimeProvider Clock { get; }

    public EmbeddedKeyManagementService Kms { get; }

    public BackupClient Client { get; private set; }

    public BackupClientOptions Options { get; }

    /// <summary>The HSM cluster gateway the clients are opened with, if any.</summary>
    public HsmClusterGateway? HsmClusters { get; private init; }

    public static readonly DateTimeOffset Start = new(2026, 5, 1, 9, 0, 0, TimeSpan.Zero);

    public static async Task<EngineHarness> CreateAsync(
        Action<BackupClientOptions>? configure = null, MockFileSystem? files = null, FakeTimeProvider? clock = null,
        Func<IFileSystem, IFileSystem>? wrapStoreFiles = null, HsmClusterGateway? hsmClusters = null)
    {
        files ??= new MockFileSystem();
        clock ??= new FakeTimeProvider(Start);
        var kms = new EmbeddedKeyManagementService(files, KmsRoot, clock);
        // Tests of other rules create and enable their backups themselves: the tick's instance discovery, which would add
        // an automatic backup to every instance they create, is on only where a test turns it on (InstanceDiscoveryTests).
        var options = new BackupClientOptions { TimeProvider = clock, LeaseHolder = "test-host", InstanceDiscoveryInterval = null };
        configure?.Invoke(options);
        var storeFiles = wrapStoreFiles?.Invoke(files) ?? files;
        var store = new FileSystemBackupStore(storeFiles, StoreRoot, clock);
        var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, KeyFile);
        var client = await BackupClient.OpenAsync(store, keys, kms, hsmClusters, options);
        return new EngineHarness(files, storeFiles, clock, kms, client, options) { HsmClusters = hsmClusters };
    }

    /// <summary>A second client over the same store, as another process would open it.</summary>
    public async Task<BackupClient> OpenAnotherClientAsync(
        string holder, InstanceGateway? gateway = null, Func<BackupStore, BackupStore>? wrapStore = null, Action<BackupClientOptions>? configure = null)
    {
        var options = new BackupClientOptions
        {
            TimeProvider = Clock, LeaseHolder = holder, Schedule = Options.Schedule, TimeZone = Options.TimeZone, LeaseDuration = Options.LeaseDuration,
            InstanceDiscoveryInterval = Options.InstanceDiscoveryInterval,
        };
        configure?.Invoke(options);
        BackupStore store = new FileSystemBackupStore(Files, StoreRoot, Clock);
        store = wrapStore?.Invoke(store) ?? store;
        var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(Files, KeyFile);
        return await BackupClient.OpenAsync(store, keys, gateway ?? Kms, HsmClusters, options);
    }

    public async Task ReopenClientAsync()
    {
        Client.Dispose();
        var store = new FileSystemBackupStore(Files, StoreRoot, Clock);
        var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(Files, KeyFile);
        Client = await BackupClient.OpenAsync(store, keys, Kms, HsmClusters, Options);
    }

    public Task<InstanceDescription> CreateInstanceAsync(string id, InstanceKind kind = InstanceKind.Software, string region = Region, string owner = Owner, int keyQuota = 1000) =>
        Kms.CreateInstanceAsync(new EmbeddedInstanceSpec(id, kind, region, owner)
        {
            CreatedAt = Clock.GetUtcNow().AddDays(-1),
            KeyQuota = keyQuota,
            ImageVersion = kind == InstanceKind.Hardware ? new Version(3, 9, 1) : null,
        });

    /// <summary>Advances the clock in <paramref name="step"/>s up to <paramref name="until"/>, running due backups at each step.</summary>
    public async Task<List<BackupRunResult>> RunUntilAsync(DateTimeOffset until, TimeSpan step, Func<DateTimeOffset, Task>? atEachStep = null)
    {
        var results = new List<BackupRunResult>();
        while (Clock.GetUtcNow() < until)
        {
            var next = Clock.GetUtcNow() + step;
            Clock.SetUtcNow(next > until ? until : next);
            if (atEachStep is not null)
            {
                await atEachStep(Clock.GetUtcNow());
            }

            results.AddRange((await Client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        }

        return results;
    }

    /// <summary>Every byte of every file under the store's root.</summary>
    public IEnumerable<(string Path, byte[] Bytes)> StoreFilesContent() =>
        Files.AllFiles.Where(p => p.StartsWith(StoreRoot, StringComparison.Ordinal)).Select(p => (p, Files.File.ReadAllBytes(p)));

    public ValueTask DisposeAsync()
    {
        Client.Dispose();
        Kms.Dispose();
        return ValueTask.CompletedTask;
    }
}

internal static class ByteSearch
{
    public static bool Contains(byte[] haystack, ReadOnlySpan<byte> needle) => haystack.AsSpan().IndexOf(needle) >= 0;
}
