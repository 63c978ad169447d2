// Over 400 lines: one attack (a planted link) tried against every operation of the store, one test each.
using System.Diagnostics;
using System.Globalization;
using System.IO.Abstractions;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

using KmsBackup.DevelopmentKms;
using KmsBackup.Storage;

using Microsoft.Extensions.Time.Testing;

using IoFileSystem = System.IO.Abstractions.FileSystem;

namespace KmsBackup.Tests.Storage;

/// <summary>
/// Issue 13, finding 3: the file-system store never follows a link out of its root (DESIGN.md §4). Each test
/// plays someone who can write into a shared store's folder: it plants a symbolic link below the root that
/// points at a canary folder outside it, drives the store (or a client over it) through the public API, and
/// checks that the canary is unchanged byte for byte, that nothing of it was returned, and that the store
/// refused with <see cref="BackupErrorCode.StoreLinkRefused"/> naming the link.
/// </summary>
/// <remarks>
/// Real disk only: links are what a real file system has. The tests run twice: over the real file system
/// itself (on Linux, the store's calls relative to directory handles) and over a decorator of it, which takes
/// the store's portable way (each segment checked just before use, as on Windows and macOS). The race test
/// runs over the first only: the portable way does not close that race (see the store's remarks).
/// </remarks>
public sealed class FileSystemStoreLinkTests : IDisposable
{
    private const string Owner = "acct-owner";
    private static readonly DateTimeOffset Start = new(2026, 5, 1, 9, 0, 0, TimeSpan.Zero);

    private readonly string _sandbox = Directory.CreateTempSubdirectory("kmsbackup-links-").FullName;
    private readonly FakeTimeProvider _clock = new(Start);

    // The key management service and the key file live in memory, for as long as the test: only the store is on disk.
    private readonly System.IO.Abstractions.TestingHelpers.MockFileSystem _memory = new();
    private SortedDictionary<string, string> _canaryBefore;
    private readonly List<string> _notRefused = [];

    public FileSystemStoreLinkTests()
    {
        Directory.CreateDirectory(StoreRoot);
        Directory.CreateDirectory(Canary);

        // What an attacker would point a store at: files whose names a prune takes for dead packs, files
        // named like the store's leftovers and lease generations, and plain files and folders.
        CanaryPacks = [.. Enumerable.Range(0, 3).Select(_ => CanaryPackPrefix + RandomNumberGenerator.GetHexString(62, lowercase: true))];
        foreach (var name in CanaryPacks)
        {
            File.WriteAllBytes(Path.Combine(Canary, name), RandomNumberGenerator.GetBytes(100));
        }

        File.WriteAllText(Path.Combine(Canary, "README.txt"), "canary: nothing here may be read, changed or deleted by a backup store");
        File.WriteAllText(Path.Combine(Canary, ".~tmp-0-0123456789abcdef"), "a leftover-looking file that is not the store's");
        File.WriteAllText(Path.Combine(Canary, "00000000000000000001"), "a lease-looking file that is not the store's");
        Directory.CreateDirectory(Path.Combine(Canary, "nested"));
        File.WriteAllText(Path.Combine(Canary, "nested", "secret.txt"), "canary secret");
        _canaryBefore = Snapshot(Canary);
    }

    public static TheoryData<bool> FileSystems => new() { false, true };

    /// <summary>Where a planted link points.</summary>
    private string Canary => Path.Combine(_sandbox, "canary");

    private string StoreRoot => Path.Combine(_sandbox, "store");

    /// <summary>The pack folder where the link is planted: the first two digits of the canary's pack-like names.</summary>
    private string CanaryPackPrefix { get; set; } = "ee";

    /// <summary>Names in the canary that a prune would take for packs of <c>packs/&lt;CanaryPackPrefix&gt;/</c>.</summary>
    private string[] CanaryPacks { get; set; }

    public void Dispose()
    {
        if (Directory.Exists(_sandbox))
        {
            Directory.Delete(_sandbox, recursive: true);
        }
    }

