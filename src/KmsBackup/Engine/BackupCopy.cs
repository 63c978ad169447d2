namespace KmsBackup;

/// <summary>What <see cref="BackupClient.CopyToAsync"/> copies.</summary>
public sealed record BackupCopyOptions
{
    /// <summary>
    /// The backups to copy, by ID; <see langword="null"/> or empty for every backup in the source's catalog. An ID the
    /// source does not hold is reported as a <see cref="BackupCopyProblemKind.NotFound"/> problem.
    /// </summary>
    public IReadOnlyList<string>? BackupIds { get; init; }
}

/// <summary>Why a backup or a recovery point was not copied.</summary>
public enum BackupCopyProblemKind
{
    /// <summary>
    /// An object of the point (its manifest, a tree node or a leaf) did not authenticate in the source: it was damaged or
    /// tampered with. The point was not copied; the copy went on with the others. Run verify on the source.
    /// </summary>
    SourceDamaged,

    /// <summary>The point was deleted from the source (a prune, a reset or a release) while it was being copied; nothing of it was committed in the destination.</summary>
    DeletedAtSource,

    /// <summary>The destination holds a point under the same name that differs from the source's (written by another writer): the backup was not copied.</summary>
    Conflict,

    /// <summary>Another writer holds the destination's lease of the backup; the backup is copied by a later run.</summary>
    LeaseHeld,

    /// <summary>The source's catalog does not hold the backup asked for, or its entry is damaged.</summary>
    NotFound,

    /// <summary>The destination refused or failed the write (its store failed, its lease was lost, its clock is behind); a later run goes on.</summary>
    DestinationFailed,
}

/// <summary>A backup or recovery point that a copy did not copy, and why.</summary>
/// <param name="BackupId">The backup.</param>
/// <param name="Point">The recovery point, or <see langword="null"/> when the problem concerns the whole backup.</param>
/// <param name="Kind">Why it was not copied.</param>
/// <param name="Error">What was thrown; its message names the item and the remedy.</param>
public sealed record BackupCopyProblem(string BackupId, RecoveryPointName? Point, BackupCopyProblemKind Kind, BackupException Error)
{
    /// <summary>The problem in one line: the backup, the point, the kind, and the error's message (which states the remedy).</summary>
    public override string ToString() =>
        $"{BackupId}{(Point is { } p ? " " + p : string.Empty)}: {Kind}: {Error.Message}";
}

/// <summary>A recovery point by its name: the date it was taken on in its backup's time zone, and its sequence in the backup.</summary>
/// <param name="Date">The point's date.</param>
/// <param name="Sequence">The point's sequence number in its backup (1 for the first).</param>
public readonly record struct RecoveryPointName(DateOnly Date, long Sequence)
{
    /// <summary>The name as <c>yyyy-MM-dd#sequence</c>.</summary>
    public override string ToString() => FormattableString.Invariant($"{Date:yyyy-MM-dd}#{Sequence}");
}

/// <summary>What a copy did for one backup.</summary>
public sealed record BackupCopyResult
{
    /// <summary>The backup.</summary>
    public required string BackupId { get; init; }

    /// <summary>The recovery points copied by this run, oldest first.</summary>
    public required IReadOnlyList<RecoveryPointName> PointsCopied { get; init; }

    /// <summary>How many of the source's points the destination held already (not read, not written).</summary>
    public required int PointsPresent { get; init; }

    /// <summary>Whether this run stored the backup's catalog entry (its lifecycle state) in the destination: it was new or had changed.</summary>
    public required bool StateCopied { get; init; }

    /// <summary>The bytes this run wrote into the destination's packs for this backup (objects it already held cost nothing).</summary>
    public required long BytesWritten { get; init; }

    /// <summary>The objects this run wrote into the destination's packs for this backup.</summary>
    public required int ObjectsWritten { get; init; }
}

/// <summary>
/// What <see cref="BackupClient.CopyToAsync"/> did: per backup, the points copied and those the destination held already; and
/// every problem (a damaged source object, a point deleted meanwhile, a lease held) with the backup and point it concerns.
/// A problem never stops the copy of the other points and backups.
/// </summary>
public sealed record BackupCopyReport
{
    /// <summary>One result per backup the copy reached, in catalog order.</summary>
    public required IReadOnlyList<BackupCopyResult> Backups { get; init; }

    /// <summary>Every backup or point not copied, with why.</summary>
    public required IReadOnlyList<BackupCopyProblem> Problems { get; init; }

    /// <summary>Whether everything asked for is in the destination now.</summary>
    public bool IsComplete => Problems.Count == 0;

    /// <summary>The recovery points copied by this run.</summary>
    public int PointsCopied => Backups.Sum(b => b.PointsCopied.Count);

    /// <summary>The recovery points the destination held already.</summary>
    public int PointsPresent => Backups.Sum(b => b.PointsPresent);

    /// <summary>The bytes written into the destination's packs.</summary>
    public long BytesWritten => Backups.Sum(b => b.BytesWritten);

    /// <summary>The objects written into the destination's packs.</summary>
    public int ObjectsWritten => Backups.Sum(b => b.ObjectsWritten);

    /// <summary>The report in one line.</summary>
    public override string ToString() => FormattableString.Invariant(
        $"{Backups.Count} backups: {PointsCopied} points copied, {PointsPresent} present, {ObjectsWritten} objects ({BytesWritten} bytes) written, {Problems.Count} problems");
}
