using KmsBackup.Diagnostics;
using KmsBackup.Repository;

namespace KmsBackup;

/// <summary>
/// Creates the automatic backup of an enabled instance (rules K4, K5) so that an instance gets at most one, even when
/// several hosts learn of the enable at once: the backup's ID is derived from the instance ID
/// (<see cref="RepositoryCrypto.AutomaticBackupIdOf"/>) and its first catalog version is created only if absent, so
/// the second host's creation fails and is reported as <see cref="BackupErrorCode.AutomaticBackupExists"/>.
/// Used by <see cref="BackupClient.OnInstanceEnabledAsync"/> and by the scheduler tick, which learns enables the host
/// did not report from the gateway (<see cref="BackupClientOptions.InstanceDiscoveryInterval"/>).
/// </summary>
internal sealed class AutomaticBackups(BackupCatalog catalog)
{
    private readonly BackupRepository _repository = catalog.Repository;

    /// <summary>
    /// Creates the catalog entry of <paramref name="instance"/>'s automatic backup, judged against every backup in
    /// <paramref name="listing"/> (an uncached or cached listing: the create-if-absent decides a race either way).
    /// </summary>
    /// <exception cref="BackupException">The domain's refusal (<see cref="BackupErrorCode.InstanceNotEligible"/>,
    /// <see cref="BackupErrorCode.ImageVersionTooOld"/>, <see cref="BackupErrorCode.InstanceNotEnabled"/>,
    /// <see cref="BackupErrorCode.AutomaticBackupExists"/>), the last also when another host created it meanwhile.</exception>
    internal async Task<CatalogEntry> CreateEntryAsync(InstanceDescription instance, CatalogListing listing, CancellationToken cancellationToken)
    {
        var instanceId = instance.Info.Id;
        var info = instance.ReleasedAt is null ? instance.Info : instance.Info with { IsEnabled = false };

        // A damaged entry's previous version still tells whose backup it was: it counts, so damage never yields a second backup.
        var existing = listing.States.Select(e => e.State)
            .Concat(listing.Damaged.Where(d => d.Previous is not null).Select(d => d.Previous!.State))
            .ToList();
        var taken = listing.States.Select(e => e.State.Id).Concat(listing.Damaged.Select(d => d.BackupId)).ToHashSet(StringComparer.Ordinal);
        var backupId = _repository.Crypto.AutomaticBackupIdOf(instanceId, 0);
        for (var attempt = 1; taken.Contains(backupId); attempt++)
        {
            // Taken by a released automatic backup of this instance (the domain refuses below if it is not released).
            backupId = _repository.Crypto.AutomaticBackupIdOf(instanceId, attempt);
        }

        var outcome = BackupLifecycle.CreateAutomatic(
            backupId, info, existing, catalog.Options.AutomaticBackupCutoffs, catalog.Options.TimeZone, catalog.Clock.GetUtcNow());
        if (!outcome.IsAccepted)
        {
            throw outcome.Refusal.ToException();
        }

        try
        {
            return await _repository.SaveStateAsync(new CatalogEntry(outcome.Backups[0], instance.OwnerAccount), cancellationToken).ConfigureAwait(false);
        }
        catch (BackupException e) when (e.Code == BackupErrorCode.LeaseLost)
        {
            // The first version exists: another host created this very backup since the listing.
            throw new BackupException(new Refusal(
                BackupErrorCode.AutomaticBackupExists, $"instance '{instanceId}'",
                $"The instance '{instanceId}' already has the automatic backup '{backupId}': another host created it a moment ago; an instance has at most one.",
                $"Use the existing automatic backup '{backupId}'."), e);
        }
    }

    /// <summary>Whether a refusal to create an automatic backup only says that this instance gets none (nothing failed).</summary>
    internal static bool IsNoAutomaticBackup(BackupException e) =>
        e.Code == BackupErrorCode.InstanceNotEligible || e.Code == BackupErrorCode.AutomaticBackupExists ||
        e.Code == BackupErrorCode.InstanceNotEnabled || e.Code == BackupErrorCode.ImageVersionTooOld;

    /// <summary>The log event of an instance that gets no automatic backup (1010).</summary>
    internal void LogNoAutomaticBackup(string instanceId, BackupException e) =>
        Log.NoAutomaticBackup(catalog.Logger, instanceId, e.Code.ToString(), e.Refusal.Message);
}
