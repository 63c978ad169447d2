using KmsBackup.Diagnostics;
using KmsBackup.Repository;

namespace KmsBackup;

/// <summary>What a prune removed.</summary>
/// <param name="RecoveryPointsDeleted">Recovery points deleted (past retention, of reset and released backups, or left without a catalog entry by an upload that died, once a prune has marked them and the grace period has passed).</param>
/// <param name="PacksDeleted">Pack files deleted (marked by an earlier prune and still unreferenced).</param>
/// <param name="PacksMarked">Pack files newly marked for deletion by a later prune.</param>
public sealed record PruneSummary(int RecoveryPointsDeleted, int PacksDeleted, int PacksMarked)
{
    /// <summary>
    /// Whether the prune deleted nothing because this host's clock is more than
    /// <see cref="BackupClientOptions.MaximumClockLead"/> ahead of the latest time the store has seen (see
    /// <see cref="BackupClient.GetStoreClockAsync"/>).
    /// </summary>
    public bool DeletionsHeld { get; init; }

    /// <summary>
    /// Why no pack was collected although the prune ran (a recovery point or an object it refers to could
    /// not be read, so what is dead cannot be known), or <see langword="null"/>. Run verify to see the damage.
    /// </summary>
    public string? CollectionBlocked { get; init; }
}

/// <summary>What <see cref="BackupClient.RotateRepositoryKeyAsync"/> did.</summary>
/// <param name="KeyGeneration">The sequence number of the new key generation (2 for the first rotation): what new data is sealed under.</param>
/// <param name="GenerationId">The new generation's random ID, which the objects sealed under it name (8 hexadecimal digits). Two hosts rotating at
/// once make two generations of one sequence number with different IDs; every host then seals under the one with the higher ID.</param>
public sealed record RepositoryKeyRotation(long KeyGeneration, string GenerationId);

/// <summary>What <see cref="BackupClient.RekeyAsync"/> did.</summary>
/// <param name="KeyGeneration">The key generation data was re-encrypted under.</param>
/// <param name="PacksRewritten">Packs of older generations whose objects were re-encrypted into new packs; each old pack is marked, and a prune at least <see cref="BackupClientOptions.PruneGracePeriod"/> later deletes it.</param>
/// <param name="ObjectsCopied">Objects re-encrypted.</param>
/// <param name="BytesWritten">Bytes of new packs and indexes written.</param>
/// <param name="PacksRemaining">Packs of older generations this call left for a later one (beyond its budget). Packs already marked by a prune are not counted: the prunes delete them.</param>
public sealed record RekeySummary(long KeyGeneration, int PacksRewritten, int ObjectsCopied, long BytesWritten, int PacksRemaining)
{
    /// <summary>
    /// Packs of older generations that could not be read or opened (damaged, or deleted meanwhile): left as they are,
    /// not counted in <see cref="PacksRemaining"/>. <see cref="BackupClient.VerifyAsync"/> names what is damaged.
    /// </summary>
    public int PacksDamaged { get; init; }

    /// <summary>Whether no readable pack of an older generation is left to rewrite (the prunes that follow still have to delete the old ones).</summary>
    public bool IsComplete => PacksRemaining == 0;
}

/// <summary>This host's clock against the latest time the store has seen.</summary>
public sealed record StoreClockStatus
{
    /// <summary>This host's clock when it was read.</summary>
    public required DateTimeOffset LocalTime { get; init; }

    /// <summary>The latest time a writer of the store recorded; <see langword="null"/> when none has yet.</summary>
    public DateTimeOffset? StoreTime { get; init; }

    /// <summary>
    /// Whether this host holds every deletion (retention, releases, pack collection) because its clock is more
    /// than <see cref="MaximumLead"/> ahead of <see cref="StoreTime"/>. Backups keep running meanwhile. It
    /// ends when the clock is fixed, or when an operator confirms it with <see cref="BackupClient.ConfirmClockAsync"/>.
    /// </summary>
    public required bool DeletionsHeld { get; init; }

    /// <summary>How far ahead of the store's time this clock may run before deletions are held.</summary>
    public required TimeSpan MaximumLead { get; init; }

    /// <summary>How far behind the store's time this clock may run and still commit.</summary>
    public required TimeSpan MaximumLag { get; init; }
}

