namespace KmsBackup;

/// <summary>A backup as the console shows it: type label, status, bound instance, alias, viewable days, queryable range, expiry (rule K1, W2, L1).</summary>
public sealed record BackupDetails
{
    /// <summary>The backup's ID.</summary>
    public required string Id { get; init; }

    /// <summary>The backup's kind.</summary>
    public required BackupKind Kind { get; init; }

    /// <summary>The backup type label: <c>System Created</c>, <c>Default</c>, <c>Paid</c> or <c>Upload</c>.</summary>
    public string Label => BackupKindPolicy.For(Kind).Label;

    /// <summary>The lifecycle status.</summary>
    public required BackupStatus Status { get; init; }

    /// <summary>The account that owns the backup (the resource owner).</summary>
    public required string OwnerAccount { get; init; }

    /// <summary>The alias; <see langword="null"/> until enabled.</summary>
    public string? Alias { get; init; }

    /// <summary>The bound instance (the backup object), if any.</summary>
    public BoundInstance? Instance { get; init; }

    /// <summary>The backup's region.</summary>
    public string? Region { get; init; }

    /// <summary>The zone the backup counts days in.</summary>
    public required BackupTimeZone TimeZone { get; init; }

    /// <summary>The viewable days.</summary>
    public required int ViewableDays { get; init; }

    /// <summary>The queryable range today: the viewable window, or <see langword="null"/> when the backup holds no data.</summary>
    public ViewableWindow? QueryableRange { get; init; }

    /// <summary>When the backup was created or purchased.</summary>
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>When it was last enabled.</summary>
    public DateTimeOffset? EnabledAt { get; init; }

    /// <summary>When a purchased backup expires.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>When the backup will be released by time alone (purchased: 15 days after expiry; automatic: 90 days after its instance's release).</summary>
    public DateTimeOffset? ReleaseDueAt { get; init; }

    /// <summary>The purchase, for a purchased backup.</summary>
    public PurchaseRecord? Purchase { get; init; }

    /// <summary>The latest recovery point, if any.</summary>
    public RecoveryPoint? LatestPoint { get; init; }

    /// <summary>The HSM cluster of a hardware instance's backup (cluster ID, primary HSM); <see langword="null"/> until the HSM port is configured.</summary>
    public HsmClusterReference? Hsm { get; init; }

    /// <summary>
    /// Why the backup's latest catalog entry cannot be used (it failed its integrity check), or
    /// <see langword="null"/> when it is intact. A damaged backup is listed with the state of its previous
    /// entry, takes no runs and refuses operations with the same error; the other backups are unaffected.
    /// </summary>
    public Refusal? Damage { get; init; }
}

/// <summary>The HSM cluster behind a hardware instance (rule H6).</summary>
/// <param name="ClusterId">The HSM cluster ID.</param>
/// <param name="PrimaryHsmId">The primary HSM's ID.</param>
public sealed record HsmClusterReference(string ClusterId, string PrimaryHsmId);

/// <summary>One recovery point: a full or incremental backup run.</summary>
public sealed record RecoveryPoint
{
    /// <summary>The backup.</summary>
    public required string BackupId { get; init; }

    /// <summary>The point's sequence number within the backup, from 1.</summary>
    public required long Sequence { get; init; }

    /// <summary>Full or incremental.</summary>
    public required BackupRunKind Kind { get; init; }

    /// <summary>Why it ran.</summary>
    public required ScheduleReason Reason { get; init; }

    /// <summary>The calendar date (in the backup's zone) the point belongs to.</summary>
    public required DateOnly Date { get; init; }

    /// <summary>When the instance's data was read: the state the point holds is the state at this instant.</summary>
    public required DateTimeOffset TakenAt { get; init; }

    /// <summary>When the run completed.</summary>
    public required DateTimeOffset CompletedAt { get; init; }

    /// <summary>How many keys the point holds.</summary>
    public required long KeyCount { get; init; }

    /// <summary>How many secrets the point holds.</summary>
    public required long SecretCount { get; init; }

    /// <summary>How many items changed since the previous point.</summary>
    public required int ChangeCount { get; init; }
}

/// <summary>What a backup run did.</summary>
public sealed record BackupRunResult
{
    /// <summary>The recovery point the run committed.</summary>
    public required RecoveryPoint Point { get; init; }

    /// <summary>Bytes written to the store: new packs and their indexes (not the manifest).</summary>
    public required long BytesWritten { get; init; }

