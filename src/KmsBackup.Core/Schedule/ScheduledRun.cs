namespace KmsBackup;

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
    public override string ToString() => $"{Kind} due {ViewableWindow.Iso(DueAt)} ({Reason})";
}
