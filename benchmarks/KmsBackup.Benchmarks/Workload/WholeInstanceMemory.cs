using System.Globalization;

namespace KmsBackup.Benchmarks.Workload;

/// <summary>
/// <c>--memory [--items N]</c> (issue 15, item 5): the peak memory of each whole-instance operation (the first full, a
/// download of the day, a verify, an upload of the downloaded file) at N items (default 1,000,000), on Linux.
/// </summary>
/// <remarks>
/// One process, the operations one after the other. Before each, a full garbage collection, the resident set then
/// (the baseline: the instance, and the repository in the benchmarks' memory store, are in it), and a reset of the
/// kernel's peak resident set (<c>/proc/self/clear_refs</c>, value 5); after it, the peak (<c>VmHWM</c>). The
/// operation's extra memory is peak minus baseline. The instance's own snapshot is measured the same way, as the
/// growth of the resident set when the synthetic instance is built. The downloaded file goes to a temporary file on
/// disk, deleted at the end.
/// </remarks>
internal static class WholeInstanceMemory
{
    public static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        if (!OperatingSystem.IsLinux())
        {
            await output.WriteLineAsync("--memory reads /proc/self: Linux only.");
            return 2;
        }

        var index = Array.IndexOf(args, "--items");
        var items = index >= 0 && index + 1 < args.Length ? int.Parse(args[index + 1], CultureInfo.InvariantCulture) : 1_000_000;

        var before = Settle();
        var instance = new SyntheticInstanceGateway(items, new Microsoft.Extensions.Time.Testing.FakeTimeProvider(EngineWorkload.Start));
        var snapshot = Settle() - before;
        GC.KeepAlive(instance);
        instance = null;

        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"| operation at {items:N0} items | baseline resident | peak resident | extra (peak - baseline) | extra / instance snapshot |"));
        await output.WriteLineAsync("|---|---|---|---|---|");
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"| the synthetic instance itself (built in memory) | {Mb(before)} | | {Mb(snapshot)} | 1.00 |"));

        EngineWorkload? workload = null;
        await MeasureAsync(output, "building the instance again, then its first full (enable)", snapshot, async () => workload = await EngineWorkload.StartAsync(items));
        using var owned = workload!;
        var date = DateOnly.FromDateTime(EngineWorkload.Start.UtcDateTime);
        var file = Path.GetTempFileName();
        try
        {
            byte[] dataKey = [];
            await MeasureAsync(output, "download of the day", snapshot, async () =>
            {
                await using var destination = File.Create(file);
                using var download = await owned.Client.DownloadAsync(SyntheticInstanceGateway.Owner, owned.BackupId, date, destination);
                dataKey = download.DataKey.Span.ToArray();
            });
            await MeasureAsync(output, "verify of the repository", snapshot, async () => await owned.Client.VerifyAsync());
            await MeasureAsync(output, "upload of the downloaded file", snapshot, async () =>
            {
                await using var source = File.OpenRead(file);
                await owned.Client.UploadAsync(SyntheticInstanceGateway.Owner, source, dataKey, "uploaded-copy");
            });
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"\nThe downloaded file: {new FileInfo(file).Length:N0} bytes."));
        }
        finally
        {
            File.Delete(file);
        }

        return 0;
    }

    private static async Task MeasureAsync(TextWriter output, string what, long snapshot, Func<Task> operation)
    {
        var baseline = Settle();
        File.WriteAllText("/proc/self/clear_refs", "5");
        await operation();
        var peak = Status("VmHWM");
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"| {what} | {Mb(baseline)} | {Mb(peak)} | {Mb(peak - baseline)} | {(double)(peak - baseline) / snapshot:F2} |"));
    }

    /// <summary>The resident set after a full, compacting collection.</summary>
    private static long Settle()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        return Status("VmRSS");
    }

    /// <summary>A line of <c>/proc/self/status</c>, in bytes.</summary>
    private static long Status(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    private static string Mb(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1048576.0:N0} MiB");
}
