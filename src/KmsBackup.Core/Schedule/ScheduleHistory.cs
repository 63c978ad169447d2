namespace KmsBackup.Domain;

/// <summary>
/// What has run for a backup, as much as the schedule needs: the last completed full and the slot of
/// the last completed incremental. Immutable; <see cref="BackupScheduler.Record"/> makes the next one.
/// Entries from before the backup was last enabled are ignored.
/// </summary>
internal sealed record ScheduleHistory
{
    /// <summary>No run yet.</summary>
    public static ScheduleHistory Empty { get; } = new();

    /// <summary>When the last completed full backup started.</summary>
    public DateTimeOffset? LastFullStartedAt { get; init; }

    /// <summary>When the last full backup completed; incrementals are due every interval after it.</summary>
    public DateTimeOffset? LastFullCompletedAt { get; init; }

    /// <summary>The grid instant (last full's completion + k × interval) the last incremental ran for; <see langword="null"/> if none ran since the last full.</summary>
    public DateTimeOffset? LastIncrementalSlot { get; init; }
}
