using System.Diagnostics;
using System.Globalization;

namespace KmsBackup.Benchmarks.Workload;

/// <summary>
/// <c>--fleet [--backups 100,1000,10000]</c> (issue 15, item 4): what a scheduler tick and a health report cost in store
/// reads as the number of backups on one store grows. For each count: the benchmarks' synthetic instance (1,000 items)
/// with its automatic backup, plus default backups (created, never enabled: nothing to run) up to the count, on the
/// benchmarks' memory store. Then the process's first tick (nothing due, catalog not yet cached), one tick at which the
/// automatic backup's incremental is due, one tick at which nothing is due, and one <see cref="BackupClient.GetHealthAsync"/>, each with the store's reads, listings and listed objects
/// counted, and its time (one run each, in process: indicative only).
/// </summary>
internal static class FleetCounts
{
    public static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        var index = Array.IndexOf(args, "--backups");
        var counts = index >= 0 && index + 1 < args.Length
            ? args[index + 1].Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray()
            : [100, 1_000, 10_000];

        await output.WriteLineAsync("| backups | what | store reads | listings (objects listed) | time |");
        await output.WriteLineAsync("|---|---|---|---|---|");
        foreach (var count in counts)
        {
            using var workload = await EngineWorkload.StartAsync(1_000);
            for (var i = 1; i < count; i++)
            {
                await workload.Client.CreateDefaultBackupAsync($"account-{i % 97}");
            }

            // The process's first tick, a minute after the first full: nothing due, and nothing of the catalog known yet.
            workload.Time.SetUtcNow(EngineWorkload.Start.AddMinutes(1));
            await MeasureAsync(output, workload, count, "first tick of the process, nothing due", async () => (await workload.Client.RunDueBackupsAsync()).ThrowIfAnyFailed().Count);

            // 5 minutes after the first full: its incremental is due, and only that.
            workload.Instance.MakeChanges(10);
            workload.Time.SetUtcNow(EngineWorkload.Start.AddMinutes(5));
            await MeasureAsync(output, workload, count, "tick, one incremental due", async () => (await workload.Client.RunDueBackupsAsync()).ThrowIfAnyFailed().Count);
            workload.Time.SetUtcNow(EngineWorkload.Start.AddMinutes(6));
            await MeasureAsync(output, workload, count, "tick, nothing due", async () => (await workload.Client.RunDueBackupsAsync()).ThrowIfAnyFailed().Count);
            await MeasureAsync(output, workload, count, "health of every backup", async () => (await workload.Client.GetHealthAsync()).Count);
        }

        return 0;
    }

    private static async Task MeasureAsync(TextWriter output, EngineWorkload workload, int count, string what, Func<Task<int>> action)
    {
        workload.Store.ResetCounts();
        var started = Stopwatch.GetTimestamp();
        var result = await action();
        var elapsed = Stopwatch.GetElapsedTime(started);
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"| {count:N0} | {what} ({result}) | {workload.Store.Reads:N0} | {workload.Store.Listings:N0} ({workload.Store.ListedObjects:N0}) | {elapsed.TotalMilliseconds:F0} ms |"));
    }
}
