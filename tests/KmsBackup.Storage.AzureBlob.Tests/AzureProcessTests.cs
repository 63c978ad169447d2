using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Abstractions;

using Azure.Storage.Blobs;

using KmsBackup.DevelopmentKms;

using Microsoft.Extensions.Time.Testing;

using Xunit.Abstractions;

namespace KmsBackup.Storage.AzureBlob.Tests;

/// <summary>
/// Engine processes (tests/KmsBackup.TestHost) sharing one Azure Blob store: a writer and a reader that restores, and a
/// scheduler scaled out over three hosts, one of which is killed midway.
/// </summary>
/// <remarks>
/// The embedded instance service locks its folder for one process, so each host has its own view of the
/// instances: a copy of one seeded folder, which nothing changes while the hosts run. Their backups are then of
/// identical data, and what the test watches is who runs which backup when.
/// </remarks>
public sealed class AzureProcessTests : AzuriteContainerTest, IDisposable
{
    private const string Owner = "acct-owner";
    private static readonly DateTimeOffset s_epoch = new(2026, 5, 1, 9, 0, 0, TimeSpan.Zero);

    private readonly string _root = Path.Combine(Path.GetTempPath(), "kmsbackup-azure-process-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly ITestOutputHelper _output;

    public AzureProcessTests(ITestOutputHelper output)
    {
        _output = output;
        Directory.CreateDirectory(_root);
    }

    private string KeyFile => Path.Combine(_root, "repository.key");

    private string Store => "azure:" + ContainerName;

    private Dictionary<string, string> Environment => new() { [Azurite.ConnectionStringVariable] = ConnectionString };

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private AzureBlobBackupStore OpenStore(TimeProvider clock) =>
        new(new BlobContainerClient(ConnectionString, ContainerName, Azurite.ClientOptions()), timeProvider: clock);

    private async Task<RepositoryVerification> VerifyAsync()
    {
        var files = new FileSystem();
        using var kms = new EmbeddedKeyManagementService(files, Path.Combine(_root, "kms-verify"), TimeProvider.System);
        using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, KeyFile);
        using var client = await BackupClient.OpenAsync(OpenStore(TimeProvider.System), keys, kms);
        return await client.VerifyAsync();
    }

    [Fact]
    [Trait("Rule", "R1")]
    public async Task A_writer_process_and_a_process_restoring_into_another_region_share_one_store_and_the_lease_holds_the_second_off()
    {
        const int Runs = 40;
        var start = s_epoch.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        using var writer = TestHostProcess.Start(Environment, "backup-loop", Store, Path.Combine(_root, "kms-a"), KeyFile, "kst-a", start, Runs.ToString(CultureInfo.InvariantCulture));
        var firstLine = await writer.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(firstLine == "run 1", $"the writer printed '{firstLine}': {(writer.HasExited ? await writer.StandardError.ReadToEndAsync() : string.Empty)}");

        using var reader = TestHostProcess.Start(Environment, "watch", Store, Path.Combine(_root, "kms-b"), KeyFile, Owner, start, "6");
        var outputs = await Task.WhenAll(
            writer.StandardOutput.ReadToEndAsync(), reader.StandardOutput.ReadToEndAsync(),
            writer.StandardError.ReadToEndAsync(), reader.StandardError.ReadToEndAsync()).WaitAsync(TimeSpan.FromMinutes(2));
        await Task.WhenAll(writer.WaitForExitAsync(), reader.WaitForExitAsync());
        _output.WriteLine(outputs[1]);

        Assert.True(writer.ExitCode == 0, $"the writer exited with {writer.ExitCode}: {outputs[2]}");
        Assert.True(reader.ExitCode == 0, $"the reader exited with {reader.ExitCode}: {outputs[3]}");
        Assert.EndsWith("done", outputs[0].TrimEnd(), StringComparison.Ordinal);
        var readerLines = outputs[1].Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

        // The reader read points as the writer committed them, each whole (every read is checked by its MACs).
        var viewed = readerLines.Where(l => l.StartsWith("view ", StringComparison.Ordinal)).Select(l => long.Parse(l.Split(' ')[2], CultureInfo.InvariantCulture)).ToList();
        Assert.NotEmpty(viewed);
        Assert.Equal(viewed.Order(), viewed);

        // It restored a point it read into its instance in another region, whole, while the writer went on.
        var restored = Assert.Single(readerLines, l => l.StartsWith("restored ", StringComparison.Ordinal)).Split(' ');
        Assert.Equal(restored[4], restored[3]);
        Assert.Equal(restored[4], restored[5]);

        // While the writer ran a backup, the reader could not take its lease and was told who held it.
        var heldOff = Assert.Single(readerLines, l => l.StartsWith("held-off ", StringComparison.Ordinal));
        Assert.Contains($"held by 'test-host:{writer.Id}'", heldOff, StringComparison.Ordinal);

        var verification = await VerifyAsync();
        Assert.True(verification.IsClean, string.Join("; ", verification.Problems));
        var leaseFree = readerLines.Count(l => l == "lease-free");
        Assert.InRange(verification.PointsChecked, Runs + 1 - leaseFree, Runs + 1);
    }

