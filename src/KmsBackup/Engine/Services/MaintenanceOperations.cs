using KmsBackup.Diagnostics;
using KmsBackup.Repository;
using Microsoft.Extensions.Logging;

namespace KmsBackup;

/// <summary>Operator maintenance of the repository: key rotation and rekey, prune, verify, and the store clock.</summary>
internal sealed class MaintenanceOperations
{
    private readonly BackupCatalog _catalog;
    private readonly BackupRepository _repository;
    private readonly BackupClientOptions _options;
    private readonly ILogger _logger;

    internal MaintenanceOperations(BackupCatalog catalog)
    {
        _catalog = catalog;
        _repository = catalog.Repository;
        _options = catalog.Options;
        _logger = catalog.Logger;
    }

    internal async Task<RepositoryKeyRotation> RotateRepositoryKeyAsync(CancellationToken cancellationToken = default)
    {
        var (generation, sequence) = await _repository.RotateKeyAsync(cancellationToken).ConfigureAwait(false);
        var id = generation.ToString("x8", System.Globalization.CultureInfo.InvariantCulture);
        Log.RepositoryKeyRotated(_logger, (long)sequence, id);
        return new RepositoryKeyRotation((long)sequence, id);
    }

    internal Task<IReadOnlyList<RepositoryKeyProviderInfo>> ListKeyProvidersAsync(CancellationToken cancellationToken) =>
        _repository.ListKeyProvidersAsync(cancellationToken);

