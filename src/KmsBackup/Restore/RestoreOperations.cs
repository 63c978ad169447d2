namespace KmsBackup;

/// <summary>A key or secret of a restore operation, by type and name.</summary>
/// <param name="Type">Key or secret.</param>
/// <param name="Name">The item's name.</param>
public sealed record RestoreOperationItem(ItemType Type, string Name)
{
    /// <summary>The item in one line, e.g. <c>key 'orders'</c>.</summary>
    public override string ToString() => $"{(Type == ItemType.Key ? "key" : "secret")} '{Name}'";
}

/// <summary>
/// A restore operation that began writing and has not finished, as the restore journal and the target
/// instance show it: its process may have died between its writes and its rollback, or it may still be
/// running in another process (then resuming or rolling it back waits for that process's lease).
/// Resume it with <see cref="BackupClient.ResumeRestoreAsync"/> or roll it back with
/// <see cref="BackupClient.RollBackRestoreAsync"/>.
/// </summary>
/// <remarks>Metadata only (names and IDs): safe to log or show.</remarks>
public sealed record RestoreOperation
{
    /// <summary>The operation's ID.</summary>
    public required string OperationId { get; init; }

    /// <summary>The account that ran it, the owner of the backup.</summary>
    public required string CallerAccount { get; init; }

    /// <summary>The backup the data comes from.</summary>
    public required string BackupId { get; init; }

    /// <summary>The date of the data, in the backup's time zone.</summary>
    public required DateOnly BackupDate { get; init; }

    /// <summary>The instance it restores into.</summary>
    public required string TargetInstanceId { get; init; }

    /// <summary>When its latest run began.</summary>
    public required DateTimeOffset StartedAt { get; init; }

    /// <summary>How many runs it has had (the first, then reruns and resumes under the same ID).</summary>
    public required int Runs { get; init; }

    /// <summary>Every item the operation planned, in the order it creates them: keys, then secrets.</summary>
    public required IReadOnlyList<RestoreOperationItem> Items { get; init; }

    /// <summary>
    /// The items the target holds as this operation created them, read from the target when listed: what
    /// a rollback removes and a resume skips.
    /// </summary>
    public required IReadOnlyList<RestoreOperationItem> ItemsInTarget { get; init; }

    /// <summary>The operation in one line.</summary>
    public override string ToString() =>
        $"restore {OperationId}: backup '{BackupId}' -> instance '{TargetInstanceId}', {ItemsInTarget.Count} of {Items.Count} items in the target, unfinished";
}

/// <summary>What rolling a restore operation back by its ID did: the target is as it was before the operation.</summary>
public sealed record RestoreRollbackResult
{
    /// <summary>The operation's ID.</summary>
    public required string OperationId { get; init; }

    /// <summary>The instance the operation restored into.</summary>
    public required string TargetInstanceId { get; init; }

    /// <summary>The items removed from the target (secrets before the keys that encrypt them).</summary>
    public required IReadOnlyList<RestoreOperationItem> Removed { get; init; }

    /// <summary>
    /// Planned items the target did not hold as this operation created them: never created, removed
    /// already, or changed since it created them (and so left to their owner).
    /// </summary>
    public required IReadOnlyList<RestoreOperationItem> Skipped { get; init; }
}