    /// <summary>New objects written; everything else was shared with earlier points.</summary>
    public required int ObjectsWritten { get; init; }

    /// <summary>Whether the instance's change feed was used instead of reading every item.</summary>
    public required bool UsedChangeFeed { get; init; }
}

/// <summary>The six data types of a date (rule D2).</summary>
public enum BackupDataType
{
    /// <summary>All keys in that day's full backup.</summary>
    FullyBackedUpKeys = 1,

    /// <summary>Keys newly added that day.</summary>
    IncrementallyBackedUpKeys = 2,

    /// <summary>Keys rotated that day.</summary>
    RotatedKeys = 3,

    /// <summary>All secrets in that day's full backup.</summary>
    FullyBackedUpSecrets = 4,

    /// <summary>Secrets newly added that day.</summary>
    IncrementallyBackedUpSecrets = 5,

    /// <summary>Secrets rotated (given a new version) that day.</summary>
    RotatedSecrets = 6,
}

/// <summary>Which page of a data view to read (rule D3).</summary>
public sealed record BackupDataQuery
{
    /// <summary>The most items a page holds, 1 to 1000. Default 100.</summary>
    public int PageSize { get; init; } = 100;

    /// <summary>Only items whose name contains this text (ordinal, case-insensitive); <see langword="null"/> for all.</summary>
    public string? NameContains { get; init; }

    /// <summary>
    /// Only items whose name starts with this text (ordinal, case-sensitive: the views' own order); <see langword="null"/>
    /// for all. On the fully backed up views a page seeks to the first such name, so it costs the page, not the day. With
    /// <see cref="NameContains"/> as well, an item must match both (and the page reads the view whole).
    /// </summary>
    public string? NamePrefix { get; init; }

    /// <summary>Where the previous page ended; <see langword="null"/> for the first page.</summary>
    public string? ContinuationToken { get; init; }
}

/// <summary>An item in a data view: its metadata, never its key material or secret value.</summary>
public sealed record BackupDataItem
{
    /// <summary>Key or secret.</summary>
    public required ItemType Type { get; init; }

    /// <summary>The item's name.</summary>
    public required string Name { get; init; }

    /// <summary>The key ID (keys only).</summary>
    public string? KeyId { get; init; }

    /// <summary>The key spec (keys only).</summary>
    public string? Spec { get; init; }

    /// <summary>The encrypting key's ID (secrets only).</summary>
    public string? EncryptionKeyId { get; init; }

    /// <summary>The account that created the item.</summary>
    public required string CreatorAccount { get; init; }

    /// <summary>When the item was created.</summary>
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>When it was last rotated, if ever.</summary>
    public DateTimeOffset? LastRotatedAt { get; init; }

    /// <summary>How many versions it has.</summary>
    public required int VersionCount { get; init; }

    /// <summary>Its description.</summary>
    public string? Description { get; init; }

    internal static BackupDataItem From(KeyRecord key) => new()
    {
        Type = ItemType.Key,
        Name = key.Name,
        KeyId = key.Id,
        Spec = key.Spec,
        CreatorAccount = key.CreatorAccount,
        CreatedAt = key.CreatedAt,
        LastRotatedAt = key.LastRotatedAt,
        VersionCount = key.Versions.Length,
        Description = key.Description,
    };

    internal static BackupDataItem From(SecretRecord secret) => new()
    {
        Type = ItemType.Secret,
        Name = secret.Name,
        EncryptionKeyId = secret.EncryptionKeyId,
        CreatorAccount = secret.CreatorAccount,
        CreatedAt = secret.CreatedAt,
        LastRotatedAt = secret.LastRotatedAt,
        VersionCount = secret.Versions.Length,
        Description = secret.Description,
    };
}

/// <summary>A page of a data view.</summary>
public sealed record BackupDataPage
{
    /// <summary>The date viewed.</summary>
    public required DateOnly Date { get; init; }

    /// <summary>The data type viewed.</summary>
    public required BackupDataType Type { get; init; }

    /// <summary>The items of this page, by name.</summary>
    public required IReadOnlyList<BackupDataItem> Items { get; init; }

    /// <summary>Where the next page starts; <see langword="null"/> on the last page.</summary>
    public string? ContinuationToken { get; init; }

    /// <summary>The recovery point the full types were read from; <see langword="null"/> when no full backup ran that day.</summary>
    public RecoveryPoint? FullPoint { get; init; }
}