public partial class BackupClient
{
    /// <summary>
    /// Rotates the repository key: adds a key generation, a new random key wrapped by the repository's key
    /// provider, under which everything written from now on is sealed (on this host at once, on other hosts from
    /// the first object of the new generation they read, or their next open). Data written before stays readable
    /// under its own generation; <see cref="RekeyAsync"/> re-encrypts it. No data is re-encrypted by this call.
    /// See docs/repository-format.md, "Key rotation and rekey".
    /// </summary>
    /// <param name="cancellationToken">Cancels the rotation; a generation is either stored whole or not at all.</param>
    /// <returns>The generation now current.</returns>
    /// <exception cref="BackupException">The key provider or the store failed; nothing changed.</exception>
    public virtual async Task<RepositoryKeyRotation> RotateRepositoryKeyAsync(CancellationToken cancellationToken = default)
    {
        using var activity = BackupTelemetry.Source.StartActivity(KmsBackupDiagnostics.RotateKeyActivity);
        var (generation, sequence) = await _repository.RotateKeyAsync(cancellationToken).ConfigureAwait(false);
        var id = generation.ToString("x8", System.Globalization.CultureInfo.InvariantCulture);
        Log.RepositoryKeyRotated(_logger, (long)sequence, id);
        return new RepositoryKeyRotation((long)sequence, id);
    }

    /// <summary>
    /// Re-encrypts data sealed under older key generations (after <see cref="RotateRepositoryKeyAsync"/>): the
    /// objects of each old pack are copied into new packs under the current generation, and the old pack is marked
    /// for deletion; <see cref="PruneAsync"/>, at least <see cref="BackupClientOptions.PruneGracePeriod"/> later,
    /// deletes each old pack whose objects all have such a copy. Runs beside backups, views and restores; an
    /// interrupted rekey leaves only copies, and the next call goes on. Call it repeatedly with a budget to spread
    /// the work (a background job), until <see cref="RekeySummary.IsComplete"/>.
    /// </summary>
    /// <remarks>
    /// Recovery point manifests, catalog entries and other small records keep the generation they were written
    /// under until they are replaced or deleted (retention deletes old points); they hold tree roots and lifecycle
    /// state, never key material or secret values. <see cref="RepositoryVerification.PacksByKeyGeneration"/> shows
    /// the progress.
    /// </remarks>
    /// <param name="maximumPacks">How many old packs to rewrite in this call at most; <see langword="null"/> for all.</param>
    /// <param name="cancellationToken">Cancels the rekey; what was copied is kept, and the next call goes on.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maximumPacks"/> is less than 1.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.ClockBehindStore"/>: this host's clock is behind the store's time.</exception>
    /// <exception cref="BackupIntegrityException">An old pack's object does not authenticate: nothing of that pack was marked; run verify.</exception>
    public virtual async Task<RekeySummary> RekeyAsync(int? maximumPacks = null, CancellationToken cancellationToken = default)
    {
        if (maximumPacks is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(maximumPacks), maximumPacks, "Rewrite at least one pack per call, or pass null for all.");
        }