    [Theory]
    [MemberData(nameof(FileSystems))]
    public async Task A_planted_link_never_lets_a_prune_delete_outside_the_store(bool decorated)
    {
        await using var engine = await EngineAsync(decorated);
        var used = Directory.GetDirectories(InStore("objects", "packs")).Select(d => Path.GetFileName(d)).ToHashSet(StringComparer.Ordinal);
        if (used.Contains(CanaryPackPrefix))
        {
            // The store's own packs use that folder (their IDs are random): plant the link at a free one instead.
            RenameCanaryPacks(Enumerable.Range(0, 256).Select(i => i.ToString("x2", CultureInfo.InvariantCulture)).First(p => !used.Contains(p)));
        }

        var link = PlantFolderLink("objects", "packs", CanaryPackPrefix);

        // Two prunes past the grace period: the first marks what it takes for dead packs, the second deletes them.
        var outcomes = new List<string>
        {
            await AttemptAsync("prune 1", async () => await engine.Client.PruneAsync()),
        };
        _clock.Advance(TimeSpan.FromHours(2));
        outcomes.Add(await AttemptAsync("prune 2", async () => await engine.Client.PruneAsync()));
        outcomes.Add(await AttemptAsync("verify", async () => await engine.Client.VerifyAsync()));

        AssertCanaryUnchanged(string.Join("; ", outcomes));
        AssertLinkLeftAlone(link);
        Assert.All(outcomes, o => Assert.Contains($"StoreLinkRefused: store link 'objects/packs/{CanaryPackPrefix}'", o, StringComparison.Ordinal));

        // The remedy: remove the link. Then the store's own data is whole and maintenance runs again.
        Directory.Delete(link);
        var verification = await engine.Client.VerifyAsync();
        Assert.True(verification.IsClean, string.Join("; ", verification.Problems));
        await engine.Client.PruneAsync();
        AssertCanaryUnchanged("after the link was removed");
    }

    [Theory]
    [MemberData(nameof(FileSystems))]
    public async Task A_link_as_the_objects_folder_keeps_a_client_from_touching_its_target(bool decorated)
    {
        await using (await EngineAsync(decorated))
        {
        }

        // The whole objects folder moved away and replaced by a link to a folder of someone else's.
        Directory.Move(InStore("objects"), Path.Combine(_sandbox, "objects-moved-away"));
        var link = PlantFolderLink("objects");

        var outcomes = new List<string>
        {
            await AttemptAsync("open", async () =>
            {
                await using var engine = await EngineAsync(decorated, create: false);
                var attempts = new[]
                {
                    await AttemptAsync("run", async () => (await engine.Client.RunDueBackupsAsync()).ThrowIfAnyFailed()),
                    await AttemptAsync("prune", async () => await engine.Client.PruneAsync()),
                    await AttemptAsync("verify", async () => await engine.Client.VerifyAsync()),
                };
                return string.Join(", ", attempts);
            }),
        };

        AssertCanaryUnchanged(string.Join("; ", outcomes));
        AssertLinkLeftAlone(link);
        Assert.Contains("StoreLinkRefused: store link 'objects'", outcomes[0], StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(FileSystems))]
    public async Task A_listing_never_descends_into_a_linked_folder_and_names_it(bool decorated)
    {
        var store = Store(decorated);
        Assert.True(await store.TryCreateAsync("packs/aa/" + new string('a', 64), Content(10)));
        Assert.True(await store.TryCreateAsync("points/b-1/2026-05-01/000000000001", Content(10)));
        var link = PlantFolderLink("objects", "packs", CanaryPackPrefix);

        await AssertRefusedAsync(() => ListAsync(store, "packs/"), $"objects/packs/{CanaryPackPrefix}");
        await AssertRefusedAsync(() => ListAsync(store, string.Empty), $"objects/packs/{CanaryPackPrefix}");
        await AssertRefusedAsync(() => ListAsync(store, $"packs/{CanaryPackPrefix}"), $"objects/packs/{CanaryPackPrefix}");
        await AssertRefusedAsync(() => ListAsync(store, $"packs/{CanaryPackPrefix}/"), $"objects/packs/{CanaryPackPrefix}");

        // A listing that does not meet the link is not affected by it.
        Assert.Equal(["points/b-1/2026-05-01/000000000001"], (await ListAsync(store, "points/")).Select(o => o.Key));
        Assert.Equal(["packs/aa/" + new string('a', 64)], (await ListAsync(store, "packs/a")).Select(o => o.Key));
        AssertCanaryUnchanged("after the listings");
        AssertLinkLeftAlone(link);
    }

