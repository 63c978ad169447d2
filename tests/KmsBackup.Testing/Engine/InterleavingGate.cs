using KmsBackup.Testing.Storage;

using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Testing.Engine;

/// <summary>
/// Where the actors of one interleaving schedule wait for the scheduler: each operation and each lease keeper that
/// reaches a store call parks here until the scheduler lets it through (or kills it). The gate counts the actors that
/// are running, so that the scheduler can wait until every one of them is parked or finished (quiescence) before it
/// chooses the next step, without sleeping.
/// </summary>
/// <remarks>
/// The actors: an operation runs from its start to its end. A lease keeper (the engine renews a run's lease on a
/// timer of the client's clock) runs from the moment its timer fires (only ever inside the scheduler's clock step)
/// to its renewal's next timer, or to the failure that stops it. Only one actor runs at a time outside clock steps.
/// </remarks>
internal sealed class InterleavingGate
{
    private readonly object _lock = new();
    private readonly List<ParkedCall> _parked = [];
    private int _running;
    private int _renewalsAwaitingTimer;
    private long _arrivals;
    private TaskCompletionSource? _quiet;

    /// <summary>Set when the counting went wrong (a bug of the test, not of the engine).</summary>
    public string? Broken { get; private set; }

    /// <summary>One store call waiting for the scheduler.</summary>
    public sealed class ParkedCall(int host, int generation, StoreCall call, long arrival)
    {
        public int Host { get; } = host;

        public int Generation { get; } = generation;

        public StoreCall Call { get; } = call;

        public long Arrival { get; } = arrival;

        public bool IsRenewal => Call.Kind == StoreCallKind.RenewLease;

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override string ToString() => $"h{Host}{(IsRenewal ? " keeper" : string.Empty)}: {Call}";
    }

    /// <summary>The parked calls in a stable order (by host, then the operation before its keeper): arrival order is up to the thread pool.</summary>
    public IReadOnlyList<ParkedCall> Parked
    {
        get
        {
            lock (_lock)
            {
                return [.. _parked.OrderBy(p => p.Host).ThenBy(p => p.IsRenewal)];
            }
        }
    }

    /// <summary>How many actors are running (neither parked nor finished).</summary>
    public int Running
    {
        get
        {
            lock (_lock)
            {
                return _running;
            }
        }
    }

    /// <summary>An operation starts.</summary>
    public void Started()
    {
        lock (_lock)
        {
            _running++;
        }
    }

    /// <summary>An operation finished, or a lease keeper stopped.</summary>
    public void Stopped()
    {
        lock (_lock)
        {
            _running--;
            SignalLocked();
        }
    }

    /// <summary>A timer of the schedule's clock fired: a lease keeper wakes up to renew.</summary>
    public void TimerFired() => Started();

    /// <summary>A keeper's renewal went through; the keeper is running until it sets its next timer.</summary>
    public void RenewalSucceeded()
    {
        lock (_lock)
        {
            _renewalsAwaitingTimer++;
        }
    }

    /// <summary>A timer was set: if a keeper just renewed, that keeper now waits for it.</summary>
    public void TimerCreated()
    {
        lock (_lock)
        {
            if (_renewalsAwaitingTimer > 0)
            {
                _renewalsAwaitingTimer--;
                _running--;
                SignalLocked();
            }
        }
    }

    /// <summary>Parks a call until the scheduler releases, fails or (for a keeper, whose run ended) cancels it.</summary>
    public Task ParkAsync(int host, int generation, StoreCall call)
    {
        ParkedCall parked;
        lock (_lock)
        {
            parked = new ParkedCall(host, generation, call, ++_arrivals);
            _parked.Add(parked);
            _running--;
            SignalLocked();
        }

        if (parked.IsRenewal && call.CancellationToken.CanBeCanceled)
        {
            // A run that ends stops its keeper and waits for it: a keeper parked in a renewal must give up then.
            var registration = call.CancellationToken.Register(() =>
            {
                bool removed;
                lock (_lock)
                {
                    removed = _parked.Remove(parked);
                }

                if (removed)
                {
                    parked.Release.TrySetCanceled(call.CancellationToken);
                }
            });
            _ = parked.Release.Task.ContinueWith(_ => registration.Dispose(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        return parked.Release.Task;
    }

    /// <summary>Lets a parked call through.</summary>
    public void Release(ParkedCall parked)
    {
        lock (_lock)
        {
            if (!_parked.Remove(parked))
            {
                return;
            }

            _running++;
        }

        parked.Release.TrySetResult();
    }

    /// <summary>Fails a parked call (its process was killed).</summary>
    public void Fail(ParkedCall parked, Exception error)
    {
        lock (_lock)
        {
            if (!_parked.Remove(parked))
            {
                return;
            }

            _running++;
        }

        parked.Release.TrySetException(error);
    }

    /// <summary>Waits until no actor runs.</summary>
    /// <exception cref="TimeoutException">Something kept running (or waits for something that never comes).</exception>
    public async Task WaitQuietAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_running == 0)
                {
                    return;
                }

                _quiet ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _quiet.Task;
            }

            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || await Task.WhenAny(wait, Task.Delay(left)) != wait)
            {
                throw new TimeoutException($"{Running} actors still running after {timeout.TotalSeconds:0} s; parked: {string.Join("; ", Parked)}");
            }
        }
    }

    private void SignalLocked()
    {
        if (_running < 0)
        {
            Broken ??= $"the gate counted {_running} running actors";
        }

        if (_running <= 0 && _quiet is { } quiet)
        {
            _quiet = null;
            quiet.TrySetResult();
        }
    }
}

