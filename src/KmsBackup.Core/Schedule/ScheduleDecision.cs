namespace KmsBackup.Domain;

/// <summary>Why nothing is scheduled for a backup (rule S5).</summary>
internal enum ScheduleIdleReason
{
    /// <summary>The backup is unbound (<c>Disabled</c>).</summary>
    NotBound = 1,

    /// <summary>The purchased backup has expired.</summary>
    Expired = 2,

    /// <summary>The backup has been released.</summary>
    Released = 3,

    /// <summary>The backup's instance has been released: it takes no new data.</summary>
    InstanceReleased = 4,

    /// <summary>An uploaded backup holds its file's data and backs up no instance.</summary>
    Uploaded = 5,
}

/// <summary>What the schedule says for a backup now: the next run, or why there is none.</summary>
internal sealed class ScheduleDecision
{
    private ScheduleDecision(ScheduledRun? run, ScheduleIdleReason? idleReason)
    {
        Run = run;
        IdleReason = idleReason;
    }

    /// <summary>The next run; <see langword="null"/> when nothing runs.</summary>
    public ScheduledRun? Run { get; }

    /// <summary>Why nothing runs; <see langword="null"/> when a run is scheduled.</summary>
    public ScheduleIdleReason? IdleReason { get; }

    /// <summary>The decision in one line.</summary>
    public override string ToString() => Run?.ToString() ?? $"Idle ({IdleReason})";

    internal static ScheduleDecision For(ScheduledRun run) => new(run, null);

    internal static ScheduleDecision Idle(ScheduleIdleReason reason) => new(null, reason);
}