    [Theory]
    [MemberData(nameof(FileSystems))]
    public async Task A_listing_names_a_file_link_instead_of_listing_it(bool decorated)
    {
        var store = Store(decorated);
        Assert.True(await store.TryCreateAsync("data/a", Content(10)));
        var link = PlantFileLink("README.txt", "objects", "data", "b");

        await AssertRefusedAsync(() => ListAsync(store, "data/"), "objects/data/b");
        AssertCanaryUnchanged("after the listing");
        AssertLinkLeftAlone(link);
    }

    [Theory]
    [MemberData(nameof(FileSystems))]
    public async Task A_read_never_follows_a_link(bool decorated)
    {
        var store = Store(decorated);
        Assert.True(await store.TryCreateAsync("data/a", Content(10)));
        var fileLink = PlantFileLink("README.txt", "objects", "data", "secret");
        var folderLink = PlantFolderLink("objects", "packs", CanaryPackPrefix);

        await AssertRefusedAsync(() => store.TryReadAsync("data/secret"), "objects/data/secret");
        await AssertRefusedAsync(() => store.TryReadAsync($"packs/{CanaryPackPrefix}/{CanaryPacks[0]}"), $"objects/packs/{CanaryPackPrefix}");
        await AssertRefusedAsync(() => store.TryReadAsync($"packs/{CanaryPackPrefix}/nested/secret.txt"), $"objects/packs/{CanaryPackPrefix}");
        await AssertRefusedAsync(() => store.TryReadAsync($"packs/{CanaryPackPrefix}/absent"), $"objects/packs/{CanaryPackPrefix}");
        await AssertRefusedAsync(() => store.TryReadRangeAsync("data/secret", 2, 4), "objects/data/secret");
        await AssertRefusedAsync(() => store.TryReadRangeAsync($"packs/{CanaryPackPrefix}/{CanaryPacks[0]}", 0, 16), $"objects/packs/{CanaryPackPrefix}");

        Assert.Equal(Content(10), await store.TryReadAsync("data/a"));
        Assert.Equal(Content(10).AsSpan(2, 4).ToArray(), await store.TryReadRangeAsync("data/a", 2, 4));
        AssertCanaryUnchanged("after the reads");
        AssertLinkLeftAlone(fileLink);
        AssertLinkLeftAlone(folderLink);
    }

    [Theory]
    [MemberData(nameof(FileSystems))]
    public async Task A_write_never_goes_through_a_link(bool decorated)
    {
        var store = Store(decorated);
        Assert.True(await store.TryCreateAsync("data/a", Content(10)));
        var fileLink = PlantFileLink("README.txt", "objects", "data", "secret");
        var danglingLink = PlantLink(Path.Combine(Canary, "not-there-yet"), "objects", "data", "dangling");
        var folderLink = PlantFolderLink("objects", "packs", CanaryPackPrefix);

        await AssertRefusedAsync(() => store.TryCreateAsync("data/secret", Content(20)), "objects/data/secret");
        await AssertRefusedAsync(() => store.TryCreateAsync("data/dangling", Content(20)), "objects/data/dangling");
        await AssertRefusedAsync(() => store.TryCreateAsync($"packs/{CanaryPackPrefix}/new-object", Content(20)), $"objects/packs/{CanaryPackPrefix}");
        await AssertRefusedAsync(() => store.TryCreateAsync($"packs/{CanaryPackPrefix}/new-folder/new-object", Content(20)), $"objects/packs/{CanaryPackPrefix}");
        await AssertRefusedAsync(() => store.TryCreateAsync($"packs/{CanaryPackPrefix}/{CanaryPacks[0]}", Content(20)), $"objects/packs/{CanaryPackPrefix}");

        Assert.True(await store.TryCreateAsync("data/b", Content(30)));
        Assert.False(File.Exists(Path.Combine(Canary, "not-there-yet")));
        AssertCanaryUnchanged("after the writes");
        AssertLinkLeftAlone(fileLink);
        AssertLinkLeftAlone(danglingLink);
        AssertLinkLeftAlone(folderLink);
    }

