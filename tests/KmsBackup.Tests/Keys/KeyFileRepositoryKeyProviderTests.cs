using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.IO.Abstractions;
using System.IO.Abstractions.TestingHelpers;
using Xunit.Abstractions;

namespace KmsBackup.Tests.Keys;

/// <summary>
/// The repository key file: one key however many first starts race to create it, on the real disk mode 0600
/// from its first byte, never seen partial.
/// </summary>
public sealed class KeyFileRepositoryKeyProviderTests : IDisposable
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private readonly string _root = Path.Combine(Path.GetTempPath(), "kmsbackup-keyfile-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly ITestOutputHelper _output;

    public KeyFileRepositoryKeyProviderTests(ITestOutputHelper output)
    {
        _output = output;
        Directory.CreateDirectory(_root);
    }

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

    [Fact]
    public async Task Two_processes_starting_at_once_open_one_repository_key()
    {
        const int Rounds = 50;
        var failures = new List<string>();
        for (var round = 0; round < Rounds; round++)
        {
            // The folder does not exist yet: both processes also race to create it.
            var folder = Path.Combine(_root, $"round-{round:D2}", "keys");
            var path = Path.Combine(folder, "repository.key");
            using var a = TestHostProcess.Start("open-key", path);
            using var b = TestHostProcess.Start("open-key", path);
            try
            {
                Assert.Equal("ready", await ReadLineAsync(a));
                Assert.Equal("ready", await ReadLineAsync(b));

                // Both are loaded and waiting; they leave at one instant of the wall clock they share.
                var startAt = TimeProvider.System.GetUtcNow().AddMilliseconds(50).ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);
                await a.StandardInput.WriteLineAsync(startAt);
                await a.StandardInput.FlushAsync();
                await b.StandardInput.WriteLineAsync(startAt);
                await b.StandardInput.FlushAsync();
                var lines = await Task.WhenAll(ReadLineAsync(a), ReadLineAsync(b));
                await Task.WhenAll(a.WaitForExitAsync(), b.WaitForExitAsync()).WaitAsync(TimeSpan.FromSeconds(30));
                _output.WriteLine($"round {round:D2}: {lines[0]} | {lines[1]}");

                var keyIds = lines.Select(line => line.Split(' ')).Select(parts => parts is ["key", var id, _] ? id : $"<{string.Join(' ', parts)}>").ToArray();
                var onDisk = await ReadKeyIdAsync(path);
                if (keyIds[0] != keyIds[1] || keyIds[0] != onDisk)
                {
                    failures.Add($"round {round:D2}: process a opened {keyIds[0]}, process b opened {keyIds[1]}, the file holds {onDisk}");
                }

                var length = new FileInfo(path).Length;
                var mode = ModeOf(path);
                if (length != 32 || mode != OwnerOnly)
                {
                    failures.Add($"round {round:D2}: the key file has {length} bytes and mode {mode}");
                }

                var others = Directory.GetFileSystemEntries(folder).Where(entry => entry != path).Select(Path.GetFileName).ToArray();
                if (others.Length > 0)
                {
                    failures.Add($"round {round:D2}: left beside the key file: {string.Join(", ", others)}");
                }
            }
            finally
            {
                Kill(a);
                Kill(b);
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} failures in {Rounds} rounds:\n{string.Join('\n', failures)}");
    }

    [Fact]
    public async Task Many_first_starts_in_one_process_open_one_key_never_seen_with_another_mode_or_partial()
    {
        const int Rounds = 100;
        const int Openers = 8;
        var failures = new List<string>();
        for (var round = 0; round < Rounds; round++)
        {
            var folder = Path.Combine(_root, $"burst-{round:D3}");
            var path = Path.Combine(folder, "repository.key");
            Directory.CreateDirectory(folder);

            // A watcher lists the folder as fast as it can and looks at every file in it while the openers race.
            using var stop = new CancellationTokenSource();
            var seen = new ConcurrentBag<string>();
            var watcher = Task.Factory.StartNew(() => Watch(folder, path, seen, stop.Token), TaskCreationOptions.LongRunning);

            using var go = new Barrier(Openers);
            var openers = Enumerable.Range(0, Openers).Select(_ => Task.Factory.StartNew(
                () =>
                {
                    go.SignalAndWait();
                    using var keys = KeyFileRepositoryKeyProvider.OpenOrCreateAsync(new FileSystem(), path).GetAwaiter().GetResult();
                    return keys.KeyId;
                },
                TaskCreationOptions.LongRunning)).ToArray();
            var keyIds = await Task.WhenAll(openers).WaitAsync(TimeSpan.FromSeconds(60));
            await stop.CancelAsync();
            await watcher;

            var onDisk = await ReadKeyIdAsync(path);
            if (keyIds.Any(id => id != onDisk))
            {
                failures.Add($"round {round:D3}: opened {string.Join(", ", keyIds.Distinct())}; the file holds {onDisk}");
            }

            failures.AddRange(seen.Distinct().Select(s => $"round {round:D3}: seen {s}"));
            if (ModeOf(path) != OwnerOnly || Directory.GetFileSystemEntries(folder).Length != 1)
            {
                failures.Add($"round {round:D3}: mode {ModeOf(path)}, entries {string.Join(", ", Directory.GetFileSystemEntries(folder).Select(Path.GetFileName))}");
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} failures in {Rounds} rounds of {Openers} openers:\n{string.Join('\n', failures.Take(40))}");
    }

    [Fact]
    public async Task On_an_in_memory_file_system_the_key_is_created_once_and_opened_again()
    {
        var files = new MockFileSystem();
        string created;
        using (var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, "/secrets/repository.key"))
        {
            created = keys.KeyId;
        }

        using var reopened = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, "/secrets/repository.key");
        Assert.Equal(created, reopened.KeyId);
        Assert.Equal(32, files.File.ReadAllBytes("/secrets/repository.key").Length);
        Assert.Equal(["repository.key"], files.Directory.GetFiles("/secrets").Select(Path.GetFileName));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(31)]
    [InlineData(33)]
    public async Task A_key_file_that_is_not_32_bytes_is_refused_as_an_integrity_violation(int length)
    {
        var files = new MockFileSystem();
        files.AddFile("/secrets/repository.key", new MockFileData(new byte[length]));

        var refused = await Assert.ThrowsAsync<BackupIntegrityException>(() => KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, "/secrets/repository.key"));

        Assert.Equal(BackupErrorCode.IntegrityViolation, refused.Code);
        Assert.Contains("/secrets/repository.key", refused.Message, StringComparison.Ordinal);
        Assert.Equal(length, files.File.ReadAllBytes("/secrets/repository.key").Length);
    }

    private static void Watch(string folder, string keyPath, ConcurrentBag<string> seen, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            foreach (var entry in Directory.EnumerateFiles(folder))
            {
                try
                {
                    var mode = ModeOf(entry);
                    if (mode != OwnerOnly)
                    {
                        seen.Add($"{Path.GetFileName(entry)} with mode {mode}");
                    }

                    if (entry == keyPath && new FileInfo(entry).Length != 32)
                    {
                        seen.Add($"the key file with {new FileInfo(entry).Length} bytes");
                    }
                }
                catch (IOException)
                {
                    // Gone between the listing and the look (a temporary file removed): nothing to see.
                }
            }
        }
    }

    // Windows has no Unix modes; there only the key's identity and length are checked.
    private static UnixFileMode ModeOf(string path) => OperatingSystem.IsWindows() ? OwnerOnly : File.GetUnixFileMode(path);

    private static async Task<string> ReadKeyIdAsync(string path)
    {
        using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(new FileSystem(), path);
        return keys.KeyId;
    }

    private static async Task<string> ReadLineAsync(Process process)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var line = await process.StandardOutput.ReadLineAsync(cts.Token);
        if (line is null)
        {
            await process.WaitForExitAsync(cts.Token);
            Assert.Fail($"The test host exited with {process.ExitCode} without output: {await process.StandardError.ReadToEndAsync(cts.Token)}");
        }

        return line;
    }

    private static void Kill(Process process)
    {
        if (!process.HasExited)
        {
            process.Kill();
        }
    }
}
