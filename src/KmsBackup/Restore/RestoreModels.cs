namespace KmsBackup;

/// <summary>
/// What to restore, from which data, into which instance. Choose the data either the seed's way — a
/// <see cref="BackupDate"/>, optionally narrowed to one <see cref="DataType"/> view — or by
/// <see cref="PointInTime"/> (the latest recovery point at or before it, rule D4). Then choose the
/// items: by name (<see cref="KeyNames"/>, <see cref="SecretNames"/>), or <see cref="AllItems"/> of the
/// chosen data (a whole recovery point, to recover a released instance, for instance).
/// </summary>
public sealed record RestoreRequest
{
    /// <summary>The account asking; only the backup's owner may restore (rule R2).</summary>
    public required string CallerAccount { get; init; }

    /// <summary>The backup the data comes from.</summary>
    public required string BackupId { get; init; }

    /// <summary>The instance to restore into: any enabled software instance of the owner's account, in any region (rule R1).</summary>
    public required string TargetInstanceId { get; init; }

    /// <summary>The date of the data, in the backup's time zone; with <see cref="DataType"/> <see langword="null"/>, the date's last recovery point.</summary>
    public DateOnly? BackupDate { get; init; }

    /// <summary>One of the date's six views (rule D2): the items as that view shows them. Needs <see cref="BackupDate"/>.</summary>
    public BackupDataType? DataType { get; init; }

    /// <summary>An instant instead of a date: the latest recovery point taken at or before it.</summary>
    public DateTimeOffset? PointInTime { get; init; }

    /// <summary>Names of the keys to restore.</summary>
    public IReadOnlyList<string> KeyNames { get; init; } = [];

    /// <summary>Names of the secrets to restore.</summary>
    public IReadOnlyList<string> SecretNames { get; init; } = [];

    /// <summary>Restore every item of the chosen data instead of naming them.</summary>
    public bool AllItems { get; init; }

    /// <summary>
    /// The restore operation's ID; <see langword="null"/> to have one made. Rerunning a restore with the
    /// plan's <see cref="RestorePlan.OperationId"/> never restores anything twice (rule R7), and the ID is
    /// what an interrupted restore is resumed or rolled back by (<see cref="BackupClient.ResumeRestoreAsync"/>,
    /// <see cref="BackupClient.RollBackRestoreAsync"/>). Choose it before the restore (or take the plan's)
    /// and keep it where a restarted process finds it: that is the surest way to know it.
    /// </summary>
    /// <remarks>1 to <see cref="MaxOperationIdLength"/> ASCII letters, digits, <c>.</c>, <c>_</c> and <c>-</c>, starting with a letter or digit.</remarks>
    public string? OperationId { get; init; }

    /// <summary>The longest <see cref="OperationId"/>.</summary>
    public const int MaxOperationIdLength = 100;

    /// <summary>Checks that the request is well formed.</summary>
    /// <exception cref="ArgumentException">Neither or both of a date and an instant; a data type without a date; names and <see cref="AllItems"/> together, or neither; an empty or repeated name; names of a type the data type does not hold.</exception>
    public void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(CallerAccount);
        ArgumentException.ThrowIfNullOrWhiteSpace(BackupId);
        ArgumentException.ThrowIfNullOrWhiteSpace(TargetInstanceId);
        ArgumentNullException.ThrowIfNull(KeyNames);
        ArgumentNullException.ThrowIfNull(SecretNames);
        if (BackupDate.HasValue == PointInTime.HasValue)
        {
            throw new ArgumentException("Choose the data either by BackupDate (optionally with DataType) or by PointInTime, not both or neither.", nameof(BackupDate));
        }

        if (DataType is { } type)
        {
            if (!BackupDate.HasValue)
            {
                throw new ArgumentException("DataType chooses one of a date's views: set BackupDate with it.", nameof(DataType));
            }

            if (!Enum.IsDefined(type))
            {
                throw new ArgumentOutOfRangeException(nameof(DataType), type, "Not a defined data type.");
            }

            var keysView = type is BackupDataType.FullyBackedUpKeys or BackupDataType.IncrementallyBackedUpKeys or BackupDataType.RotatedKeys;
            if (keysView ? SecretNames.Count > 0 : KeyNames.Count > 0)
            {
                throw new ArgumentException($"The view {type} holds only {(keysView ? "keys" : "secrets")}; name only {(keysView ? "keys" : "secrets")} with it.", nameof(DataType));
            }
        }

        if (AllItems == (KeyNames.Count + SecretNames.Count > 0))
        {
            throw new ArgumentException("Name the keys and secrets to restore, or set AllItems, not both or neither.", nameof(AllItems));
        }

