using System.Diagnostics;
using System.Globalization;
using System.IO.Abstractions;
using KmsBackup.DevelopmentKms;
using KmsBackup.Storage;
using Xunit.Abstractions;

namespace KmsBackup.Tests.Engine;

/// <summary>Real processes on the real disk: killed with SIGKILL while backing up, and two writing into one store.</summary>
public sealed class EngineProcessTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "kmsbackup-process-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly ITestOutputHelper _output;

    public EngineProcessTests(ITestOutputHelper output)
    {
        _output = output;
        Directory.CreateDirectory(_root);
    }

    private string Store => Path.Combine(_root, "store");

    private string KeyFile => Path.Combine(_root, "repository.key");

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

    private int CountPoints() =>
        Directory.Exists(Path.Combine(Store, "objects", "points"))
            ? Directory.EnumerateFiles(Path.Combine(Store, "objects", "points"), "*", SearchOption.AllDirectories).Count(f => !Path.GetFileName(f).StartsWith('.'))
            : 0;

    private async Task<RepositoryVerification> VerifyAsync(string kmsFolder)
    {
        var files = new FileSystem();
        using var kms = new EmbeddedKeyManagementService(files, kmsFolder, TimeProvider.System);
        using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, KeyFile);
        using var client = await BackupClient.OpenAsync(new FileSystemBackupStore(files, Store), keys, kms);
        return await client.VerifyAsync();
    }

    [Fact]
    public async Task A_process_killed_at_random_moments_while_backing_up_leaves_a_store_that_verify_passes()
    {
        var random = new Random(20261129);
        var kms = Path.Combine(_root, "kms-killed");
        var start = new DateTimeOffset(2026, 5, 1, 9, 0, 0, TimeSpan.Zero);
        var killedAfterRuns = new List<int>();
        const int Kills = 20;
        for (var kill = 0; kill < Kills; kill++)
        {
            // Each life starts a month after the last, so the killed writer's lease has lapsed.
            var life = start.AddDays(31 * kill).ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
            var pointsBefore = CountPoints();
            using var child = TestHostProcess.Start("backup-loop", Store, kms, KeyFile, "kst-killed", life, "100000", "quiet");

            // Wait until this life has committed a point, then kill it at a random moment of its back-to-back runs.
            var waited = Stopwatch.StartNew();
            while (CountPoints() == pointsBefore && !child.HasExited && waited.Elapsed < TimeSpan.FromSeconds(60))
            {
                await Task.Delay(20);
            }

            if (child.HasExited || CountPoints() == pointsBefore)
            {
                Assert.Fail($"life {kill + 1} committed no point: {(child.HasExited ? await child.StandardError.ReadToEndAsync() : "still running")}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(random.Next(700)));
            child.Kill(); // SIGKILL
            Assert.True(child.WaitForExit(TimeSpan.FromSeconds(30)), "the killed test host did not exit");
            var runs = CountPoints() - pointsBefore;
            killedAfterRuns.Add(runs);

            var verification = await VerifyAsync(Path.Combine(_root, "kms-verify"));
            _output.WriteLine($"kill {kill + 1}: after {runs} runs; {verification}");
            Assert.True(verification.IsClean, $"after kill {kill + 1} (after {runs} runs): {string.Join("; ", verification.Problems)}");
        }

        // The kills landed while the process was working, not before it began or after it finished.
        Assert.Equal(Kills, killedAfterRuns.Count);
        Assert.True(killedAfterRuns.Count(r => r > 0) >= Kills / 2, $"runs before each kill: {string.Join(", ", killedAfterRuns)}");
        var final = await VerifyAsync(Path.Combine(_root, "kms-verify"));
        Assert.True(final.PointsChecked > Kills, $"points: {final.PointsChecked}");
    }

    [Fact]
    public async Task Two_processes_backing_up_different_instances_into_one_store_both_succeed()
    {
        var start = new DateTimeOffset(2026, 5, 1, 9, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);

        // Hosts sharing a store keep their clocks in sync: both run on one clock, 5 simulated minutes per 250 ms.
        var wallStart = DateTimeOffset.UtcNow.AddSeconds(3).ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);
        string[] Args(string kms, string instance) => ["backup-loop", Store, Path.Combine(_root, kms), KeyFile, instance, start, "40", "shared", wallStart, "1200"];
        using var a = TestHostProcess.Start(Args("kms-a", "kst-a"));
        // Both processes share the repository key file: the first creates it, so let it do so before the second starts.
        var firstLine = await a.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.StartsWith("run ", firstLine);
        using var b = TestHostProcess.Start(Args("kms-b", "kst-b"));
        var outputs = await Task.WhenAll(
            a.StandardOutput.ReadToEndAsync(), b.StandardOutput.ReadToEndAsync(),
            a.StandardError.ReadToEndAsync(), b.StandardError.ReadToEndAsync()).WaitAsync(TimeSpan.FromMinutes(3));
        await Task.WhenAll(a.WaitForExitAsync(), b.WaitForExitAsync());

        Assert.True(a.ExitCode == 0, $"process a exited with {a.ExitCode}: {outputs[2]}");
        Assert.True(b.ExitCode == 0, $"process b exited with {b.ExitCode}: {outputs[3]}");
        Assert.EndsWith("done", outputs[0].TrimEnd(), StringComparison.Ordinal);
        Assert.EndsWith("done", outputs[1].TrimEnd(), StringComparison.Ordinal);
        var verification = await VerifyAsync(Path.Combine(_root, "kms-verify"));
        Assert.True(verification.IsClean, string.Join("; ", verification.Problems));
        Assert.Equal(2 * 41, verification.PointsChecked); // a first full and 40 runs each
    }
}
