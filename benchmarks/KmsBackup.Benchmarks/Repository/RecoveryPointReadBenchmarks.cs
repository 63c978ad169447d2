using BenchmarkDotNet.Attributes;
using KmsBackup.Benchmarks.Workload;

namespace KmsBackup.Benchmarks.Repository;

/// <summary>
/// The read budget (DESIGN.md §3): reading the last recovery point of a day with 288 incrementals costs at
/// most 2× reading that day's full alone. Both go through <see cref="BackupClient.GetStateAtAsync"/> on a
/// client that ran the day (so point manifests are cached, as in a long-lived host), and both read every
/// item: the tree objects, decrypted and checked, from the packs that hold them.
/// </summary>
/// <remarks>
/// The default 5-minute interval fits 287 incrementals after the 00:00 full; to have the budget's 288 the
/// workload sets the interval to a 289th of a day (≈ 4 min 59 s). Each incremental makes
/// <see cref="ChangesPerIncremental"/> changes (a third each added, rotated, deleted).
/// </remarks>
[MemoryDiagnoser]
[WarmupCount(5)]
[IterationCount(20)] // bounded, so the whole suite fits in well under 30 minutes on 2 cores
public class RecoveryPointReadBenchmarks
{
    public const int Incrementals = 288;
    public const int ChangesPerIncremental = 10;

    private EngineWorkload _workload = null!;
    private DateTimeOffset _fullAt;
    private DateTimeOffset _lastAt;

    /// <summary>Items in the instance.</summary>
    [Params(100_000)]
    public int Items { get; set; }

    [GlobalSetup]
    public void Setup() => SetupAsync().GetAwaiter().GetResult();

    [GlobalCleanup]
    public void Cleanup() => _workload.Dispose();

    [Benchmark(Baseline = true)]
    public async Task<int> ReadDayFull()
    {
        var (_, snapshot) = await _workload.Client.GetStateAtAsync(SyntheticInstanceGateway.Owner, _workload.BackupId, _fullAt);
        return snapshot.Keys.Length + snapshot.Secrets.Length;
    }

    [Benchmark]
    public async Task<int> ReadLastIncrementalOfDay()
    {
        var (_, snapshot) = await _workload.Client.GetStateAtAsync(SyntheticInstanceGateway.Owner, _workload.BackupId, _lastAt);
        return snapshot.Keys.Length + snapshot.Secrets.Length;
    }

    private async Task SetupAsync()
    {
        var interval = TimeSpan.FromTicks((TimeSpan.TicksPerDay + Incrementals) / (Incrementals + 1)); // a 289th of a day, rounded up
        _workload = await EngineWorkload.StartAsync(Items, BackupSchedulePolicy.Default with { IncrementalInterval = interval });
        _fullAt = EngineWorkload.Start;
        for (var k = 1; k <= Incrementals; k++)
        {
            _workload.Instance.MakeChanges(ChangesPerIncremental);
            _lastAt = EngineWorkload.Start + (k * interval);
            await _workload.RunAtAsync(_lastAt, BackupRunKind.Incremental);
        }

        // The day ends with its incrementals: the next run would be the next day's full.
        _workload.Time.SetUtcNow(EngineWorkload.Start.AddDays(1).AddTicks(-1));
        var day = await _workload.Client.ListRecoveryPointsAsync(SyntheticInstanceGateway.Owner, _workload.BackupId, DateOnly.FromDateTime(EngineWorkload.Start.UtcDateTime));
        if (day.Count != Incrementals + 1 || day.Count(p => p.Kind == BackupRunKind.Incremental) != Incrementals)
        {
            throw new InvalidOperationException($"The day holds {day.Count} points where the workload made one full and {Incrementals} incrementals.");
        }

        var (full, fullSnapshot) = await _workload.Client.GetStateAtAsync(SyntheticInstanceGateway.Owner, _workload.BackupId, _fullAt);
        var (last, lastSnapshot) = await _workload.Client.GetStateAtAsync(SyntheticInstanceGateway.Owner, _workload.BackupId, _lastAt);
        if (full.Kind != BackupRunKind.Full || last.Sequence != day[^1].Sequence || lastSnapshot.Keys.Length + lastSnapshot.Secrets.Length != _workload.Instance.ItemCount || fullSnapshot.Keys.Length + fullSnapshot.Secrets.Length != Items)
        {
            throw new InvalidOperationException("The reads do not return the day's full and its last incremental.");
        }

        Console.WriteLine($"// Workload: {Items:N0} items, 1 full + {Incrementals} incrementals of {ChangesPerIncremental} changes; store holds {_workload.Store.CountUnder("packs/")} packs, {_workload.Store.RecoveryPointBytes:N0} bytes of recovery points.");
    }
}