    [Fact]
    public async Task Three_scheduler_hosts_share_the_backups_and_when_one_is_killed_the_others_take_its_backups_over()
    {
        const int Instances = 4;
        const double Speed = 80; // 5 minutes of schedule every 3.75 seconds
        var interval = TimeSpan.FromMinutes(5);
        var lease = TimeSpan.FromMinutes(4);
        var until = s_epoch.AddMinutes(40);

        // Seed: instances enabled, each backup's first full at the epoch.
        var seed = Path.Combine(_root, "kms-seed");
        var files = new FileSystem();
        var seedClock = new FakeTimeProvider(s_epoch);
        var backups = new List<string>();
        using (var kms = new EmbeddedKeyManagementService(files, seed, seedClock))
        using (var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, KeyFile))
        using (var client = await BackupClient.OpenAsync(OpenStore(seedClock), keys, kms, hsmClusters: null, new BackupClientOptions { TimeProvider = seedClock, LeaseHolder = "seeder" }))
        {
            for (var i = 0; i < Instances; i++)
            {
                var id = $"kst-{i}";
                await kms.CreateInstanceAsync(new EmbeddedInstanceSpec(id, InstanceKind.Software, "cn-hangzhou", Owner) { CreatedAt = s_epoch.AddDays(-1) });
                for (var k = 0; k < 10; k++)
                {
                    await kms.GenerateKeyAsync(id, $"{id}-key-{k}", Owner);
                }

                backups.Add((await client.OnInstanceEnabledAsync(id))!.Id);
            }
        }

        string[] hosts = ["host-1", "host-2", "host-3"];
        foreach (var host in hosts)
        {
            CopyFolder(seed, Path.Combine(_root, "kms-" + host));
        }

