namespace KmsBackup;

// Operator operations (no caller account: the host calls them for its key management service): the instance
// events that create automatic backups and start the 90-day clock, delegated to LifecycleOperations.
public partial class BackupClient
{
    /// <summary>
    /// Tells the client that an instance was enabled. If the instance is eligible (rule K4) and has no
    /// automatic backup yet (K5), creates its automatic backup and runs the first full backup at once (S1),
    /// unless another writer (a scheduler that saw the new backup) holds its lease and runs it.
    /// </summary>
    /// <param name="instanceId">The instance that was enabled.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The automatic backup, or <see langword="null"/> when the instance is not eligible or already has one.</returns>
    public virtual Task<BackupDetails?> OnInstanceEnabledAsync(string instanceId, CancellationToken cancellationToken = default) =>
        _lifecycle.OnInstanceEnabledAsync(instanceId, cancellationToken);

    /// <summary>Tells the client that an instance was released: its backups take no new data, and its automatic backup is deleted 90 days later (rules L2, W6).</summary>
    /// <param name="instanceId">The released instance.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual Task OnInstanceReleasedAsync(string instanceId, CancellationToken cancellationToken = default) =>
        _lifecycle.OnInstanceReleasedAsync(instanceId, cancellationToken);
}
