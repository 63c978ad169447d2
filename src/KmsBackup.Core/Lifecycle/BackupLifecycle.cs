namespace KmsBackup.Domain;

/// <summary>
/// The lifecycle rules (L1–L8, with K4–K7) as pure functions of (state, command, now): each returns
/// the new state and the effects the engine must carry out, or a refusal with a stable error code
/// and a remedy. Nothing here reads a clock, a file or a random source.
/// </summary>
/// <remarks>
/// One type, split by concern: creating backups (<c>BackupLifecycle.Creation.cs</c>), checking operations and
/// dates (<c>BackupLifecycle.Checks.cs</c>) and applying commands (<c>BackupLifecycle.Commands.cs</c>). This file
/// holds what time alone does to a backup (expiry and release) and what the others share.
/// </remarks>
internal static partial class BackupLifecycle
{
    /// <summary>The longest alias or uploaded-backup name, in characters.</summary>
    public const int MaximumAliasLength = 128;

    private static readonly IReadOnlyList<LifecycleEffect> s_none = [];

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

    private static string Lower(BackupKind kind) => kind.ToString().ToLowerInvariant();

    private static string Lower(InstanceKind kind) => kind.ToString().ToLowerInvariant();

    private static string Iso(DateOnly date) => ViewableWindow.Iso(date);

    private static string Iso(DateTimeOffset instant) => ViewableWindow.Iso(instant);

    private static string Invariant(FormattableString text) => FormattableString.Invariant(text);
}
