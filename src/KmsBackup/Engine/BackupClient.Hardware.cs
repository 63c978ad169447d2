namespace KmsBackup;

// Account operations (each takes the caller account first): hardware instances and their HSM clusters, delegated to HardwareOperations.
public partial class BackupClient
{
    /// <summary>
    /// An instance's protection (rules H2–H4): whether an enabled KMS backup backs it up and, for a
    /// hardware instance, whether its HSM cluster's backup is enabled, with warnings for "metadata only:
    /// HSM backup disabled", an HSM backup that does not run one day after the KMS backup, and mirror
    /// images that differ from the viewable days.
    /// </summary>
    /// <param name="callerAccount">The instance's owner.</param>
    /// <param name="instanceId">The instance.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>, <see cref="BackupErrorCode.AccessDenied"/>, or no HSM gateway for a hardware instance.</exception>
    public virtual Task<InstanceProtection> GetProtectionAsync(string callerAccount, string instanceId, CancellationToken cancellationToken = default) =>
        _hardware.GetProtectionAsync(callerAccount, instanceId, cancellationToken);

    /// <summary>
    /// The jointly restorable dates of a hardware instance's backup (rule H7): the viewable dates with
    /// KMS metadata (a recovery point) whose next day has an HSM image of the instance's cluster.
    /// </summary>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">A backup of a hardware instance.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The dates, ascending.</returns>
    /// <exception cref="BackupException">The backup is missing, not the caller's, not usable, not of a hardware instance, or the instance has no known HSM cluster.</exception>
    public virtual Task<IReadOnlyList<DateOnly>> GetJointlyRestorableDatesAsync(string callerAccount, string backupId, CancellationToken cancellationToken = default) =>
        _hardware.GetJointlyRestorableDatesAsync(callerAccount, backupId, cancellationToken);

    /// <summary>
    /// Restores the most recent <c>Auto Create</c> image of a hardware instance's HSM cluster into a new
    /// cluster (rule H5), after checking the new cluster: a cluster of the caller's account
    /// (<see cref="HsmClusterInfo.OwnerAccount"/>), in the same region as <paramref name="region"/>, in cluster mode,
    /// with at least two HSMs across two zones, not enabled, not in use.
    /// </summary>
    /// <param name="callerAccount">The backup's owner, who must own the target cluster too.</param>
    /// <param name="backupId">A backup of a hardware instance.</param>
    /// <param name="targetClusterId">The new cluster.</param>
    /// <param name="region">The region the new hardware instance will be in; <see langword="null"/> for the original instance's region.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The image restored.</returns>
    /// <exception cref="BackupException">The target cluster does not exist or is not the caller's (<see cref="BackupErrorCode.NotFound"/>, the same
    /// refusal in both cases), or violates a rule of H5 (the first refusal; the others are in <see cref="CheckHsmRestoreTargetAsync"/>), or there
    /// is no <c>Auto Create</c> image. Nothing is restored then.</exception>
    public virtual Task<HsmBackupImage> RestoreHsmImageAsync(
        string callerAccount, string backupId, string targetClusterId, string? region = null, CancellationToken cancellationToken = default) =>
        _hardware.RestoreHsmImageAsync(callerAccount, backupId, targetClusterId, region, cancellationToken);

    /// <summary>The refusals of a target cluster for a hardware restore into <paramref name="region"/> (rule H5); empty when it may take the restore.</summary>
    /// <param name="callerAccount">The account that will restore into the cluster; it must own it (<see cref="HsmClusterInfo.OwnerAccount"/>).</param>
    /// <param name="targetClusterId">The new cluster.</param>
    /// <param name="region">The region of the restore.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>
    /// Every violation of H5; empty when the cluster may take the restore. A cluster that does not exist, one of another account and one
    /// assigned to no account all give the same single <see cref="BackupErrorCode.NotFound"/> refusal (same item, message and remedy), and
    /// nothing else about such a cluster (its region, HSMs, zones or state) is checked or reported.
    /// </returns>
    public virtual Task<IReadOnlyList<Refusal>> CheckHsmRestoreTargetAsync(string callerAccount, string targetClusterId, string region, CancellationToken cancellationToken = default) =>
        _hardware.CheckHsmRestoreTargetAsync(callerAccount, targetClusterId, region, cancellationToken);

    /// <summary>
    /// Checks a hardware restore before anything is restored (rules R3, H7): the target must be a new
    /// hardware instance (never the original), connected to an HSM cluster, and every key of the state at
    /// <paramref name="at"/> must have its material in that cluster. Each violation is one refusal; a key
    /// whose material is missing is named.
    /// </summary>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">A backup of a hardware instance.</param>
    /// <param name="at">The instant whose state is to be restored (the latest recovery point at or before it).</param>
    /// <param name="targetInstanceId">The new hardware instance, of the backup owner's account.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>Every refusal; empty when the keys' metadata may be restored.</returns>
    /// <exception cref="BackupException">The backup is missing or not the caller's, or not of a hardware instance; or the target instance does not
    /// exist or is another account's (<see cref="BackupErrorCode.NotFound"/>, the same refusal in both cases, before anything is asked of its HSM cluster).</exception>
    public virtual Task<IReadOnlyList<Refusal>> CheckHardwareRestoreAsync(
        string callerAccount, string backupId, DateTimeOffset at, string targetInstanceId, CancellationToken cancellationToken = default) =>
        _hardware.CheckHardwareRestoreAsync(callerAccount, backupId, at, targetInstanceId, cancellationToken);
}
