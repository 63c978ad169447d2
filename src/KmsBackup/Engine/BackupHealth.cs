
namespace KmsBackup;

/// <summary>A backup whose run failed while others ran: the backup and what it threw.</summary>
/// <param name="BackupId">The backup.</param>
/// <param name="Error">What the run threw.</param>
public sealed record BackupRunFailure(string BackupId, Exception Error);

/// <summary>
/// How a backup that this client runs is doing: its last success and failure, failures in a row, how far
/// it is behind schedule, and when it expires. Failures are those this client saw (in this process);
/// the last success is read from the store.
/// </summary>
public sealed record BackupHealth
{
    /// <summary>The backup.</summary>
    public required string BackupId { get; init; }

    /// <summary>The backup's kind.</summary>
    public required BackupKind Kind { get; init; }

    /// <summary>The backup's status now.</summary>
    public required BackupStatus Status { get; init; }

    /// <summary>The bound instance's ID, if any.</summary>
    public string? InstanceId { get; init; }

    /// <summary>The latest recovery point, if any.</summary>
    public RecoveryPoint? LatestPoint { get; init; }

    /// <summary>When the latest run that committed a recovery point completed; <see langword="null"/> if none did.</summary>
    public DateTimeOffset? LastSuccessAt { get; init; }

    /// <summary>When this client last saw a run of the backup fail; <see langword="null"/> if it saw none.</summary>
    public DateTimeOffset? LastFailureAt { get; init; }

    /// <summary>The last failure as a stable name: a <see cref="BackupErrorCode"/>, or an exception type name.</summary>
    public string? LastErrorType { get; init; }

    /// <summary>The last failure's message, for a <see cref="BackupException"/> only (whose messages never hold a secret); <see langword="null"/> otherwise.</summary>
    public string? LastErrorMessage { get; init; }

    /// <summary>How many runs failed in a row since the last success this client saw; 0 after a success.</summary>
    public int ConsecutiveFailures { get; init; }

    /// <summary>What runs next and when it is (or was) due; <see langword="null"/> when nothing will run (unbound, expired, released).</summary>
    public ScheduledRun? NextRun { get; init; }

    /// <summary>How far the backup is behind its schedule: how long its next run has been due; zero when nothing is due.</summary>
    public TimeSpan Lag { get; init; }

    /// <summary>When a purchased backup expires; <see langword="null"/> for kinds that do not.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>How long until it expires (negative once expired); <see langword="null"/> for kinds that do not.</summary>
    public TimeSpan? ExpiresIn { get; init; }
}
