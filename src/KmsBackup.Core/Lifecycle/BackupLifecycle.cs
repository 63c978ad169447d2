using System.Globalization;

namespace KmsBackup.Domain;

/// <summary>
/// The lifecycle rules (L1–L8, with K4–K7) as pure functions of (state, command, now): each returns
/// the new state and the effects the engine must carry out, or a refusal with a stable error code
/// and a remedy. Nothing here reads a clock, a file or a random source.
/// </summary>
internal static class BackupLifecycle
{
    /// <summary>The longest alias or uploaded-backup name, in characters.</summary>
    public const int MaximumAliasLength = 128;

    private static readonly IReadOnlyList<LifecycleEffect> s_none = [];

    /// <summary>
    /// Creates the automatic backup of an instance that is being enabled (rules K4, K5): only for an
    /// enabled instance created on or after its kind's cutoff, only if it has no automatic backup yet,
    /// and for a hardware instance only from image version 3.9.1 (rule H1). The backup is enabled at
    /// once with 90 viewable days, and its first full backup is due now.
    /// </summary>
    /// <param name="backupId">The new backup's ID.</param>
    /// <param name="instance">The instance being enabled.</param>
    /// <param name="existingBackups">The backups that exist, to enforce one automatic backup per instance.</param>
    /// <param name="cutoffs">The eligibility cutoffs (<see cref="AutomaticBackupCutoffs.Default"/> are the seed's).</param>
    /// <param name="timeZone">The zone the backup counts days in.</param>
    /// <param name="now">The current instant.</param>
    public static CreationOutcome CreateAutomatic(
        string backupId, InstanceInfo instance, IEnumerable<BackupState> existingBackups,
        AutomaticBackupCutoffs cutoffs, BackupTimeZone timeZone, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(backupId);
        ArgumentNullException.ThrowIfNull(instance);
        ArgumentNullException.ThrowIfNull(existingBackups);
        ArgumentNullException.ThrowIfNull(cutoffs);
        ArgumentNullException.ThrowIfNull(timeZone);

        var instanceItem = $"instance '{instance.Id}'";
        if (!instance.IsEnabled)
        {
            return CreationOutcome.Refused(InstanceNotEnabled(instance));
        }

        var cutoff = cutoffs.For(instance.Kind);
        if (instance.CreatedAt < cutoff)
        {
            return CreationOutcome.Refused(new Refusal(
                BackupErrorCode.InstanceNotEligible, instanceItem,
                $"The {Lower(instance.Kind)} instance '{instance.Id}' was created on {Iso(instance.CreatedAt)}, before {Iso(cutoff)}, so it gets no automatic backup.",
                "Back it up with a default or purchased backup instead."));
        }

        if (HardwareRules.CheckImageVersion(instance) is { } tooOld)
        {
            return CreationOutcome.Refused(tooOld);
        }

        var existing = existingBackups.FirstOrDefault(b =>
            b.Kind == BackupKind.Automatic && b.Status != BackupStatus.Released &&
            string.Equals(b.Instance?.Id, instance.Id, StringComparison.Ordinal));
        if (existing is not null)
        {
            return CreationOutcome.Refused(new Refusal(
                BackupErrorCode.AutomaticBackupExists, instanceItem,
                $"The instance '{instance.Id}' already has the automatic backup '{existing.Id}'; an instance has at most one.",
                $"Use the existing automatic backup '{existing.Id}'."));
        }

        var state = new BackupState(backupId, BackupKind.Automatic, timeZone, now, BackupKindPolicy.AutomaticViewableDays)
        {
            Status = BackupStatus.Enabled,
            Region = instance.Region,
            Alias = backupId,
            Instance = new BoundInstance(instance.Id, instance.Kind, instance.Region),
            EnabledAt = now,
        };
        return CreationOutcome.Accepted([state], [LifecycleEffect.RunFullBackup]);
    }

    /// <summary>Creates a default backup: free, 7 fixed viewable days, unbound (<c>Disabled</c>) until enabled (rules K1, K2, L3).</summary>
    /// <param name="backupId">The new backup's ID.</param>
    /// <param name="timeZone">The zone the backup counts days in.</param>
    /// <param name="now">The current instant.</param>
    public static BackupState CreateDefault(string backupId, BackupTimeZone timeZone, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(backupId);
        ArgumentNullException.ThrowIfNull(timeZone);
        return new BackupState(backupId, BackupKind.Default, timeZone, now, BackupKindPolicy.DefaultViewableDays);
    }

