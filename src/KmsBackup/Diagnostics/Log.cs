using Microsoft.Extensions.Logging;

namespace KmsBackup.Diagnostics;

/// <summary>
/// Every log message of KmsBackup.Sdk, source-generated. Arguments are IDs, kinds, counts, durations and
/// error codes; no message takes a secret value, key material, a data key or a repository key, and
/// exceptions logged are the SDK's own, whose messages never hold one either.
/// </summary>
internal static partial class Log
{
    [LoggerMessage(1001, LogLevel.Information,
        "Backup {BackupId}: {RunKind} run ({Reason}) committed recovery point {Sequence} with {KeyCount} keys and {SecretCount} secrets, {ChangeCount} changes, {BytesWritten} bytes written, in {DurationMs} ms, {LagSeconds} s after it was due")]
    public static partial void RunCommitted(
        ILogger logger, string backupId, BackupRunKind runKind, ScheduleReason reason, long sequence,
        long keyCount, long secretCount, int changeCount, long bytesWritten, double durationMs, double lagSeconds);

    [LoggerMessage(1002, LogLevel.Error, "Backup {BackupId}: the {RunKind} run failed ({ErrorType}); {ConsecutiveFailures} failures in a row. It is tried again when next due")]
    public static partial void RunFailed(ILogger logger, Exception exception, string backupId, string runKind, string errorType, int consecutiveFailures);

    [LoggerMessage(1003, LogLevel.Debug, "Backup {BackupId}: skipped, another writer holds its lease")]
    public static partial void RunSkippedLeaseHeld(ILogger logger, string backupId);

    [LoggerMessage(1004, LogLevel.Warning, "Deletions are held: this host's clock ({LocalTime}) is more than {MaximumLead} ahead of the latest time the store has seen ({StoreTime}). Backups keep running; retention, releases and pack collection wait until the clock is fixed or an operator confirms it")]
    public static partial void DeletionsHeld(ILogger logger, DateTimeOffset localTime, TimeSpan maximumLead, DateTimeOffset? storeTime);

    [LoggerMessage(1005, LogLevel.Warning, "Prune collected no packs: {Reason}. Run verify to see what is damaged")]
    public static partial void CollectionBlocked(ILogger logger, string reason);

    [LoggerMessage(1006, LogLevel.Warning, "Backup {BackupId}: its catalog entry is damaged ({ErrorType}); it is skipped until repaired, and the other backups run")]
    public static partial void CatalogEntryDamaged(ILogger logger, string backupId, string errorType);

    [LoggerMessage(1007, LogLevel.Warning, "Backup {BackupId}: its new state (reset or released) is stored, but deleting its points stopped ({ErrorType}); prune or the next enable deletes what is left")]
    public static partial void PointsLeftBehind(ILogger logger, string backupId, string errorType);

    [LoggerMessage(1008, LogLevel.Warning, "Backup {BackupId}: the last point's trees could not be read ({ErrorType}), so this incremental reads the whole instance instead of following the change feed; run verify to see what is damaged")]
    public static partial void IncrementalFellBackToSnapshot(ILogger logger, string backupId, string errorType);

    [LoggerMessage(1010, LogLevel.Information, "Instance {InstanceId} gets no automatic backup ({Code}): {Reason}")]
    public static partial void NoAutomaticBackup(ILogger logger, string instanceId, string code, string reason);

    [LoggerMessage(1009, LogLevel.Warning, "Backup {BackupId}: its instance {InstanceId} was released at {ReleasedAt} and the host did not report it (OnInstanceReleasedAsync); the release is stored as of that time and the backup stops running")]
    public static partial void InstanceReleaseLearned(ILogger logger, string backupId, string instanceId, DateTimeOffset releasedAt);

    [LoggerMessage(1011, LogLevel.Information, "Backup {BackupId}: the automatic backup of instance {InstanceId}, created because the gateway lists the instance as enabled and the host did not report it (OnInstanceEnabledAsync)")]
    public static partial void InstanceEnableLearned(ILogger logger, string backupId, string instanceId);

    [LoggerMessage(1012, LogLevel.Warning, "Learning unreported enables from the gateway failed ({ErrorType}); the next tick tries again")]
    public static partial void InstanceDiscoveryFailed(ILogger logger, string errorType);

    [LoggerMessage(1101, LogLevel.Information, "Restore {OperationId} from backup {BackupId} into instance {TargetInstanceId}: {Restored} items restored, {AlreadyRestored} already there")]
    public static partial void RestoreCompleted(ILogger logger, string operationId, string backupId, string targetInstanceId, int restored, int alreadyRestored);

    [LoggerMessage(1102, LogLevel.Warning, "Restore {OperationId} from backup {BackupId} into instance {TargetInstanceId} failed ({ErrorType})")]
    public static partial void RestoreFailed(ILogger logger, Exception exception, string operationId, string backupId, string targetInstanceId, string errorType);

    [LoggerMessage(1103, LogLevel.Information, "Restore {OperationId} from backup {BackupId} rolled back by its ID: {Removed} items removed from instance {TargetInstanceId}")]
    public static partial void RestoreRolledBack(ILogger logger, string operationId, string backupId, string targetInstanceId, int removed);

