namespace KmsBackup;

/// <summary>
/// A recovery drill (<see cref="BackupClient.DrillAsync"/>): which backup to prove recoverable, from which instant, into
/// which scratch instance, and how many items to sample. Run it on a client opened the way a disaster would leave you:
/// with only the escrowed key provider, or on the copy of the repository in another store.
/// </summary>
public sealed record RecoveryDrillRequest
{
    /// <summary>The most items of each type a drill samples.</summary>
    public const int MaxSampleSize = 1000;

    /// <summary>The backup's owner.</summary>
    public required string CallerAccount { get; init; }

    /// <summary>The backup to drill.</summary>
    public required string BackupId { get; init; }

    /// <summary>
    /// An empty instance of the owner's account, of the backup's kind, that nothing depends on: the sampled items are
    /// restored into it, compared, and deleted again. The backup's own instance, or any instance that holds a key or a
    /// secret, is refused with <see cref="BackupErrorCode.DrillTargetNotScratch"/>. Restores keep names unique in a
    /// region, so a scratch instance in the production instance's region is refused by the restore plan
    /// (<see cref="BackupErrorCode.NameConflict"/>) while production holds the names: use another region.
    /// </summary>
    public required string ScratchInstanceId { get; init; }

    /// <summary>The drill uses the latest recovery point taken at or before this instant; <see langword="null"/> for the latest.</summary>
    public DateTimeOffset? PointInTime { get; init; }

    /// <summary>How many keys, and how many secrets, are sampled (each at most the point holds): 1 to <see cref="MaxSampleSize"/>; 20 by default.</summary>
    public int SampleSize { get; init; } = 20;

    /// <summary>Seeds the sampling, so that a drill can be repeated on the same items; <see langword="null"/> for a random sample.</summary>
    public int? Seed { get; init; }

    /// <summary>Whether the drill also verifies every object of the repository (<see cref="BackupClient.VerifyAsync"/>) first.</summary>
    public bool VerifyRepository { get; init; }

    /// <summary>Checks that the request is well formed.</summary>
    /// <exception cref="ArgumentException">An ID is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="SampleSize"/> is not 1 to <see cref="MaxSampleSize"/>.</exception>
    public void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(CallerAccount);
        ArgumentException.ThrowIfNullOrWhiteSpace(BackupId);
        ArgumentException.ThrowIfNullOrWhiteSpace(ScratchInstanceId);
        if (SampleSize is < 1 or > MaxSampleSize)
        {
            throw new ArgumentOutOfRangeException(nameof(SampleSize), SampleSize, $"Sample 1 to {MaxSampleSize} items of each type.");
        }
    }
}

/// <summary>How one sampled item came through a drill.</summary>
public enum RecoveryDrillOutcome
{
    /// <summary>Restored, and the scratch instance holds it exactly as the backup does: metadata, every version, key material or secret ciphertext.</summary>
    Matched = 1,

    /// <summary>Restored, but the scratch instance holds it differently from the backup (<see cref="RecoveryDrillItem.Problem"/> says how).</summary>
    Differs = 2,

    /// <summary>The restore reported it created, but the scratch instance does not hold it.</summary>
    Missing = 3,

    /// <summary>Not drilled: a secret whose encrypting key the recovery point does not hold cannot be restored into an empty instance.</summary>
    Skipped = 4,
}

/// <summary>One sampled item of a drill.</summary>
/// <param name="Type">Key or secret.</param>
/// <param name="Name">The item's name.</param>
/// <param name="Outcome">How it came through.</param>
/// <param name="Problem">What differs, or why it was skipped; <see langword="null"/> when it matched. Never a value.</param>
public sealed record RecoveryDrillItem(ItemType Type, string Name, RecoveryDrillOutcome Outcome, string? Problem = null);

/// <summary>What a recovery drill did and found.</summary>
public sealed record RecoveryDrillReport
{
    /// <summary>The backup drilled.</summary>
    public required string BackupId { get; init; }

    /// <summary>The recovery point the items came from.</summary>
    public required RecoveryPoint Point { get; init; }

    /// <summary>The scratch instance they were restored into (and deleted from again).</summary>
    public required string ScratchInstanceId { get; init; }

    /// <summary>The key provider the repository was opened with (its <see cref="RepositoryKeyProvider.KeyId"/>): the one the drill proves.</summary>
    public required string KeyProviderId { get; init; }

    /// <summary>The restore operation the drill ran (it is in the restore journal as completed).</summary>
    public required string OperationId { get; init; }

    /// <summary>The keys and secrets the point holds, of which the drill sampled <see cref="Items"/>.</summary>
    public required long KeysInPoint { get; init; }

    /// <summary>The secrets the point holds.</summary>
    public required long SecretsInPoint { get; init; }

    /// <summary>Every sampled item, keys first, each in name order.</summary>
    public required IReadOnlyList<RecoveryDrillItem> Items { get; init; }

    /// <summary>The repository's verification, when the request asked for it.</summary>
    public RepositoryVerification? Verification { get; init; }

    /// <summary>Whether every restored item was deleted from the scratch instance again.</summary>
    public required bool ScratchCleared { get; init; }

    /// <summary>The items left in the scratch instance because deleting them failed, each with the failure (empty when <see cref="ScratchCleared"/>).</summary>
    public IReadOnlyList<string> LeftInScratch { get; init; } = [];

    /// <summary>How long the drill took.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>
    /// Whether the drill proves the backup recoverable: at least one item was restored, every restored item matched, the
    /// scratch instance was cleared, and the verification (when run) found nothing wrong.
    /// </summary>
    public bool Passed =>
        Items.Any(i => i.Outcome == RecoveryDrillOutcome.Matched) &&
        Items.All(i => i.Outcome is RecoveryDrillOutcome.Matched or RecoveryDrillOutcome.Skipped) &&
        ScratchCleared && (Verification?.IsClean ?? true);

    /// <summary>The drill in one line; never a value.</summary>
    public override string ToString() =>
        $"drill of {BackupId} at point {Point.Sequence}: {Items.Count(i => i.Outcome == RecoveryDrillOutcome.Matched)} of {Items.Count} items matched, {(Passed ? "passed" : "failed")}";
}