    /// <summary>
    /// Purchases <see cref="PurchaseOrder.Quantity"/> backups (rules K2, K3, K6): each unbound, with the
    /// order's region and viewable days, expiring at the end of the term. The IDs are
    /// <c>{orderId}-1</c> to <c>{orderId}-{Quantity}</c>.
    /// </summary>
    /// <param name="orderId">The order's ID, from which the backups' IDs are made.</param>
    /// <param name="order">What is bought.</param>
    /// <param name="timeZone">The zone the backups count days in.</param>
    /// <param name="now">The current instant: the purchase time.</param>
    public static CreationOutcome Purchase(string orderId, PurchaseOrder order, BackupTimeZone timeZone, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(orderId);
        ArgumentNullException.ThrowIfNull(order);
        ArgumentNullException.ThrowIfNull(timeZone);

        if (string.IsNullOrWhiteSpace(order.Region))
        {
            return CreationOutcome.Refused(new Refusal(
                BackupErrorCode.RegionMismatch, "region=(empty)",
                "A purchase needs the region of the instance it will back up.",
                "Give the region of the instance to back up, e.g. 'cn-hangzhou'."));
        }

        if (ViewableDaysRangeRefusal(order.ViewableDays) is { } badDays)
        {
            return CreationOutcome.Refused(badDays);
        }

        if (order.Term.Months == 0)
        {
            PurchaseTerm.TryFromMonths(0, out _, out var badTerm);
            return CreationOutcome.Refused(badTerm!);
        }

        if (order.Quantity is < 1 or > PurchaseOrder.MaximumQuantity)
        {
            return CreationOutcome.Refused(new Refusal(
                BackupErrorCode.InvalidQuantity, Invariant($"quantity={order.Quantity}"),
                Invariant($"A purchase of {order.Quantity} backups is outside 1 to {PurchaseOrder.MaximumQuantity}."),
                Invariant($"Buy from 1 to {PurchaseOrder.MaximumQuantity} backups at a time; each backs up one instance.")));
        }

        var record = new PurchaseRecord(now, order.Term, order.ViewableDays, order.Quantity);
        var expiresAt = order.Term.EndFrom(now);
        var backups = new BackupState[order.Quantity];
        for (var i = 0; i < backups.Length; i++)
        {
            backups[i] = new BackupState(Invariant($"{orderId}-{i + 1}"), BackupKind.Purchased, timeZone, now, order.ViewableDays)
            {
                Region = order.Region,
                Purchase = record,
                ExpiresAt = expiresAt,
            };
        }

        return CreationOutcome.Accepted(backups, [LifecycleEffect.RecordCharge]);
    }

    /// <summary>Creates an uploaded backup holding the one date its file held (rules K1, K2).</summary>
    /// <param name="backupId">The new backup's ID.</param>
    /// <param name="name">The backup name given at upload; becomes its alias.</param>
    /// <param name="heldDate">The backup date the file holds.</param>
    /// <param name="region">The region the backup is kept for, or <see langword="null"/>.</param>
    /// <param name="timeZone">The zone the backup counts days in.</param>
    /// <param name="now">The current instant.</param>
    public static CreationOutcome CreateUploaded(string backupId, string name, DateOnly heldDate, string? region, BackupTimeZone timeZone, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(backupId);
        ArgumentNullException.ThrowIfNull(timeZone);
        if (AliasRefusal(name, "name") is { } badName)
        {
            return CreationOutcome.Refused(badName);
        }

        var state = new BackupState(backupId, BackupKind.Uploaded, timeZone, now, 1)
        {
            Status = BackupStatus.Enabled,
            Alias = name,
            Region = region,
            UploadedDate = heldDate,
        };
        return CreationOutcome.Accepted([state], s_none);
    }

    /// <summary>
    /// Brings a state up to date with time (rules L2, L4): a purchased backup past its expiry becomes
    /// <see cref="BackupStatus.Expired"/>, and 15 days later <see cref="BackupStatus.Released"/> with
    /// its data deleted; an automatic backup is released 90 days after its instance was released.
    /// </summary>
    /// <param name="state">The state.</param>
    /// <param name="now">The current instant.</param>
    public static LifecycleOutcome Advance(BackupState state, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(state);
        var (advanced, effects) = AdvanceCore(state, now);
        return LifecycleOutcome.Accepted(advanced, effects);
    }

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

