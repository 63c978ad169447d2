namespace Sample2_HostApp;

/// <summary>
/// A clock that starts at a chosen instant and runs <c>speed</c> times faster than real time, timers
/// included, so that the scheduler's hours pass in seconds (for <c>--simulate</c>).
/// </summary>
internal sealed class AcceleratedTimeProvider(DateTimeOffset start, double speed) : TimeProvider
{
    private readonly long _origin = System.GetTimestamp();

    public override DateTimeOffset GetUtcNow() => start + (System.GetElapsedTime(_origin) * speed);

    public override long GetTimestamp() => (long)((System.GetTimestamp() - _origin) * speed);

    public override long TimestampFrequency => System.TimestampFrequency;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        new ScaledTimer(System.CreateTimer(callback, state, Scale(dueTime), Scale(period)), this);

    private TimeSpan Scale(TimeSpan span) => span == Timeout.InfiniteTimeSpan || span == TimeSpan.Zero ? span : span / speed;

    private sealed class ScaledTimer(ITimer inner, AcceleratedTimeProvider clock) : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period) => inner.Change(clock.Scale(dueTime), clock.Scale(period));

        public void Dispose() => inner.Dispose();

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
