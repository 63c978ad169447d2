using System.IO.Abstractions.TestingHelpers;
using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Benchmarks.Workload;

/// <summary>
/// The engine as a host app runs it, on workload infrastructure: a public <see cref="BackupClient"/> over
/// a <see cref="CountingMemoryStore"/>, a <see cref="SyntheticInstanceGateway"/>, the key-file repository
/// key provider on a mock file system, and a fake clock that the workload moves to each scheduled run.
/// The instance gets its automatic backup, whose first full runs at <see cref="Start"/>.
/// </summary>
internal sealed class EngineWorkload : IDisposable
{
    /// <summary>A Monday 00:00 UTC: the first full of every workload runs then.</summary>
    public static readonly DateTimeOffset Start = new(2026, 3, 2, 0, 0, 0, TimeSpan.Zero);

    private readonly KeyFileRepositoryKeyProvider _keys;

    private EngineWorkload(FakeTimeProvider time, CountingMemoryStore store, SyntheticInstanceGateway instance, KeyFileRepositoryKeyProvider keys, BackupClient client, string backupId, RecoveryPoint firstFull)
    {
        Time = time;
        Store = store;
        Instance = instance;
        _keys = keys;
        Client = client;
        BackupId = backupId;
        FirstFull = firstFull;
    }

    public FakeTimeProvider Time { get; }

    public CountingMemoryStore Store { get; }

    public SyntheticInstanceGateway Instance { get; }

    public BackupClient Client { get; }

    public string BackupId { get; }

    public RecoveryPoint FirstFull { get; }

    /// <summary>Bytes the first full stored: packs, indexes and its manifest.</summary>
    public long FirstFullBytes { get; private set; }

    public static async Task<EngineWorkload> StartAsync(int items, BackupSchedulePolicy? schedule = null)
    {
        var time = new FakeTimeProvider(Start);
        var store = new CountingMemoryStore(time);
        var instance = new SyntheticInstanceGateway(items, time);
        var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(new MockFileSystem(), "/keys/repository.key");
        var client = await BackupClient.OpenAsync(store, keys, instance, hsmClusters: null, new BackupClientOptions
        {
            TimeProvider = time,
            Schedule = schedule ?? BackupSchedulePolicy.Default,
            LeaseHolder = "benchmarks",
        });

        var backup = await client.OnInstanceEnabledAsync(SyntheticInstanceGateway.InstanceId)
            ?? throw new InvalidOperationException("The workload instance got no automatic backup.");
        var first = backup.LatestPoint ?? throw new InvalidOperationException("Enabling the instance ran no full backup.");
        return new EngineWorkload(time, store, instance, keys, client, backup.Id, first) { FirstFullBytes = store.RecoveryPointBytes };
    }

    /// <summary>Moves the clock to <paramref name="at"/> and runs what is due, which must be a run of <paramref name="expected"/> kind.</summary>
    /// <returns>What the run reported, and the bytes it stored (packs, indexes and manifest).</returns>
    public async Task<(BackupRunResult Run, long BytesStored)> RunAtAsync(DateTimeOffset at, BackupRunKind expected)
    {
        Time.SetUtcNow(at);
        var before = Store.RecoveryPointBytes;
        var run = await Client.RunIfDueAsync(BackupId) ?? throw new InvalidOperationException($"No run was due at {at:O}.");
        if (run.Point.Kind != expected)
        {
            throw new InvalidOperationException($"A {run.Point.Kind} ran at {at:O} where the workload expected a {expected}.");
        }

        return (run, Store.RecoveryPointBytes - before);
    }

    public void Dispose()
    {
        Client.Dispose();
        _keys.Dispose();
    }
}
