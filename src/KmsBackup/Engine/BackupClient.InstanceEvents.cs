namespace KmsBackup;

// Operator operations (no caller account: the host calls them for its key management service): the instance
// events that create automatic backups and start the 90-day clock, delegated to LifecycleOperations.
public partial class BackupClient
{
    /// <summary>
    /// Tells the client that an instance was enabled. If the instance is eligible (rule K4) and has no
    /// automatic backup yet (K5), creates its automatic backup and runs the first full backup at once (S1),
    /// unless another writer (a scheduler that saw the new backup) holds its lease and runs it. A host that does not call
    /// this loses nothing: <see cref="RunDueBackupsAsync"/> learns enables from the gateway
    /// (<see cref="BackupClientOptions.InstanceDiscoveryInterval"/>). Hosts that learn of one enable at once create one
    /// backup: its ID is derived from the instance ID and its first catalog version is created only if absent.
    /// </summary>
    /// <param name="instanceId">The instance that was enabled.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>
    /// The automatic backup, or <see langword="null"/> when the instance gets none: not eligible (created before the
    /// cutoff, or a hardware image older than 3.9.1), not enabled, or it already has one. The reason is logged (event
    /// 1010); <see cref="CreateAutomaticBackupAsync"/> throws it instead, as a typed error.
    /// </returns>
    public virtual Task<BackupDetails?> OnInstanceEnabledAsync(string instanceId, CancellationToken cancellationToken = default) =>
        _lifecycle.OnInstanceEnabledAsync(instanceId, cancellationToken);

    /// <summary>
    /// As <see cref="OnInstanceEnabledAsync"/>, but an instance that gets no automatic backup is a typed error that says why
    /// and what to do: for a host that wants the reason, or an operator creating one by hand.
    /// </summary>
    /// <param name="instanceId">The enabled instance.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The new automatic backup, with its first full backup when it ran.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.AutomaticBackupExists"/> (naming the backup it has),
    /// <see cref="BackupErrorCode.InstanceNotEligible"/> (created before the cutoff), <see cref="BackupErrorCode.ImageVersionTooOld"/>,
    /// <see cref="BackupErrorCode.InstanceNotEnabled"/>, or <see cref="BackupErrorCode.NotFound"/>.</exception>
    public virtual Task<BackupDetails> CreateAutomaticBackupAsync(string instanceId, CancellationToken cancellationToken = default) =>
        _lifecycle.CreateAutomaticBackupAsync(instanceId, cancellationToken);

    /// <summary>
    /// Tells the client that an instance was released: its backups take no new data, and its automatic backup is deleted 90
    /// days later (rules L2, W6). A host that does not call this loses nothing: the scheduler learns a release from the
    /// gateway (<see cref="InstanceDescription.ReleasedAt"/>) on its next tick, dated when it happened (log event 1009).
    /// </summary>
    /// <param name="instanceId">The released instance.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual Task OnInstanceReleasedAsync(string instanceId, CancellationToken cancellationToken = default) =>
        _lifecycle.OnInstanceReleasedAsync(instanceId, cancellationToken);
}
