using BenchmarkDotNet.Attributes;
using KmsBackup.Benchmarks.Workload;

namespace KmsBackup.Benchmarks.Engine;

/// <summary>
/// Issue 15, row "restoring 10 items": the plan of a restore of 10 named keys spread over the instance, through the
/// public <see cref="BackupClient.PlanRestoreAsync"/>, at 10,000, 100,000 and 1,000,000 items. A plan reads the
/// named items with their key material (what the restore would write) and checks every precondition against the
/// target; the items are found by seeking through the day's last point by name, so its cost should hardly grow with
/// the instance (budget: 1M / 10k ≤ 3×); the ratio is read across the sizes of one run.
/// </summary>
/// <remarks>
/// Each size is backed up once in setup (one full on the benchmarks' synthetic instance and memory store). The target
/// is the instance itself, so the plan finds every name in use there and says so: the reads and checks are those of any
/// plan. The setup checks that the plan lists the 10 keys.
/// </remarks>
[MemoryDiagnoser]
[WarmupCount(3)]
[IterationCount(10)]
public class RestorePlanBenchmarks
{
    private EngineWorkload _workload = null!;
    private RestoreRequest _request = null!;

    /// <summary>Items in the instance.</summary>
    [Params(10_000, 100_000, 1_000_000)]
    public int Items { get; set; }

    [GlobalSetup]
    public void Setup() => SetupAsync().GetAwaiter().GetResult();

    [GlobalCleanup]
    public void Cleanup() => _workload.Dispose();

    [Benchmark]
    public async Task<int> PlanOf10Keys() => (await _workload.Client.PlanRestoreAsync(_request)).Items.Length;

    private async Task SetupAsync()
    {
        _workload = await EngineWorkload.StartAsync(Items);
        var names = _workload.Instance.KeysByName.Select(k => k.Name).ToList();
        _request = new RestoreRequest
        {
            CallerAccount = SyntheticInstanceGateway.Owner,
            BackupId = _workload.BackupId,
            TargetInstanceId = SyntheticInstanceGateway.InstanceId,
            BackupDate = DateOnly.FromDateTime(EngineWorkload.Start.UtcDateTime),
            KeyNames = [.. Enumerable.Range(0, 10).Select(i => names[i * (names.Count - 1) / 9])],
        };

        if (await PlanOf10Keys() != 10)
        {
            throw new InvalidOperationException("The plan does not list the 10 keys.");
        }
    }
}
