namespace KmsBackup;

/// <summary>
/// A stable, machine-readable code for a refusal. Codes never change once shipped, so callers can
/// branch on them; new codes can be added without breaking anyone (an extensible enum, as in the
/// Azure SDK).
/// </summary>
/// <remarks>Compare codes with <c>==</c>; the string form is the code itself, e.g. <c>BackupExpired</c>.</remarks>
public readonly struct BackupErrorCode : IEquatable<BackupErrorCode>
{
    private readonly string? _value;

    /// <summary>Creates a code from its string form.</summary>
    /// <param name="value">The code, a non-empty identifier such as <c>BackupExpired</c>.</param>
    /// <exception cref="ArgumentException"><paramref name="value"/> is null, empty or white space.</exception>
    public BackupErrorCode(string value)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(value);
        _value = value;
    }

    /// <summary>Viewable days outside the range the backup kind allows (purchased: 7 to 600).</summary>
    public static BackupErrorCode ViewableDaysOutOfRange { get; } = new(nameof(ViewableDaysOutOfRange));

    /// <summary>An extension that does not increase the viewable days: downgrading is not supported.</summary>
    public static BackupErrorCode ViewableDaysNotIncreased { get; } = new(nameof(ViewableDaysNotIncreased));

    /// <summary>The backup's kind does not support the operation (e.g. extending a default backup).</summary>
    public static BackupErrorCode OperationNotSupported { get; } = new(nameof(OperationNotSupported));

    /// <summary>The purchased backup has expired: nothing but renewal is possible until it is renewed.</summary>
    public static BackupErrorCode BackupExpired { get; } = new(nameof(BackupExpired));

    /// <summary>The backup has been released and its data deleted; nothing is possible any more.</summary>
    public static BackupErrorCode BackupReleased { get; } = new(nameof(BackupReleased));

    /// <summary>The backup is not enabled (unbound, <c>Disabled</c>), so it holds no data to use.</summary>
    public static BackupErrorCode BackupNotEnabled { get; } = new(nameof(BackupNotEnabled));

    /// <summary>The backup is already bound to an instance; it must be reset before it is bound again.</summary>
    public static BackupErrorCode BackupAlreadyEnabled { get; } = new(nameof(BackupAlreadyEnabled));

    /// <summary>A date outside the viewable window that extending the viewable days would reach.</summary>
    public static BackupErrorCode DateOutsideWindow { get; } = new(nameof(DateOutsideWindow));

    /// <summary>A date outside the viewable window that no extension can reach for this backup.</summary>
    public static BackupErrorCode DateNotReachable { get; } = new(nameof(DateNotReachable));

    /// <summary>A date before the backup was enabled: never viewable or restorable, even after extending.</summary>
    public static BackupErrorCode DateBeforeEnabled { get; } = new(nameof(DateBeforeEnabled));

    /// <summary>A date after today in the backup's time zone.</summary>
    public static BackupErrorCode DateInFuture { get; } = new(nameof(DateInFuture));

    /// <summary>A time zone ID that this system does not know.</summary>
    public static BackupErrorCode UnknownTimeZone { get; } = new(nameof(UnknownTimeZone));

    /// <summary>The instance is not enabled (or has been released), so no backup can be bound to it.</summary>
    public static BackupErrorCode InstanceNotEnabled { get; } = new(nameof(InstanceNotEnabled));

    /// <summary>The instance's kind (software or hardware) does not match the backup type.</summary>
    public static BackupErrorCode InstanceKindMismatch { get; } = new(nameof(InstanceKindMismatch));

    /// <summary>The instance is in another region than the purchased backup.</summary>
    public static BackupErrorCode RegionMismatch { get; } = new(nameof(RegionMismatch));

    /// <summary>The instance is not eligible for an automatic backup (created before the cutoff date).</summary>
    public static BackupErrorCode InstanceNotEligible { get; } = new(nameof(InstanceNotEligible));

    /// <summary>The instance already has an automatic backup; an instance has at most one.</summary>
    public static BackupErrorCode AutomaticBackupExists { get; } = new(nameof(AutomaticBackupExists));

    /// <summary>A hardware instance whose image version is older than 3.9.1.</summary>
    public static BackupErrorCode ImageVersionTooOld { get; } = new(nameof(ImageVersionTooOld));

    /// <summary>A purchase duration outside the supported range.</summary>
    public static BackupErrorCode InvalidPurchaseTerm { get; } = new(nameof(InvalidPurchaseTerm));

    /// <summary>A purchase quantity outside the supported range.</summary>
    public static BackupErrorCode InvalidQuantity { get; } = new(nameof(InvalidQuantity));

    /// <summary>A backup alias or name that is empty, too long or holds control characters.</summary>
    public static BackupErrorCode InvalidAlias { get; } = new(nameof(InvalidAlias));

    /// <summary>A schedule option outside its valid range.</summary>
    public static BackupErrorCode InvalidScheduleOption { get; } = new(nameof(InvalidScheduleOption));

    /// <summary>The restore target lacks quota for the keys or secrets (the seed's FAQ).</summary>
    public static BackupErrorCode InsufficientQuota { get; } = new(nameof(InsufficientQuota));

    /// <summary>A key or secret of the same name exists in the target region (the seed's FAQ).</summary>
    public static BackupErrorCode NameConflict { get; } = new(nameof(NameConflict));

    /// <summary>Another writer holds the lease of the backup (or store area); the error names the holder.</summary>
    public static BackupErrorCode LeaseHeld { get; } = new(nameof(LeaseHeld));

    /// <summary>This writer's lease expired or was taken over before its work was committed.</summary>
    public static BackupErrorCode LeaseLost { get; } = new(nameof(LeaseLost));

    /// <summary>
    /// This host's clock is behind the latest time the store has seen (another writer's) by more than the
    /// allowed lag, so it may not commit: the error names both times.
    /// </summary>
    public static BackupErrorCode ClockBehindStore { get; } = new(nameof(ClockBehindStore));

    /// <summary>Stored data failed its integrity check (MAC, length, reference); wrong data is never returned.</summary>
    public static BackupErrorCode IntegrityViolation { get; } = new(nameof(IntegrityViolation));

    /// <summary>The backup store could not be reached or refused the request.</summary>
    public static BackupErrorCode StoreUnavailable { get; } = new(nameof(StoreUnavailable));

    /// <summary>
    /// The file-system store met a symbolic link (or a junction) below its root and refused to follow it, so
    /// that it never lists, reads, writes or deletes outside its folder; the error names the link's path
    /// relative to the store's root. Remove the link (its target is left as it was).
    /// </summary>
    public static BackupErrorCode StoreLinkRefused { get; } = new(nameof(StoreLinkRefused));

    /// <summary>
    /// The repository key provider offered to open a repository (or named to remove) is not among the repository's
    /// registered providers: it was never added, or it was removed. The error names the provider's key ID, never a key;
    /// open the repository with one of its registered providers (<c>kmsbackup keys list</c>), or add this one first.
    /// </summary>
    public static BackupErrorCode KeyProviderNotRegistered { get; } = new(nameof(KeyProviderNotRegistered));

    /// <summary>A repository key provider that is registered already was added again; the repository is unchanged.</summary>
    public static BackupErrorCode KeyProviderAlreadyRegistered { get; } = new(nameof(KeyProviderAlreadyRegistered));

    /// <summary>
    /// Removing the repository key provider was refused because it is the last one: a repository without a provider
    /// could never be opened again. Add another provider first.
    /// </summary>
    public static BackupErrorCode LastKeyProvider { get; } = new(nameof(LastKeyProvider));

    /// <summary>
    /// The passphrase does not open any of the repository's passphrase providers (a wrong passphrase, or a damaged
    /// record). Nothing was written.
    /// </summary>
    public static BackupErrorCode WrongPassphrase { get; } = new(nameof(WrongPassphrase));

    /// <summary>
    /// Fewer distinct recovery shares were given than the recovery key's threshold: the key cannot be rebuilt. The
    /// error says how many were given and how many are needed. Nothing was written.
    /// </summary>
    public static BackupErrorCode TooFewRecoveryShares { get; } = new(nameof(TooFewRecoveryShares));

    /// <summary>
    /// A recovery share is mistyped (its checksum does not match), malformed, of another recovery key, or the shares do
    /// not combine into the recovery key they name. The error names the share by its position in the input and its
    /// number, never its value. Nothing was written.
    /// </summary>
    public static BackupErrorCode InvalidRecoveryShare { get; } = new(nameof(InvalidRecoveryShare));

    /// <summary>A backup, instance, key or secret that does not exist.</summary>
    public static BackupErrorCode NotFound { get; } = new(nameof(NotFound));

    /// <summary>The caller account may not act on the resource (only the resource owner may back up or restore).</summary>
    public static BackupErrorCode AccessDenied { get; } = new(nameof(AccessDenied));

    /// <summary>A secret's encrypting key is neither in the restore target nor restored earlier in the batch.</summary>
    public static BackupErrorCode EncryptionKeyMissing { get; } = new(nameof(EncryptionKeyMissing));

    /// <summary>
    /// The restore target is not allowed for the data: a hardware instance's data to its original instance
    /// (rule R3), or a consumer-created item to an instance other than its original shared instance (rule R2).
    /// </summary>
    public static BackupErrorCode RestoreTargetNotAllowed { get; } = new(nameof(RestoreTargetNotAllowed));

    /// <summary>
    /// A restore that passed its plan failed while writing to the target (the target changed in between,
    /// or could not be reached); what the batch wrote was removed again (rule R7).
    /// </summary>
    public static BackupErrorCode RestoreFailed { get; } = new(nameof(RestoreFailed));

    /// <summary>
    /// A restore operation that has finished (completed, or rolled back) was asked to be resumed or rolled
    /// back: there is nothing left to do for it.
    /// </summary>
    public static BackupErrorCode RestoreOperationFinished { get; } = new(nameof(RestoreOperationFinished));

    /// <summary>
    /// An operation ID that the restore journal holds for another backup or another target instance: an
    /// operation ID names one restore, so that resuming or rolling it back touches only its own items.
    /// </summary>
    public static BackupErrorCode RestoreOperationMismatch { get; } = new(nameof(RestoreOperationMismatch));

    /// <summary>
    /// A recovery drill was pointed at an instance that is not a scratch instance: the backup's own instance, or one
    /// that holds keys or secrets. A drill restores a sample and deletes it again, so it runs only on an empty instance.
    /// </summary>
    public static BackupErrorCode DrillTargetNotScratch { get; } = new(nameof(DrillTargetNotScratch));

    /// <summary>
    /// The data key given to open a backup file is not the key the file was encrypted under: the key
    /// commitment in the file's header does not match. Told apart from damage and tampering
    /// (<see cref="FileCorrupt"/>), which report their own code.
    /// </summary>
    public static BackupErrorCode WrongFileKey { get; } = new(nameof(WrongFileKey));

    /// <summary>
    /// A backup file failed authentication or is malformed: its header is damaged, or a segment was
    /// altered, reordered, duplicated, spliced from another file, cut short inside a segment, or followed by trailing bytes. Nothing of it may be used.
    /// </summary>
    public static BackupErrorCode FileCorrupt { get; } = new(nameof(FileCorrupt));

    /// <summary>A backup file ends before its final segment (or before its header ends): it was cut short or is empty.</summary>
    public static BackupErrorCode FileTruncated { get; } = new(nameof(FileTruncated));

    /// <summary>A backup file of a format version that this SDK does not read (a newer SDK wrote it, or the version byte is damaged).</summary>
    public static BackupErrorCode UnsupportedFileVersion { get; } = new(nameof(UnsupportedFileVersion));

    /// <summary>A backup file too large for its format: more segments than the segment counter can number without wrapping.</summary>
    public static BackupErrorCode FileTooLarge { get; } = new(nameof(FileTooLarge));

    /// <summary>
    /// An upload could not use its temporary folder (<c>BackupClientOptions.UploadTemporaryFolder</c>): it does not
    /// exist, is not writable, is full, or its file was changed while the upload ran. Nothing was imported.
    /// </summary>
    public static BackupErrorCode TemporaryFolderUnavailable { get; } = new(nameof(TemporaryFolderUnavailable));

    /// <summary>A data encryption key of the wrong length: backup files use 256-bit (32-byte) data keys.</summary>
    public static BackupErrorCode InvalidDataKey { get; } = new(nameof(InvalidDataKey));

    /// <summary>A warning: no enabled KMS backup backs the instance up (rule H2).</summary>
    public static BackupErrorCode KmsBackupDisabled { get; } = new(nameof(KmsBackupDisabled));

    /// <summary>A warning: metadata only, the HSM backup of a hardware instance's cluster is disabled (rule H2).</summary>
    public static BackupErrorCode HsmBackupDisabled { get; } = new(nameof(HsmBackupDisabled));

    /// <summary>A warning: the HSM backup does not run one day after the KMS backup (rule H3).</summary>
    public static BackupErrorCode HsmBackupOffset { get; } = new(nameof(HsmBackupOffset));

    /// <summary>A warning: the HSM mirror images differ from the KMS backup's viewable days; the backup may be incomplete (rule H4).</summary>
    public static BackupErrorCode MirrorImagesMismatch { get; } = new(nameof(MirrorImagesMismatch));

    /// <summary>A restore target HSM instance that is not deployed in cluster mode (rule H5).</summary>
    public static BackupErrorCode ClusterNotInClusterMode { get; } = new(nameof(ClusterNotInClusterMode));

    /// <summary>A restore target HSM cluster with fewer than two HSMs or fewer than two availability zones (rule H5).</summary>
    public static BackupErrorCode ClusterTooFewHsms { get; } = new(nameof(ClusterTooFewHsms));

    /// <summary>A restore target HSM cluster that is already enabled: it must be disabled and reset first (rule H5).</summary>
    public static BackupErrorCode ClusterEnabled { get; } = new(nameof(ClusterEnabled));

    /// <summary>A restore target HSM cluster that is in use: it must be disabled and reset first (rule H5).</summary>
    public static BackupErrorCode ClusterInUse { get; } = new(nameof(ClusterInUse));

    /// <summary>No HSM backup image of type <c>Auto Create</c> (or no image of that ID) to restore (rule H5).</summary>
    public static BackupErrorCode HsmImageNotFound { get; } = new(nameof(HsmImageNotFound));

    /// <summary>A hardware key whose material the HSM cluster does not hold (rule H7).</summary>
    public static BackupErrorCode KeyMaterialMissing { get; } = new(nameof(KeyMaterialMissing));

    /// <summary>The PKCS#11 library could not be loaded (missing file, wrong architecture, not a PKCS#11 module).</summary>
    public static BackupErrorCode HsmLibraryNotFound { get; } = new(nameof(HsmLibraryNotFound));

    /// <summary>No PKCS#11 token (HSM) with the given label is present.</summary>
    public static BackupErrorCode HsmTokenNotFound { get; } = new(nameof(HsmTokenNotFound));

    /// <summary>The HSM refused the login: wrong PIN, or the PIN is locked.</summary>
    public static BackupErrorCode HsmLoginFailed { get; } = new(nameof(HsmLoginFailed));

    /// <summary>An HSM operation failed; the error names the operation and the PKCS#11 return value.</summary>
    public static BackupErrorCode HsmOperationFailed { get; } = new(nameof(HsmOperationFailed));

    /// <summary>A copy was asked to copy a repository into itself: the source and the destination are the same repository.</summary>
    public static BackupErrorCode CopySameRepository { get; } = new(nameof(CopySameRepository));

    /// <summary>
    /// A copy found the destination holding a recovery point under the name of a source point that differs from it (the
    /// destination was written by its own writers, not only by copies); the point is not copied over it.
    /// </summary>
    public static BackupErrorCode CopyConflict { get; } = new(nameof(CopyConflict));

    /// <summary>The code's string form, e.g. <c>BackupExpired</c>.</summary>
    public override string ToString() => _value ?? string.Empty;

    /// <inheritdoc />
    public bool Equals(BackupErrorCode other) => string.Equals(_value, other._value, StringComparison.Ordinal);

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is BackupErrorCode other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => _value is null ? 0 : StringComparer.Ordinal.GetHashCode(_value);

    /// <summary>Whether two codes are the same.</summary>
    public static bool operator ==(BackupErrorCode left, BackupErrorCode right) => left.Equals(right);

    /// <summary>Whether two codes differ.</summary>
    public static bool operator !=(BackupErrorCode left, BackupErrorCode right) => !left.Equals(right);
}
