namespace KmsBackup.Domain;

/// <summary>A request to change a backup's lifecycle state, applied by <see cref="BackupLifecycle.Apply"/>.</summary>
internal abstract record BackupCommand
{
    private protected BackupCommand()
    {
    }

    /// <summary>The operation the command performs, as <see cref="BackupKindPolicy.AllowedOperations"/> names it; <see cref="BackupOperation.None"/> for events.</summary>
    public abstract BackupOperation Operation { get; }
}

/// <summary>Bind a default or purchased backup to an enabled instance and start backing it up (rule K7).</summary>
/// <param name="Instance">The instance to back up.</param>
/// <param name="BackupType">The backup type chosen: the instance must be of this kind.</param>
/// <param name="Alias">A custom alias; when <see langword="null"/>, the backup's ID.</param>
internal sealed record EnableBackup(InstanceInfo Instance, InstanceKind BackupType, string? Alias = null) : BackupCommand
{
    /// <inheritdoc />
    public override BackupOperation Operation => BackupOperation.Enable;
}

/// <summary>Increase a purchased backup's viewable days (rule L6).</summary>
/// <param name="ViewableDays">The new viewable days, more than the current and at most 600.</param>
internal sealed record ExtendViewableDays(int ViewableDays) : BackupCommand
{
    /// <inheritdoc />
    public override BackupOperation Operation => BackupOperation.Extend;
}

/// <summary>Delete all of a default or purchased backup's data and unbind it (rule L5).</summary>
internal sealed record ResetBackup : BackupCommand
{
    /// <inheritdoc />
    public override BackupOperation Operation => BackupOperation.Reset;
}

/// <summary>Renew a purchased backup: extend its term, or reactivate it before it is released (rules L4, L7).</summary>
/// <param name="Term">The renewal duration.</param>
internal sealed record RenewBackup(PurchaseTerm Term) : BackupCommand
{
    /// <inheritdoc />
    public override BackupOperation Operation => BackupOperation.Renew;
}

/// <summary>Delete an uploaded backup and its data.</summary>
internal sealed record DeleteBackup : BackupCommand
{
    /// <inheritdoc />
    public override BackupOperation Operation => BackupOperation.Delete;
}

/// <summary>
/// An event, not a request: the instance <paramref name="InstanceId"/> was released. A backup bound to
/// it takes no new data from then on; an automatic one is released 90 days later (rules L2, W6).
/// Backups bound to other instances are unchanged.
/// </summary>
/// <param name="InstanceId">The released instance.</param>
internal sealed record InstanceReleased(string InstanceId) : BackupCommand
{
    /// <summary>When the instance was released, if known (as its service reports it); else the instant the command is applied. Never later than that instant.</summary>
    public DateTimeOffset? At { get; init; }

    /// <inheritdoc />
    public override BackupOperation Operation => BackupOperation.None;
}