        CheckNames(KeyNames, nameof(KeyNames));
        CheckNames(SecretNames, nameof(SecretNames));
        if (OperationId is not null)
        {
            ValidateOperationId(OperationId);
        }
    }

    /// <summary>Checks that <paramref name="operationId"/> is a well-formed restore operation ID (see <see cref="OperationId"/>).</summary>
    /// <param name="operationId">The ID.</param>
    /// <exception cref="ArgumentException">It is empty, too long, or holds a character other than ASCII letters, digits, '.', '_' and '-', or does not start with a letter or digit.</exception>
    public static void ValidateOperationId(string operationId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(operationId);

        // The ID names the operation's journal objects in the store and its lease, so it keeps to the store's key characters.
        if (operationId.Length > MaxOperationIdLength || !char.IsAsciiLetterOrDigit(operationId[0]) ||
            !operationId.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
        {
            throw new ArgumentException(
                $"The operation ID '{operationId}' is not valid: use 1 to {MaxOperationIdLength} ASCII letters, digits, '.', '_' and '-', starting with a letter or digit.",
                nameof(operationId));
        }
    }

    private static void CheckNames(IReadOnlyList<string> names, string parameter)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in names)
        {
            if (string.IsNullOrWhiteSpace(name))
            {
                throw new ArgumentException("An item name is empty.", parameter);
            }

            if (!seen.Add(name))
            {
                throw new ArgumentException($"The name '{name}' is given twice.", parameter);
            }
        }
    }
}

/// <summary>Where a restore is.</summary>
public enum RestorePhase
{
    /// <summary>Creating the planned items in the target.</summary>
    Restoring = 1,

    /// <summary>An item failed or the restore was cancelled, or a rollback by ID runs: removing what the operation created.</summary>
    RollingBack = 2,

    /// <summary>
    /// Reported once, before the first item is written: the restore is journaled under
    /// <see cref="RestoreProgress.OperationId"/>, the ID to resume or roll it back by if the process dies.
    /// </summary>
    Started = 3,
}

/// <summary>Progress of a restore: once when it has started (before its first write), then after each item.</summary>
/// <param name="OperationId">The restore operation's ID, the one to resume or roll it back by.</param>
/// <param name="Phase">Started, restoring or rolling back.</param>
/// <param name="Completed">Items done in this phase.</param>
/// <param name="Total">Items this phase has to do.</param>
/// <param name="Item">The item just done; <see langword="null"/> for <see cref="RestorePhase.Started"/>.</param>
public sealed record RestoreProgress(string OperationId, RestorePhase Phase, int Completed, int Total, RestoreOperationItem? Item);

/// <summary>A restore that completed: every planned item is in the target.</summary>
public sealed record RestoreResult
{
    /// <summary>The plan that was carried out.</summary>
    public required RestorePlan Plan { get; init; }

    /// <summary>The restore operation's ID.</summary>
    public string OperationId => Plan.OperationId;

    /// <summary>The items created by this run, in the order they were created.</summary>
    public required IReadOnlyList<RestorePlanItem> Restored { get; init; }

    /// <summary>The items an earlier run of the same operation had created already, left as they were.</summary>
    public required IReadOnlyList<RestorePlanItem> AlreadyRestored { get; init; }
}

/// <summary>
/// A restore refused by its plan (nothing was written), or one that failed while writing (what the
/// batch wrote was removed, rule R7). <see cref="BackupException.Code"/> is the first violation's code,
/// or the failure's; <see cref="Plan"/> lists every item and violation.
/// </summary>
public sealed class RestoreException : BackupException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="refusal">The first violation, or the failure.</param>
    /// <param name="plan">The plan.</param>
    /// <param name="leftInTarget">Items the batch created that could not be removed again.</param>
    /// <param name="innerException">The failure, if any.</param>
    public RestoreException(Refusal refusal, RestorePlan plan, IReadOnlyList<RestorePlanItem>? leftInTarget = null, Exception? innerException = null)
        : base(refusal, innerException)
    {
        ArgumentNullException.ThrowIfNull(plan);
        Plan = plan;
        LeftInTarget = leftInTarget ?? [];
    }

    /// <summary>The plan, with every item's outcome and every violation.</summary>
    public RestorePlan Plan { get; }

    /// <summary>The restore operation's ID (also when it was made for the call): resume or roll the operation back by it.</summary>
    public string OperationId => Plan.OperationId;

    /// <summary>
    /// Items this batch created that the rollback could not remove (the target could not be reached);
    /// empty when the target is as it was. The operation then stays unfinished in the restore journal:
    /// resume it or roll it back by <see cref="OperationId"/>.
    /// </summary>
    public IReadOnlyList<RestorePlanItem> LeftInTarget { get; }

    /// <summary>Whether the plan refused the restore before anything was written.</summary>
    public bool RefusedByPlan => !Plan.CanExecute;
}
