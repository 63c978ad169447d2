namespace KmsBackup.Domain;

/// <summary>
/// The schedule (rules S1–S6) as pure functions: from a backup's state, what has run, the policy and
/// the current instant, the next run and when it is due; and the history after a run completes.
/// </summary>
/// <remarks>
/// <para>The first run after enabling is a full, at once. Then a full is due at the daily time in the
/// backup's zone, and incrementals on a grid of the interval after each full completes, until the next
/// full. Days of 23 or 25 hours simply hold fewer or more grid instants.</para>
/// <para>After downtime nothing is replayed: if a daily full was missed, one full runs now; otherwise
/// one incremental runs now and covers the whole gap, and the grid resumes from the next instant after
/// it (<see cref="Record"/> counts the incremental for the latest grid instant it passed).</para>
/// </remarks>
internal static class BackupScheduler
{
    /// <summary>What runs next for <paramref name="state"/> at <paramref name="now"/>.</summary>
    /// <param name="state">The backup.</param>
    /// <param name="history">What has run.</param>
    /// <param name="policy">The schedule.</param>
    /// <param name="now">The current instant.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.InvalidScheduleOption"/>: the policy is not valid.</exception>
    public static ScheduleDecision Next(BackupState state, ScheduleHistory history, BackupSchedulePolicy policy, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(history);
        ArgumentNullException.ThrowIfNull(policy);
        policy.ThrowIfInvalid();

        var current = BackupLifecycle.Advance(state, now).State;
        if (IdleReasonOf(current) is { } idle)
        {
            return ScheduleDecision.Idle(idle);
        }

        var enabledAt = current.EnabledAt!.Value;
        var lastFullStart = history.LastFullStartedAt is { } started && started >= enabledAt ? started : (DateTimeOffset?)null;
        if (lastFullStart is null || history.LastFullCompletedAt is not { } fullDone)
        {
            return ScheduleDecision.For(new ScheduledRun(BackupRunKind.Full, enabledAt, ScheduleReason.FirstFull));
        }

        var zone = current.TimeZone;
        var slotDate = zone.DateOf(now);
        var slot = zone.At(slotDate, policy.DailyFullTime);
        if (slot > now)
        {
            slotDate = slotDate.AddDays(-1);
            slot = zone.At(slotDate, policy.DailyFullTime);
        }

        if (lastFullStart < slot)
        {
            var reason = now - slot >= policy.IncrementalInterval ? ScheduleReason.CatchUpFull : ScheduleReason.DailyFull;
            return ScheduleDecision.For(new ScheduledRun(BackupRunKind.Full, slot, reason));
        }

        var nextSlot = zone.At(slotDate.AddDays(1), policy.DailyFullTime);
        var interval = policy.IncrementalInterval;
        long k = 1;
        if (history.LastIncrementalSlot is { } lastSlot && lastSlot > fullDone)
        {
            k = ((lastSlot - fullDone).Ticks / interval.Ticks) + 1;
        }

        var due = fullDone + TimeSpan.FromTicks(interval.Ticks * k);
        if (due >= nextSlot)
        {
            return ScheduleDecision.For(new ScheduledRun(BackupRunKind.Full, nextSlot, ScheduleReason.DailyFull));
        }

        var incrementalReason = now - due >= interval ? ScheduleReason.CatchUpIncremental : ScheduleReason.Incremental;
        return ScheduleDecision.For(new ScheduledRun(BackupRunKind.Incremental, due, incrementalReason));
    }

    /// <summary>
    /// The history after <paramref name="kind"/> ran from <paramref name="startedAt"/> to
    /// <paramref name="completedAt"/>. An incremental counts for the latest grid instant it started at or
    /// after, so instants missed during downtime are never run one by one (rule S4).
    /// </summary>
    /// <param name="history">The history before the run.</param>
    /// <param name="kind">What ran.</param>
    /// <param name="startedAt">When it started.</param>
    /// <param name="completedAt">When it completed, not before <paramref name="startedAt"/>.</param>
    /// <param name="policy">The schedule.</param>
    /// <exception cref="ArgumentException"><paramref name="completedAt"/> is before <paramref name="startedAt"/>, or an incremental is recorded before any full.</exception>
    public static ScheduleHistory Record(ScheduleHistory history, BackupRunKind kind, DateTimeOffset startedAt, DateTimeOffset completedAt, BackupSchedulePolicy policy)
    {
        ArgumentNullException.ThrowIfNull(history);
        ArgumentNullException.ThrowIfNull(policy);
        policy.ThrowIfInvalid();
        if (completedAt < startedAt)
        {
            throw new ArgumentException("A run cannot complete before it starts.", nameof(completedAt));
        }

        if (kind == BackupRunKind.Full)
        {
            return new ScheduleHistory { LastFullStartedAt = startedAt, LastFullCompletedAt = completedAt };
        }

        if (history.LastFullCompletedAt is not { } fullDone)
        {
            throw new ArgumentException("An incremental backup needs a full backup before it.", nameof(kind));
        }

        var interval = policy.IncrementalInterval.Ticks;
        var k = Math.Max(1, (startedAt - fullDone).Ticks / interval);
        return history with { LastIncrementalSlot = fullDone + TimeSpan.FromTicks(interval * k) };
    }

    private static ScheduleIdleReason? IdleReasonOf(BackupState state) => state switch
    {
        { Status: BackupStatus.Released } => ScheduleIdleReason.Released,
        { Status: BackupStatus.Expired } => ScheduleIdleReason.Expired,
        { Kind: BackupKind.Uploaded } => ScheduleIdleReason.Uploaded,
        { Status: BackupStatus.Disabled } or { Instance: null } or { EnabledAt: null } => ScheduleIdleReason.NotBound,
        { InstanceReleasedAt: not null } => ScheduleIdleReason.InstanceReleased,
        _ => null,
    };
}
