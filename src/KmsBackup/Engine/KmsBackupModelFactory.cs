namespace KmsBackup;

/// <summary>
/// Creates the models <see cref="BackupClient"/> returns, for tests and fakes of a host's own code (a mocked
/// client returns what these make). Every property is a parameter, the required ones first and the others
/// optional: when a later version adds a property, it is added here as an optional parameter, so code written
/// against these methods keeps compiling, where object initializers of the models would break on a new required
/// member. The same pattern as <c>KeyModelFactory</c> in Azure.Security.KeyVault.Keys.
/// </summary>
public static class KmsBackupModelFactory
{
    /// <summary>A <see cref="KmsBackup.BackupDetails"/>.</summary>
    /// <param name="id">The backup's ID.</param>
    /// <param name="kind">Its kind.</param>
    /// <param name="status">Its status.</param>
    /// <param name="ownerAccount">The account that owns it.</param>
    /// <param name="createdAt">When it was created.</param>
    /// <param name="timeZone">The time zone its days are counted in; UTC by default.</param>
    /// <param name="viewableDays">Its viewable days; 7 by default.</param>
    /// <param name="alias">Its alias.</param>
    /// <param name="instance">The instance it is bound to.</param>
    /// <param name="region">Its region.</param>
    /// <param name="queryableRange">The dates that can be viewed now.</param>
    /// <param name="enabledAt">When it was enabled.</param>
    /// <param name="expiresAt">When a purchased backup expires.</param>
    /// <param name="releaseDueAt">When its data is released.</param>
    /// <param name="purchase">A purchased backup's purchase.</param>
    /// <param name="latestPoint">Its latest recovery point.</param>
    /// <param name="hsm">A hardware backup's HSM cluster.</param>
    /// <param name="damage">The damage of its latest catalog entry, if it is damaged.</param>
    /// <returns>The details.</returns>
    public static BackupDetails BackupDetails(
        string id, BackupKind kind, BackupStatus status, string ownerAccount, DateTimeOffset createdAt,
        BackupTimeZone? timeZone = null, int viewableDays = 7, string? alias = null, BoundInstance? instance = null, string? region = null,
        ViewableWindow? queryableRange = null, DateTimeOffset? enabledAt = null, DateTimeOffset? expiresAt = null, DateTimeOffset? releaseDueAt = null,
        PurchaseRecord? purchase = null, RecoveryPoint? latestPoint = null, HsmClusterReference? hsm = null, Refusal? damage = null) => new()
        {
            Id = id,
            Kind = kind,
            Status = status,
            OwnerAccount = ownerAccount,
            CreatedAt = createdAt,
            TimeZone = timeZone ?? BackupTimeZone.Utc,
            ViewableDays = viewableDays,
            Alias = alias,
            Instance = instance,
            Region = region,
            QueryableRange = queryableRange,
            EnabledAt = enabledAt,
            ExpiresAt = expiresAt,
            ReleaseDueAt = releaseDueAt,
            Purchase = purchase,
            LatestPoint = latestPoint,
            Hsm = hsm,
            Damage = damage,
        };

    /// <summary>A <see cref="KmsBackup.RecoveryPoint"/>.</summary>
    /// <param name="backupId">Its backup.</param>
    /// <param name="sequence">Its sequence number in the backup.</param>
    /// <param name="kind">Full or incremental.</param>
    /// <param name="date">The backup date it counts for.</param>
    /// <param name="takenAt">When the instance was read.</param>
    /// <param name="reason">Why it ran; <see cref="ScheduleReason.Incremental"/> by default.</param>
    /// <param name="completedAt">When it was committed; <paramref name="takenAt"/> by default.</param>
    /// <param name="keyCount">The keys it holds.</param>
    /// <param name="secretCount">The secrets it holds.</param>
    /// <param name="changeCount">The changes since the point before it.</param>
    /// <returns>The point.</returns>
    public static RecoveryPoint RecoveryPoint(
        string backupId, long sequence, BackupRunKind kind, DateOnly date, DateTimeOffset takenAt,
        ScheduleReason reason = ScheduleReason.Incremental, DateTimeOffset? completedAt = null, long keyCount = 0, long secretCount = 0, int changeCount = 0) => new()
        {
            BackupId = backupId,
            Sequence = sequence,
            Kind = kind,
            Date = date,
            TakenAt = takenAt,
            Reason = reason,
            CompletedAt = completedAt ?? takenAt,
            KeyCount = keyCount,
            SecretCount = secretCount,
            ChangeCount = changeCount,
        };

