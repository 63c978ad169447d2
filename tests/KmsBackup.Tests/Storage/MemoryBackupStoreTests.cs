using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Tests.Storage;

/// <summary>
/// The store contract on <see cref="MemoryBackupStore"/>, which implements only the four primitives: a new store
/// gets its keys, listings and leases right from <see cref="BackupStore"/> alone.
/// </summary>
public sealed class MemoryBackupStoreContractTests : BackupStoreContractTests
{
    private readonly MemoryBackupStore.Data _data = new();

    protected override BackupStore CreateStore() => new MemoryBackupStore(_data, Time);

    protected override Task PutPastTheApiAsync(string key, byte[] content)
    {
        lock (_data.Gate)
        {
            _data.Objects[key] = content;
        }

        return Task.CompletedTask;
    }
}

/// <summary>
/// The lease protocol with a writer paused in the middle of it, primitive by primitive (which no real store lets a
/// test do): a writer that stalls while others take the lease over and renew it, so that the generation it was
/// about to create is deleted meanwhile, never takes or keeps the lease when it wakes.
/// </summary>
public sealed class StoreLeaseProtocolTests
{
    private const string Lease = "backups/b-1";
    private static readonly DateTimeOffset Start = new(2026, 1, 5, 9, 0, 0, TimeSpan.Zero);

    private readonly FakeTimeProvider _time = new(Start);
    private readonly MemoryBackupStore.Data _data = new();

    private static string Generation(int number) => $"leases/backups__b-1/{number:D20}";

    [Fact]
    public async Task A_writer_stalled_before_creating_its_generation_does_not_win_when_it_creates_that_number_again()
    {
        var (stalled, other) = (Client(), Client());
        _ = await other.AcquireLeaseAsync(Lease, "crashed-writer", TimeSpan.FromSeconds(10));
        _time.Advance(TimeSpan.FromSeconds(11));
        var pause = PauseBefore(stalled, StoreCallKind.Create, Generation(2));
        var acquiring = stalled.AcquireLeaseAsync(Lease, "stalled-writer", TimeSpan.FromSeconds(30));
        await pause.Reached;

        // Meanwhile another writer takes the expired lease over and renews it twice: generations 2 to 4, and 1 and 2 deleted.
        await using var taker = await other.AcquireLeaseAsync(Lease, "taker", TimeSpan.FromSeconds(30));
        await taker.RenewAsync();
        await taker.RenewAsync();
        Assert.Equal([Generation(3), Generation(4)], _data.Keys());

        pause.Resume();
        var refused = await Assert.ThrowsAsync<BackupException>(() => acquiring);

        // It did create generation 2 again, below the newest, and then saw generation 4 and was told who holds the lease.
        Assert.Equal(BackupErrorCode.LeaseHeld, refused.Code);
        Assert.Contains("'taker'", refused.Message, StringComparison.Ordinal);
        Assert.Equal([Generation(2), Generation(3), Generation(4)], _data.Keys());
        await taker.EnsureHeldAsync();
        await taker.RenewAsync();
        Assert.Equal([Generation(4), Generation(5)], _data.Keys());
        await AssertHeldByAsync("taker");
    }

    [Fact]
    public async Task A_renewal_stalled_past_a_takeover_is_told_the_lease_was_lost_even_when_its_generation_number_was_free_again()
    {
        var (stalled, other) = (Client(), Client());
        var holder = await stalled.AcquireLeaseAsync(Lease, "slow-holder", TimeSpan.FromSeconds(10));
        _time.Advance(TimeSpan.FromSeconds(11));
        var pause = PauseBefore(stalled, StoreCallKind.Create, Generation(2));
        var renewing = holder.RenewAsync();
        await pause.Reached;

        await using var taker = await other.AcquireLeaseAsync(Lease, "taker", TimeSpan.FromSeconds(30));
        await taker.RenewAsync();
        await taker.RenewAsync();

        pause.Resume();
        var lost = await Assert.ThrowsAsync<BackupException>(() => renewing);

        Assert.Equal(BackupErrorCode.LeaseLost, lost.Code);
        Assert.Contains("taken over by 'taker'", lost.Message, StringComparison.Ordinal);
        await taker.EnsureHeldAsync();
        await AssertHeldByAsync("taker");
        await holder.DisposeAsync(); // its release frees nothing
        await AssertHeldByAsync("taker");
    }

    [Fact]
    public async Task A_release_stalled_past_a_takeover_frees_nothing()
    {
        var (stalled, other) = (Client(), Client());
        var holder = await stalled.AcquireLeaseAsync(Lease, "slow-holder", TimeSpan.FromSeconds(10));
        _time.Advance(TimeSpan.FromSeconds(11));
        var pause = PauseBefore(stalled, StoreCallKind.Create, Generation(2));
        var releasing = holder.DisposeAsync().AsTask();
        await pause.Reached;

        await using var taker = await other.AcquireLeaseAsync(Lease, "taker", TimeSpan.FromSeconds(30));
        await taker.RenewAsync();
        await taker.RenewAsync();

        pause.Resume();
        await releasing;

        await taker.EnsureHeldAsync();
        await AssertHeldByAsync("taker");
    }

