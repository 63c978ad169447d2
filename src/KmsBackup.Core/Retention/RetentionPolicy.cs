namespace KmsBackup.Domain;

/// <summary>Why a date's data is kept (restic's keep-reasons are the model).</summary>
[Flags]
#pragma warning disable CA1714 // Flags enums should have plural names: each value is one reason.
internal enum KeepReason
#pragma warning restore CA1714
{
    /// <summary>No reason.</summary>
    None = 0,

    /// <summary>The date is in today's viewable window.</summary>
    Viewable = 1 << 0,

    /// <summary>The date is outside the window, but extending the viewable days (up to 600) would reveal it.</summary>
    ReachableByExtending = 1 << 1,

    /// <summary>The backup has expired; its data is kept until it is released, in case it is renewed.</summary>
    AwaitingRenewal = 1 << 2,

    /// <summary>The date an uploaded backup's file held.</summary>
    UploadedContent = 1 << 3,

    /// <summary>The date is after today (the clock went back); kept rather than risk losing data.</summary>
    AfterToday = 1 << 4,
}

/// <summary>Why a date's data is deleted.</summary>
internal enum PruneReason
{
    /// <summary>Older than the days the backup's kind retains (90 automatic, 7 default, 600 purchased).</summary>
    PastRetention = 1,

    /// <summary>From before the backup was last enabled: never reachable (rule W2).</summary>
    BeforeEnabled = 2,

    /// <summary>The backup holds no data (reset or never enabled).</summary>
    NotEnabled = 3,

    /// <summary>The backup has been released.</summary>
    BackupReleased = 4,

    /// <summary>Not the date an uploaded backup's file held.</summary>
    NotUploaded = 5,
}

/// <summary>A date whose data is kept, with every reason.</summary>
/// <param name="Date">The date.</param>
/// <param name="Reasons">Why it is kept.</param>
internal sealed record RetainedDate(DateOnly Date, KeepReason Reasons);

/// <summary>A date whose data is deleted, and why.</summary>
/// <param name="Date">The date.</param>
/// <param name="Reason">Why it is deleted.</param>
internal sealed record PrunedDate(DateOnly Date, PruneReason Reason);

/// <summary>Which dates a backup keeps and which it deletes, each with its reason.</summary>
internal sealed class RetentionDecision
{
    internal RetentionDecision(IReadOnlyList<RetainedDate> keep, IReadOnlyList<PrunedDate> prune)
    {
        Keep = keep;
        Prune = prune;
    }

    /// <summary>The dates kept, oldest first.</summary>
    public IReadOnlyList<RetainedDate> Keep { get; }

    /// <summary>The dates deleted, oldest first.</summary>
    public IReadOnlyList<PrunedDate> Prune { get; }

    /// <summary>The decision in one line.</summary>
    public override string ToString() => $"keep {Keep.Count} dates, prune {Prune.Count}";
}

/// <summary>
/// Retention (rule W5) as a pure function. Retention is not visibility: a backup keeps every date its
/// window can ever reach — 90 days for an automatic backup, 7 for a default one, 600 since enabling for
/// a purchased one (so that extending reveals older data), the held date for an uploaded one — and
/// nothing from before it was enabled. Everything else is pruned.
/// </summary>
internal static class RetentionPolicy
{
    /// <summary>Decides, for each date with data, whether the backup keeps it at <paramref name="now"/>.</summary>
    /// <param name="state">The backup.</param>
    /// <param name="datesWithData">The dates the backup holds data of, in any order; duplicates are ignored.</param>
    /// <param name="now">The current instant.</param>
    public static RetentionDecision Evaluate(BackupState state, IEnumerable<DateOnly> datesWithData, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(datesWithData);

        var current = BackupLifecycle.Advance(state, now).State;
        var keep = new List<RetainedDate>();
        var prune = new List<PrunedDate>();
        foreach (var date in datesWithData.Distinct().Order())
        {
            var (reasons, pruneReason) = Decide(current, date, now);
            if (reasons != KeepReason.None)
            {
                keep.Add(new RetainedDate(date, reasons));
            }
            else
            {
                prune.Add(new PrunedDate(date, pruneReason));
            }
        }

        return new RetentionDecision(keep, prune);
    }

    /// <summary>The oldest date the backup keeps at <paramref name="now"/>, or <see langword="null"/> when it keeps nothing.</summary>
    /// <param name="state">The backup.</param>
    /// <param name="now">The current instant.</param>
    public static DateOnly? OldestRetainedDate(BackupState state, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(state);
        var current = BackupLifecycle.Advance(state, now).State;
        if (current.Status == BackupStatus.Released || current.EnabledOn is not { } enabledOn)
        {
            return null;
        }

        if (current.UploadedDate is { } held)
        {
            return held;
        }

        var today = current.WindowAt(now)!.Value.End;
        var oldest = DateOnly.FromDayNumber(today.DayNumber - (RetainedDays(current) - 1));
        return oldest < enabledOn ? enabledOn : oldest;
    }

    private static int RetainedDays(BackupState state) => Math.Max(state.ViewableDays, state.Policy.RetainedDays);

    private static (KeepReason Reasons, PruneReason PruneReason) Decide(BackupState state, DateOnly date, DateTimeOffset now)
    {
        if (state.Status == BackupStatus.Released)
        {
            return (KeepReason.None, PruneReason.BackupReleased);
        }

        if (state.UploadedDate is { } held)
        {
            return date == held ? (KeepReason.UploadedContent, default) : (KeepReason.None, PruneReason.NotUploaded);
        }

        if (state.EnabledOn is not { } enabledOn)
        {
            return (KeepReason.None, PruneReason.NotEnabled);
        }

        if (date < enabledOn)
        {
            return (KeepReason.None, PruneReason.BeforeEnabled);
        }

        var window = state.WindowAt(now)!.Value;
        if (date > window.End)
        {
            return (KeepReason.AfterToday, default);
        }

        if (ViewableWindow.DaysNeeded(window.End, date) > RetainedDays(state))
        {
            return (KeepReason.None, PruneReason.PastRetention);
        }

        var reasons = window.Contains(date) ? KeepReason.Viewable : KeepReason.ReachableByExtending;
        if (state.Status == BackupStatus.Expired)
        {
            reasons |= KeepReason.AwaitingRenewal;
        }

        return (reasons, default);
    }
}