    /// <summary>
    /// Applies <paramref name="command"/> to <paramref name="state"/> at <paramref name="now"/> (rule L8).
    /// The state is first brought up to date with time (<see cref="Advance"/>); then the command is
    /// checked against the status (L4), the kind's operations (K1) and its own rules (K6, K7, L5–L7).
    /// </summary>
    /// <param name="state">The current state.</param>
    /// <param name="command">What to do.</param>
    /// <param name="now">The current instant.</param>
    /// <returns>The new state and effects, or the refusal.</returns>
    public static LifecycleOutcome Apply(BackupState state, BackupCommand command, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(command);

        var (current, effects) = AdvanceCore(state, now);

        if (command is InstanceReleased released)
        {
            return ApplyInstanceReleased(current, effects, released, now);
        }

        if (CheckCurrent(current, command.Operation) is { } refusal)
        {
            return LifecycleOutcome.Refused(current, effects, refusal);
        }

        var result = command switch
        {
            EnableBackup enable => ApplyEnable(current, enable, now),
            ExtendViewableDays extend => ApplyExtend(current, extend),
            ResetBackup => Accept(current with
            {
                Status = BackupStatus.Disabled,
                Instance = null,
                EnabledAt = null,
                InstanceReleasedAt = null,
                Alias = null,
            }, LifecycleEffect.DeleteAllData),
            RenewBackup renew => ApplyRenew(current, renew, now),
            DeleteBackup => Accept(current with { Status = BackupStatus.Released, ReleasedAt = now }, LifecycleEffect.DeleteAllData),
            _ => throw new ArgumentException($"Unknown command {command.GetType().Name}.", nameof(command)),
        };

        return result.Refusal is { } commandRefusal
            ? LifecycleOutcome.Refused(current, effects, commandRefusal)
            : LifecycleOutcome.Accepted(result.State!, [.. effects, .. result.Effects]);
    }

    /// <summary>Checks an alias or upload name: 1 to 128 characters, no control characters, no leading or trailing white space.</summary>
    /// <param name="alias">The alias.</param>
    /// <param name="what">What the value is called in the message: <c>alias</c> or <c>name</c>.</param>
    /// <returns>The refusal, or <see langword="null"/> when valid.</returns>
    public static Refusal? AliasRefusal(string? alias, string what = "alias")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(what);
        if (!string.IsNullOrWhiteSpace(alias) && alias.Length <= MaximumAliasLength &&
            !alias.Any(char.IsControl) && alias.Trim().Length == alias.Length)
        {
            return null;
        }

