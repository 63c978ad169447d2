using System.Globalization;
using KmsBackup.Benchmarks.Workload;

namespace KmsBackup.Benchmarks.Repository;

/// <summary>
/// The storage budgets of DESIGN.md §3, as exact byte counts: runs the engine over the workload
/// infrastructure and prints a markdown report. The workload is fixed by a seed; the trees' chunk
/// boundaries depend on each repository's secret salt (random, from its master secret), so sizes vary a
/// little from one repository to the next and (a) is averaged over several repositories.
/// </summary>
/// <remarks>
/// (a) Incremental backup: the bytes stored by an incremental of 100 changes on a 1,000,000-item instance,
/// at most 2× those on a 10,000-item instance (the mean of 5 consecutive incrementals in each of 3 repositories).
/// (b) Daily fulls: 30 daily fulls of an unchanged 100,000-item instance store at most 1.1× one full.
/// "Stored" is what the store holds for recovery points: packs, their indexes and point manifests.
/// </remarks>
internal static class StorageBudgets
{
    public const int ChangesPerIncremental = 100;
    public const int IncrementalsMeasured = 5;
    public const int Repositories = 3;
    public const int DailyFullItems = 100_000;
    public const int DailyFulls = 30;
    private static readonly int[] IncrementalSizes = [10_000, 1_000_000];

    public static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        _ = args;
        var report = new List<string>();
        var incrementals = new List<(int Items, double MeanBytes, long MinBytes, long MaxBytes, double MeanRunBytes, double Objects, double Changes)>();
        foreach (var items in IncrementalSizes)
        {
            incrementals.Add(await MeasureIncrementalsAsync(items));
        }

        var (oneFull, allFulls, fullsRun) = await MeasureDailyFullsAsync();

        var ratioA = incrementals[1].MeanBytes / incrementals[0].MeanBytes;
        var ratioB = (double)allFulls / oneFull;
        var metA = ratioA <= 2.0;
        var metB = ratioB <= 1.1;

        report.Add("# Storage budgets");
        report.Add(string.Empty);
        report.Add("Measured by `dotnet run -c Release --project benchmarks/KmsBackup.Benchmarks -- --bytes`: the engine (`BackupClient`) over an");
        report.Add("in-memory store that counts bytes, a synthetic instance (3 keys to 1 secret, software keys with 32-byte");
        report.Add("material, 48-byte secret values; changes at random names) and a fake clock. Bytes are exact counts; the");
        report.Add("workload is fixed by a seed, but chunk boundaries follow each repository's secret salt (random), so sizes");
        report.Add($"vary a little between repositories: (a) is the mean over {Repositories} repositories × {IncrementalsMeasured} incrementals.");
        report.Add("\"Stored\" counts what the store holds for recovery points: packs, pack indexes and point manifests.");
        report.Add(string.Empty);
        report.Add("| budget | measured | limit | verdict |");
        report.Add("|---|---:|---:|---|");
        report.Add(Row($"(a) incremental of {ChangesPerIncremental} changes: 1,000,000 items vs 10,000 items", ratioA, 2.0, metA));
        report.Add(Row($"(b) {DailyFulls} daily fulls vs one full, unchanged {DailyFullItems:N0}-item instance", ratioB, 1.1, metB));
        report.Add(string.Empty);
        report.Add($"## (a) Incremental backup: {ChangesPerIncremental} changes (a third each added, rotated, deleted)");
        report.Add(string.Empty);
        report.Add($"Per incremental, over {Repositories} repositories × {IncrementalsMeasured} consecutive incrementals after a full.");
        report.Add(string.Empty);
        report.Add("| instance items | bytes stored, mean | min | max | of which packs + indexes (`BytesWritten`), mean | objects written, mean | changes recorded, mean |");
        report.Add("|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var m in incrementals)
        {
            report.Add(Invariant($"| {m.Items:N0} | {m.MeanBytes:N0} | {m.MinBytes:N0} | {m.MaxBytes:N0} | {m.MeanRunBytes:N0} | {m.Objects:N1} | {m.Changes:N1} |"));
        }

        report.Add(string.Empty);
        report.Add($"## (b) Daily full backups of an unchanged {DailyFullItems:N0}-item instance");
        report.Add(string.Empty);
        report.Add("| fulls | bytes stored |");
        report.Add("|---:|---:|");
        report.Add(Invariant($"| 1 | {oneFull:N0} |"));
        report.Add(Invariant($"| {fullsRun} | {allFulls:N0} |"));

        foreach (var line in report)
        {
            await output.WriteLineAsync(line);
        }

        return metA && metB ? 0 : 2;
    }

    private static async Task<(int Items, double MeanBytes, long MinBytes, long MaxBytes, double MeanRunBytes, double Objects, double Changes)> MeasureIncrementalsAsync(int items)
    {
        var stored = new List<long>();
        long runBytes = 0, objects = 0, changes = 0;
        for (var repository = 1; repository <= Repositories; repository++)
        {
            await Console.Error.WriteLineAsync(Invariant($"(a) {items:N0} items, repository {repository}: full backup..."));
            using var workload = await EngineWorkload.StartAsync(items);
            for (var k = 1; k <= IncrementalsMeasured; k++)
            {
                workload.Instance.MakeChanges(ChangesPerIncremental);
                var (run, bytes) = await workload.RunAtAsync(EngineWorkload.Start + (k * BackupSchedulePolicy.Default.IncrementalInterval), BackupRunKind.Incremental);
                stored.Add(bytes);
                runBytes += run.BytesWritten;
                objects += run.ObjectsWritten;
                changes += run.Point.ChangeCount;
                await Console.Error.WriteLineAsync(Invariant($"(a) {items:N0} items, repository {repository}, incremental {k}: {bytes:N0} bytes, {run.Point.ChangeCount} changes"));
            }
        }

        double n = stored.Count;
        return (items, stored.Average(), stored.Min(), stored.Max(), runBytes / n, objects / n, changes / n);
    }

    private static async Task<(long OneFull, long AllFulls, int Fulls)> MeasureDailyFullsAsync()
    {
        await Console.Error.WriteLineAsync(Invariant($"(b) {DailyFullItems:N0} items: {DailyFulls} daily fulls..."));
        using var workload = await EngineWorkload.StartAsync(DailyFullItems);
        var total = workload.FirstFullBytes;
        for (var day = 1; day < DailyFulls; day++)
        {
            var (_, stored) = await workload.RunAtAsync(EngineWorkload.Start.AddDays(day), BackupRunKind.Full);
            total += stored;
        }

        if (total != workload.Store.RecoveryPointBytes)
        {
            throw new InvalidOperationException("The runs' bytes do not add up to what the store holds.");
        }

        return (workload.FirstFullBytes, total, DailyFulls);
    }

    private static string Row(string what, double ratio, double limit, bool met) =>
        Invariant($"| {what} | {ratio:0.000}× | ≤ {limit:0.0}× | {(met ? "MET" : "MISSED")} |");

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