        var wallStart = DateTimeOffset.UtcNow.AddSeconds(4);
        DateTimeOffset EngineTime(DateTimeOffset wall) => s_epoch + ((wall - wallStart) * Speed);
        var lines = new ConcurrentQueue<(DateTimeOffset Wall, string Host, string Line)>();
        var processes = hosts.Select(host =>
        {
            var process = TestHostProcess.Start(Environment,
                "scheduler", Store, Path.Combine(_root, "kms-" + host), KeyFile, host,
                s_epoch.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture),
                wallStart.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture),
                Speed.ToString(CultureInfo.InvariantCulture),
                lease.TotalSeconds.ToString(CultureInfo.InvariantCulture),
                until.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture));
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is { } line)
                {
                    lines.Enqueue((DateTimeOffset.UtcNow, host, line));
                }
            };
            process.BeginOutputReadLine();
            return process;
        }).ToArray();

        try
        {
            // Kill host-1 a third of the way in, with SIGKILL: whatever it was running, its lease is left to lapse.
            var killWall = wallStart + ((until - s_epoch) / Speed / 3);
            await Task.Delay(killWall - DateTimeOffset.UtcNow);
            processes[0].Kill();
            Assert.True(processes[0].WaitForExit(TimeSpan.FromSeconds(30)));
            var killedAt = EngineTime(DateTimeOffset.UtcNow);

            foreach (var survivor in processes.Skip(1))
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
                await survivor.WaitForExitAsync(timeout.Token);
                Assert.True(survivor.ExitCode == 0, $"a host exited with {survivor.ExitCode}: {await survivor.StandardError.ReadToEndAsync()}");
            }

            var runs = lines
                .Where(l => l.Line.StartsWith("run ", StringComparison.Ordinal))
                .Select(l => l.Line.Split(' '))
                .Select(p => (Backup: p[1], Sequence: long.Parse(p[2], CultureInfo.InvariantCulture), Kind: p[3], TakenAt: DateTimeOffset.Parse(p[4], CultureInfo.InvariantCulture), Host: p[5]))
                .ToList();
            var errors = lines.Where(l => l.Line.StartsWith("error ", StringComparison.Ordinal)).ToList();
            foreach (var run in runs.OrderBy(r => r.TakenAt))
            {
                _output.WriteLine($"{run.TakenAt:HH:mm:ss} {run.Host} {run.Backup} #{run.Sequence}");
            }

            foreach (var error in errors)
            {
                _output.WriteLine($"{error.Host}: {error.Line}");
            }

            Assert.All(hosts, host => Assert.Contains(lines, l => l.Host == host && l.Line == "ready"));
            Assert.All(hosts.Skip(1), host => Assert.Contains(lines, l => l.Host == host && l.Line == "done"));
            Assert.DoesNotContain(errors, e => !e.Line.StartsWith("error LeaseLost", StringComparison.Ordinal));

            // No run doubled: no (backup, sequence) committed twice, and every point the store holds was reported by
            // exactly one host, but for points host-1 committed in the pass it was killed in (RunDueBackupsAsync
            // returns a pass's results at its end, so a host killed midway through a pass never printed them).
            Assert.Equal(runs.Count, runs.Select(r => (r.Backup, r.Sequence)).Distinct().Count());
            var stored = new Dictionary<string, List<RecoveryPoint>>(StringComparer.Ordinal);
            var files2 = new FileSystem();
            using (var kms = new EmbeddedKeyManagementService(files2, Path.Combine(_root, "kms-verify"), TimeProvider.System))
            using (var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files2, KeyFile))
            using (var client = await BackupClient.OpenAsync(OpenStore(new FakeTimeProvider(until)), keys, kms, hsmClusters: null, new BackupClientOptions { TimeProvider = new FakeTimeProvider(until) }))
            {
                foreach (var backup in backups)
                {
                    stored[backup] = [.. await client.ListRecoveryPointsAsync(Owner, backup, DateOnly.FromDateTime(s_epoch.UtcDateTime))];
                }

                var verification = await client.VerifyAsync();
                Assert.True(verification.IsClean, string.Join("; ", verification.Problems));
            }

            var unreported = stored.SelectMany(s => s.Value.Where(p => p.Sequence > 1 && !runs.Any(r => r.Backup == s.Key && r.Sequence == p.Sequence))).ToList();
            Assert.All(unreported, p => Assert.True(p.TakenAt <= killedAt, $"{p.BackupId}#{p.Sequence} was committed after host-1 died, yet no host reported it"));
            _output.WriteLine($"points committed by host-1 in the pass it was killed in (RunDueBackupsAsync reports a pass at its end): {unreported.Count}");

            // No run lost: each backup's points follow each other at most two ticks and a lease apart (a run late
            // for its tick covers the ticks it missed, rule S4; a killed host's lease must lapse first), and go on to
            // the end. No run doubled: no more points than ticks, and none taken at the same moment as the one before.
            var ticks = (int)((until - s_epoch) / interval);
            var report = new List<string>();
            foreach (var backup in backups)
            {
                var points = stored[backup];
                Assert.Equal(Enumerable.Range(1, points.Count).Select(i => (long)i), points.Select(p => p.Sequence));
                var gaps = points.Zip(points.Skip(1), (a, b) => b.TakenAt - a.TakenAt).ToList();
                var byHost = hosts.Select(h => $"{h} {runs.Count(r => r.Backup == backup && r.Host == h)}");
                report.Add($"{backup}: {points.Count - 1} incrementals for {ticks} ticks; gaps {gaps.Min().TotalMinutes:F1}..{gaps.Max().TotalMinutes:F1} min; runs by {string.Join(", ", byHost)}");
                _output.WriteLine(report[^1]);
                Assert.InRange(points.Count - 1, 1, ticks);
                Assert.All(gaps, gap => Assert.InRange(gap, TimeSpan.FromSeconds(1), (2 * interval) + lease));
                Assert.True(points[^1].TakenAt >= until - (2 * interval), $"{backup}'s last point was taken at {points[^1].TakenAt:O}");
            }

            // Takeover: every backup host-1 ran before it died was run by the other hosts afterwards.
            var ranByKilled = runs.Where(r => r.Host == "host-1").Select(r => r.Backup).Concat(unreported.Select(p => p.BackupId)).Distinct().ToList();
            Assert.NotEmpty(ranByKilled);
            foreach (var backup in ranByKilled)
            {
                Assert.Contains(runs, r => r.Backup == backup && r.Host != "host-1" && r.TakenAt > killedAt);
            }

            report.Add($"host-1 killed at engine time {killedAt:HH:mm:ss} after {runs.Count(r => r.Host == "host-1") + unreported.Count} runs of {ranByKilled.Count} backups; runs after the kill: " +
                string.Join(", ", hosts.Skip(1).Select(h => $"{h} {runs.Count(r => r.Host == h && r.TakenAt > killedAt)}")));
            report.Add($"LeaseLost errors: {errors.Count}");
            foreach (var line in report)
            {
                _output.WriteLine(line);
            }
        }
        finally
        {
            foreach (var process in processes)
            {
                if (!process.HasExited)
                {
                    process.Kill();
                }

                process.Dispose();
            }
        }
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }

        foreach (var folder in Directory.EnumerateDirectories(from))
        {
            CopyFolder(folder, Path.Combine(to, Path.GetFileName(folder)));
        }
    }
}
