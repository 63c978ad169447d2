namespace KmsBackup.Domain;

/// <summary>Commands applied to a backup: enable, extend, reset, renew, delete and its instance's release (rules L5–L8, K6, K7).</summary>
internal static partial class BackupLifecycle
{
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

    private static LifecycleOutcome ApplyInstanceReleased(BackupState state, IReadOnlyList<LifecycleEffect> effects, InstanceReleased released, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(released.InstanceId, nameof(released));
        if (state.Status == BackupStatus.Released || state.InstanceReleasedAt is not null ||
            !string.Equals(state.Instance?.Id, released.InstanceId, StringComparison.Ordinal))
        {
            return LifecycleOutcome.Accepted(state, effects);
        }

        return LifecycleOutcome.Accepted(state with { InstanceReleasedAt = released.At is { } at && at < now ? at : now }, effects);
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

    private static StepResult Accept(BackupState state, LifecycleEffect effect) => new(state, [effect], null);

    private static StepResult Refuse(Refusal refusal) => new(null, s_none, refusal);

    private readonly record struct StepResult(BackupState? State, IReadOnlyList<LifecycleEffect> Effects, Refusal? Refusal);
}