    /// <summary>A <see cref="KmsBackup.BackupRunResult"/>.</summary>
    /// <param name="point">The point the run committed.</param>
    /// <param name="bytesWritten">Bytes it wrote to the store.</param>
    /// <param name="objectsWritten">Objects it added.</param>
    /// <param name="usedChangeFeed">Whether it followed the instance's change feed.</param>
    /// <returns>The result.</returns>
    public static BackupRunResult BackupRunResult(RecoveryPoint point, long bytesWritten = 0, int objectsWritten = 0, bool usedChangeFeed = false) => new()
    {
        Point = point,
        BytesWritten = bytesWritten,
        ObjectsWritten = objectsWritten,
        UsedChangeFeed = usedChangeFeed,
    };

    /// <summary>A <see cref="KmsBackup.BackupRunReport"/>.</summary>
    /// <param name="runs">The runs that committed.</param>
    /// <param name="failures">The backups whose runs failed.</param>
    /// <returns>The report.</returns>
    public static BackupRunReport BackupRunReport(IEnumerable<BackupRunResult>? runs = null, IEnumerable<BackupRunFailure>? failures = null) =>
        new(runs ?? [], failures ?? []);

    /// <summary>A <see cref="KmsBackup.BackupDataItem"/>.</summary>
    /// <param name="type">Key or secret.</param>
    /// <param name="name">Its name.</param>
    /// <param name="creatorAccount">The account that created it.</param>
    /// <param name="createdAt">When it was created.</param>
    /// <param name="versionCount">Its versions; 1 by default.</param>
    /// <param name="keyId">A key's ID.</param>
    /// <param name="spec">A key's spec.</param>
    /// <param name="encryptionKeyId">The ID of the key that encrypts a secret.</param>
    /// <param name="lastRotatedAt">When its latest version was made, if after the first.</param>
    /// <param name="description">Its description.</param>
    /// <returns>The item.</returns>
    public static BackupDataItem BackupDataItem(
        ItemType type, string name, string creatorAccount, DateTimeOffset createdAt, int versionCount = 1,
        string? keyId = null, string? spec = null, string? encryptionKeyId = null, DateTimeOffset? lastRotatedAt = null, string? description = null) => new()
        {
            Type = type,
            Name = name,
            CreatorAccount = creatorAccount,
            CreatedAt = createdAt,
            VersionCount = versionCount,
            KeyId = keyId,
            Spec = spec,
            EncryptionKeyId = encryptionKeyId,
            LastRotatedAt = lastRotatedAt,
            Description = description,
        };

    /// <summary>A <see cref="KmsBackup.BackupDataPage"/>.</summary>
    /// <param name="date">The backup date viewed.</param>
    /// <param name="type">The data type viewed.</param>
    /// <param name="items">The page's items.</param>
    /// <param name="continuationToken">Where the next page starts; none for the last page.</param>
    /// <param name="fullPoint">The date's full backup.</param>
    /// <returns>The page.</returns>
    public static BackupDataPage BackupDataPage(DateOnly date, BackupDataType type, IReadOnlyList<BackupDataItem>? items = null, string? continuationToken = null, RecoveryPoint? fullPoint = null) => new()
    {
        Date = date,
        Type = type,
        Items = items ?? [],
        ContinuationToken = continuationToken,
        FullPoint = fullPoint,
    };

    /// <summary>A <see cref="KmsBackup.RestoreResult"/>.</summary>
    /// <param name="plan">The plan carried out.</param>
    /// <param name="restored">The items this run created.</param>
    /// <param name="alreadyRestored">The items an earlier run of the operation had created.</param>
    /// <returns>The result.</returns>
    public static RestoreResult RestoreResult(RestorePlan plan, IReadOnlyList<RestorePlanItem>? restored = null, IReadOnlyList<RestorePlanItem>? alreadyRestored = null) => new()
    {
        Plan = plan,
        Restored = restored ?? [],
        AlreadyRestored = alreadyRestored ?? [],
    };

