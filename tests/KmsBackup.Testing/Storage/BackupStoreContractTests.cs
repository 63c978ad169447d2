// Over 400 lines: the whole store contract in one suite, so that a new store subclasses one class and passes all of it.
using System.Security.Cryptography;

using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Testing.Storage;

/// <summary>
/// The contract every <see cref="BackupStore"/> passes (DESIGN.md §1, "Ports": put-if-absent, get, list by
/// prefix, delete, and a lease per backup; §4: two writers never corrupt a store). Subclass it for each
/// store and implement <see cref="CreateStore"/>: the file-system store's tests and the Azure Blob store's tests
/// (against Azurite) both run every case here.
/// </summary>
/// <remarks>
/// Keys used here never make an object's key a folder of another key's (no <c>a</c> beside <c>a/b</c>),
/// which a file system cannot hold. Lease expiry is driven by <see cref="Time"/>: stores must take lease
/// times from the <see cref="TimeProvider"/> they are given.
/// </remarks>
public abstract class BackupStoreContractTests
{
    /// <summary>The fake clock's start.</summary>
    protected static readonly DateTimeOffset Start = new(2026, 1, 5, 9, 0, 0, TimeSpan.Zero);

    private BackupStore? _store;

    /// <summary>The clock every client of the store under test uses.</summary>
    protected FakeTimeProvider Time { get; } = new(Start);

    /// <summary>The length of the large objects (tens of MiB) that the large-object cases write.</summary>
    protected virtual int LargeObjectLength => 24 << 20;

    /// <summary>The first client of the store under test.</summary>
    protected BackupStore Store => _store ??= CreateStore();

    /// <summary>
    /// A client of this test's store, using <see cref="Time"/>. Each call returns another client over the
    /// same stored data, as another host sharing the store would have; each test starts with an empty store.
    /// </summary>
    protected abstract BackupStore CreateStore();

    /// <summary>
    /// Stores <paramref name="content"/> where this test's store keeps the key <paramref name="key"/> (a file under
    /// <c>objects/</c>, a blob under the prefix's <c>objects/</c>), past the public API, replacing what is there: what
    /// another program, or a writer that stalled in the middle of the lease protocol, can leave in a shared store.
    /// </summary>
    /// <param name="key">A valid key, here always one of a lease record (under <c>leases/</c>).</param>
    /// <param name="content">The bytes.</param>
    protected abstract Task PutPastTheApiAsync(string key, byte[] content);

    // ---- put-if-absent, get ----

    [Fact]
    public async Task A_created_object_reads_back_whole()
    {
        var content = Content(1000, seed: 1);

        Assert.True(await Store.TryCreateAsync("data/ab/object-1", content));

        Assert.Equal(content, await Store.TryReadAsync("data/ab/object-1"));
        Assert.Equal(content, await CreateStore().TryReadAsync("data/ab/object-1"));
    }

    [Fact]
    public async Task Creating_an_existing_key_returns_false_and_leaves_the_first_content()
    {
        var first = Content(100, seed: 1);
        Assert.True(await Store.TryCreateAsync("manifests/m-1", first));

        Assert.False(await Store.TryCreateAsync("manifests/m-1", Content(200, seed: 2)));
        Assert.False(await CreateStore().TryCreateAsync("manifests/m-1", Content(50, seed: 3)));

        Assert.Equal(first, await Store.TryReadAsync("manifests/m-1"));
    }

    [Fact]
    public async Task Reading_an_absent_key_returns_null_even_when_it_is_a_prefix_of_objects()
    {
        Assert.True(await Store.TryCreateAsync("data/ab/object-1", Content(10, seed: 1)));

        Assert.Null(await Store.TryReadAsync("data/ab/object-2"));
        Assert.Null(await Store.TryReadAsync("data/ab"));
        Assert.Null(await Store.TryReadAsync("nothing/here"));
    }

    [Fact]
    public async Task An_empty_object_round_trips()
    {
        Assert.True(await Store.TryCreateAsync("catalog/empty", ReadOnlyMemory<byte>.Empty));

        var read = await Store.TryReadAsync("catalog/empty");
        Assert.NotNull(read);
        Assert.Empty(read);
        Assert.Equal([new StoreObject("catalog/empty", 0)], await ListAsync(Store, "catalog/"));
    }

    [Theory]
    [InlineData(0, 100)]
    [InlineData(1, 1)]
    [InlineData(37, 500)]
    [InlineData(900, 100)]
    [InlineData(950, 100)]
    [InlineData(999, 1)]
    [InlineData(1000, 10)]
    [InlineData(5000, 10)]
    public async Task A_ranged_read_returns_the_bytes_of_the_range_and_stops_at_the_end_of_the_object(int offset, int length)
    {
        var content = Content(1000, seed: 4);
        Assert.True(await Store.TryCreateAsync("data/ab/object-1", content));

        var range = await CreateStore().TryReadRangeAsync("data/ab/object-1", offset, length);

        var expected = content.AsSpan(Math.Min(offset, content.Length), Math.Clamp(content.Length - offset, 0, length)).ToArray();
        Assert.Equal(expected, range);
    }

