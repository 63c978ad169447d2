using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using KmsBackup.Benchmarks.Workload;

namespace KmsBackup.Benchmarks.Engine;

/// <summary>
/// Issue 15, row "incremental run": one scheduled incremental of 100 changes through the public
/// <see cref="BackupClient.RunIfDueAsync"/>, on the benchmarks' synthetic instance (which has a change feed) and memory
/// store, at 10,000, 100,000 and 1,000,000 items. An incremental updates the last point's trees on the changed paths, so
/// its time should hardly grow with the instance (budget: 1M / 10k ≤ 3×); the ratio is read across the sizes of one run.
/// </summary>
/// <remarks>
/// Each size is backed up whole once in setup (the first full). Each measured call is one incremental, 5 minutes after
/// the last; the 100 changes (rotations, additions, deletions, new secret values) are made before it, outside the
/// measurement. Every call checks that an incremental ran and followed the change feed.
/// </remarks>
[MemoryDiagnoser]
[Config(typeof(OneRunPerCall))]
public class IncrementalRunBenchmarks
{
    private const int Changes = 100;

    private EngineWorkload _workload = null!;
    private int _round;

    /// <summary>Items in the instance.</summary>
    [Params(10_000, 100_000, 1_000_000)]
    public int Items { get; set; }

    [GlobalSetup]
    public void Setup() => _workload = EngineWorkload.StartAsync(Items).GetAwaiter().GetResult();

    [GlobalCleanup]
    public void Cleanup() => _workload.Dispose();

    [IterationSetup]
    public void MakeChanges()
    {
        _workload.Instance.MakeChanges(Changes);
        _round++;
    }

    [Benchmark]
    public async Task<long> IncrementalOf100Changes()
    {
        var (run, bytes) = await _workload.RunAtAsync(EngineWorkload.Start.AddMinutes(5 * _round), BackupRunKind.Incremental);
        if (!run.UsedChangeFeed)
        {
            throw new InvalidOperationException("The incremental did not follow the change feed.");
        }

        return bytes;
    }

    /// <summary>Each call is one run on its own (a run changes the backup's state): one invocation per iteration.</summary>
    private sealed class OneRunPerCall : ManualConfig
    {
        public OneRunPerCall() => AddJob(Job.Default.WithWarmupCount(2).WithIterationCount(12).WithInvocationCount(1).WithUnrollFactor(1));
    }
}
