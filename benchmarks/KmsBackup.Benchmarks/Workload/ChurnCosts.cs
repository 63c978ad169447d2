using System.Diagnostics;
using System.Globalization;
using System.IO.Abstractions.TestingHelpers;
using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Benchmarks.Workload;

/// <summary>
/// <c>--churn [--items N] [--days D] [--changes C] [--thresholds 0.2,1]</c> (issue 15, item 4): what the store holds after D days (default 30) of
/// C changes a day (default 1% of N; N default 100,000) to the benchmarks' synthetic instance, backed up by a default
/// backup (7 viewable days, kept 7 days), with one prune a day; and what each prune cost against the garbage it found.
/// </summary>
/// <remarks>
/// Each day: the full at 00:00, then four incrementals (06:00, 12:00, 18:00, 23:55), each after a quarter of the day's
/// changes (a third each added, rotated and deleted: <see cref="SyntheticInstanceGateway.MakeChanges"/>); the prune at
/// 00:30, after the next full, so each prune deletes what the one before marked (grace 1 hour). The same history runs
/// once per threshold in one process (default: repacking on at the default threshold, 0.2, and off, threshold 1), from
/// the same seed.
/// Stored bytes are the packs' (<see cref="RepositoryVerification.PackBytes"/>); live bytes are what the kept recovery
/// points refer to, one copy of each object (<see cref="RepositoryVerification.ReferencedBytes"/>), both from a verify
/// after the last day's prune, and again after one more prune two hours later ("settled"). Prune times are one run
/// each on the memory store: indicative only.
/// </remarks>
internal static class ChurnCosts
{
    public static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        var items = Option(args, "--items", 100_000);
        var days = Option(args, "--days", 30);
        var changes = Option(args, "--changes", items / 100);

        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"{items:N0} items, {changes:N0} changes a day (added, rotated, deleted in thirds), {days} days, a default backup (7 viewable days), one prune a day.\n"));
        var index = Array.IndexOf(args, "--thresholds");
        var thresholds = index >= 0 && index + 1 < args.Length
            ? args[index + 1].Split(',').Select(t => double.Parse(t, CultureInfo.InvariantCulture)).ToArray()
            : [0.2, 1];
        var results = new List<(double Threshold, Result Result)>();
        foreach (var threshold in thresholds)
        {
            results.Add((threshold, await RunAsync(output, items, days, changes, threshold)));
        }

        await output.WriteLineAsync("| repacking | stored (packs) | live (referenced) | stored / live | settled stored / live | bytes repacked in all |");
        await output.WriteLineAsync("|---|---|---|---|---|---|");
        foreach (var (threshold, result) in results)
        {
            var name = threshold < 1 ? string.Create(CultureInfo.InvariantCulture, $"on (threshold {threshold})") : "off (threshold 1)";
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {Mb(result.Stored)} | {Mb(result.Live)} | **{(double)result.Stored / result.Live:F2}×** | {(double)result.SettledStored / result.SettledLive:F2}× | {Mb(result.Repacked)} |"));
        }

        // The budget: with the default threshold, stored bytes at most 1.5 times live.
        return results.Where(r => r.Threshold == new BackupClientOptions().PruneRepackThreshold).All(r => (double)r.Result.Stored / r.Result.Live <= 1.5) ? 0 : 2;
    }

    private static async Task<Result> RunAsync(TextWriter output, int items, int days, int changes, double threshold)
    {
        var start = EngineWorkload.Start;
        var time = new FakeTimeProvider(start);
        var store = new CountingMemoryStore(time);
        var instance = new SyntheticInstanceGateway(items, time);
        using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(new MockFileSystem(), "/keys/repository.key");
        using var client = await BackupClient.OpenAsync(store, keys, instance, hsmClusters: null, new BackupClientOptions
        {
            TimeProvider = time,
            LeaseHolder = "benchmarks",
            PruneRepackThreshold = threshold,
            InstanceDiscoveryInterval = null, // the history measured is the one default backup's: no automatic backup beside it
        });

        var owner = SyntheticInstanceGateway.Owner;
        var backup = await client.CreateDefaultBackupAsync(owner);
        await client.EnableBackupAsync(owner, backup.Id, SyntheticInstanceGateway.InstanceId, InstanceKind.Software);

        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"Repacking {(threshold < 1 ? $"on (threshold {threshold})" : "off")}:\n"));
        await output.WriteLineAsync("| day | points deleted | packs deleted | packs marked | packs repacked | bytes deleted | bytes repacked | packs after | prune time |");
        await output.WriteLineAsync("|---|---|---|---|---|---|---|---|---|");
        var repacked = 0L;
        for (var day = 1; day <= days; day++)
        {
            var midnight = start.AddDays(day - 1); // the day's full ran then: enabling, or the loop's day before
            foreach (var at in new[] { TimeSpan.FromHours(6), TimeSpan.FromHours(12), TimeSpan.FromHours(18), new TimeSpan(23, 55, 0) })
            {
                instance.MakeChanges(changes / 4);
                await RunAsync(client, time, midnight + at, backup.Id, BackupRunKind.Incremental);
            }

            // The next day's full, then the day's prune.
            await RunAsync(client, time, midnight.AddDays(1), backup.Id, BackupRunKind.Full);
            time.SetUtcNow(midnight.AddDays(1).AddMinutes(30));
            var packsBefore = store.BytesStoredUnder("packs/");
            var started = Stopwatch.GetTimestamp();
            var prune = await client.PruneAsync();
            var elapsed = Stopwatch.GetElapsedTime(started);
            var deleted = packsBefore + prune.BytesRepacked - store.BytesStoredUnder("packs/");
            repacked += prune.BytesRepacked;
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"| {day} | {prune.RecoveryPointsDeleted} | {prune.PacksDeleted} | {prune.PacksMarked} | {prune.PacksRepacked} | {Mb(deleted)} | {Mb(prune.BytesRepacked)} | {store.CountUnder("packs/")} | {elapsed.TotalMilliseconds:F0} ms |"));
        }

        var verification = await client.VerifyAsync();
        Check(verification);
        time.Advance(TimeSpan.FromHours(2));
        var last = await client.PruneAsync();
        repacked += last.BytesRepacked;
        var settled = await client.VerifyAsync();
        Check(settled);
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"\nAfter day {days}: {verification}; packs {Mb(verification.PackBytes)}, referenced {Mb(verification.ReferencedBytes)}. Settled (one more prune 2 hours later): packs {Mb(settled.PackBytes)}, referenced {Mb(settled.ReferencedBytes)}.\n"));
        return new Result(verification.PackBytes, verification.ReferencedBytes, settled.PackBytes, settled.ReferencedBytes, repacked);
    }

    private static async Task RunAsync(BackupClient client, FakeTimeProvider time, DateTimeOffset at, string backupId, BackupRunKind expected)
    {
        time.SetUtcNow(at);
        var run = await client.RunIfDueAsync(backupId) ?? throw new InvalidOperationException($"No run was due at {at:O}.");
        if (run.Point.Kind != expected)
        {
            throw new InvalidOperationException($"A {run.Point.Kind} ran at {at:O} where the workload expected a {expected}.");
        }
    }

    private static void Check(RepositoryVerification verification)
    {
        if (!verification.IsClean)
        {
            throw new InvalidOperationException($"Verify found problems: {string.Join("; ", verification.Problems)}");
        }
    }

    private static int Option(string[] args, string name, int fallback)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? int.Parse(args[index + 1], CultureInfo.InvariantCulture) : fallback;
    }

    private static string Mb(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e6:F1} MB");

    private sealed record Result(long Stored, long Live, long SettledStored, long SettledLive, long Repacked);
}
