namespace KmsBackup;

/// <summary>
/// What has run for a backup, as much as the schedule needs: the last completed full and the slot of
/// the last completed incremental. Immutable; <see cref="BackupScheduler.Record"/> makes the next one.
/// Entries from before the backup was last enabled are ignored.
/// </summary>
internal sealed record ScheduleHistory
{
    /// <summary>No run yet.</summary>
    public static ScheduleHistory Empty { get; } = new();

    /// <summary>When the last completed full backup started.</summary>
    public DateTimeOffset? LastFullStartedAt { get; init; }

    /// <summary>When the last full backup completed; incrementals are due every interval after it.</summary>
    public DateTimeOffset? LastFullCompletedAt { get; init; }

    /// <summary>The grid instant (last full's completion + k × interval) the last incremental ran for; <see langword="null"/> if none ran since the last full.</summary>
    public DateTimeOffset? LastIncrementalSlot { get; init; }
}

/// <summary>Full or incremental.</summary>
public enum BackupRunKind
{
    /// <summary>A full backup: every key and secret of the instance.</summary>
    Full = 1,

    /// <summary>An incremental backup: what changed since the last recovery point.</summary>
    Incremental = 2,
}

/// <summary>Why a run is due (rules S1–S4).</summary>
public enum ScheduleReason
{
    /// <summary>The first run after enabling: a full backup at once (S1).</summary>
    FirstFull = 1,

    /// <summary>The daily full at the configured local time (S2).</summary>
    DailyFull = 2,

    /// <summary>A daily full that was missed (the host was down or late): one full now, the missed days are not replayed (S4).</summary>
    CatchUpFull = 3,

    /// <summary>An incremental on the grid after the last full (S3).</summary>
    Incremental = 4,

    /// <summary>One incremental that covers a gap in which grid instants were missed (S4).</summary>
    CatchUpIncremental = 5,
}

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

/// <summary>The next run of a backup: what, when, and why.</summary>
public sealed class ScheduledRun
{
    internal ScheduledRun(BackupRunKind kind, DateTimeOffset dueAt, ScheduleReason reason)
    {
        Kind = kind;
        DueAt = dueAt;
        Reason = reason;
    }

    /// <summary>Full or incremental.</summary>
    public BackupRunKind Kind { get; }

    /// <summary>When the run is (or was) due; in the past when it is late.</summary>
    public DateTimeOffset DueAt { get; }

    /// <summary>Why it is due.</summary>
    public ScheduleReason Reason { get; }

    /// <summary>Whether the run should start at <paramref name="now"/>.</summary>
    /// <param name="now">The current instant.</param>
    internal bool IsDue(DateTimeOffset now) => now >= DueAt;

    /// <summary>The run in one line, e.g. <c>Full due 2024-05-02T00:00:00.0000000+00:00 (DailyFull)</c>.</summary>
    public override string ToString() => $"{Kind} due {DueAt:O} ({Reason})";
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