/// <summary>One host's clock: the schedule's fake clock, possibly set wrong (skewed) for this host, whose timers the gate counts.</summary>
internal sealed class HostClock(FakeTimeProvider clock, InterleavingGate gate) : TimeProvider
{
    /// <summary>How far this host's clock is off the true time.</summary>
    public TimeSpan Skew { get; set; }

    public override DateTimeOffset GetUtcNow() => clock.GetUtcNow() + Skew;

    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;

    public override long TimestampFrequency => clock.TimestampFrequency;

    public override long GetTimestamp() => clock.GetTimestamp();

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        // The fake clock fires timers inside the scheduler's clock step; the keeper that wakes counts as running
        // until it parks at its renewal. Counted after the timer exists, so that no clock step can slip in between.
        var timer = clock.CreateTimer(s =>
        {
            gate.TimerFired();
            callback(s);
        }, state, dueTime, period);
        gate.TimerCreated();
        return timer;
    }
}

/// <summary>The exception a killed host's store calls throw: the process is gone.</summary>
internal sealed class HostKilledException(string message) : Exception(message);

/// <summary>
/// Sits under a host's <see cref="ControlledStore"/> and tells the gate how each lease renewal that went through
/// ended, since the keeper that made it runs on until it sets its next timer (or stops, when the renewal failed).
/// </summary>
internal sealed class RenewalProbeStore(BackupStore inner, InterleavingGate gate) : BackupStore
{
    protected override Task<bool> TryCreateCoreAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) =>
        inner.TryCreateAsync(key, content, cancellationToken);

    protected override Task<byte[]?> TryReadCoreAsync(string key, CancellationToken cancellationToken) => inner.TryReadAsync(key, cancellationToken);

    protected override IAsyncEnumerable<StoreObject> ListCoreAsync(string prefix, CancellationToken cancellationToken) => inner.ListAsync(prefix, cancellationToken);

    protected override Task<bool> DeleteCoreAsync(string key, CancellationToken cancellationToken) => inner.DeleteAsync(key, cancellationToken);

    public override async Task<StoreLease> AcquireLeaseAsync(string leaseName, string holder, TimeSpan duration, CancellationToken cancellationToken = default) =>
        new ProbedLease(await inner.AcquireLeaseAsync(leaseName, holder, duration, cancellationToken), gate);

    private sealed class ProbedLease(StoreLease lease, InterleavingGate gate) : StoreLease(lease.Name, lease.Holder, lease.ExpiresAt)
    {
        public override async Task RenewAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                await lease.RenewAsync(cancellationToken);
            }
            catch
            {
                gate.Stopped();
                throw;
            }

            ExpiresAt = lease.ExpiresAt;
            gate.RenewalSucceeded();
        }

        public override Task EnsureHeldAsync(CancellationToken cancellationToken = default) => lease.EnsureHeldAsync(cancellationToken);

        public override ValueTask DisposeAsync() => lease.DisposeAsync();
    }
}

/// <summary>
/// Repository keys made from the seed: the master secret (and so the chunking salt and every object ID) is the same
/// on every run of a seed, so that the trees, and the store calls that write and read them, replay alike. Test only:
/// the "wrapped" key in the config is a placeholder.
/// </summary>
internal sealed class SeededRepositoryKeys(int seed) : RepositoryKeyProvider
{
    private static readonly byte[] s_seeded = "seeded"u8.ToArray();
    private readonly byte[] _wrappingKey = System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(~seed));
    private int _wraps;

    public override string KeyId => "seeded";

    /// <summary>
    /// The first key wrapped (the repository's master secret) becomes the seed's own secret, so that a schedule's chunk
    /// boundaries, and so its store calls, depend on the seed alone. Keys wrapped after it (key rotations) are wrapped
    /// for real, so that every host unwraps the secret the rotating host made.
    /// </summary>
    public override Task<byte[]> WrapAsync(ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default)
    {
        if (Interlocked.Increment(ref _wraps) == 1)
        {
            return Task.FromResult(s_seeded.ToArray());
        }

        var wrapped = new byte[12 + key.Length + 16];
        System.Security.Cryptography.RandomNumberGenerator.Fill(wrapped.AsSpan(0, 12));
        using var aes = new System.Security.Cryptography.AesGcm(_wrappingKey, 16);
        aes.Encrypt(wrapped.AsSpan(0, 12), key.Span, wrapped.AsSpan(12, key.Length), wrapped.AsSpan(12 + key.Length), default);
        return Task.FromResult(wrapped);
    }

    public override Task<SensitiveBytes> UnwrapAsync(ReadOnlyMemory<byte> wrappedKey, CancellationToken cancellationToken = default)
    {
        if (wrappedKey.Span.SequenceEqual(s_seeded))
        {
            return Task.FromResult(SensitiveBytes.Own(System.Security.Cryptography.SHA512.HashData(BitConverter.GetBytes(seed))));
        }

        var w = wrappedKey.Span;
        var key = new byte[w.Length - 28];
        using var aes = new System.Security.Cryptography.AesGcm(_wrappingKey, 16);
        aes.Decrypt(w[..12], w[12..^16], w[^16..], key, default);
        return Task.FromResult(SensitiveBytes.Own(key));
    }
}
