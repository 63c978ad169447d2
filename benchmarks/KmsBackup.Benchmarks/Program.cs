using BenchmarkDotNet.Running;

namespace KmsBackup.Benchmarks;

public static class Program
{
    /// <summary>
    /// <c>--bytes</c> prints the storage budgets (deterministic byte counts); <c>--codec-interleaved</c> [<c>--rounds N</c>]
    /// prints the codec budget's ratios measured round by round in one process; <c>--export</c> and
    /// <c>--engine-incremental</c> are the halves of the side-by-side with restic (see <see cref="Workload.SideBySide"/>);
    /// <c>--fleet</c> counts store reads per scheduler tick and health report (<see cref="Workload.FleetCounts"/>);
    /// <c>--churn</c> measures stored bytes against live bytes over days of churn, and prune costs (<see cref="Workload.ChurnCosts"/>);
    /// <c>--memory</c> measures the peak memory of whole-instance operations (<see cref="Workload.WholeInstanceMemory"/>);
    /// anything else goes to
    /// BenchmarkDotNet's switcher (e.g. <c>--filter '*'</c>). Returns non-zero when a benchmark failed
    /// (the switcher itself exits 0 then) or, with <c>--bytes</c>, when a storage budget is missed.
    /// </summary>
    public static async Task<int> Main(string[] args)
    {
        if (args.Contains("--bytes", StringComparer.Ordinal))
        {
            return await Repository.StorageBudgets.RunAsync(args, Console.Out);
        }

        if (args.Contains("--memory", StringComparer.Ordinal))
        {
            return await Workload.WholeInstanceMemory.RunAsync(args, Console.Out);
        }

        if (args.Contains("--churn", StringComparer.Ordinal))
        {
            return await Workload.ChurnCosts.RunAsync(args, Console.Out);
        }

        if (args.Contains("--fleet", StringComparer.Ordinal))
        {
            return await Workload.FleetCounts.RunAsync(args, Console.Out);
        }

        if (args.Contains("--export", StringComparer.Ordinal))
        {
            return await Workload.SideBySide.ExportAsync(args, Console.Out);
        }

        if (args.Contains("--engine-incremental", StringComparer.Ordinal))
        {
            return await Workload.SideBySide.EngineIncrementalAsync(args, Console.Out);
        }

        if (args.Contains("--codec-interleaved", StringComparer.Ordinal))
        {
            return await Codec.InterleavedCodecRatios.RunAsync(args, Console.Out);
        }

        var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args).ToList();
        var failed = summaries.Where(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)).ToList();
        foreach (var summary in failed)
        {
            await Console.Error.WriteLineAsync($"Benchmark run '{summary.Title}' failed: see its log in {summary.LogFilePath}.");
        }

        return failed.Count == 0 ? 0 : 1;
    }
}
