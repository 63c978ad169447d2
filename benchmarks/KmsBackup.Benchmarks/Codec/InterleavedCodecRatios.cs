using System.Diagnostics;
using System.Globalization;

namespace KmsBackup.Benchmarks.Codec;

/// <summary>
/// The codec budget's ratios measured so that a shared machine's changing load cancels out: each round calls
/// every method of <see cref="CodecBenchmarks"/> once, in an order rotated from round to round, and takes each
/// method's ratio to the baseline call of the same round. BenchmarkDotNet runs each method in its own process,
/// one after the other, so a load that changes between two of them moves their ratio; here both sides of every
/// ratio ran within a fraction of a second of each other. The medians of the per-round ratios are reported,
/// with their quartiles. This does not replace the BenchmarkDotNet report; it checks it.
/// </summary>
internal static class InterleavedCodecRatios
{
    public static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        var rounds = 60;
        var at = Array.IndexOf(args, "--rounds");
        if (at >= 0 && at + 1 < args.Length)
        {
            rounds = int.Parse(args[at + 1], CultureInfo.InvariantCulture);
        }

        var bench = new CodecBenchmarks();
        var cost = new CodecCostBenchmarks();
        bench.Setup(); // also checks that every method does the whole job
        cost.Setup();
        try
        {
            var started = Stopwatch.StartNew();
            var budget = await MeasureAsync(
                rounds,
                [
                    (nameof(CodecBenchmarks.RawAesGcmEncrypt), () => Task.FromResult(bench.RawAesGcmEncrypt())),
                    (nameof(CodecBenchmarks.RawAesGcmDecrypt), () => Task.FromResult(bench.RawAesGcmDecrypt())),
                    (nameof(CodecBenchmarks.CodecEncrypt), bench.CodecEncrypt),
                    (nameof(CodecBenchmarks.CodecDecrypt), bench.CodecDecrypt),
                    (nameof(CodecBenchmarks.CodecVerify), bench.CodecVerify),
                    (nameof(CodecBenchmarks.SpanEncrypt), () => Task.FromResult(bench.SpanEncrypt())),
                    (nameof(CodecBenchmarks.SpanDecrypt), () => Task.FromResult(bench.SpanDecrypt())),
                    (nameof(CodecBenchmarks.SpanVerify), () => Task.FromResult(bench.SpanVerify())),
                ]);
            var costs = await MeasureAsync(
                rounds,
                [
                    (nameof(CodecCostBenchmarks.RawAesGcmEncrypt), () => Task.FromResult(cost.RawAesGcmEncrypt())),
                    (nameof(CodecCostBenchmarks.RawAesGcmEncryptFormatWork), () => Task.FromResult(cost.RawAesGcmEncryptFormatWork())),
                    (nameof(CodecCostBenchmarks.AesGcmCacheResident), () => Task.FromResult(cost.AesGcmCacheResident())),
                    (nameof(CodecCostBenchmarks.StreamReadCopy), () => Task.FromResult(cost.StreamReadCopy())),
                    (nameof(CodecCostBenchmarks.StreamWriteCopy), () => Task.FromResult(cost.StreamWriteCopy())),
                    (nameof(CodecCostBenchmarks.ReadEncryptWrite), () => Task.FromResult(cost.ReadEncryptWrite())),
                    (nameof(CodecBenchmarks.CodecEncrypt), bench.CodecEncrypt),
                ]);

            output.WriteLine($"# Codec budget, interleaved ({rounds} rounds, {started.Elapsed.TotalSeconds:F0} s)");
            output.WriteLine();
            output.WriteLine($"64 MiB per call, 64 KiB segments; {Environment.ProcessorCount} logical cores, .NET {Environment.Version}. Each round calls every method of a table once (order rotated per round); ratio = the baseline's time / the method's time in the same round, i.e. throughput relative to the first row. Medians and quartiles over the rounds.");
            output.WriteLine();
            output.WriteLine("## The budget (`CodecBenchmarks`)");
            output.WriteLine();
            Write(output, budget);
            output.WriteLine();
            output.WriteLine("## Where the stream API's time goes (`CodecCostBenchmarks`, and `CodecEncrypt` again)");
            output.WriteLine();
            Write(output, costs);
            return 0;
        }
        finally
        {
            bench.Cleanup();
            cost.Cleanup();
        }
    }

    private static async Task<(string Name, double[] Times, double[] Ratios)[]> MeasureAsync(int rounds, (string Name, Func<Task<long>> Call)[] methods)
    {
        // Warm up: a few calls of each, so that every loop runs its final code.
        for (var i = 0; i < 5; i++)
        {
            foreach (var (_, call) in methods)
            {
                await call();
            }
        }

        var times = new double[methods.Length][];
        for (var m = 0; m < methods.Length; m++)
        {
            times[m] = new double[rounds];
        }

        for (var round = 0; round < rounds; round++)
        {
            for (var k = 0; k < methods.Length; k++)
            {
                var m = (k + round) % methods.Length;
                var t = Stopwatch.GetTimestamp();
                await methods[m].Call();
                times[m][round] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
            }
        }

        return [.. methods.Select((method, m) => (method.Name, times[m], times[m].Select((time, round) => times[0][round] / time).ToArray()))];
    }

    private static void Write(TextWriter output, (string Name, double[] Times, double[] Ratios)[] results)
    {
        output.WriteLine("| method | median time | ratio: median | 25th–75th percentile | rounds ≥ 0.80 |");
        output.WriteLine("|---|---:|---:|---:|---:|");
        foreach (var (name, times, ratios) in results)
        {
            output.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"| `{name}` | {Percentile(times, 0.5):F2} ms | **{Percentile(ratios, 0.5):F2}×** | {Percentile(ratios, 0.25):F2}–{Percentile(ratios, 0.75):F2} | {ratios.Count(r => r >= 0.80)} of {ratios.Length} |"));
        }
    }

    private static double Percentile(double[] values, double p)
    {
        var sorted = values.Order().ToArray();
        var position = p * (sorted.Length - 1);
        var low = (int)Math.Floor(position);
        var high = (int)Math.Ceiling(position);
        return sorted[low] + ((sorted[high] - sorted[low]) * (position - low));
    }
}