    [Fact]
    public async Task A_writer_stalled_between_listing_and_reading_the_newest_generation_reads_the_newer_one()
    {
        var (stalled, other) = (Client(), Client());
        _ = await other.AcquireLeaseAsync(Lease, "crashed-writer", TimeSpan.FromSeconds(10));
        _time.Advance(TimeSpan.FromSeconds(11));
        var pause = PauseBefore(stalled, StoreCallKind.Read, Generation(1));
        var acquiring = stalled.AcquireLeaseAsync(Lease, "stalled-writer", TimeSpan.FromSeconds(30));
        await pause.Reached;

        await using var taker = await other.AcquireLeaseAsync(Lease, "taker", TimeSpan.FromSeconds(30));
        await taker.RenewAsync();
        await taker.RenewAsync();

        pause.Resume();
        var refused = await Assert.ThrowsAsync<BackupException>(() => acquiring);
        Assert.Equal(BackupErrorCode.LeaseHeld, refused.Code);
        Assert.Contains("'taker'", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failing_primitive_is_StoreUnavailable_naming_the_lease_with_the_store_s_cause_and_a_release_stays_quiet()
    {
        var (failing, other) = (Client(), Client());
        var lease = await failing.AcquireLeaseAsync(Lease, "writer", TimeSpan.FromSeconds(30));
        failing.Before = call => call.Kind == StoreCallKind.List
            ? throw new BackupException(
                new Refusal(BackupErrorCode.StoreUnavailable, $"store prefix '{call.Key}'", $"The memory store could not list the objects under '{call.Key}': injected.", "Retry."),
                new IOException("injected"))
            : Task.CompletedTask;

        var acquire = await Assert.ThrowsAsync<BackupException>(() => failing.AcquireLeaseAsync("backups/b-2", "writer", TimeSpan.FromSeconds(30)));
        var renew = await Assert.ThrowsAsync<BackupException>(() => lease.RenewAsync());
        var ensure = await Assert.ThrowsAsync<BackupException>(() => lease.EnsureHeldAsync());
        foreach (var (ex, action) in new[] { (acquire, "acquire"), (renew, "renew"), (ensure, "check") })
        {
            Assert.Equal(BackupErrorCode.StoreUnavailable, ex.Code);
            Assert.StartsWith("lease 'backups/b-", ex.Item, StringComparison.Ordinal);
            Assert.Contains($"Could not {action} the lease", ex.Message, StringComparison.Ordinal);
            Assert.Contains("injected", ex.Message, StringComparison.Ordinal);
            Assert.Equal("Retry.", ex.Remedy);
            Assert.IsType<IOException>(ex.InnerException);
        }

        await lease.DisposeAsync(); // releasing is a courtesy: the lease is left to expire
        await AssertHeldByAsync("writer", other);
    }

    [Fact]
    public async Task An_acquisition_cancelled_once_its_generation_exists_is_still_judged_to_the_end()
    {
        var client = Client();
        using var cancel = new CancellationTokenSource();
        client.Before = async call =>
        {
            // Cancelled right after the generation was created: the check that follows runs anyway.
            if (call.Kind == StoreCallKind.List && _data.Keys().Contains(Generation(1)))
            {
                await cancel.CancelAsync();
            }
        };

        await using var lease = await client.AcquireLeaseAsync(Lease, "writer", TimeSpan.FromSeconds(30), cancel.Token);

        client.Before = null;
        await lease.EnsureHeldAsync();
    }

    private MemoryBackupStore Client() => new(_data, _time);

    private async Task AssertHeldByAsync(string holder, BackupStore? store = null)
    {
        var ex = await Assert.ThrowsAsync<BackupException>(() => (store ?? Client()).AcquireLeaseAsync(Lease, "someone-else", TimeSpan.FromSeconds(30)));
        Assert.Equal(BackupErrorCode.LeaseHeld, ex.Code);
        Assert.Contains($"'{holder}'", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>Pauses the first call of <paramref name="kind"/> on <paramref name="key"/> by <paramref name="client"/> until resumed.</summary>
    private static Pause PauseBefore(MemoryBackupStore client, StoreCallKind kind, string key)
    {
        var pause = new Pause();
        client.Before = async call =>
        {
            if (call.Kind == kind && call.Key == key)
            {
                client.Before = null;
                pause.Arrive();
                await pause.Resumed;
            }
        };

        return pause;
    }

    private sealed class Pause
    {
        private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _resumed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Reached => _reached.Task;

        public Task Resumed => _resumed.Task;

        public void Arrive() => _reached.SetResult();

        public void Resume() => _resumed.SetResult();
    }
}
