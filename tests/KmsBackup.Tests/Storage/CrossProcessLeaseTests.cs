using System.Diagnostics;

using KmsBackup.Storage;

namespace KmsBackup.Tests.Storage;

/// <summary>
/// DESIGN.md §4: two writers never corrupt a store. Here the other writer is another process
/// (tests/KmsBackup.TestHost) on the same folder of the real disk, and it is killed (SIGKILL on Unix).
/// </summary>
public sealed class CrossProcessLeaseTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "kmsbackup-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public async Task A_lease_held_by_another_process_is_refused_and_taken_over_once_that_process_is_killed_and_the_lease_expires()
    {
        const string LeaseName = "backups/b-1";
        var leaseDuration = TimeSpan.FromSeconds(2);
        using var child = TestHostProcess.Start("hold-lease", _root, LeaseName, "child-process", "2", "60");
        try
        {
            var held = await ReadLineAsync(child, TimeSpan.FromSeconds(20));
            Assert.StartsWith("held ", held, StringComparison.Ordinal);
            var store = new FileSystemBackupStore(_root);

            var ex = await Assert.ThrowsAsync<BackupException>(() => store.AcquireLeaseAsync(LeaseName, "test-process", TimeSpan.FromSeconds(5)));
            Assert.Equal(BackupErrorCode.LeaseHeld, ex.Code);
            Assert.Contains("'child-process'", ex.Message, StringComparison.Ordinal);

            child.Kill(); // SIGKILL: no release, no further renewal
            await child.WaitForExitAsync();
            var killedAt = Stopwatch.StartNew();

            StoreLease? lease = null;
            while (lease is null)
            {
                try
                {
                    lease = await store.AcquireLeaseAsync(LeaseName, "test-process", TimeSpan.FromSeconds(5));
                }
                catch (BackupException held2) when (held2.Code == BackupErrorCode.LeaseHeld && killedAt.Elapsed < leaseDuration + TimeSpan.FromSeconds(3))
                {
                    Assert.Contains("'child-process'", held2.Message, StringComparison.Ordinal);
                    await Task.Delay(100);
                }
            }

            // Taken over no later than one lease duration (plus polling) after the kill.
            Assert.True(killedAt.Elapsed <= leaseDuration + TimeSpan.FromSeconds(1), $"took {killedAt.Elapsed} to take over");
            Assert.Equal("test-process", lease.Holder);
            await lease.EnsureHeldAsync();
            await lease.DisposeAsync();
        }
        finally
        {
            if (!child.HasExited)
            {
                child.Kill();
            }
        }
    }

    [Fact]
    public async Task A_lease_held_by_this_process_is_refused_to_another_process()
    {
        var store = new FileSystemBackupStore(_root);
        await using var lease = await store.AcquireLeaseAsync("backups/b-1", "test-process", TimeSpan.FromSeconds(30));
        using var child = TestHostProcess.Start("hold-lease", _root, "backups/b-1", "child-process", "2", "0");

        var line = await ReadLineAsync(child, TimeSpan.FromSeconds(20));
        await child.WaitForExitAsync();

        Assert.Equal(3, child.ExitCode);
        Assert.StartsWith("lease-held ", line, StringComparison.Ordinal);
        Assert.Contains("'test-process'", line, StringComparison.Ordinal);
        await lease.EnsureHeldAsync();
    }

    private static async Task<string> ReadLineAsync(Process process, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var line = await process.StandardOutput.ReadLineAsync(cts.Token);
        if (line is null)
        {
            await process.WaitForExitAsync(cts.Token);
            var error = await process.StandardError.ReadToEndAsync(cts.Token);
            Assert.Fail($"The test host exited with {process.ExitCode} without output: {error}");
        }

        return line;
    }

}