        using var activity = BackupTelemetry.Source.StartActivity(KmsBackupDiagnostics.RekeyActivity);
        var clock = await _repository.CheckClockAsync(commit: true, cancellationToken).ConfigureAwait(false);
        var result = await RepositoryMaintenance.RekeyAsync(_repository, clock.Now, maximumPacks ?? int.MaxValue, cancellationToken).ConfigureAwait(false);
        var sequence = (long)_repository.Crypto.SequenceOf(result.Generation);
        Log.Rekeyed(_logger, sequence, result.PacksRewritten, result.PacksRemaining);
        return new RekeySummary(sequence, result.PacksRewritten, result.ObjectsCopied, result.BytesWritten, result.PacksRemaining) { PacksDamaged = result.PacksDamaged };
    }

    // The key generation a background rekey last found nothing left to rewrite for, and when.
    private (uint Generation, DateTimeOffset At) _rekeyedThrough = (1, DateTimeOffset.MinValue);

    /// <summary>
    /// The hosted scheduler's background rekey: rewrites up to <paramref name="budget"/> old packs when this client
    /// knows a key generation newer than the first and has not found the work done for it within the last hour
    /// (a host that had not yet learned of the rotation may still have written a few packs under an older one).
    /// </summary>
    internal async Task RekeyInBackgroundAsync(int budget, CancellationToken cancellationToken)
    {
        var current = _repository.Crypto.CurrentGeneration;
        var done = _rekeyedThrough;
        if (current == 1 || (done.Generation == current && Clock.GetUtcNow() - done.At < TimeSpan.FromHours(1)))
        {
            return;
        }

        var summary = await RekeyAsync(budget, cancellationToken).ConfigureAwait(false);
        if (summary.IsComplete)
        {
            _rekeyedThrough = (current, Clock.GetUtcNow());
        }
    }

    /// <summary>
    /// Deletes what no backup keeps (rule W5): recovery points of dates past retention, and of released
    /// or reset backups; then, in two phases, the packs no remaining point refers to and the recovery points
    /// an interrupted upload left without a catalog entry (marked by one prune, deleted by a later one at least
    /// <see cref="BackupClientOptions.PruneGracePeriod"/> after). Each backup's points are
    /// deleted under its lease, decided on its state read again under the lease. Deletes nothing while this
    /// host's clock is too far ahead of the store's (<see cref="PruneSummary.DeletionsHeld"/>).
    /// </summary>
    /// <param name="cancellationToken">Cancels the prune; what is deleted stays deleted, nothing referenced is.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.ClockBehindStore"/>: this host's clock is behind the store's time.
    /// <see cref="BackupErrorCode.StoreLinkRefused"/>: a file-system store's folder holds a link below its root; the prune stops
    /// there and deletes nothing through it (remove the link, then prune again).</exception>
    public virtual async Task<PruneSummary> PruneAsync(CancellationToken cancellationToken = default)
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
                lease = await AcquireLeaseAsync(stored.State.Id, cancellationToken).ConfigureAwait(false);
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

        var gc = await RepositoryMaintenance.CollectGarbageAsync(_repository, now, _options.PruneGracePeriod, cancellationToken).ConfigureAwait(false);
        if (gc.Blocked is { } reason)
        {
            Log.CollectionBlocked(_logger, reason);
        }

        return new PruneSummary(deletedPoints + gc.AbandonedPointsDeleted, gc.PacksDeleted, gc.PacksMarked) { CollectionBlocked = gc.Blocked };
    }

    /// <summary>Stores what time changed in one backup's state and deletes the points its retention no longer keeps, deciding on the state as read under the lease.</summary>
    private async Task<int> PruneBackupUnderLeaseAsync(string backupId, StoreLease lease, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (await _repository.LoadStateAsync(backupId, cancellationToken).ConfigureAwait(false) is not { } stored)
        {
            return 0;
        }

        var entry = Observe(stored);

        entry = await RefreshUnderLeaseAsync(entry, lease, now, cancellationToken).ConfigureAwait(false);
        var points = await _repository.ListPointsAsync(backupId, cancellationToken).ConfigureAwait(false);
        var pruned = RetentionPolicy.Evaluate(entry.State, points.Select(p => p.Date), now).Prune.Select(p => p.Date).ToHashSet();
        return await DeletePointsUnderLeaseAsync(backupId, points.Where(p => pruned.Contains(p.Date)), lease, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Checks the whole store: every pack's hash, every object's MAC, every recovery point and reference,
    /// every catalog entry and prune marker. Changes nothing.
    /// </summary>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreLinkRefused"/>: a file-system store's folder holds a
    /// link below its root, which the store never follows (the error names it: remove it, then verify again).</exception>
    public virtual Task<RepositoryVerification> VerifyAsync(CancellationToken cancellationToken = default) =>
        RepositoryMaintenance.VerifyAsync(_repository, cancellationToken);

    /// <summary>
    /// Compares this host's clock with the latest time any writer of the store has seen, and says whether
    /// deletions are held because this clock is too far ahead. Changes nothing.
    /// </summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual async Task<StoreClockStatus> GetStoreClockAsync(CancellationToken cancellationToken = default) =>
        ToStatus(await _repository.CheckClockAsync(commit: false, cancellationToken).ConfigureAwait(false));

    /// <summary>
    /// An operator's confirmation that this host's clock is right: records it as the store's time and
    /// discards any later time a wrong clock recorded, which ends a hold of deletions (and lets hosts whose
    /// clocks a wrong time had put "behind" commit again). Deletions that were held happen at the next
    /// scheduled run or prune.
    /// </summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual async Task<StoreClockStatus> ConfirmClockAsync(CancellationToken cancellationToken = default) =>
        ToStatus(await _repository.ConfirmClockAsync(cancellationToken).ConfigureAwait(false));

    private StoreClockStatus ToStatus(StoreClockReading reading) => new()
    {
        LocalTime = reading.Now,
        StoreTime = reading.StoreTime,
        DeletionsHeld = reading.DeletionsHeld,
        MaximumLead = _options.MaximumClockLead,
        MaximumLag = _options.MaximumClockLag,
    };
}