    [LoggerMessage(1104, LogLevel.Warning, "Restore {OperationId} was rolled back, but the restore journal could not record it ({ErrorType}); it is listed as unfinished until it is rolled back by its ID")]
    public static partial void RestoreJournalEndFailed(ILogger logger, Exception exception, string operationId, string errorType);

    [LoggerMessage(1201, LogLevel.Information, "Backup {BackupId}: the data of {BackupDate} was downloaded as a {Length}-byte file; its data key was returned to the caller and not kept")]
    public static partial void DownloadCompleted(ILogger logger, string backupId, DateOnly backupDate, long length);

    [LoggerMessage(1202, LogLevel.Information, "Uploaded backup file imported as backup {BackupId} holding {BackupDate}")]
    public static partial void UploadCompleted(ILogger logger, string backupId, DateOnly? backupDate);

    [LoggerMessage(1203, LogLevel.Warning, "A backup file was refused ({ErrorType}); nothing was imported")]
    public static partial void UploadRefused(ILogger logger, string errorType);

    [LoggerMessage(1301, LogLevel.Information, "Repository key rotated: new data is sealed under key generation {KeyGeneration} (ID {GenerationId}); run a rekey to re-encrypt older data")]
    public static partial void RepositoryKeyRotated(ILogger logger, long keyGeneration, string generationId);

    [LoggerMessage(1302, LogLevel.Information, "Rekey to key generation {KeyGeneration}: {PacksRewritten} packs re-encrypted and marked for a later prune, {PacksRemaining} left for a later rekey")]
    public static partial void Rekeyed(ILogger logger, long keyGeneration, int packsRewritten, int packsRemaining);

    [LoggerMessage(1304, LogLevel.Information, "Repository key provider added: {Kind} {KeyId}; the repository now opens with it alone")]
    public static partial void KeyProviderAdded(ILogger logger, string kind, string keyId);

    [LoggerMessage(1305, LogLevel.Information, "Repository key provider removed: {KeyId}; the repository no longer opens with it")]
    public static partial void KeyProviderRemoved(ILogger logger, string keyId);

    [LoggerMessage(1303, LogLevel.Warning, "KmsBackup scheduler for {InstanceName}: the background rekey failed ({ErrorType}); it is tried again at the next tick")]
    public static partial void RekeyFailed(ILogger logger, Exception exception, string instanceName, string errorType);

    [LoggerMessage(1401, LogLevel.Information, "Copy finished: {Backups} backups, {PointsCopied} points copied, {PointsPresent} already present, {BytesWritten} bytes written, {Problems} problems")]
    public static partial void CopyCompleted(ILogger logger, int backups, int pointsCopied, int pointsPresent, long bytesWritten, int problems);

    [LoggerMessage(1402, LogLevel.Warning, "Recovery point {Sequence} of backup {BackupId} ({Date}) does not authenticate in the source repository; it was not copied")]
    public static partial void CopySourceDamaged(ILogger logger, string backupId, DateOnly date, long sequence);

    [LoggerMessage(2001, LogLevel.Information, "KmsBackup scheduler started for {InstanceName}: a tick every {Tick}")]
    public static partial void SchedulerStarted(ILogger logger, string instanceName, TimeSpan tick);

    [LoggerMessage(2002, LogLevel.Information, "KmsBackup scheduler stopped for {InstanceName} after {Ticks} ticks")]
    public static partial void SchedulerStopped(ILogger logger, string instanceName, long ticks);

    [LoggerMessage(2003, LogLevel.Error, "KmsBackup scheduler tick for {InstanceName} failed ({ErrorType}); the next tick tries again")]
    public static partial void TickFailed(ILogger logger, Exception exception, string instanceName, string errorType);

    [LoggerMessage(2004, LogLevel.Debug, "KmsBackup scheduler tick for {InstanceName}: {Runs} runs committed, {Failures} failed")]
    public static partial void TickCompleted(ILogger logger, string instanceName, int runs, int failures);

    [LoggerMessage(2005, LogLevel.Information, "KmsBackup scheduler is disabled for {InstanceName}")]
    public static partial void SchedulerDisabled(ILogger logger, string instanceName);

    [LoggerMessage(2006, LogLevel.Information, "KmsBackup scheduled copy of {InstanceName} into {Destination}: {PointsCopied} points copied, {Problems} problems")]
    public static partial void ScheduledCopyCompleted(ILogger logger, string instanceName, string destination, int pointsCopied, int problems);

    [LoggerMessage(2007, LogLevel.Warning, "KmsBackup scheduled copy of {InstanceName}: backup {BackupId} point {Point} not copied ({Kind}, {ErrorCode})")]
    public static partial void ScheduledCopyProblem(ILogger logger, string instanceName, string backupId, string? point, string kind, string errorCode);

    [LoggerMessage(2008, LogLevel.Error, "KmsBackup scheduled copy of {InstanceName} into {Destination} failed ({ErrorType}); the next interval tries again")]
    public static partial void ScheduledCopyFailed(ILogger logger, Exception exception, string instanceName, string destination, string errorType);
}
