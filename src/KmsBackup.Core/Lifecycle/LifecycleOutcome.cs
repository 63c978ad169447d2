namespace KmsBackup.Domain;

/// <summary>What the engine must do after a lifecycle transition, besides storing the new state.</summary>
internal enum LifecycleEffect
{
    /// <summary>Run a full backup now (the first run after enabling, rule S1).</summary>
    RunFullBackup = 1,

    /// <summary>Permanently delete all data the backup holds (reset, release, deletion).</summary>
    DeleteAllData = 2,

    /// <summary>Record a charge for the purchase, extension or renewal (the SDK records; it prices nothing).</summary>
    RecordCharge = 3,
}

/// <summary>
/// The result of a lifecycle transition: the new state and the effects the engine must carry out,
/// or a refusal. A refused outcome still carries the state brought up to date with time (a backup
/// that expired meanwhile is <see cref="BackupStatus.Expired"/>), so the engine can store it.
/// </summary>
internal sealed class LifecycleOutcome
{
    private LifecycleOutcome(BackupState state, IReadOnlyList<LifecycleEffect> effects, Refusal? refusal)
    {
        State = state;
        Effects = effects;
        Refusal = refusal;
    }

    /// <summary>The new state, or, when refused, the state brought up to date with time.</summary>
    public BackupState State { get; }

    /// <summary>What the engine must do, in order (e.g. delete all data when a backup was released).</summary>
    public IReadOnlyList<LifecycleEffect> Effects { get; }

    /// <summary>Why the command was refused; <see langword="null"/> when accepted.</summary>
    public Refusal? Refusal { get; }

    /// <summary>Whether the command was accepted.</summary>
    [System.Diagnostics.CodeAnalysis.MemberNotNullWhen(false, nameof(Refusal))]
    public bool IsAccepted => Refusal is null;

    /// <summary>The new state; throws the refusal when refused.</summary>
    /// <exception cref="BackupException">The command was refused.</exception>
    public BackupState GetStateOrThrow() => IsAccepted ? State : throw Refusal.ToException();

    /// <summary>The outcome in one line.</summary>
    public override string ToString() => IsAccepted
        ? $"Accepted: {State.Id} {State.Status}{(Effects.Count > 0 ? " then " + string.Join(", ", Effects) : string.Empty)}"
        : $"Refused: {Refusal}";

    internal static LifecycleOutcome Accepted(BackupState state, IReadOnlyList<LifecycleEffect> effects) => new(state, effects, null);

    internal static LifecycleOutcome Refused(BackupState state, IReadOnlyList<LifecycleEffect> effects, Refusal refusal) => new(state, effects, refusal);
}

/// <summary>The result of creating backups: the new backups and what the engine must do, or a refusal.</summary>
internal sealed class CreationOutcome
{
    private CreationOutcome(IReadOnlyList<BackupState> backups, IReadOnlyList<LifecycleEffect> effects, Refusal? refusal)
    {
        Backups = backups;
        Effects = effects;
        Refusal = refusal;
    }

    /// <summary>The created backups; empty when refused.</summary>
    public IReadOnlyList<BackupState> Backups { get; }

    /// <summary>What the engine must do for each created backup (e.g. run the first full backup).</summary>
    public IReadOnlyList<LifecycleEffect> Effects { get; }

    /// <summary>Why creation was refused; <see langword="null"/> when accepted.</summary>
    public Refusal? Refusal { get; }

    /// <summary>Whether the backups were created.</summary>
    [System.Diagnostics.CodeAnalysis.MemberNotNullWhen(false, nameof(Refusal))]
    public bool IsAccepted => Refusal is null;

    /// <summary>The created backups; throws the refusal when refused.</summary>
    /// <exception cref="BackupException">Creation was refused.</exception>
    public IReadOnlyList<BackupState> GetBackupsOrThrow() => IsAccepted ? Backups : throw Refusal.ToException();

    /// <summary>The outcome in one line.</summary>
    public override string ToString() => IsAccepted
        ? $"Created: {string.Join(", ", Backups.Select(b => b.Id))}"
        : $"Refused: {Refusal}";

    internal static CreationOutcome Accepted(IReadOnlyList<BackupState> backups, IReadOnlyList<LifecycleEffect> effects) => new(backups, effects, null);

    internal static CreationOutcome Refused(Refusal refusal) => new([], [], refusal);
}
