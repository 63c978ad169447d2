namespace KmsBackup.Domain;

/// <summary>Whether an operation, or a date's data, may be used on a backup now (rules L4, K1, W2–W4, R5).</summary>
internal static partial class BackupLifecycle
{
    /// <summary>
    /// Whether <paramref name="operation"/> is allowed on the backup at <paramref name="now"/>: a released
    /// backup allows nothing, an expired one only renewal (rule L4), each kind only its own operations,
    /// and using data needs a backup that holds some.
    /// </summary>
    /// <param name="state">The state.</param>
    /// <param name="operation">One operation.</param>
    /// <param name="now">The current instant.</param>
    /// <returns>The refusal, or <see langword="null"/> when allowed.</returns>
    public static Refusal? Check(BackupState state, BackupOperation operation, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(state);
        return CheckCurrent(AdvanceCore(state, now).State, operation);
    }

    /// <summary>
    /// Whether the data of <paramref name="date"/> can be used for <paramref name="operation"/> (view,
    /// restore or download) at <paramref name="now"/>: the operation must be allowed (<see cref="Check"/>),
    /// and the date in the viewable window (rules W2–W4, R5).
    /// </summary>
    /// <param name="state">The state.</param>
    /// <param name="date">The date asked for, in the backup's time zone.</param>
    /// <param name="operation"><see cref="BackupOperation.View"/>, <see cref="BackupOperation.Restore"/> or <see cref="BackupOperation.Download"/>.</param>
    /// <param name="now">The current instant.</param>
    /// <returns>The refusal, or <see langword="null"/> when the date can be used.</returns>
    public static Refusal? CheckDate(BackupState state, DateOnly date, BackupOperation operation, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (operation is not (BackupOperation.View or BackupOperation.Restore or BackupOperation.Download))
        {
            throw new ArgumentOutOfRangeException(nameof(operation), operation, "Only View, Restore and Download use a date's data.");
        }

        var current = AdvanceCore(state, now).State;
        if (CheckCurrent(current, operation) is { } refusal)
        {
            return refusal;
        }

        if (current.UploadedDate is { } held)
        {
            return date == held
                ? null
                : new Refusal(
                    BackupErrorCode.DateNotReachable, $"{current.Named} date {Iso(date)}",
                    $"The uploaded {current.Named} holds only the date {Iso(held)}, not {Iso(date)}.",
                    $"Choose {Iso(held)}, or upload the file of the date you need.");
        }

        return EvaluateDate(current, date, now)!.ToRefusal(current.Named);
    }

    /// <summary>
    /// Where <paramref name="date"/> stands against the backup's viewable window at <paramref name="now"/>,
    /// with the viewable days needed to reach it; <see langword="null"/> when the backup holds no data.
    /// Does not check expiry or the operation: <see cref="CheckDate"/> does both.
    /// </summary>
    /// <param name="state">The state.</param>
    /// <param name="date">The date asked for.</param>
    /// <param name="now">The current instant.</param>
    public static DateAccess? EvaluateDate(BackupState state, DateOnly date, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.WindowAt(now) is not { } window || state.EnabledOn is not { } enabledOn)
        {
            return null;
        }

        var maximum = Math.Max(state.ViewableDays, state.Policy.MaximumViewableDays);
        return DateAccess.Evaluate(date, window.End, state.ViewableDays, enabledOn, maximum);
    }

    private static Refusal? CheckCurrent(BackupState state, BackupOperation operation)
    {
        if (state.Status == BackupStatus.Released)
        {
            return new Refusal(
                BackupErrorCode.BackupReleased, state.Named,
                $"The {Lower(state.Kind)} {state.Named} was released{(state.ReleasedAt is { } at ? " on " + Iso(at) : string.Empty)} and its data deleted.",
                state.Kind == BackupKind.Purchased
                    ? "A released backup cannot be renewed; purchase a new backup."
                    : "Use another backup.");
        }

        if (state.Status == BackupStatus.Expired && operation != BackupOperation.Renew)
        {
            return new Refusal(
                BackupErrorCode.BackupExpired, state.Named,
                $"The purchased {state.Named} expired on {Iso(state.ExpiresAt!.Value)}; no operation but renewal is supported until it is renewed.",
                $"Renew it before {Iso(state.ReleaseDueAt!.Value)} (within 15 days after expiry) to reactivate it; renewal costs the same as purchasing a new backup of the same specification.");
        }

        if (!state.Policy.Allows(operation))
        {
            return new Refusal(
                BackupErrorCode.OperationNotSupported, state.Named,
                $"{(state.Kind == BackupKind.Automatic ? "An" : "A")} {Lower(state.Kind)} backup ({state.Label}) does not support {operation}: {state.Named}.",
                UnsupportedRemedy(state.Kind, operation));
        }

        if (operation is BackupOperation.View or BackupOperation.Restore or BackupOperation.Download && state.EnabledOn is null)
        {
            return new Refusal(
                BackupErrorCode.BackupNotEnabled, state.Named,
                $"The {state.Named} is {state.Status} and holds no data.",
                "Enable it for an instance first; data is backed up from the day it is enabled.");
        }

        if (operation == BackupOperation.Enable && state.Status != BackupStatus.Disabled)
        {
            return new Refusal(
                BackupErrorCode.BackupAlreadyEnabled, state.Named,
                $"The {state.Named} is already bound to the instance '{state.Instance?.Id}'.",
                "Reset it first (this deletes all its data), then enable it for another instance.");
        }

        return null;
    }

    private static string UnsupportedRemedy(BackupKind kind, BackupOperation operation) => (kind, operation) switch
    {
        (_, BackupOperation.Extend) => "Only purchased backups can extend their viewable days; purchase a backup with the viewable days you need.",
        (_, BackupOperation.Renew) => "Only purchased backups can be renewed; automatic backups follow their instance's lifecycle and default backups never expire.",
        (BackupKind.Automatic, _) => "Automatic backups are bound when their instance is enabled and are deleted 90 days after it is released; they cannot be enabled, reset or deleted by hand.",
        (BackupKind.Uploaded, BackupOperation.Reset) => "Delete the uploaded backup instead.",
        (BackupKind.Uploaded, BackupOperation.Enable) => "An uploaded backup holds its file's data and backs up no instance; use a default or purchased backup to back up an instance.",
        (_, BackupOperation.Delete) => "Only uploaded backups can be deleted; reset a default or purchased backup to delete its data.",
        _ => "Use a backup kind that supports the operation.",
    };
}