    /// <summary>A <see cref="KmsBackup.RestoreOperation"/>.</summary>
    /// <param name="operationId">The operation's ID.</param>
    /// <param name="callerAccount">The account that ran it.</param>
    /// <param name="backupId">The backup restored from.</param>
    /// <param name="backupDate">The backup date restored from.</param>
    /// <param name="targetInstanceId">The instance restored into.</param>
    /// <param name="startedAt">When its first run began.</param>
    /// <param name="runs">Its runs so far; 1 by default.</param>
    /// <param name="items">The items it restores.</param>
    /// <param name="itemsInTarget">Those the target holds for it now.</param>
    /// <returns>The operation.</returns>
    public static RestoreOperation RestoreOperation(
        string operationId, string callerAccount, string backupId, DateOnly backupDate, string targetInstanceId, DateTimeOffset startedAt,
        int runs = 1, IReadOnlyList<RestoreOperationItem>? items = null, IReadOnlyList<RestoreOperationItem>? itemsInTarget = null) => new()
        {
            OperationId = operationId,
            CallerAccount = callerAccount,
            BackupId = backupId,
            BackupDate = backupDate,
            TargetInstanceId = targetInstanceId,
            StartedAt = startedAt,
            Runs = runs,
            Items = items ?? [],
            ItemsInTarget = itemsInTarget ?? [],
        };

    /// <summary>A <see cref="KmsBackup.RestoreRollbackResult"/>.</summary>
    /// <param name="operationId">The operation rolled back.</param>
    /// <param name="targetInstanceId">Its target.</param>
    /// <param name="removed">The items removed.</param>
    /// <param name="skipped">The items left, each no longer the operation's.</param>
    /// <returns>The result.</returns>
    public static RestoreRollbackResult RestoreRollbackResult(string operationId, string targetInstanceId, IReadOnlyList<RestoreOperationItem>? removed = null, IReadOnlyList<RestoreOperationItem>? skipped = null) => new()
    {
        OperationId = operationId,
        TargetInstanceId = targetInstanceId,
        Removed = removed ?? [],
        Skipped = skipped ?? [],
    };

    /// <summary>A <see cref="KmsBackup.BackupHealth"/>.</summary>
    /// <param name="backupId">The backup.</param>
    /// <param name="kind">Its kind.</param>
    /// <param name="status">Its status.</param>
    /// <param name="instanceId">Its instance.</param>
    /// <param name="latestPoint">Its latest point.</param>
    /// <param name="lastSuccessAt">Its last successful run.</param>
    /// <param name="lastFailureAt">Its last failed run.</param>
    /// <param name="lastErrorType">The last failure's error type.</param>
    /// <param name="lastErrorMessage">The last failure's message.</param>
    /// <param name="consecutiveFailures">Failures in a row.</param>
    /// <param name="nextRun">Its next run.</param>
    /// <param name="lag">How far behind schedule it is.</param>
    /// <param name="expiresAt">When a purchased backup expires.</param>
    /// <param name="expiresIn">How long until it expires.</param>
    /// <returns>The health.</returns>
    public static BackupHealth BackupHealth(
        string backupId, BackupKind kind, BackupStatus status, string? instanceId = null, RecoveryPoint? latestPoint = null,
        DateTimeOffset? lastSuccessAt = null, DateTimeOffset? lastFailureAt = null, string? lastErrorType = null, string? lastErrorMessage = null,
        int consecutiveFailures = 0, ScheduledRun? nextRun = null, TimeSpan lag = default, DateTimeOffset? expiresAt = null, TimeSpan? expiresIn = null) => new()
        {
            BackupId = backupId,
            Kind = kind,
            Status = status,
            InstanceId = instanceId,
            LatestPoint = latestPoint,
            LastSuccessAt = lastSuccessAt,
            LastFailureAt = lastFailureAt,
            LastErrorType = lastErrorType,
            LastErrorMessage = lastErrorMessage,
            ConsecutiveFailures = consecutiveFailures,
            NextRun = nextRun,
            Lag = lag,
            ExpiresAt = expiresAt,
            ExpiresIn = expiresIn,
        };

    /// <summary>A <see cref="KmsBackup.StoreClockStatus"/>.</summary>
    /// <param name="localTime">This host's clock.</param>
    /// <param name="storeTime">The latest time the store has seen.</param>
    /// <param name="deletionsHeld">Whether deletions are held.</param>
    /// <param name="maximumLead">The most this clock may run ahead; 48 hours by default.</param>
    /// <param name="maximumLag">The most it may run behind; 2 minutes by default.</param>
    /// <returns>The status.</returns>
    public static StoreClockStatus StoreClockStatus(DateTimeOffset localTime, DateTimeOffset? storeTime = null, bool deletionsHeld = false, TimeSpan? maximumLead = null, TimeSpan? maximumLag = null) => new()
    {
        LocalTime = localTime,
        StoreTime = storeTime,
        DeletionsHeld = deletionsHeld,
        MaximumLead = maximumLead ?? TimeSpan.FromHours(48),
        MaximumLag = maximumLag ?? TimeSpan.FromMinutes(2),
    };
}