    internal async Task<RepositoryKeyProviderInfo> AddKeyProviderAsync(RepositoryKeyProvider provider, CancellationToken cancellationToken)
    {
        var added = await _repository.AddKeyProviderAsync(provider, _catalog.Clock.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        Log.KeyProviderAdded(_logger, added.Kind, added.KeyId);
        return added;
    }

    internal async Task RemoveKeyProviderAsync(string keyId, CancellationToken cancellationToken)
    {
        await _repository.RemoveKeyProviderAsync(keyId, _options.LeaseHolder, _catalog.Clock.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        Log.KeyProviderRemoved(_logger, keyId);
    }

    internal async Task<RekeySummary> RekeyAsync(int? maximumPacks = null, CancellationToken cancellationToken = default)
    {
        if (maximumPacks is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(maximumPacks), maximumPacks, "Rewrite at least one pack per call, or pass null for all.");
        }

        var clock = await _repository.CheckClockAsync(commit: true, cancellationToken).ConfigureAwait(false);
        var result = await RepositoryMaintenance.RekeyAsync(_repository, clock.Now, maximumPacks ?? int.MaxValue, cancellationToken).ConfigureAwait(false);
        var sequence = (long)_repository.Crypto.SequenceOf(result.Generation);
        Log.Rekeyed(_logger, sequence, result.PacksRewritten, result.PacksRemaining);
        return new RekeySummary(sequence, result.PacksRewritten, result.ObjectsCopied, result.BytesWritten, result.PacksRemaining) { PacksDamaged = result.PacksDamaged };
    }

    // The key generation a background rekey last found nothing left to rewrite for, and when.
    private (uint Generation, DateTimeOffset At) _rekeyedThrough = (1, DateTimeOffset.MinValue);

    /// <summary>
    /// One background step of a rekey: nothing (and no read) when no rekey is due; else <paramref name="rekey"/>, the
    /// client's own <see cref="BackupClient.RekeyAsync"/>, so that the step is traced and can be faked as a call is.
    /// </summary>
    internal async Task<RekeySummary?> RekeyInBackgroundAsync(int maximumPacks, Func<int?, CancellationToken, Task<RekeySummary>> rekey, CancellationToken cancellationToken)
    {
        var current = _repository.Crypto.CurrentGeneration;
        var done = _rekeyedThrough;
        if (current == 1 || (done.Generation == current && _catalog.Clock.GetUtcNow() - done.At < TimeSpan.FromHours(1)))
        {
            return null;
        }

        var summary = await rekey(maximumPacks, cancellationToken).ConfigureAwait(false);
        if (summary.IsComplete)
        {
            _rekeyedThrough = (current, _catalog.Clock.GetUtcNow());
        }

        return summary;
    }

    internal async Task<PruneSummary> PruneAsync(CancellationToken cancellationToken = default)
    {
        var clock = await _repository.CheckClockAsync(commit: true, cancellationToken).ConfigureAwait(false);
        if (clock.DeletionsHeld)
        {
            Log.DeletionsHeld(_logger, clock.Now, _options.MaximumClockLead, clock.StoreTime);
            return new PruneSummary(0, 0, 0) { DeletionsHeld = true };
        }

        // One instant for the whole prune, the one just checked against the store's time: a clock that steps
        // while the prune runs cannot slip a later time past the check.
        var now = clock.Now;
        var deletedPoints = 0;
        foreach (var stored in (await _repository.LoadStatesAsync(cancellationToken).ConfigureAwait(false)).States)
        {
            var points = await _repository.ListPointsAsync(stored.State.Id, cancellationToken).ConfigureAwait(false);
            var current = BackupLifecycle.Advance(stored.State, now).State;
            if (current == stored.State &&
                (points.Count == 0 || RetentionPolicy.Evaluate(current, points.Select(p => p.Date), now).Prune.Count == 0))
            {
                continue;
            }

            StoreLease lease;
            try
            {
                lease = await _catalog.AcquireLeaseAsync(stored.State.Id, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.LeaseHeld)
            {
                continue; // its writer is busy; the next prune takes it
            }

            await using (lease.ConfigureAwait(false))
            {
                deletedPoints += await PruneBackupUnderLeaseAsync(stored.State.Id, lease, now, cancellationToken).ConfigureAwait(false);
            }
        }

        var gc = await RepositoryMaintenance.CollectGarbageAsync(_repository, now, _options.PruneGracePeriod, _options.PruneRepackThreshold, cancellationToken).ConfigureAwait(false);
        if (gc.Blocked is { } reason)
        {
            Log.CollectionBlocked(_logger, reason);
        }

        return new PruneSummary(deletedPoints + gc.AbandonedPointsDeleted, gc.PacksDeleted, gc.PacksMarked)
        {
            CollectionBlocked = gc.Blocked,
            PacksRepacked = gc.PacksRepacked,
            BytesRepacked = gc.BytesRepacked,
        };
    }

    /// <summary>Stores what time changed in one backup's state and deletes the points its retention no longer keeps, deciding on the state as read under the lease.</summary>
    internal async Task<int> PruneBackupUnderLeaseAsync(string backupId, StoreLease lease, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (await _repository.LoadStateAsync(backupId, cancellationToken).ConfigureAwait(false) is not { } stored)
        {
            return 0;
        }

        var entry = _catalog.Observe(stored);

        entry = await _catalog.RefreshUnderLeaseAsync(entry, lease, now, cancellationToken).ConfigureAwait(false);
        var points = await _repository.ListPointsAsync(backupId, cancellationToken).ConfigureAwait(false);
        var pruned = RetentionPolicy.Evaluate(entry.State, points.Select(p => p.Date), now).Prune.Select(p => p.Date).ToHashSet();
        return await _catalog.DeletePointsUnderLeaseAsync(backupId, points.Where(p => pruned.Contains(p.Date)), lease, cancellationToken).ConfigureAwait(false);
    }

    internal Task<RepositoryVerification> VerifyAsync(CancellationToken cancellationToken = default) =>
        RepositoryMaintenance.VerifyAsync(_repository, cancellationToken);

    internal async Task<StoreClockStatus> GetStoreClockAsync(CancellationToken cancellationToken = default) =>
        ToStatus(await _repository.CheckClockAsync(commit: false, cancellationToken).ConfigureAwait(false));

    internal async Task<StoreClockStatus> ConfirmClockAsync(CancellationToken cancellationToken = default) =>
        ToStatus(await _repository.ConfirmClockAsync(cancellationToken).ConfigureAwait(false));

    internal StoreClockStatus ToStatus(StoreClockReading reading) => new()
    {
        LocalTime = reading.Now,
        StoreTime = reading.StoreTime,
        DeletionsHeld = reading.DeletionsHeld,
        MaximumLead = _options.MaximumClockLead,
        MaximumLag = _options.MaximumClockLag,
    };
}
