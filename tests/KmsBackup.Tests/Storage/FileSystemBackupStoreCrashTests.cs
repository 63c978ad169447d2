using System.IO.Abstractions;
using System.IO.Abstractions.TestingHelpers;

using KmsBackup.Storage;

using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Tests.Storage;

/// <summary>
/// DESIGN.md §4: a failure at any write leaves what was committed readable. Each test runs one sequence of
/// store operations once for every k, failing the k-th write operation, then reopens the store (as a
/// restarted process would) and checks what survived.
/// </summary>
public sealed class FileSystemBackupStoreCrashTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 1, 5, 9, 0, 0, TimeSpan.Zero);
    private readonly string _diskRoot = Path.Combine(Path.GetTempPath(), "kmsbackup-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_diskRoot))
        {
            Directory.Delete(_diskRoot, recursive: true);
        }
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(false, false)]
    [InlineData(true, true)]
    [InlineData(true, false)]
    public async Task A_failure_at_any_write_leaves_every_created_object_whole_and_the_failed_one_absent_or_whole(bool onDisk, bool crash)
    {
        var sweeps = 0;
        var reported = 0;
        for (var k = 1; ; k++)
        {
            var (inner, root) = onDisk
                ? ((IFileSystem)new FileSystem(), Path.Combine(_diskRoot, $"k{k}-{crash}"))
                : (new MockFileSystem(), "/store");
            var faulty = new FaultyFileSystem(inner, failAt: k, stickyFailure: crash);
            var time = new FakeTimeProvider(Start);
            var outcome = await RunSequenceAsync(new FileSystemBackupStore(faulty, root, time), crash);
            if (!faulty.HasFailed)
            {
                break; // k is past the last write: every failure point has been tried
            }

            // A failed clean-up write (removing a temporary name) is not reported: the operation succeeded.
            sweeps++;
            reported += outcome.Failures > 0 ? 1 : 0;

            // Restart: a new store over what is on "disk".
            var reopened = new FileSystemBackupStore(inner, root, time);
            foreach (var (key, content) in outcome.Committed)
            {
                var read = await reopened.TryReadAsync(key);
                Assert.True(read is not null && read.AsSpan().SequenceEqual(content), $"k={k}: committed {key} is not whole\n{string.Join('\n', faulty.Log)}");
            }

            foreach (var (key, content) in outcome.Uncertain)
            {
                var read = await reopened.TryReadAsync(key);
                Assert.True(read is null || read.AsSpan().SequenceEqual(content), $"k={k}: {key} is partial\n{string.Join('\n', faulty.Log)}");
            }

            foreach (var o in await ListAsync(reopened))
            {
                var expected = outcome.Committed.TryGetValue(o.Key, out var c) ? c : outcome.Uncertain[o.Key];
                Assert.Equal(expected.Length, o.Length);
            }

            // Whatever the crash left behind is cleaned up, and no lease is stuck.
            time.Advance(TimeSpan.FromHours(2));
            await reopened.CleanUpAsync(TimeSpan.FromHours(1));
            if (inner.Directory.Exists(root))
            {
                Assert.Empty(inner.Directory.GetFiles(root, ".~*", SearchOption.AllDirectories));
            }

            await using var lease = await reopened.AcquireLeaseAsync("backups/b-1", "after-restart", TimeSpan.FromMinutes(1));
        }

        Assert.True(sweeps >= 20, $"only {sweeps} failure points were tried");
        Assert.True(reported >= sweeps / 2, $"only {reported} of {sweeps} failures were reported");
    }

    [Fact]
    public async Task A_failed_write_is_reported_as_StoreUnavailable_naming_the_key_with_the_cause()
    {
        var faulty = new FaultyFileSystem(new MockFileSystem());
        var store = new FileSystemBackupStore(faulty, "/store");
        faulty.FailAt = faulty.WriteCount + 1;

        var ex = await Assert.ThrowsAsync<BackupException>(() => store.TryCreateAsync("data/ab/object-1", new byte[10]));

        Assert.Equal(BackupErrorCode.StoreUnavailable, ex.Code);
        Assert.Contains("data/ab/object-1", ex.Item, StringComparison.Ordinal);
        Assert.Contains("data/ab/object-1", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Injected fault", ex.Message, StringComparison.Ordinal);
        Assert.IsType<IOException>(ex.InnerException);
        Assert.False(string.IsNullOrWhiteSpace(ex.Remedy));
    }

    /// <summary>
    /// Creates, re-creates, deletes, and takes, renews and releases a lease. In crash mode it stops at the
    /// first failure; otherwise it goes on, and the failed operation's key is uncertain from then on.
    /// </summary>
    private static async Task<Outcome> RunSequenceAsync(FileSystemBackupStore store, bool crash)
    {
        var outcome = new Outcome();
        StoreLease? lease = null;
        var steps = new List<(string? Key, byte[]? Created, Func<Task> Run)>
        {
            ("data/ab/1", Bytes(100, 1), () => CreateAsync(store, outcome, "data/ab/1", Bytes(100, 1))),
            ("data/ab/2", Bytes(1536 << 10, 2), () => CreateAsync(store, outcome, "data/ab/2", Bytes(1536 << 10, 2))),
            ("data/ab/1", Bytes(7, 3), () => CreateAsync(store, outcome, "data/ab/1", Bytes(7, 3))),
            (null, null, async () => lease = await store.AcquireLeaseAsync("backups/b-1", "writer", TimeSpan.FromMinutes(1))),
            ("manifests/m-1", Bytes(10, 4), () => CreateAsync(store, outcome, "manifests/m-1", Bytes(10, 4))),
            ("data/ab/1", null, () => DeleteAsync(store, outcome, "data/ab/1")),
            (null, null, () => lease?.RenewAsync() ?? Task.CompletedTask),
            ("catalog/c", [], () => CreateAsync(store, outcome, "catalog/c", [])),
            (null, null, async () => await (lease?.DisposeAsync() ?? ValueTask.CompletedTask)),
        };

        foreach (var (key, created, run) in steps)
        {
            try
            {
                await run();
            }
            catch (BackupException ex) when (ex.Code == BackupErrorCode.StoreUnavailable && ex.InnerException is IOException)
            {
                outcome.Failures++;
                if (key is not null)
                {
                    // A failed create may or may not have published; a failed delete may or may not have removed.
                    var content = outcome.Committed.GetValueOrDefault(key) ?? outcome.Uncertain.GetValueOrDefault(key) ?? created!;
                    outcome.Committed.Remove(key);
                    outcome.Uncertain[key] = content;
                }

                if (crash)
                {
                    break;
                }
            }
        }

        return outcome;
    }

    private static async Task CreateAsync(BackupStore store, Outcome outcome, string key, byte[] content)
    {
        var created = await store.TryCreateAsync(key, content);
        if (outcome.Committed.ContainsKey(key))
        {
            Assert.False(created);
        }
        else if (!outcome.Uncertain.ContainsKey(key))
        {
            Assert.True(created);
        }

        if (created)
        {
            outcome.Committed[key] = content;
        }
        else if (outcome.Uncertain.Remove(key, out var earlier))
        {
            outcome.Committed[key] = earlier; // the failed create had published after all
        }

        outcome.Uncertain.Remove(key);
    }

    private static async Task DeleteAsync(BackupStore store, Outcome outcome, string key)
    {
        var deleted = await store.DeleteAsync(key);
        if (outcome.Committed.ContainsKey(key))
        {
            Assert.True(deleted);
        }
        else if (!outcome.Uncertain.ContainsKey(key))
        {
            Assert.False(deleted);
        }

        outcome.Committed.Remove(key);
        outcome.Uncertain.Remove(key);
    }

    private static byte[] Bytes(int length, byte seed)
    {
        var bytes = new byte[length];
        for (var i = 0; i < length; i++)
        {
            bytes[i] = (byte)((seed * 97) + i + (i >> 9));
        }

        return bytes;
    }

    private static async Task<List<StoreObject>> ListAsync(BackupStore store)
    {
        var objects = new List<StoreObject>();
        await foreach (var o in store.ListAsync(string.Empty))
        {
            objects.Add(o);
        }

        return objects;
    }

    private sealed class Outcome
    {
        public Dictionary<string, byte[]> Committed { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, byte[]> Uncertain { get; } = new(StringComparer.Ordinal);

        public int Failures { get; set; }
    }
}
