using BenchmarkDotNet.Attributes;
using KmsBackup.Benchmarks.Workload;

namespace KmsBackup.Benchmarks.Repository;

/// <summary>
/// Issue 15, row "first view page": the first page of 100 fully backed-up keys of a day, through the public
/// <see cref="BackupClient.GetDataPageAsync"/>, at 10,000, 100,000 and 1,000,000 items. A page of a full view seeks
/// through the tree by the item counts its branches record, so its cost should hardly grow with the instance
/// (budget: 1M / 10k ≤ 3×). The baseline in each size is the same page through the path that reads the whole view, as
/// every page did before: a name filter that every name matches (<c>NameContains = ""</c>) takes that path.
/// </summary>
/// <remarks>
/// Each size is backed up once in setup (one full on the benchmarks' synthetic instance and memory store); the client
/// has that day's manifest cached, as a long-lived host would. The setup checks that both methods return the same
/// 100 names.
/// </remarks>
[MemoryDiagnoser]
[WarmupCount(3)]
[IterationCount(10)]
public class ViewPageBenchmarks
{
    private const int PageSize = 100;

    private EngineWorkload _workload = null!;
    private DateOnly _date;

    /// <summary>Items in the instance.</summary>
    [Params(10_000, 100_000, 1_000_000)]
    public int Items { get; set; }

    [GlobalSetup]
    public void Setup() => SetupAsync().GetAwaiter().GetResult();

    [GlobalCleanup]
    public void Cleanup() => _workload.Dispose();

    [Benchmark(Baseline = true)]
    public async Task<int> FirstPageReadingWholeView()
    {
        var page = await _workload.Client.GetDataPageAsync(
            SyntheticInstanceGateway.Owner, _workload.BackupId, _date, BackupDataType.FullyBackedUpKeys, new BackupDataQuery { PageSize = PageSize, NameContains = "" });
        return page.Items.Count;
    }

    [Benchmark]
    public async Task<int> FirstPage()
    {
        var page = await _workload.Client.GetDataPageAsync(
            SyntheticInstanceGateway.Owner, _workload.BackupId, _date, BackupDataType.FullyBackedUpKeys, new BackupDataQuery { PageSize = PageSize });
        return page.Items.Count;
    }

    private async Task SetupAsync()
    {
        _workload = await EngineWorkload.StartAsync(Items);
        _date = DateOnly.FromDateTime(EngineWorkload.Start.UtcDateTime);
        var page = await _workload.Client.GetDataPageAsync(
            SyntheticInstanceGateway.Owner, _workload.BackupId, _date, BackupDataType.FullyBackedUpKeys, new BackupDataQuery { PageSize = PageSize });
        var whole = await _workload.Client.GetDataPageAsync(
            SyntheticInstanceGateway.Owner, _workload.BackupId, _date, BackupDataType.FullyBackedUpKeys, new BackupDataQuery { PageSize = PageSize, NameContains = "" });
        if (!page.Items.Select(i => i.Name).SequenceEqual(whole.Items.Select(i => i.Name)) || page.ContinuationToken is null || page.Items.Count != PageSize)
        {
            throw new InvalidOperationException("The first page and the first items of the whole view differ.");
        }

        Console.WriteLine($"// Workload: {Items:N0} items, one full; the view's first page holds {page.Items.Count} keys.");
    }
}