        var shown = alias is null ? "(null)" : alias.Length > 40 ? $"'{alias[..40]}…' ({alias.Length} characters)" : $"'{alias.Replace("\n", "\\n", StringComparison.Ordinal)}'";
        return new Refusal(
            BackupErrorCode.InvalidAlias, $"{what}={shown}",
            $"The backup {what} {shown} is not valid.",
            Invariant($"Give a {what} of 1 to {MaximumAliasLength} characters, without control characters or leading or trailing spaces."));
    }

    private static (BackupState State, IReadOnlyList<LifecycleEffect> Effects) AdvanceCore(BackupState state, DateTimeOffset now)
    {
        if (state.Status == BackupStatus.Released)
        {
            return (state, s_none);
        }

        var current = state;
        if (current.Kind == BackupKind.Purchased && current.ExpiresAt is { } expiresAt && now >= expiresAt &&
            current.Status is BackupStatus.Disabled or BackupStatus.Enabled)
        {
            current = current with { Status = BackupStatus.Expired };
        }

        if (current.ReleaseDueAt is { } releaseAt && now >= releaseAt)
        {
            return (current with { Status = BackupStatus.Released, ReleasedAt = releaseAt }, [LifecycleEffect.DeleteAllData]);
        }

        return (current, s_none);
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
                $"A {Lower(state.Kind)} backup ({state.Label}) does not support {operation}: {state.Named}.",
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

    private static LifecycleOutcome ApplyInstanceReleased(BackupState state, IReadOnlyList<LifecycleEffect> effects, InstanceReleased released, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(released.InstanceId, nameof(released));
        if (state.Status == BackupStatus.Released || state.InstanceReleasedAt is not null ||
            !string.Equals(state.Instance?.Id, released.InstanceId, StringComparison.Ordinal))
        {
            return LifecycleOutcome.Accepted(state, effects);
        }

        return LifecycleOutcome.Accepted(state with { InstanceReleasedAt = now }, effects);
    }

    private static StepResult ApplyEnable(BackupState state, EnableBackup enable, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(enable.Instance, nameof(enable));
        var instance = enable.Instance;
        if (!instance.IsEnabled)
        {
            return Refuse(InstanceNotEnabled(instance));
        }

        if (instance.Kind != enable.BackupType)
        {
            return Refuse(new Refusal(
                BackupErrorCode.InstanceKindMismatch, $"instance '{instance.Id}'",
                $"The instance '{instance.Id}' is a {Lower(instance.Kind)} instance, but the backup type chosen for {state.Named} is {Lower(enable.BackupType)}.",
                $"Choose the backup type {instance.Kind}, or an enabled {Lower(enable.BackupType)} instance."));
        }

        if (state.Kind == BackupKind.Purchased && !string.Equals(state.Region, instance.Region, StringComparison.Ordinal))
        {
            return Refuse(new Refusal(
                BackupErrorCode.RegionMismatch, $"instance '{instance.Id}'",
                $"The instance '{instance.Id}' is in region '{instance.Region}', but the purchased {state.Named} is for region '{state.Region}'.",
                $"Enable it for an instance in '{state.Region}', or purchase a backup in '{instance.Region}'."));
        }

        if (HardwareRules.CheckImageVersion(instance) is { } tooOld)
        {
            return Refuse(tooOld);
        }

        var alias = enable.Alias ?? state.Id;
        if (AliasRefusal(alias) is { } badAlias)
        {
            return Refuse(badAlias);
        }

        return Accept(
            state with
            {
                Status = BackupStatus.Enabled,
                Instance = new BoundInstance(instance.Id, instance.Kind, instance.Region),
                Region = state.Region ?? instance.Region,
                EnabledAt = now,
                InstanceReleasedAt = null,
                Alias = alias,
            },
            LifecycleEffect.RunFullBackup);
    }

    private static StepResult ApplyExtend(BackupState state, ExtendViewableDays extend)
    {
        if (ViewableDaysRangeRefusal(extend.ViewableDays) is { } outOfRange)
        {
            return Refuse(outOfRange);
        }

        if (extend.ViewableDays <= state.ViewableDays)
        {
            return Refuse(new Refusal(
                BackupErrorCode.ViewableDaysNotIncreased, Invariant($"viewableDays={extend.ViewableDays}"),
                Invariant($"The {state.Named} has {state.ViewableDays} viewable days; {extend.ViewableDays} is not an extension, and downgrading is not supported."),
                Invariant($"Choose more than {state.ViewableDays} viewable days, at most {BackupKindPolicy.MaximumPurchasedViewableDays}.")));
        }

        return Accept(state with { ViewableDays = extend.ViewableDays }, LifecycleEffect.RecordCharge);
    }

    private static StepResult ApplyRenew(BackupState state, RenewBackup renew, DateTimeOffset now)
    {
        if (renew.Term.Months == 0)
        {
            PurchaseTerm.TryFromMonths(0, out _, out var badTerm);
            return Refuse(badTerm!);
        }

        if (state.Status == BackupStatus.Expired)
        {
            // Reactivation: the new term starts now; the backup returns to what it was before expiry.
            return Accept(
                state with
                {
                    Status = state.Instance is null ? BackupStatus.Disabled : BackupStatus.Enabled,
                    ExpiresAt = renew.Term.EndFrom(now),
                },
                LifecycleEffect.RecordCharge);
        }

        return Accept(state with { ExpiresAt = renew.Term.EndFrom(state.ExpiresAt!.Value) }, LifecycleEffect.RecordCharge);
    }

    private static Refusal? ViewableDaysRangeRefusal(int viewableDays) =>
        viewableDays is < BackupKindPolicy.MinimumPurchasedViewableDays or > BackupKindPolicy.MaximumPurchasedViewableDays
            ? new Refusal(
                BackupErrorCode.ViewableDaysOutOfRange, Invariant($"viewableDays={viewableDays}"),
                Invariant($"{viewableDays} viewable days is outside the {BackupKindPolicy.MinimumPurchasedViewableDays} to {BackupKindPolicy.MaximumPurchasedViewableDays} days a purchased backup can have."),
                Invariant($"Choose from {BackupKindPolicy.MinimumPurchasedViewableDays} to {BackupKindPolicy.MaximumPurchasedViewableDays} viewable days."))
            : null;

    private static Refusal InstanceNotEnabled(InstanceInfo instance) => new(
        BackupErrorCode.InstanceNotEnabled, $"instance '{instance.Id}'",
        $"The instance '{instance.Id}' is not enabled, so it cannot be backed up.",
        "Enable the instance first; only enabled instances can be backed up.");

    private static StepResult Accept(BackupState state, LifecycleEffect effect) => new(state, [effect], null);

    private static StepResult Refuse(Refusal refusal) => new(null, s_none, refusal);

    private static string Lower(BackupKind kind) => kind.ToString().ToLowerInvariant();

    private static string Lower(InstanceKind kind) => kind.ToString().ToLowerInvariant();

    private static string Iso(DateOnly date) => ViewableWindow.Iso(date);

    private static string Iso(DateTimeOffset instant) =>
        instant.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string Invariant(FormattableString text) => FormattableString.Invariant(text);

    private readonly record struct StepResult(BackupState? State, IReadOnlyList<LifecycleEffect> Effects, Refusal? Refusal);
}
