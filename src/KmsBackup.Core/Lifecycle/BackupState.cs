namespace KmsBackup.Domain;

/// <summary>
/// A backup as the lifecycle rules see it: immutable; every change is a new state made by
/// <see cref="BackupLifecycle"/>. Holds no backed-up data, only what decides what may be done with it.
/// </summary>
internal sealed record BackupState
{
    internal BackupState(string id, BackupKind kind, BackupTimeZone timeZone, DateTimeOffset createdAt, int viewableDays)
    {
        Id = id;
        Kind = kind;
        TimeZone = timeZone;
        CreatedAt = createdAt;
        ViewableDays = viewableDays;
    }

    /// <summary>The backup's ID.</summary>
    public string Id { get; }

    /// <summary>The backup's kind.</summary>
    public BackupKind Kind { get; }

    /// <summary>The policy of the backup's kind: label, viewable days, operations.</summary>
    public BackupKindPolicy Policy => BackupKindPolicy.For(Kind);

    /// <summary>The backup type label: <c>System Created</c>, <c>Default</c>, <c>Paid</c> or <c>Upload</c>.</summary>
    public string Label => Policy.Label;

    /// <summary>Where the backup is in its lifecycle.</summary>
    public BackupStatus Status { get; internal init; } = BackupStatus.Disabled;

    /// <summary>The zone whose calendar days the backup counts in.</summary>
    public BackupTimeZone TimeZone { get; }

    /// <summary>When the backup was created or purchased.</summary>
    public DateTimeOffset CreatedAt { get; }

    /// <summary>The viewable days: 90 (automatic), 7 (default), 7–600 (purchased), 1 (uploaded: the date its file held).</summary>
    public int ViewableDays { get; internal init; }

    /// <summary>The region the backup belongs to: a purchased backup's from purchase; otherwise its instance's or upload's.</summary>
    public string? Region { get; internal init; }

    /// <summary>The backup's alias (or an uploaded backup's name); <see langword="null"/> until enabled.</summary>
    public string? Alias { get; internal init; }

    /// <summary>The instance the backup is bound to; <see langword="null"/> when unbound or uploaded.</summary>
    public BoundInstance? Instance { get; internal init; }

    /// <summary>When the backup was last enabled; <see langword="null"/> when it holds no data (never enabled, or reset).</summary>
    public DateTimeOffset? EnabledAt { get; internal init; }

    /// <summary>When the bound instance was released; from then on the backup takes no new data (rule W6).</summary>
    public DateTimeOffset? InstanceReleasedAt { get; internal init; }

    /// <summary>The purchase, for a purchased backup.</summary>
    public PurchaseRecord? Purchase { get; internal init; }

    /// <summary>When a purchased backup expires (or expired).</summary>
    public DateTimeOffset? ExpiresAt { get; internal init; }

    /// <summary>When the backup was released, once it is.</summary>
    public DateTimeOffset? ReleasedAt { get; internal init; }

    /// <summary>The date an uploaded backup's file held.</summary>
    public DateOnly? UploadedDate { get; internal init; }

    /// <summary>
    /// The first date with data: the date (in <see cref="TimeZone"/>) the backup was last enabled, or an
    /// uploaded backup's date; <see langword="null"/> when the backup holds no data.
    /// </summary>
    public DateOnly? EnabledOn => UploadedDate ?? (EnabledAt is { } at ? TimeZone.DateOf(at) : null);

    /// <summary>When the backup will be released by time alone: 15 days after a purchased backup expires, 90 days after an automatic backup's instance is released.</summary>
    public DateTimeOffset? ReleaseDueAt => Kind switch
    {
        BackupKind.Purchased => ExpiresAt + BackupKindPolicy.PurchasedReleaseDelay,
        BackupKind.Automatic => InstanceReleasedAt + BackupKindPolicy.AutomaticReleaseDelay,
        _ => null,
    };

    /// <summary>Whether the backup takes new data from an instance: enabled, bound, and its instance not released (rules S5, W6).</summary>
    public bool TakesNewData => Status == BackupStatus.Enabled && Instance is not null && InstanceReleasedAt is null;

    /// <summary>
    /// The viewable window at <paramref name="now"/>, or <see langword="null"/> when the backup holds no data.
    /// Does not apply expiry or release: see <see cref="BackupLifecycle.EvaluateDate"/> for the full check.
    /// </summary>
    /// <param name="now">The current instant.</param>
    public ViewableWindow? WindowAt(DateTimeOffset now)
    {
        if (UploadedDate is { } held)
        {
            return new ViewableWindow(held, held);
        }

        if (EnabledOn is not { } enabledOn)
        {
            return null;
        }

        // A clock that went back before the enabling date shows the enabling date alone rather than failing.
        var today = TimeZone.DateOf(now);
        return ViewableWindow.On(today < enabledOn ? enabledOn : today, ViewableDays, enabledOn);
    }

    /// <summary>How to name this backup in messages: <c>backup 'id'</c>.</summary>
    internal string Named => $"backup '{Id}'";
}