    [Theory]
    [MemberData(nameof(FileSystems))]
    public async Task A_deletion_never_goes_through_a_link_nor_removes_one(bool decorated)
    {
        var store = Store(decorated);
        Assert.True(await store.TryCreateAsync("data/a", Content(10)));
        var fileLink = PlantFileLink("README.txt", "objects", "data", "secret");
        var folderLink = PlantFolderLink("objects", "packs", CanaryPackPrefix);

        await AssertRefusedAsync(() => store.DeleteAsync("data/secret"), "objects/data/secret");
        foreach (var pack in CanaryPacks)
        {
            await AssertRefusedAsync(() => store.DeleteAsync($"packs/{CanaryPackPrefix}/{pack}"), $"objects/packs/{CanaryPackPrefix}");
        }

        await AssertRefusedAsync(() => store.DeleteAsync($"packs/{CanaryPackPrefix}/nested/secret.txt"), $"objects/packs/{CanaryPackPrefix}");

        Assert.True(await store.DeleteAsync("data/a"));
        AssertCanaryUnchanged("after the deletions");
        AssertLinkLeftAlone(fileLink);
        AssertLinkLeftAlone(folderLink);
    }

    [Theory]
    [MemberData(nameof(FileSystems))]
    public async Task A_lease_never_goes_through_a_link(bool decorated)
    {
        var store = Store(decorated);
        await (await store.AcquireLeaseAsync("backups/b-0", "writer", TimeSpan.FromSeconds(10))).DisposeAsync();
        var leaseLink = PlantFolderLink("objects", "leases", "backups__b-1");

        await AssertRefusedAsync(() => store.AcquireLeaseAsync("backups/b-1", "writer", TimeSpan.FromSeconds(10)), "objects/leases/backups__b-1");
        AssertCanaryUnchanged("after acquiring a lease whose folder is a link");
        AssertLinkLeftAlone(leaseLink);

        // The whole lease area replaced by a link.
        Directory.Delete(leaseLink);
        Directory.Move(InStore("objects", "leases"), Path.Combine(_sandbox, "leases-moved-away"));
        var areaLink = PlantFolderLink("objects", "leases");
        await AssertRefusedAsync(() => store.AcquireLeaseAsync("backups/b-2", "writer", TimeSpan.FromSeconds(10)), "objects/leases");
        AssertCanaryUnchanged("after acquiring a lease in a lease area that is a link");
        AssertLinkLeftAlone(areaLink);
    }

    [Theory]
    [MemberData(nameof(FileSystems))]
    public async Task A_held_lease_never_renews_or_releases_through_a_link_swapped_in_for_its_folder(bool decorated)
    {
        var store = Store(decorated);
        var lease = await store.AcquireLeaseAsync("backups/b-1", "writer", TimeSpan.FromSeconds(10));
        Directory.Move(InStore("objects", "leases", "backups__b-1"), Path.Combine(_sandbox, "lease-moved-away"));
        var link = PlantFolderLink("objects", "leases", "backups__b-1");

        await AssertRefusedAsync(async () => { await lease.RenewAsync(); return 0; }, "objects/leases/backups__b-1");
        await AssertRefusedAsync(async () => { await lease.EnsureHeldAsync(); return 0; }, "objects/leases/backups__b-1");
        await lease.DisposeAsync(); // releasing is a courtesy: it never throws, and here it does nothing

        AssertCanaryUnchanged("after renewing, checking and releasing the lease");
        AssertLinkLeftAlone(link);
    }

    [Theory]
    [MemberData(nameof(FileSystems))]
    public async Task A_cleanup_never_goes_through_a_link(bool decorated)
    {
        var store = Store(decorated);
        Assert.True(await store.TryCreateAsync("data/a", Content(10)));
        var link = PlantFolderLink("objects", "data", "linked");
        _clock.Advance(TimeSpan.FromDays(1));

        await AssertRefusedAsync(() => store.CleanUpAsync(TimeSpan.FromHours(1)), "objects/data/linked");

        AssertCanaryUnchanged("after the cleanup");
        AssertLinkLeftAlone(link);
    }

