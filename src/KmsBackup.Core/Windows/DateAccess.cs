namespace KmsBackup.Domain;

/// <summary>Whether a date of a backup can be used today, and if not, why (rules W2–W4).</summary>
internal enum DateAccessStatus
{
    /// <summary>The date is in the viewable window.</summary>
    Viewable = 1,

    /// <summary>The date is outside the window, but extending the viewable days to <see cref="DateAccess.DaysNeeded"/> reaches it.</summary>
    NeedsMoreViewableDays = 2,

    /// <summary>The date is outside the window, and no extension allowed for the backup's kind reaches it.</summary>
    NotReachable = 3,

    /// <summary>The date is before the backup was last enabled: it is never reachable, not even by extending.</summary>
    BeforeEnabled = 4,

    /// <summary>The date is after today.</summary>
    InFuture = 5,
}

/// <summary>
/// The answer to "can this backup's data of <see cref="Date"/> be viewed, restored or downloaded
/// today?" — with the viewable days needed when it cannot (rule W4).
/// </summary>
internal sealed class DateAccess
{
    private DateAccess(DateOnly date, DateOnly today, DateOnly enabledOn, int viewableDays, ViewableWindow window, DateAccessStatus status, int maximumViewableDays)
    {
        Date = date;
        Today = today;
        EnabledOn = enabledOn;
        ViewableDays = viewableDays;
        Window = window;
        Status = status;
        MaximumViewableDays = maximumViewableDays;
    }

    /// <summary>The date asked for.</summary>
    public DateOnly Date { get; }

    /// <summary>Today, in the backup's time zone.</summary>
    public DateOnly Today { get; }

    /// <summary>The date the backup was last enabled; no earlier date is ever reachable.</summary>
    public DateOnly EnabledOn { get; }

    /// <summary>The backup's viewable days now.</summary>
    public int ViewableDays { get; }

    /// <summary>The most viewable days the backup's kind allows (600 for purchased; the fixed days otherwise).</summary>
    public int MaximumViewableDays { get; }

    /// <summary>Today's viewable window.</summary>
    public ViewableWindow Window { get; }

    /// <summary>Whether and why the date can be used.</summary>
    public DateAccessStatus Status { get; }

    /// <summary>Whether the date is in the window.</summary>
    public bool IsViewable => Status == DateAccessStatus.Viewable;

    /// <summary>The viewable days needed for the date to be in the window (today − date + 1); <see langword="null"/> for a future date.</summary>
    public int? DaysNeeded => Date > Today ? null : ViewableWindow.DaysNeeded(Today, Date);

    /// <summary>Whether extending the viewable days (to <see cref="DaysNeeded"/>) would make the date viewable.</summary>
    public bool CanExtendToReach => Status == DateAccessStatus.NeedsMoreViewableDays;

    /// <summary>Evaluates <paramref name="date"/> against a backup's window.</summary>
    /// <param name="date">The date asked for.</param>
    /// <param name="today">Today, in the backup's time zone.</param>
    /// <param name="viewableDays">The backup's viewable days now, at least 1.</param>
    /// <param name="enabledOn">The date the backup was last enabled, not after <paramref name="today"/>.</param>
    /// <param name="maximumViewableDays">The most viewable days extending can give, at least <paramref name="viewableDays"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException">An argument is outside the range documented for it.</exception>
    public static DateAccess Evaluate(DateOnly date, DateOnly today, int viewableDays, DateOnly enabledOn, int maximumViewableDays)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maximumViewableDays, viewableDays);
        var window = ViewableWindow.On(today, viewableDays, enabledOn);
        DateAccessStatus status;
        if (date > today)
        {
            status = DateAccessStatus.InFuture;
        }
        else if (date < enabledOn)
        {
            status = DateAccessStatus.BeforeEnabled;
        }
        else if (window.Contains(date))
        {
            status = DateAccessStatus.Viewable;
        }
        else if (ViewableWindow.DaysNeeded(today, date) <= maximumViewableDays)
        {
            status = DateAccessStatus.NeedsMoreViewableDays;
        }
        else
        {
            status = DateAccessStatus.NotReachable;
        }

        return new DateAccess(date, today, enabledOn, viewableDays, window, status, maximumViewableDays);
    }

    /// <summary>Why the date cannot be used, or <see langword="null"/> when it is viewable.</summary>
    /// <param name="backup">How to name the backup in the message, e.g. <c>backup 'b-1'</c>.</param>
    public Refusal? ToRefusal(string backup)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(backup);
        var date = ViewableWindow.Iso(Date);
        var item = $"{backup} date {date}";
        return Status switch
        {
            DateAccessStatus.Viewable => null,
            DateAccessStatus.InFuture => new Refusal(
                BackupErrorCode.DateInFuture, item,
                $"The date {date} of {backup} is after today ({ViewableWindow.Iso(Today)}).",
                $"Choose a date in the viewable window {Window}."),
            DateAccessStatus.BeforeEnabled => new Refusal(
                BackupErrorCode.DateBeforeEnabled, item,
                $"The date {date} of {backup} is before the backup was enabled on {ViewableWindow.Iso(EnabledOn)}; no data from before enabling is ever backed up.",
                $"Choose a date from {ViewableWindow.Iso(EnabledOn)} on; extending the viewable days does not reach earlier dates."),
            DateAccessStatus.NeedsMoreViewableDays => new Refusal(
                BackupErrorCode.DateOutsideWindow, item,
                $"The date {date} of {backup} is outside its viewable window {Window}: it needs {DaysNeeded} viewable days, and the backup has {ViewableDays}.",
                $"Extend the viewable days to at least {DaysNeeded}, then retry."),
            _ => new Refusal(
                BackupErrorCode.DateNotReachable, item,
                $"The date {date} of {backup} is outside its viewable window {Window}: it needs {DaysNeeded} viewable days, more than the {MaximumViewableDays} this backup can have.",
                $"Choose a date in the viewable window {Window}."),
        };
    }

    /// <summary>The date and its status, e.g. <c>2024-05-05: NeedsMoreViewableDays (16 days needed)</c>.</summary>
    public override string ToString() =>
        DaysNeeded is { } needed
            ? $"{ViewableWindow.Iso(Date)}: {Status} ({needed} days needed)"
            : $"{ViewableWindow.Iso(Date)}: {Status}";
}