    [Theory]
    [InlineData(0, 100)]
    [InlineData(1, 1)]
    [InlineData(37, 500)]
    [InlineData(950, 100)]
    [InlineData(999, 1)]
    [InlineData(1000, 10)]
    [InlineData(5000, 10)]
    public async Task A_ranged_read_into_a_buffer_writes_the_bytes_of_the_range_from_its_start_and_says_how_many(int offset, int length)
    {
        var content = Content(1000, seed: 4);
        Assert.True(await Store.TryCreateAsync("data/ab/object-1", content));
        var buffer = new byte[length + 8];
        buffer.AsSpan().Fill(0xEE);

        var read = await CreateStore().TryReadRangeIntoAsync("data/ab/object-1", offset, buffer.AsMemory(0, length));

        var expected = content.AsSpan(Math.Min(offset, content.Length), Math.Clamp(content.Length - offset, 0, length)).ToArray();
        Assert.Equal(expected.Length, read);
        Assert.Equal(expected, buffer.AsSpan(0, expected.Length).ToArray());
        Assert.All(buffer[expected.Length..], b => Assert.Equal(0xEE, b));
    }

    [Fact]
    public async Task A_ranged_read_into_a_buffer_of_an_absent_object_returns_null_and_bad_arguments_are_refused()
    {
        Assert.True(await Store.TryCreateAsync("data/ab/object-1", Content(10, seed: 1)));
        var large = RandomNumberGenerator.GetBytes(LargeObjectLength);
        Assert.True(await Store.TryCreateAsync("data/large", large));
        var buffer = new byte[4096];

        Assert.Equal(4096, await CreateStore().TryReadRangeIntoAsync("data/large", LargeObjectLength / 2, buffer));
        Assert.Equal(large.AsSpan(LargeObjectLength / 2, 4096).ToArray(), buffer);
        Assert.Null(await Store.TryReadRangeIntoAsync("data/ab/object-2", 0, buffer));
        Assert.Null(await Store.TryReadRangeIntoAsync("data/ab", 0, buffer));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.TryReadRangeIntoAsync("data/ab/object-1", -1, buffer));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.TryReadRangeIntoAsync("data/ab/object-1", 0, Memory<byte>.Empty));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.TryReadRangeIntoAsync("leases/x/y", 0, buffer));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.TryReadRangeIntoAsync("../escape", 0, buffer));
    }

    [Fact]
    public async Task A_ranged_read_of_a_large_object_returns_the_range_from_its_middle_and_its_end()
    {
        var content = RandomNumberGenerator.GetBytes(LargeObjectLength);
        Assert.True(await Store.TryCreateAsync("data/large", content));

        Assert.Equal(content.AsSpan(LargeObjectLength / 2, 4096).ToArray(), await CreateStore().TryReadRangeAsync("data/large", LargeObjectLength / 2, 4096));
        Assert.Equal(content.AsSpan(LargeObjectLength - 10).ToArray(), await CreateStore().TryReadRangeAsync("data/large", LargeObjectLength - 10, 4096));
    }

    [Fact]
    public async Task A_ranged_read_of_an_absent_object_returns_null_and_bad_arguments_are_refused()
    {
        Assert.True(await Store.TryCreateAsync("data/ab/object-1", Content(10, seed: 1)));

        Assert.Null(await Store.TryReadRangeAsync("data/ab/object-2", 0, 10));
        Assert.Null(await Store.TryReadRangeAsync("data/ab", 0, 10));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.TryReadRangeAsync("data/ab/object-1", -1, 10));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.TryReadRangeAsync("data/ab/object-1", 0, 0));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.TryReadRangeAsync("leases/x/y", 0, 10));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.TryReadRangeAsync("../escape", 0, 10));
    }

    [Fact]
    public async Task A_large_object_round_trips()
    {
        var content = RandomNumberGenerator.GetBytes(LargeObjectLength);

        Assert.True(await Store.TryCreateAsync("data/large", content));

        Assert.Equal(content, await CreateStore().TryReadAsync("data/large"));
        Assert.Equal([new StoreObject("data/large", content.Length)], await ListAsync(Store, "data/"));
        Assert.False(await CreateStore().TryCreateAsync("data/large", content.AsMemory(0, 1000)));
        Assert.Equal(content.Length, (await CreateStore().TryReadAsync("data/large"))!.Length);
    }

    [Fact]
    public async Task A_reader_during_a_large_write_sees_nothing_or_the_whole_object()
    {
        var content = RandomNumberGenerator.GetBytes(LargeObjectLength);
        var reader = CreateStore();
        var writing = Task.Run(() => Store.TryCreateAsync("data/large-w", content));

        var sawAbsent = 0;
        while (true)
        {
            var finished = writing.IsCompleted;
            var read = await reader.TryReadAsync("data/large-w");
            foreach (var o in await ListAsync(reader, "data/"))
            {
                Assert.Equal(content.Length, o.Length);
            }

            if (read is null)
            {
                Assert.False(finished, "the object is absent after its write completed");
                sawAbsent++;
                continue;
            }

            Assert.True(read.AsSpan().SequenceEqual(content), "a reader saw a partial or different object");
            break;
        }

        Assert.True(await writing);
        Assert.True(sawAbsent >= 0);
    }

    [Fact]
    public async Task Concurrent_creates_of_one_key_have_exactly_one_winner_whose_whole_content_is_stored()
    {
        var clients = new[] { Store, CreateStore() };
        var contents = Enumerable.Range(0, 12).Select(i => Content(256 << 10, seed: (byte)(i + 1))).ToArray();
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var racing = contents.Select((content, i) => Task.Run(async () =>
        {
            await start.Task;
            return await clients[i % 2].TryCreateAsync("data/raced", content);
        })).ToArray();
        start.SetResult();
        var results = await Task.WhenAll(racing);

        var winner = Assert.Single(results.Select((won, i) => (won, i)), r => r.won);
        Assert.Equal(contents[winner.i], await Store.TryReadAsync("data/raced"));
        Assert.Equal([new StoreObject("data/raced", 256 << 10)], await ListAsync(Store, "data/"));
    }

    // ---- list ----

    [Fact]
    public async Task Listing_yields_the_objects_under_a_prefix_in_ordinal_key_order()
    {
        // '-' < '.' < '/' < digits < upper case < '_' < lower case: folders interleave with files.
        // (No two keys differ only in case: they would be one file on a case-insensitive file system.)
        string[] keys =
        [
            "data/ab/9", "data/ab/10", "data/ab-x", "data/ab.x", "data/Ac", "data/a_b", "data/ab/cd/e",
            "data/b", "data/0", "data/Z/z", "index/x", "data2/y",
        ];
        foreach (var (key, i) in keys.Select((k, i) => (k, i)))
        {
            Assert.True(await Store.TryCreateAsync(key, Content(i + 1, seed: (byte)i)));
        }

        var all = await ListAsync(Store, string.Empty);
        Assert.Equal(keys.Order(StringComparer.Ordinal), all.Select(o => o.Key));
        Assert.All(all, o => Assert.Equal(Array.IndexOf(keys, o.Key) + 1, o.Length));

        Assert.Equal(Expected(keys, "data/ab"), Keys(await ListAsync(CreateStore(), "data/ab")));
        Assert.Equal(Expected(keys, "data/ab/"), Keys(await ListAsync(Store, "data/ab/")));
        Assert.Equal(Expected(keys, "data/"), Keys(await ListAsync(Store, "data/")));
        Assert.Equal(Expected(keys, "data"), Keys(await ListAsync(Store, "data")));
        Assert.Equal(["data/ab/cd/e"], Keys(await ListAsync(Store, "data/ab/c")));
        Assert.Empty(await ListAsync(Store, "data/ab/cd/e/"));
        Assert.Empty(await ListAsync(Store, "zzz"));
        Assert.Empty(await ListAsync(Store, "data/zzz/"));

        static IEnumerable<string> Expected(string[] keys, string prefix) =>
            keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal);
        static IEnumerable<string> Keys(IEnumerable<StoreObject> objects) => objects.Select(o => o.Key);
    }

    [Fact]
    public async Task Listing_pages_on_past_many_objects_in_order_and_stops_at_the_prefix()
    {
        // More objects than one listing page of any store under test (the Azure tests use pages of 50).
        const int Count = 130;
        var keys = Enumerable.Range(0, Count).Select(i => $"points/b-{i % 3}/{i:D4}").ToArray();
        await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (key, ct) =>
            Assert.True(await Store.TryCreateAsync(key, Content(3, seed: 1), ct)));
        Assert.True(await Store.TryCreateAsync("points/b-10/0000", Content(3, seed: 1)));
        Assert.True(await Store.TryCreateAsync("pointz/0", Content(3, seed: 1)));

        var listed = (await ListAsync(CreateStore(), "points/")).Select(o => o.Key).ToList();
        Assert.Equal(keys.Append("points/b-10/0000").Order(StringComparer.Ordinal), listed);
        Assert.Equal(keys.Where(k => k.StartsWith("points/b-1/", StringComparison.Ordinal)).Order(StringComparer.Ordinal), (await ListAsync(Store, "points/b-1/")).Select(o => o.Key));
        Assert.Equal(Count + 1 + 1, (await ListAsync(Store, "point")).Count);

        // Stopping early stops the listing.
        var firstFew = new List<string>();
        await foreach (var o in Store.ListAsync("points/"))
        {
            firstFew.Add(o.Key);
            if (firstFew.Count == 3)
            {
                break;
            }
        }

        Assert.Equal(listed.Take(3), firstFew);
    }

    [Fact]
    public async Task Listing_an_empty_store_yields_nothing()
    {
        Assert.Empty(await ListAsync(Store, string.Empty));
        Assert.Empty(await ListAsync(Store, "data/"));
    }

    [Fact]
    public async Task Readers_and_listings_during_writes_never_see_partial_objects()
    {
        const int Count = 16;
        const int Length = 512 << 10;
        var writer = Store;
        var reader = CreateStore();
        var keys = Enumerable.Range(0, Count).Select(i => $"data/w/{i:D2}").ToArray();
        using var done = new CancellationTokenSource();

        var writing = Task.Run(async () =>
        {
            try
            {
                for (var i = 0; i < Count; i++)
                {
                    Assert.True(await writer.TryCreateAsync(keys[i], Content(Length, seed: (byte)(i + 1))));
                }
            }
            finally
            {
                await done.CancelAsync();
            }
        });

        var reads = 0;
        while (!done.IsCancellationRequested || reads == 0)
        {
            foreach (var o in await ListAsync(reader, "data/w/"))
            {
                Assert.Equal(Length, o.Length);
            }

            var i = reads++ % Count;
            var read = await reader.TryReadAsync(keys[i]);
            Assert.True(read is null || read.AsSpan().SequenceEqual(Content(Length, seed: (byte)(i + 1))), $"partial read of {keys[i]}");
        }

        await writing;
        Assert.Equal(keys, (await ListAsync(reader, "data/w/")).Select(o => o.Key));
    }

    // ---- delete ----

    [Fact]
    public async Task Deleting_returns_whether_an_object_was_deleted_and_the_key_can_be_created_again()
    {
        Assert.True(await Store.TryCreateAsync("data/ab/1", Content(10, seed: 1)));
        Assert.True(await Store.TryCreateAsync("data/ab/2", Content(10, seed: 2)));

        Assert.True(await Store.DeleteAsync("data/ab/1"));
        Assert.False(await Store.DeleteAsync("data/ab/1"));
        Assert.False(await Store.DeleteAsync("never/was"));
        Assert.False(await Store.DeleteAsync("data/ab"));

        Assert.Null(await Store.TryReadAsync("data/ab/1"));
        Assert.Equal(["data/ab/2"], (await ListAsync(Store, string.Empty)).Select(o => o.Key));
        Assert.True(await Store.TryCreateAsync("data/ab/1", Content(20, seed: 3)));
        Assert.Equal(Content(20, seed: 3), await Store.TryReadAsync("data/ab/1"));
    }

    [Fact]
    public async Task Concurrent_deletes_of_one_key_have_exactly_one_winner()
    {
        var clients = new[] { Store, CreateStore() };
        Assert.True(await Store.TryCreateAsync("data/doomed", Content(1000, seed: 1)));
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var racing = Enumerable.Range(0, 8).Select(i => Task.Run(async () =>
        {
            await start.Task;
            return await clients[i % 2].DeleteAsync("data/doomed");
        })).ToArray();
        start.SetResult();
        var results = await Task.WhenAll(racing);

        Assert.Single(results, deleted => deleted);
        Assert.Null(await Store.TryReadAsync("data/doomed"));
    }

    // ---- keys ----

    [Theory]
    [InlineData("")]
    [InlineData("/a")]
    [InlineData("a/")]
    [InlineData("a//b")]
    [InlineData("a/../b")]
    [InlineData("./a")]
    [InlineData("a b")]
    [InlineData("a\\b")]
    [InlineData("a~b")]
    public async Task Invalid_keys_are_refused(string key)
    {
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.TryCreateAsync(key, Content(1, seed: 1)));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.TryReadAsync(key));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.DeleteAsync(key));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.AcquireLeaseAsync(key, "writer", TimeSpan.FromSeconds(10)));
    }

    [Theory]
    [InlineData("/a")]
    [InlineData("a//")]
    [InlineData("../a")]
    [InlineData("a b")]
    [InlineData("a~")]
    public async Task Invalid_prefixes_are_refused(string prefix)
    {
        await Assert.ThrowsAnyAsync<ArgumentException>(() => ListAsync(Store, prefix));
    }

    // ---- leases ----

    [Fact]
    public async Task A_second_writer_is_refused_a_held_lease_and_told_who_holds_it_until_when()
    {
        await using var first = await Store.AcquireLeaseAsync("backups/b-1", "host-a pid 100", TimeSpan.FromSeconds(30));
        Assert.Equal("backups/b-1", first.Name);
        Assert.Equal("host-a pid 100", first.Holder);
        Assert.Equal(Start + TimeSpan.FromSeconds(30), first.ExpiresAt);

        var ex = await Assert.ThrowsAsync<BackupException>(() => CreateStore().AcquireLeaseAsync("backups/b-1", "host-b pid 200", TimeSpan.FromSeconds(30)));

        Assert.Equal(BackupErrorCode.LeaseHeld, ex.Code);
        Assert.Contains("backups/b-1", ex.Item, StringComparison.Ordinal);
        Assert.Contains("host-a pid 100", ex.Message, StringComparison.Ordinal);
        Assert.Contains("2026-01-05T09:00:30", ex.Message, StringComparison.Ordinal);
        Assert.False(string.IsNullOrWhiteSpace(ex.Remedy));

        // The same holder name does not make a second writer the holder.
        var again = await Assert.ThrowsAsync<BackupException>(() => Store.AcquireLeaseAsync("backups/b-1", "host-a pid 100", TimeSpan.FromSeconds(30)));
        Assert.Equal(BackupErrorCode.LeaseHeld, again.Code);
        await first.EnsureHeldAsync();
    }

    [Fact]
    public async Task Concurrent_acquires_of_one_lease_have_exactly_one_winner()
    {
        var clients = new[] { Store, CreateStore() };
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var racing = Enumerable.Range(0, 8).Select(i => Task.Run(() => TryAcquire(clients[i % 2], "backups/b-1", $"writer-{i}", start.Task))).ToArray();
        start.SetResult();
        var outcomes = await Task.WhenAll(racing);

        var winner = Assert.Single(outcomes, o => o.Lease is not null);
        Assert.All(outcomes.Where(o => o.Lease is null), o => Assert.Equal(BackupErrorCode.LeaseHeld, o.Error!.Code));
        Assert.All(outcomes.Where(o => o.Lease is null), o => Assert.Contains(winner.Lease!.Holder, o.Error!.Message, StringComparison.Ordinal));
        await winner.Lease!.EnsureHeldAsync();
        await winner.Lease.DisposeAsync();
    }

    [Fact]
    public async Task An_expired_lease_is_taken_over_and_its_old_holder_learns_it_lost_it()
    {
        var old = await Store.AcquireLeaseAsync("backups/b-1", "crashed-writer", TimeSpan.FromSeconds(10));
        Time.Advance(TimeSpan.FromSeconds(9));
        await Assert.ThrowsAsync<BackupException>(() => CreateStore().AcquireLeaseAsync("backups/b-1", "new-writer", TimeSpan.FromSeconds(10)));

        Time.Advance(TimeSpan.FromSeconds(1));
        await using var taken = await CreateStore().AcquireLeaseAsync("backups/b-1", "new-writer", TimeSpan.FromSeconds(10));
        await taken.EnsureHeldAsync();

        var lost = await Assert.ThrowsAsync<BackupException>(() => old.EnsureHeldAsync());
        Assert.Equal(BackupErrorCode.LeaseLost, lost.Code);
        Assert.Contains("new-writer", lost.Message, StringComparison.Ordinal);
        Assert.False(string.IsNullOrWhiteSpace(lost.Remedy));

        var renewLost = await Assert.ThrowsAsync<BackupException>(() => old.RenewAsync());
        Assert.Equal(BackupErrorCode.LeaseLost, renewLost.Code);

        // The old holder's release must not free the new holder's lease.
        await old.DisposeAsync();
        await taken.EnsureHeldAsync();
        var held = await Assert.ThrowsAsync<BackupException>(() => Store.AcquireLeaseAsync("backups/b-1", "third-writer", TimeSpan.FromSeconds(10)));
        Assert.Contains("new-writer", held.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Concurrent_takeovers_of_an_expired_lease_have_exactly_one_winner()
    {
        _ = await Store.AcquireLeaseAsync("backups/b-1", "crashed-writer", TimeSpan.FromSeconds(5));
        Time.Advance(TimeSpan.FromSeconds(6));
        var clients = new[] { Store, CreateStore() };
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var racing = Enumerable.Range(0, 8).Select(i => Task.Run(() => TryAcquire(clients[i % 2], "backups/b-1", $"writer-{i}", start.Task))).ToArray();
        start.SetResult();
        var outcomes = await Task.WhenAll(racing);

        var winner = Assert.Single(outcomes, o => o.Lease is not null);
        Assert.All(outcomes.Where(o => o.Lease is null), o => Assert.Equal(BackupErrorCode.LeaseHeld, o.Error!.Code));
        await winner.Lease!.EnsureHeldAsync();
    }

    [Fact]
    public async Task Renewing_extends_the_lease_past_its_first_expiry()
    {
        await using var lease = await Store.AcquireLeaseAsync("backups/b-1", "writer-a", TimeSpan.FromSeconds(10));
        Time.Advance(TimeSpan.FromSeconds(8));

        await lease.RenewAsync();

        Assert.Equal(Start + TimeSpan.FromSeconds(18), lease.ExpiresAt);
        Time.Advance(TimeSpan.FromSeconds(8)); // 16 s after acquiring: past the first expiry
        await lease.EnsureHeldAsync();
        var ex = await Assert.ThrowsAsync<BackupException>(() => CreateStore().AcquireLeaseAsync("backups/b-1", "writer-b", TimeSpan.FromSeconds(10)));
        Assert.Equal(BackupErrorCode.LeaseHeld, ex.Code);
        Assert.Contains("2026-01-05T09:00:18", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_expired_lease_that_no_one_took_over_fails_EnsureHeld_but_renewing_takes_it_back()
    {
        await using var lease = await Store.AcquireLeaseAsync("backups/b-1", "writer-a", TimeSpan.FromSeconds(10));
        Time.Advance(TimeSpan.FromSeconds(11));

        var ex = await Assert.ThrowsAsync<BackupException>(() => lease.EnsureHeldAsync());
        Assert.Equal(BackupErrorCode.LeaseLost, ex.Code);

        await lease.RenewAsync();
        await lease.EnsureHeldAsync();
        Assert.Equal(Start + TimeSpan.FromSeconds(21), lease.ExpiresAt);
    }

    [Fact]
    public async Task Disposing_a_lease_releases_it_at_once()
    {
        var lease = await Store.AcquireLeaseAsync("backups/b-1", "writer-a", TimeSpan.FromMinutes(10));
        await lease.DisposeAsync();
        await lease.DisposeAsync(); // twice is fine

        await using var next = await CreateStore().AcquireLeaseAsync("backups/b-1", "writer-b", TimeSpan.FromMinutes(10));
        await next.EnsureHeldAsync();
    }

    [Fact]
    public async Task Leases_of_different_names_are_independent_and_are_not_objects()
    {
        await using var one = await Store.AcquireLeaseAsync("backups/b-1", "writer-a", TimeSpan.FromSeconds(30));
        await using var two = await CreateStore().AcquireLeaseAsync("backups/b-2", "writer-b", TimeSpan.FromSeconds(30));
        await using var nested = await Store.AcquireLeaseAsync("backups/b-1/part", "writer-c", TimeSpan.FromSeconds(30));
        await using var flat = await Store.AcquireLeaseAsync("backups", "writer-d", TimeSpan.FromSeconds(30));

        await one.EnsureHeldAsync();
        await two.EnsureHeldAsync();
        Assert.Empty(await ListAsync(Store, string.Empty));
        Assert.Null(await Store.TryReadAsync("backups/b-1"));
        Assert.True(await Store.TryCreateAsync("backups/b-1", Content(3, seed: 1)));
        Assert.Equal(["backups/b-1"], (await ListAsync(Store, string.Empty)).Select(o => o.Key));
    }

    [Fact]
    public async Task Writers_racing_for_a_lease_round_after_round_have_one_holder_at_a_time()
    {
        // Each round, nine writers on three clients race for the lease: one wins, the others are told who won.
        // The winner renews while a late writer asks (each renewal writes a generation and deletes old ones),
        // then either releases the lease or lets it lapse, for the next round to take over.
        var clients = new[] { Store, CreateStore(), CreateStore() };
        StoreLease? lapsed = null;
        for (var round = 0; round < 5; round++)
        {
            var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var racing = Enumerable.Range(0, 9).Select(i => Task.Run(() => TryAcquire(clients[i % 3], "backups/b-1", $"round-{round}-writer-{i}", start.Task))).ToArray();
            start.SetResult();
            var outcomes = await Task.WhenAll(racing);

            var winner = Assert.Single(outcomes, o => o.Lease is not null).Lease!;
            Assert.All(outcomes.Where(o => o.Lease is null), o => Assert.Equal(BackupErrorCode.LeaseHeld, o.Error!.Code));
            Assert.All(outcomes.Where(o => o.Lease is null), o => Assert.Contains(winner.Holder, o.Error!.Message, StringComparison.Ordinal));
            if (lapsed is not null)
            {
                // The last round's holder let its lease lapse: it learns it lost it, and its late release frees nothing.
                var lost = await Assert.ThrowsAsync<BackupException>(() => lapsed.EnsureHeldAsync());
                Assert.Equal(BackupErrorCode.LeaseLost, lost.Code);
                Assert.Contains(winner.Holder, lost.Message, StringComparison.Ordinal);
                await lapsed.DisposeAsync();
                await winner.EnsureHeldAsync();
                lapsed = null;
            }

            var late = Task.Run(() => TryAcquire(clients[round % 3], "backups/b-1", $"round-{round}-late", Task.CompletedTask));
            for (var renewal = 0; renewal < 3; renewal++)
            {
                await winner.RenewAsync();
            }

            var lateOutcome = await late;
            Assert.Null(lateOutcome.Lease);
            Assert.Equal(BackupErrorCode.LeaseHeld, lateOutcome.Error!.Code);
            await winner.EnsureHeldAsync();

            if (round % 2 == 0)
            {
                await winner.DisposeAsync();
            }
            else
            {
                Time.Advance(TimeSpan.FromSeconds(31));
                lapsed = winner;
            }
        }
    }

    [Fact]
    public async Task A_generation_re_created_below_the_newest_by_a_stalled_writer_never_takes_the_lease()
    {
        // The holder renews: generations 1 to 4, of which 1 and 2 are deleted again.
        await using var holder = await Store.AcquireLeaseAsync("backups/b-1", "holder", TimeSpan.FromSeconds(30));
        for (var i = 0; i < 3; i++)
        {
            await holder.RenewAsync();
        }

        // A writer that read generation 1 long ago, when it was free, wakes up and creates generation 2 again,
        // naming itself the holder for an hour.
        await PutPastTheApiAsync("leases/backups__b-1/00000000000000000002", LeaseRecordJson("backups/b-1", 2, "stalled-writer", Start + TimeSpan.FromHours(1)));

        // Generation 4 is still the lease's state: the holder holds it, a third writer is told so, and renewing goes on.
        await holder.EnsureHeldAsync();
        var refused = await Assert.ThrowsAsync<BackupException>(() => CreateStore().AcquireLeaseAsync("backups/b-1", "third-writer", TimeSpan.FromSeconds(30)));
        Assert.Equal(BackupErrorCode.LeaseHeld, refused.Code);
        Assert.Contains("'holder'", refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("stalled-writer", refused.Message, StringComparison.Ordinal);
        await holder.RenewAsync();
        await holder.EnsureHeldAsync();
        Assert.Empty(await ListAsync(Store, string.Empty));
    }

    [Fact]
    public async Task A_lease_record_that_is_not_one_of_that_lease_is_refused_naming_the_lease()
    {
        await using var held = await Store.AcquireLeaseAsync("backups/b-1", "writer-a", TimeSpan.FromSeconds(30));
        await PutPastTheApiAsync("leases/backups__b-1/00000000000000000009", "not a lease"u8.ToArray());

        var acquire = await Assert.ThrowsAsync<BackupException>(() => CreateStore().AcquireLeaseAsync("backups/b-1", "writer-b", TimeSpan.FromSeconds(30)));
        var ensure = await Assert.ThrowsAsync<BackupException>(() => held.EnsureHeldAsync());
        foreach (var ex in new[] { acquire, ensure })
        {
            Assert.Equal(BackupErrorCode.StoreUnavailable, ex.Code);
            Assert.Equal("lease 'backups/b-1'", ex.Item);
            Assert.Contains("leases/backups__b-1/00000000000000000009", ex.Message, StringComparison.Ordinal);
            Assert.Contains("altered", ex.Remedy, StringComparison.Ordinal);
        }

        // A record of another lease where this one's should be is refused too.
        await using var other = await Store.AcquireLeaseAsync("backups/b-2", "writer-a", TimeSpan.FromSeconds(30));
        await PutPastTheApiAsync("leases/backups__b-2/00000000000000000005", LeaseRecordJson("backups/b-3", 5, "writer-c", Start + TimeSpan.FromHours(1)));
        var foreign = await Assert.ThrowsAsync<BackupException>(() => CreateStore().AcquireLeaseAsync("backups/b-2", "writer-b", TimeSpan.FromSeconds(30)));
        Assert.Equal(BackupErrorCode.StoreUnavailable, foreign.Code);
        Assert.Contains("not a record of the lease 'backups/b-2'", foreign.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Lease_names_that_differ_only_in_slashes_and_underscores_or_past_200_characters_are_different_leases()
    {
        string[] names =
        [
            "a/b", "a_b", "a__b", "a_/b", "a/_b", "a/-b", "a_-b", "a-/b",
            new string('x', 299) + "1", new string('x', 299) + "2", string.Join('/', Enumerable.Repeat("long_segment", 30)),
        ];
        var leases = new List<StoreLease>();
        for (var i = 0; i < names.Length; i++)
        {
            leases.Add(await Store.AcquireLeaseAsync(names[i], $"writer-{i}", TimeSpan.FromSeconds(30)));
        }

        for (var i = 0; i < names.Length; i++)
        {
            var ex = await Assert.ThrowsAsync<BackupException>(() => CreateStore().AcquireLeaseAsync(names[i], "other", TimeSpan.FromSeconds(30)));
            Assert.Equal(BackupErrorCode.LeaseHeld, ex.Code);
            Assert.Contains($"'writer-{i}'", ex.Message, StringComparison.Ordinal);
            await leases[i].EnsureHeldAsync();
            await leases[i].DisposeAsync();
        }

        Assert.Empty(await ListAsync(Store, string.Empty));
    }

    [Fact]
    public async Task Keys_under_leases_are_not_objects_and_no_listing_shows_a_lease_record()
    {
        await using var lease = await Store.AcquireLeaseAsync("backups/b-1", "writer-a", TimeSpan.FromSeconds(30));
        await using var named = await Store.AcquireLeaseAsync("leases/x", "writer-a", TimeSpan.FromSeconds(30));
        Assert.True(await Store.TryCreateAsync("leasesX/a", Content(3, seed: 1)));
        Assert.True(await Store.TryCreateAsync("le", Content(4, seed: 2)));

        foreach (var key in new[] { "leases", "leases/x", "leases/backups__b-1/00000000000000000001" })
        {
            await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.TryCreateAsync(key, Content(1, seed: 1)));
            await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.TryReadAsync(key));
            await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.DeleteAsync(key));
        }

        await Assert.ThrowsAnyAsync<ArgumentException>(() => ListAsync(Store, "leases/"));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => ListAsync(Store, "leases/backups__b-1/"));
        foreach (var prefix in new[] { string.Empty, "l", "le", "leases", "leasesX" })
        {
            var listed = (await ListAsync(CreateStore(), prefix)).Select(o => o.Key);
            Assert.Equal(new[] { "le", "leasesX/a" }.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)), listed);
        }

        await lease.EnsureHeldAsync();
        await named.EnsureHeldAsync();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(999)]
    [InlineData(3_600_001)]
    [InlineData(-1000)]
    public async Task Lease_durations_outside_1_second_to_1_hour_are_refused(int milliseconds)
    {
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.AcquireLeaseAsync("backups/b-1", "writer", TimeSpan.FromMilliseconds(milliseconds)));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3600)]
    public async Task Lease_durations_of_1_second_and_1_hour_are_allowed(int seconds)
    {
        await using var lease = await Store.AcquireLeaseAsync("backups/b-1", "writer", TimeSpan.FromSeconds(seconds));
        Assert.Equal(Start + TimeSpan.FromSeconds(seconds), lease.ExpiresAt);
    }

    // ---- cancellation ----

    [Fact]
    public async Task Cancelled_operations_throw_OperationCanceledException_and_change_nothing()
    {
        Assert.True(await Store.TryCreateAsync("data/kept", Content(10, seed: 1)));
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Store.TryCreateAsync("data/new", Content(10, seed: 2), cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Store.TryReadAsync("data/kept", cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Store.DeleteAsync("data/kept", cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ListAsync(Store, "data/", cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Store.AcquireLeaseAsync("backups/b-1", "writer", TimeSpan.FromSeconds(10), cancelled.Token));

        Assert.Null(await Store.TryReadAsync("data/new"));
        Assert.Equal(Content(10, seed: 1), await Store.TryReadAsync("data/kept"));
        await using var lease = await Store.AcquireLeaseAsync("backups/b-1", "writer", TimeSpan.FromSeconds(10));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => lease.RenewAsync(cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => lease.EnsureHeldAsync(cancelled.Token));
    }

    [Fact]
    public async Task A_write_cancelled_midway_leaves_the_object_absent_or_whole()
    {
        var content = RandomNumberGenerator.GetBytes(8 << 20);
        for (var delay = 0; delay <= 8; delay += 4)
        {
            var key = $"data/cancelled-{delay}";
            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(delay));
            try
            {
                Assert.True(await Store.TryCreateAsync(key, content, cts.Token));
            }
            catch (OperationCanceledException)
            {
            }

            var read = await CreateStore().TryReadAsync(key);
            Assert.True(read is null || read.AsSpan().SequenceEqual(content), $"{key} is partial");
        }

        Assert.All(await ListAsync(Store, "data/"), o => Assert.Equal(content.Length, o.Length));
    }

    // ---- a model ----

    /// <summary>Any sequence of creates, reads, deletes and listings behaves as on a sorted dictionary.</summary>
    [Property(MaxTest = 40)]
    public async Task<bool> Operations_behave_like_a_sorted_dictionary((byte Op, byte Key, byte Size)[] operations)
    {
        // Keys of one run live under a fresh prefix; none is a folder of another, none differs from another only in case.
        string[] names = ["k", "k-1", "k.2", "L", "k_3/x", "k_3/y", "d/k", "d-k", "d0", "d/e/f"];
        var run = $"run-{Guid.NewGuid():N}/";
        var clients = new[] { Store, CreateStore() };
        var model = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var (op, keyIndex, size) in operations)
        {
            var client = clients[op % 2];
            var key = run + names[keyIndex % names.Length];
            switch (op % 4)
            {
                case 0:
                    var content = Content(size, seed: keyIndex);
                    var created = await client.TryCreateAsync(key, content);
                    if (created != model.TryAdd(key, content))
                    {
                        return false;
                    }

                    break;
                case 1:
                    var read = await client.TryReadAsync(key);
                    if (model.TryGetValue(key, out var expected) ? read is null || !read.AsSpan().SequenceEqual(expected) : read is not null)
                    {
                        return false;
                    }

                    break;
                case 2:
                    if (await client.DeleteAsync(key) != model.Remove(key))
                    {
                        return false;
                    }

                    break;
                default:
                    var prefix = run + names[keyIndex % names.Length][..1];
                    var listed = await ListAsync(client, prefix);
                    var modelled = model.Where(e => e.Key.StartsWith(prefix, StringComparison.Ordinal)).Select(e => new StoreObject(e.Key, e.Value.Length));
                    if (!listed.SequenceEqual(modelled))
                    {
                        return false;
                    }

                    break;
            }
        }

        return (await ListAsync(Store, run)).SequenceEqual(model.Select(e => new StoreObject(e.Key, e.Value.Length)));
    }

    // ---- helpers ----

    /// <summary>Deterministic content: <paramref name="length"/> bytes that differ from those of another seed.</summary>
    protected static byte[] Content(int length, byte seed)
    {
        var bytes = new byte[length];
        for (var i = 0; i < length; i++)
        {
            bytes[i] = (byte)((seed * 251) + (i * 31) + (i >> 8));
        }

        return bytes;
    }

    /// <summary>Reads a whole listing.</summary>
    protected static async Task<List<StoreObject>> ListAsync(BackupStore store, string prefix, CancellationToken cancellationToken = default)
    {
        var objects = new List<StoreObject>();
        await foreach (var o in store.ListAsync(prefix, cancellationToken))
        {
            objects.Add(o);
        }

        return objects;
    }

    /// <summary>A lease record as the lease protocol stores it (UTF-8 JSON), held by <paramref name="holder"/> until <paramref name="expiresAt"/>.</summary>
    private static byte[] LeaseRecordJson(string leaseName, long generation, string holder, DateTimeOffset expiresAt) =>
        System.Text.Encoding.UTF8.GetBytes(
            $$"""{"lease":"{{leaseName}}","generation":{{generation}},"holder":"{{holder}}","token":"{{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16))}}","expiresAt":"{{expiresAt.ToUniversalTime().ToString("O", System.Globalization.CultureInfo.InvariantCulture)}}","released":false}""");

    private static async Task<(StoreLease? Lease, BackupException? Error)> TryAcquire(BackupStore store, string name, string holder, Task start)
    {
        await start;
        try
        {
            return (await store.AcquireLeaseAsync(name, holder, TimeSpan.FromSeconds(30)), null);
        }
        catch (BackupException ex)
        {
            return (null, ex);
        }
    }
}
