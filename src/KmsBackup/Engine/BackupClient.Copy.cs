namespace KmsBackup;

// Operator operation: copying recovery points into a second repository (delegated to BackupCopier).
public partial class BackupClient
{
    /// <summary>
    /// Copies backups (all, or those <see cref="BackupCopyOptions.BackupIds"/> names) from this client's repository into the
    /// repository of <paramref name="destination"/>, which has its own keys: each backup's catalog entry (kind, instance,
    /// region, lifecycle state) and every recovery point the destination lacks, with its instants, so that the destination can
    /// be opened alone and restored from. Every object read from this repository is authenticated on the way; each point is
    /// committed in the destination by its own write path (under the destination's lease of the backup, safe beside its
    /// prunes), which writes only the objects the destination does not hold yet. A copy that stops (a crash, a cancellation)
    /// is resumed by calling again: points that landed are not copied again, objects that landed are not written again.
    /// See docs/repository-format.md, "Copies".
    /// </summary>
    /// <remarks>
    /// A point that does not authenticate in this repository, or that a prune here deletes while it is being copied, is not
    /// copied and is reported with its backup and point; the copy goes on with the others. This repository is only read.
    /// </remarks>
    /// <param name="destination">A client of the repository to copy into (another store, opened with its own key provider).</param>
    /// <param name="options">What to copy; <see langword="null"/> for every backup.</param>
    /// <param name="cancellationToken">Cancels the copy; what landed stays, and the next call goes on from there.</param>
    /// <returns>What was copied, what the destination held already, and every problem.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="destination"/> is <see langword="null"/>.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.CopySameRepository"/>: the destination is this repository;
    /// or this repository's catalog could not be read.</exception>
    public virtual Task<BackupCopyReport> CopyToAsync(BackupClient destination, BackupCopyOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        return _copier.CopyToAsync(destination._catalog, options ?? new BackupCopyOptions(), cancellationToken);
    }
}