    [Theory]
    [MemberData(nameof(FileSystems))]
    public async Task A_store_whose_root_is_reached_through_a_link_works(bool decorated)
    {
        // Only links below the root are refused: '/data -> /mnt/disk' as the store's folder is an administrator's choice.
        // Here a folder above the root is a link ('data' -> 'disk'), and so is the root itself ('disk/store' -> 'disk/real-store').
        var realRoot = Path.Combine(_sandbox, "disk", "real-store");
        Directory.CreateDirectory(realRoot);
        Directory.CreateSymbolicLink(Path.Combine(_sandbox, "disk", "store"), realRoot);
        var viaLink = Path.Combine(_sandbox, "data");
        Directory.CreateSymbolicLink(viaLink, Path.Combine(_sandbox, "disk"));
        var store = new FileSystemBackupStore(decorated ? new FaultyFileSystem(new IoFileSystem()) : (IFileSystem)new IoFileSystem(), Path.Combine(viaLink, "store"), _clock);

        Assert.True(await store.TryCreateAsync("data/ab/object-1", Content(10)));
        Assert.Equal(Content(10), await store.TryReadAsync("data/ab/object-1"));
        Assert.Equal([new StoreObject("data/ab/object-1", 10)], await ListAsync(store, string.Empty));
        await using (var lease = await store.AcquireLeaseAsync("backups/b-1", "writer", TimeSpan.FromSeconds(10)))
        {
            await lease.RenewAsync();
        }

        Assert.True(await store.DeleteAsync("data/ab/object-1"));
        Assert.Equal(0, await store.CleanUpAsync(TimeSpan.FromHours(1)));
        Assert.True(Directory.Exists(Path.Combine(realRoot, "objects", "data", "ab")));
    }

