using KmsBackup.Repository;

namespace KmsBackup;

/// <summary>What a prune removed.</summary>
/// <param name="RecoveryPointsDeleted">Recovery points deleted (past retention, or of reset and released backups).</param>
/// <param name="PacksDeleted">Pack files deleted (marked by an earlier prune and still unreferenced).</param>
/// <param name="PacksMarked">Pack files newly marked for deletion by a later prune.</param>
public sealed record PruneSummary(int RecoveryPointsDeleted, int PacksDeleted, int PacksMarked);

public partial class BackupClient
{
    /// <summary>
    /// Deletes what no backup keeps (rule W5): recovery points of dates past retention, and of released
    /// or reset backups; then, in two phases, the packs no remaining point refers to.
    /// </summary>
    /// <param name="cancellationToken">Cancels the prune; what is deleted stays deleted, nothing referenced is.</param>
    public virtual async Task<PruneSummary> PruneAsync(CancellationToken cancellationToken = default)
    {
        var deletedPoints = 0;
        foreach (var stored in await _repository.LoadStatesAsync(cancellationToken).ConfigureAwait(false))
        {
            var entry = await RefreshAsync(stored, cancellationToken).ConfigureAwait(false);
            var points = await _repository.ListPointsAsync(entry.State.Id, cancellationToken).ConfigureAwait(false);
            if (points.Count == 0)
            {
                continue;
            }

            var decision = RetentionPolicy.Evaluate(entry.State, points.Select(p => p.Date), Clock.GetUtcNow());
            var pruned = decision.Prune.Select(p => p.Date).ToHashSet();
            if (pruned.Count == 0)
            {
                continue;
            }

            StoreLease lease;
            try
            {
                lease = await AcquireLeaseAsync(entry.State.Id, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.LeaseHeld)
            {
                continue; // its writer is busy; the next prune takes it
            }

            await using (lease.ConfigureAwait(false))
            {
                foreach (var point in points.Where(p => pruned.Contains(p.Date)))
                {
                    if (await _repository.DeletePointAsync(point, cancellationToken).ConfigureAwait(false))
                    {
                        deletedPoints++;
                    }

                    _manifests.TryRemove(point, out _);
                }

                ForgetPoints(entry.State.Id);
            }
        }

        var gc = await RepositoryMaintenance.CollectGarbageAsync(_repository, Clock.GetUtcNow(), _options.PruneGracePeriod, cancellationToken).ConfigureAwait(false);
        return new PruneSummary(deletedPoints, gc.PacksDeleted, gc.PacksMarked);
    }

    /// <summary>
    /// Checks the whole store: every pack's hash, every object's MAC, every recovery point and reference,
    /// every catalog entry. Changes nothing.
    /// </summary>
    /// <param name="cancellationToken">Cancels the check.</param>
    public virtual Task<RepositoryVerification> VerifyAsync(CancellationToken cancellationToken = default) =>
        RepositoryMaintenance.VerifyAsync(_repository, cancellationToken);
}
