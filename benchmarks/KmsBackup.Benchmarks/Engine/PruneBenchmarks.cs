using System.Globalization;
using System.IO.Abstractions.TestingHelpers;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using KmsBackup.Benchmarks.Workload;

namespace KmsBackup.Benchmarks.Engine;

/// <summary>
/// Issue 15, item 4, "prune time grows with the garbage": the two prunes that collect the garbage of days past retention
/// (the first deletes the points past retention, marks the packs nothing uses and repacks partly used ones; the second,
/// after the grace period, deletes what the first marked) through the public <see cref="BackupClient.PruneAsync"/>, on
/// the benchmarks' synthetic instance and memory store, at two instance sizes and two amounts of garbage. Ratios are read
/// across the cases of one run: the days past retention set the garbage, the size sets what stays live.
/// </summary>
/// <remarks>
/// Setup, once per case: a default backup (7 viewable days) of the instance, then 7 + <see cref="ExpiredDays"/> days of
/// history at 2% churn a day, each day with four incrementals after a quarter of the day's changes (added, rotated and
/// deleted in thirds) and the next day's full; no prune runs during it. The store is then copied. Each measured call
/// starts from that copy with a client opened anew (outside the measurement), 30 minutes after the last full: the first
/// prune, then, 2 hours later, the second. Every call checks that the first prune deleted points and that the prunes
/// deleted or repacked packs. Setup prints what the prunes collect (points, packs, bytes) for the report.
/// </remarks>
[MemoryDiagnoser]
[Config(typeof(OnePrunePairPerCall))]
public class PruneBenchmarks
{
    private const string KeyFile = "/keys/repository.key";

    private readonly MockFileSystem _keyFiles = new();
    private SettableClock _time = null!;
    private CountingMemoryStore _store = null!;
    private SyntheticInstanceGateway _instance = null!;
    private IReadOnlyDictionary<string, byte[]> _history = null!;
    private DateTimeOffset _pruneAt;
    private BackupClient? _client;
    private KeyFileRepositoryKeyProvider? _keys;

    /// <summary>Items in the instance.</summary>
    [Params(10_000, 100_000)]
    public int Items { get; set; }

    /// <summary>Days of history past the 7 the backup keeps: the days whose points, and whatever only they use, the prunes collect.</summary>
    [Params(1, 4)]
    public int ExpiredDays { get; set; }

    /// <summary>Items changed a day, in percent of <see cref="Items"/>.</summary>
    public static int ChurnPercent => 2;

    [GlobalSetup]
    public void Setup() => SetupAsync().GetAwaiter().GetResult();

    [GlobalCleanup]
    public void Cleanup() => CloseClient();

    [IterationSetup]
    public void OpenOnHistory()
    {
        _store.Restore(_history);
        _time.SetUtcNow(_pruneAt);
        OpenClientAsync().GetAwaiter().GetResult();
    }

    [IterationCleanup]
    public void CloseAfterPrunes() => CloseClient();

    [Benchmark]
    public async Task<int> PrunesThatCollectOneDay()
    {
        var (first, second) = await PruneTwiceAsync();
        return first.PacksMarked + first.PacksRepacked + second.PacksDeleted;
    }

    private async Task<(PruneSummary First, PruneSummary Second)> PruneTwiceAsync()
    {
        var first = await _client!.PruneAsync();
        _time.Advance(TimeSpan.FromHours(2));
        var second = await _client.PruneAsync();
        if (first.RecoveryPointsDeleted == 0 || first.PacksRepacked + second.PacksDeleted == 0)
        {
            throw new InvalidOperationException($"The prunes collected nothing: {first.RecoveryPointsDeleted} points, {first.PacksRepacked} packs repacked, then {second.PacksDeleted} packs deleted.");
        }

        return (first, second);
    }

    private async Task SetupAsync()
    {
        _time = new SettableClock(EngineWorkload.Start);
        _store = new CountingMemoryStore(_time);
        _instance = new SyntheticInstanceGateway(Items, _time);
        await OpenClientAsync();
        var owner = SyntheticInstanceGateway.Owner;
        var backup = await _client!.CreateDefaultBackupAsync(owner);
        await _client.EnableBackupAsync(owner, backup.Id, SyntheticInstanceGateway.InstanceId, InstanceKind.Software);
        var changes = Items * ChurnPercent / 100;
        var days = 7 + ExpiredDays;
        for (var day = 1; day <= days; day++)
        {
            var midnight = EngineWorkload.Start.AddDays(day - 1);
            foreach (var at in new[] { TimeSpan.FromHours(6), TimeSpan.FromHours(12), TimeSpan.FromHours(18), new TimeSpan(23, 55, 0) })
            {
                _instance.MakeChanges(changes / 4);
                await RunAsync(backup.Id, midnight + at);
            }

            await RunAsync(backup.Id, midnight.AddDays(1));
        }

        CloseClient();
        _pruneAt = EngineWorkload.Start.AddDays(days).AddMinutes(30);
        _history = _store.Snapshot();

        // What the measured prunes collect, once, for the report.
        OpenOnHistory();
        var packBytes = _store.BytesStoredUnder("packs/");
        var (first, second) = await PruneTwiceAsync();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"// prune-garbage items={Items} expired-days={ExpiredDays}: packs before {packBytes / 1e6:F1} MB; first prune: {first.RecoveryPointsDeleted} points deleted, {first.PacksMarked} packs marked, {first.PacksRepacked} repacked ({first.BytesRepacked / 1e6:F1} MB copied); second: {second.PacksDeleted} packs deleted; packs after {_store.BytesStoredUnder("packs/") / 1e6:F1} MB, so {(packBytes + first.BytesRepacked - _store.BytesStoredUnder("packs/")) / 1e6:F1} MB of packs collected"));
        CloseClient();
    }

    private async Task RunAsync(string backupId, DateTimeOffset at)
    {
        _time.SetUtcNow(at);
        _ = await _client!.RunIfDueAsync(backupId) ?? throw new InvalidOperationException($"No run was due at {at:O}.");
    }

    private async Task OpenClientAsync()
    {
        _keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(_keyFiles, KeyFile);
        _client = await BackupClient.OpenAsync(_store, _keys, _instance, hsmClusters: null, new BackupClientOptions
        {
            TimeProvider = _time,
            LeaseHolder = "benchmarks",
            InstanceDiscoveryInterval = null, // the history is the one default backup's
        });
    }

    private void CloseClient()
    {
        _client?.Dispose();
        _keys?.Dispose();
        (_client, _keys) = (null, null);
    }

    /// <summary>A clock the measurement sets back to the history's end before each call (a fake clock only moves forward).</summary>
    private sealed class SettableClock(DateTimeOffset start) : TimeProvider
    {
        private DateTimeOffset _now = start;

        public override DateTimeOffset GetUtcNow() => _now;

        public void SetUtcNow(DateTimeOffset now) => _now = now;

        public void Advance(TimeSpan by) => _now += by;
    }

    /// <summary>
    /// Each call prunes a copy of the history once: one invocation per iteration. In process (no generated project to
    /// build, which timed out on a loaded 2-core machine); the cases are compared with each other, in one process.
    /// </summary>
    private sealed class OnePrunePairPerCall : ManualConfig
    {
        public OnePrunePairPerCall() => AddJob(Job.Default.WithWarmupCount(1).WithIterationCount(8).WithInvocationCount(1).WithUnrollFactor(1)
            .WithToolchain(InProcessEmitToolchain.Instance));
    }
}