    [Fact]
    public async Task On_Linux_a_folder_swapped_for_a_link_while_the_store_works_never_lets_a_call_reach_the_target()
    {
        // Elsewhere each segment is checked just before the call that uses it, and this race can be won (see the store's remarks).
        Assert.Equal(OperatingSystem.IsLinux(), PosixFileOperations.SupportsDirectoryHandles);
        if (!PosixFileOperations.SupportsDirectoryHandles)
        {
            return;
        }

        var store = Store(decorated: false);
        var mine = Content(50);
        foreach (var name in CanaryPacks)
        {
            Assert.True(await store.TryCreateAsync($"packs/{CanaryPackPrefix}/{name}", mine)); // the canary's names, the store's own content
        }

        // The attacker exchanges the folder and a link to the canary atomically (renameat2 with RENAME_EXCHANGE),
        // as fast as it can: the name is always there, a folder and a link by turns.
        var folder = InStore("objects", "packs", CanaryPackPrefix);
        var parked = Path.Combine(_sandbox, "swap");
        Directory.CreateSymbolicLink(parked, Canary);
        using var stop = new CancellationTokenSource();
        var swaps = 0;
        var attacker = Task.Factory.StartNew(
            () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    Assert.True(NativeMethods.RenameAt2(NativeMethods.AtCurrentDirectory, folder, NativeMethods.AtCurrentDirectory, parked, NativeMethods.RenameExchange) == 0, $"renameat2 failed: errno {Marshal.GetLastPInvokeError()}");
                    swaps++;
                }
            },
            TaskCreationOptions.LongRunning);

        var calls = 0;
        var refused = 0;
        var wrong = new List<string>();
        async Task CallAsync(Func<Task> call)
        {
            calls++;
            try
            {
                await call();
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.StoreLinkRefused)
            {
                refused++;
            }
        }

        var clock = Stopwatch.StartNew();
        try
        {
            while (clock.Elapsed < TimeSpan.FromSeconds(3) || refused == 0 && clock.Elapsed < TimeSpan.FromSeconds(30))
            {
                foreach (var name in CanaryPacks)
                {
                    var key = $"packs/{CanaryPackPrefix}/{name}";
                    await CallAsync(async () =>
                    {
                        if (await store.TryReadAsync(key) is { } read && !read.AsSpan().SequenceEqual(mine))
                        {
                            wrong.Add($"read {key}: {Describe(read)}");
                        }
                    });
                    await CallAsync(() => store.DeleteAsync(key));
                    await CallAsync(() => store.TryCreateAsync(key, mine));
                }

                await CallAsync(async () =>
                {
                    var listed = await ListAsync(store, "packs/");
                    wrong.AddRange(listed.Where(o => !CanaryPacks.Any(p => o.Key.EndsWith(p, StringComparison.Ordinal))).Select(o => $"listed {o.Key}"));
                });
            }
        }
        finally
        {
            await stop.CancelAsync();
            await attacker;
        }

        AssertCanaryUnchanged($"after {swaps} swaps during {calls} calls, {refused} of them refused");
        Assert.Empty(wrong);
        Assert.True(swaps > 100 && refused > 0, $"the race did not happen: {swaps} swaps, {refused} refusals in {calls} calls");
    }

    private FileSystemBackupStore Store(bool decorated) =>
        new FileSystemBackupStore(decorated ? new FaultyFileSystem(new IoFileSystem()) : (IFileSystem)new IoFileSystem(), StoreRoot, _clock);

    private async Task<Engine> EngineAsync(bool decorated, bool create = true)
    {
        var kms = new EmbeddedKeyManagementService(_memory, "/kms", _clock);
        var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(_memory, "/keys/repository.key");
        try
        {
            var client = await BackupClient.OpenAsync(Store(decorated), keys, kms, hsmClusters: null, new BackupClientOptions { TimeProvider = _clock, LeaseHolder = "test-host" });
            var engine = new Engine(client, kms, keys);
            if (create)
            {
                await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-a", InstanceKind.Software, "cn-hangzhou", Owner) { CreatedAt = _clock.GetUtcNow().AddDays(-1) });
                for (var i = 0; i < 20; i++)
                {
                    await kms.GenerateKeyAsync("kst-a", $"key-{i:D2}", Owner);
                }

                var backup = await client.CreateDefaultBackupAsync(Owner);
                await client.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);
            }

            return engine;
        }
        catch
        {
            keys.Dispose();
            kms.Dispose();
            throw;
        }
    }

    private sealed class Engine(BackupClient client, EmbeddedKeyManagementService kms, KeyFileRepositoryKeyProvider keys) : IAsyncDisposable
    {
        public BackupClient Client { get; } = client;

        public ValueTask DisposeAsync()
        {
            Client.Dispose();
            kms.Dispose();
            keys.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    private string InStore(params string[] parts) => Path.Combine([StoreRoot, .. parts]);

    private void RenameCanaryPacks(string prefix)
    {
        CanaryPacks = [.. CanaryPacks.Select(name =>
        {
            File.Move(Path.Combine(Canary, name), Path.Combine(Canary, prefix + name[2..]));
            return prefix + name[2..];
        })];
        CanaryPackPrefix = prefix;
        _canaryBefore = Snapshot(Canary);
    }

    private string PlantFolderLink(params string[] parts) => PlantLink(Canary, parts);

    private string PlantFileLink(string canaryFile, params string[] parts) => PlantLink(Path.Combine(Canary, canaryFile), parts);

    private string PlantLink(string target, params string[] parts)
    {
        var link = InStore(parts);
        Directory.CreateDirectory(Path.GetDirectoryName(link)!);
        if (Directory.Exists(target))
        {
            Directory.CreateSymbolicLink(link, target);
        }
        else
        {
            File.CreateSymbolicLink(link, target);
        }

        return link;
    }

    private static void AssertLinkLeftAlone(string link) =>
        Assert.True(new FileInfo(link).LinkTarget is not null, $"the link '{link}' was removed or replaced");

    /// <summary>Checks that the canary folder is as it was, byte for byte, and that every call expected to be refused was.</summary>
    private void AssertCanaryUnchanged(string context)
    {
        var after = Snapshot(Canary);
        var deleted = _canaryBefore.Keys.Except(after.Keys).ToList();
        var added = after.Keys.Except(_canaryBefore.Keys).ToList();
        var changed = _canaryBefore.Keys.Intersect(after.Keys).Where(k => _canaryBefore[k] != after[k]).ToList();
        var notRefused = _notRefused.Count == 0 ? string.Empty : $" Not refused: {string.Join("; ", _notRefused)}.";
        Assert.True(
            deleted.Count + added.Count + changed.Count == 0,
            $"The canary folder outside the store changed ({context}): deleted [{string.Join(", ", deleted)}], added [{string.Join(", ", added)}], changed [{string.Join(", ", changed)}].{notRefused}");
        Assert.True(_notRefused.Count == 0, $"The canary folder is unchanged ({context}), but{notRefused}");
    }

    /// <summary>Every file (path and content) and folder under <paramref name="folder"/>, relative to it.</summary>
    private static SortedDictionary<string, string> Snapshot(string folder)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in new DirectoryInfo(folder).EnumerateFileSystemInfos("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
        {
            var relative = Path.GetRelativePath(folder, entry.FullName).Replace('\\', '/');
            result[relative] = entry is DirectoryInfo ? "folder" : Convert.ToHexString(File.ReadAllBytes(entry.FullName));
        }

        return result;
    }

    /// <summary>Runs <paramref name="call"/> and says how it ended, in a form the assertions and a failure message can read.</summary>
    private async Task<string> AttemptAsync(string what, Func<Task<object?>> call)
    {
        try
        {
            var result = await call();
            return $"{what}: returned {Describe(result)}";
        }
        catch (BackupException e)
        {
            return $"{what}: {e.Code}: {e.Item} ({e.Message})";
        }
        catch (AggregateException e) when (e.InnerExceptions.All(i => i is BackupException))
        {
            return $"{what}: " + string.Join(" / ", e.InnerExceptions.Cast<BackupException>().Select(i => $"{i.Code}: {i.Item} ({i.Message})"));
        }
    }

    /// <summary>
    /// Runs <paramref name="call"/>, which must be refused for the link <paramref name="linkPath"/>. Anything else
    /// is recorded rather than thrown, so that a failing test reports every call that went through, and the
    /// canary's state after all of them.
    /// </summary>
    private async Task AssertRefusedAsync<T>(Func<Task<T>> call, string linkPath, [CallerArgumentExpression(nameof(call))] string what = "")
    {
        try
        {
            var result = await call();
            _notRefused.Add($"{what} returned {Describe(result)}");
        }
        catch (BackupException e) when (e.Code == BackupErrorCode.StoreLinkRefused)
        {
            Assert.Equal($"store link '{linkPath}'", e.Item);
            Assert.Contains($"'{linkPath}'", e.Message, StringComparison.Ordinal);
            Assert.Contains("link", e.Remedy, StringComparison.OrdinalIgnoreCase);
        }
        catch (BackupException e)
        {
            _notRefused.Add($"{what} failed otherwise: {e.Code}: {e.Message}");
        }
    }

    private string Describe(object? result) => result switch
    {
        null => "nothing (null)",
        byte[] bytes when _canaryBefore.FirstOrDefault(f => f.Value == Convert.ToHexString(bytes)).Key is { } canaryFile => $"the bytes of the canary file '{canaryFile}'",
        byte[] bytes => $"{bytes.Length} bytes",
        IEnumerable<StoreObject> objects => $"[{string.Join(", ", objects.Select(o => $"{o.Key} ({o.Length} bytes)"))}]",
        PruneSummary prune => $"{prune.PacksDeleted} packs deleted, {prune.PacksMarked} marked",
        RepositoryVerification verification => $"verification with {verification.Problems.Count} problems, {verification.UnreferencedPacks.Count} unreferenced packs",
        _ => result.ToString() ?? "?",
    };

    private static async Task<List<StoreObject>> ListAsync(BackupStore store, string prefix)
    {
        var objects = new List<StoreObject>();
        await foreach (var entry in store.ListAsync(prefix))
        {
            objects.Add(entry);
        }

        return objects;
    }

    private static byte[] Content(int length) => [.. Enumerable.Range(0, length).Select(i => (byte)(i * 7 + length))];

    private static class NativeMethods
    {
        public const int AtCurrentDirectory = -100;
        public const uint RenameExchange = 2;

        public static int RenameAt2(int fromDirectory, string from, int toDirectory, string to, uint flags) =>
            RenameAt2(fromDirectory, Encoding.UTF8.GetBytes(from + "\0"), toDirectory, Encoding.UTF8.GetBytes(to + "\0"), flags);

        [DllImport("libc", EntryPoint = "renameat2", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        private static extern int RenameAt2(int fromDirectory, byte[] from, int toDirectory, byte[] to, uint flags);
    }
}
