using KmsBackup.Diagnostics;
using KmsBackup.Repository;
using Microsoft.Extensions.Logging;

namespace KmsBackup;

/// <summary>
/// Copies backups from this client's repository into another repository, which has its own keys (docs/repository-format.md,
/// "Copies"). Object IDs are keyed MACs under each repository's own key, so nothing is copied as stored bytes: each recovery
/// point the destination lacks is read from the source (every object authenticated on the way) and committed in the
/// destination by its own write path, which writes only the objects the destination does not hold yet. A re-run after a
/// crash therefore rewrites nothing whose pack landed and was indexed.
/// </summary>
internal sealed class BackupCopier
{
    private readonly BackupCatalog _source;
    private readonly BackupRepository _repository;
    private readonly ILogger _logger;

    internal BackupCopier(BackupCatalog source)
    {
        _source = source;
        _repository = source.Repository;
        _logger = source.Logger;
    }

    internal async Task<BackupCopyReport> CopyToAsync(BackupCatalog destination, BackupCopyOptions options, CancellationToken cancellationToken)
    {
        if (string.Equals(destination.Repository.RepositoryId, _repository.RepositoryId, StringComparison.Ordinal))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.CopySameRepository, $"repository '{_repository.RepositoryId}'",
                $"The copy's destination is the source repository '{_repository.RepositoryId}' itself.",
                "Copy into another repository: a second store (another folder, container or region), opened with its own key."));
        }

        var listing = await _repository.LoadStatesAsync(cancellationToken).ConfigureAwait(false);
        var wanted = options.BackupIds is { Count: > 0 } ids ? new HashSet<string>(ids, StringComparer.Ordinal) : null;
        var results = new List<BackupCopyResult>();
        var problems = new List<BackupCopyProblem>();

        foreach (var damaged in listing.Damaged.Where(d => wanted is null || wanted.Contains(d.BackupId)))
        {
            problems.Add(new BackupCopyProblem(damaged.BackupId, null, BackupCopyProblemKind.SourceDamaged, damaged.Error));
        }

        if (wanted is not null)
        {
            foreach (var missing in wanted.Where(id => !listing.States.Any(s => s.State.Id == id) && !listing.Damaged.Any(d => d.BackupId == id)).Order(StringComparer.Ordinal))
            {
                problems.Add(new BackupCopyProblem(missing, null, BackupCopyProblemKind.NotFound, new BackupException(new Refusal(
                    BackupErrorCode.NotFound, $"backup '{missing}'",
                    $"The source repository has no backup '{missing}'.",
                    "Check the backup ID; list the source's backups to see which exist."))));
            }
        }

        foreach (var entry in listing.States.Where(e => wanted is null || wanted.Contains(e.State.Id)))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var id = entry.State.Id;
            try
            {
                results.Add(await CopyBackupAsync(entry, destination, problems, cancellationToken).ConfigureAwait(false));
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.LeaseHeld)
            {
                problems.Add(new BackupCopyProblem(id, null, BackupCopyProblemKind.LeaseHeld, e));
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.CopyConflict)
            {
                problems.Add(new BackupCopyProblem(id, null, BackupCopyProblemKind.Conflict, e));
            }
            catch (BackupException e) when (!cancellationToken.IsCancellationRequested)
            {
                // The destination failed (its store, its lease, its clock, or damage in it found by a commit): this backup
                // stops here, what landed stays, and the other backups are copied.
                problems.Add(new BackupCopyProblem(id, null, BackupCopyProblemKind.DestinationFailed, e));
            }
        }

        var report = new BackupCopyReport { Backups = results, Problems = problems };
        Log.CopyCompleted(_logger, results.Count, report.PointsCopied, report.PointsPresent, report.BytesWritten, problems.Count);
        return report;
    }

    private async Task<BackupCopyResult> CopyBackupAsync(CatalogEntry source, BackupCatalog destination, List<BackupCopyProblem> problems, CancellationToken cancellationToken)
    {
        var id = source.State.Id;

        // The destination's lease of the backup, as its own writers take it: a scheduled run, a prune or a state change of
        // the backup in the destination waits for the copy, and a second copy of the same backup is told who holds it.
        var lease = await destination.AcquireLeaseAsync(id, cancellationToken).ConfigureAwait(false);
        await using (lease.ConfigureAwait(false))
        {
            var keeper = LeaseKeeper.Start(lease, destination.Options.LeaseDuration, destination.Clock, cancellationToken);
            await using (keeper.ConfigureAwait(false))
            {
                try
                {
                    return await CopyUnderLeaseAsync(source, destination, lease, problems, keeper.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (keeper.Lost is { } lost && !cancellationToken.IsCancellationRequested)
                {
                    throw new BackupException(lost.Refusal, lost);
                }
                finally
                {
                    // The destination client's cached point list of the backup is stale now.
                    destination.ForgetPoints(id);
                }
            }
        }
    }

    private async Task<BackupCopyResult> CopyUnderLeaseAsync(CatalogEntry source, BackupCatalog destination, StoreLease lease, List<BackupCopyProblem> problems, CancellationToken cancellationToken)
    {
        var id = source.State.Id;
        var target = destination.Repository;

        // The catalog entry first: points of a backup the destination's catalog does not know look abandoned to its
        // prune, which would mark and delete them. A state change that deleted the source's data (a reset, a release, a
        // re-enable after a reset) deletes the destination's points of the backup too, as it did in the source.
        var stored = await target.LoadStateAsync(id, cancellationToken).ConfigureAwait(false);
        var stateCopied = false;
        if (stored is null)
        {
            await lease.EnsureHeldAsync(cancellationToken).ConfigureAwait(false);
            stored = destination.Observe(await target.SaveStateAsync(new CatalogEntry(source.State, source.OwnerAccount), cancellationToken).ConfigureAwait(false));
            stateCopied = true;
        }
        else if (stored.State != source.State || !string.Equals(stored.OwnerAccount, source.OwnerAccount, StringComparison.Ordinal))
        {
            var dataDeleted = source.State.Status is BackupStatus.Released or BackupStatus.Disabled || source.State.EnabledAt != stored.State.EnabledAt;
            if (dataDeleted)
            {
                await destination.DeleteAllPointsUnderLeaseAsync(id, lease, cancellationToken).ConfigureAwait(false);
            }

            await lease.EnsureHeldAsync(cancellationToken).ConfigureAwait(false);
            stored = destination.Observe(await target.SaveStateAsync(new CatalogEntry(source.State, source.OwnerAccount) { Version = stored.Version }, cancellationToken).ConfigureAwait(false));
            stateCopied = true;
        }

        var sourcePoints = await _repository.ListPointsAsync(id, cancellationToken).ConfigureAwait(false);
        var targetPoints = await target.ListPointsAsync(id, cancellationToken).ConfigureAwait(false);
        var present = targetPoints.Select(p => (p.Date, p.Sequence)).ToHashSet();
        await CheckSameHistoryAsync(sourcePoints, targetPoints, target, cancellationToken).ConfigureAwait(false);

        var copied = new List<RecoveryPointName>();
        long bytes = 0;
        var objects = 0;
        PointKey? previous = null; // the source point before this one, when the destination holds it
        foreach (var key in sourcePoints)
        {
            if (present.Contains((key.Date, key.Sequence)))
            {
                previous = key;
                continue;
            }

            var name = new RecoveryPointName(key.Date, key.Sequence);
            var committed = await CopyPointAsync(key, name, previous, stored, destination, lease, problems, cancellationToken).ConfigureAwait(false);
            previous = committed is null ? null : key;
            if (committed is not null)
            {
                copied.Add(name);
                bytes += committed.BytesWritten;
                objects += committed.ObjectsWritten;
            }
        }

        return new BackupCopyResult
        {
            BackupId = id,
            PointsCopied = copied,
            PointsPresent = sourcePoints.Count(p => present.Contains((p.Date, p.Sequence))),
            StateCopied = stateCopied,
            BytesWritten = bytes,
            ObjectsWritten = objects,
        };
    }

    /// <summary>
    /// Reads one point from the source (every object authenticated) and commits it in the destination. When the destination
    /// holds the source point before it (<paramref name="previous"/>), only the items in which the two source points differ
    /// are read, and the destination's copy of the previous point is updated with them (as a backup run from a change feed
    /// updates the last point): a point then costs its changes, not the instance. Otherwise, or when that cannot be used,
    /// the whole point is read and written. A point that does not authenticate, or that the source deleted meanwhile, is
    /// reported and not copied: nothing of it is committed.
    /// </summary>
    private async Task<CommittedPoint?> CopyPointAsync(
        PointKey key, RecoveryPointName name, PointKey? previous, CatalogEntry decidedOn, BackupCatalog destination, StoreLease lease,
        List<BackupCopyProblem> problems, CancellationToken cancellationToken)
    {
        var target = destination.Repository;
        Task Fence(CancellationToken token) => EnsureCopyStillValidAsync(decidedOn, target, lease, token);
        try
        {
            var manifest = await ReadSourceAsync(() => _repository.ReadPointAsync(key, cancellationToken)).ConfigureAwait(false);
            if (previous is { } before && await CopyChangesAsync(key, manifest, before, target, Fence, cancellationToken).ConfigureAwait(false) is { } updated)
            {
                return updated;
            }

            // Leaf by leaf: the source's leaves are opened and checked a batch at a time and their items appended to the
            // destination's trees, so that copying a full point of any size holds a batch of leaves, not the point.
            return await target.CommitPointAsync(
                (writer, token) => target.CopyTreesAsync(_repository.Objects, manifest, writer, e => new SourceUnreadableException(e), token),
                manifest.Source.InstanceId,
                (keyRoot, secretRoot) => manifest with { KeyRoot = keyRoot, SecretRoot = secretRoot },
                key.Date,
                Fence,
                cancellationToken).ConfigureAwait(false);
        }
        catch (SourceUnreadableException e)
        {
            return await ReportUnreadableAsync(key, name, e.Cause, problems, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Commits <paramref name="manifest"/>'s point as the destination's copy of <paramref name="previous"/> updated with the
    /// items in which the two source points differ. Returns <see langword="null"/> when the destination's previous point is
    /// not the source's, is gone, or the update does not give the source's item counts: the caller copies the whole point.
    /// </summary>
    private async Task<CommittedPoint?> CopyChangesAsync(
        PointKey key, PointManifest manifest, PointKey previous, BackupRepository target, Func<CancellationToken, Task> fence, CancellationToken cancellationToken)
    {
        PointManifest theirs;
        PointManifest ours;
        try
        {
            theirs = await target.ReadPointAsync(previous, cancellationToken).ConfigureAwait(false);
        }
        catch (BackupException e) when (e.Code == BackupErrorCode.NotFound)
        {
            return null; // a prune of the destination deleted it
        }

        try
        {
            ours = await _repository.ReadPointAsync(previous, cancellationToken).ConfigureAwait(false);
        }
        catch (BackupException e) when (e.Code == BackupErrorCode.NotFound || e is BackupIntegrityException)
        {
            return null; // the whole point is read instead, and reported if it does not read either
        }

        if (ours.TakenAt != theirs.TakenAt || ours.KeyRoot.Count != theirs.KeyRoot.Count || ours.SecretRoot.Count != theirs.SecretRoot.Count)
        {
            return null;
        }

        var changes = await ChangesBetweenAsync(ours, manifest, cancellationToken).ConfigureAwait(false);
        try
        {
            var update = PointChanges.Of(changes);
            return await target.CommitPointAsync(
                (writer, token) => target.UpdateTreesAsync(theirs, update, writer, token),
                manifest.Source.InstanceId,
                (keyRoot, secretRoot) => keyRoot.Count == manifest.KeyRoot.Count && secretRoot.Count == manifest.SecretRoot.Count
                    ? manifest with { KeyRoot = keyRoot, SecretRoot = secretRoot }
                    : throw new CopyFallbackException(),
                key.Date,
                fence,
                cancellationToken,
                afterManifest: token => target.ConfirmPointAsync(previous, theirs, token)).ConfigureAwait(false);
        }
        catch (CopyFallbackException)
        {
            return null; // nothing was committed; the objects written are garbage that prunes collect
        }
        catch (BackupException e) when (e.Code == BackupErrorCode.LeaseLost)
        {
            // The destination's previous point pruned while it was updated: the manifest was taken back; copy the point whole.
            if (!(await target.ListPointsAsync(previous.BackupId, previous.Date, cancellationToken).ConfigureAwait(false)).Contains(previous))
            {
                return null;
            }

            throw;
        }
        finally
        {
            SensitiveValues.Clear(changes);
        }
    }

    /// <summary>
    /// The items in which two points of the source differ: those of <paramref name="after"/> in leaves <paramref name="before"/>
    /// does not share (with their values), and the names of <paramref name="before"/> that <paramref name="after"/> no
    /// longer holds. Subtrees the two share are not read.
    /// </summary>
    private async Task<InstanceChanges> ChangesBetweenAsync(PointManifest before, PointManifest after, CancellationToken cancellationToken)
    {
        var objects = _repository.Objects;
        List<KeyRecord>? keys = null;
        List<SecretRecord>? secrets = null;
        try
        {
            keys = await ItemTree.ItemsNotInAsync(objects, after.KeyRoot, before.KeyRoot, (ref RecordReader r) => ItemCodec.ReadKey(ref r, withValues: true), cancellationToken, SensitiveValues.Clear).ConfigureAwait(false);
            secrets = await ItemTree.ItemsNotInAsync(objects, after.SecretRoot, before.SecretRoot, (ref RecordReader r) => ItemCodec.ReadSecret(ref r, withValues: true), cancellationToken, SensitiveValues.Clear).ConfigureAwait(false);
            var goneKeys = await ItemTree.ItemsNotInAsync(objects, before.KeyRoot, after.KeyRoot, (ref RecordReader r) => ItemCodec.ReadKey(ref r, withValues: false), cancellationToken).ConfigureAwait(false);
            var goneSecrets = await ItemTree.ItemsNotInAsync(objects, before.SecretRoot, after.SecretRoot, (ref RecordReader r) => ItemCodec.ReadSecret(ref r, withValues: false), cancellationToken).ConfigureAwait(false);
            var keptKeys = keys.Select(k => k.Name).ToHashSet(StringComparer.Ordinal);
            var keptSecrets = secrets.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
            return new InstanceChanges
            {
                ReadAt = after.TakenAt,
                Cursor = after.Cursor ?? string.Empty,
                UpsertedKeys = keys,
                UpsertedSecrets = secrets,
                DeletedKeys = [.. goneKeys.Select(k => k.Name).Where(n => !keptKeys.Contains(n))],
                DeletedSecrets = [.. goneSecrets.Select(s => s.Name).Where(n => !keptSecrets.Contains(n))],
            };
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            keys?.ForEach(SensitiveValues.Clear);
            secrets?.ForEach(SensitiveValues.Clear);
            if (e is BackupIntegrityException integrity)
            {
                throw new SourceUnreadableException(integrity);
            }

            throw;
        }
    }

    /// <summary>
    /// Reports a source point that could not be read: deleted meanwhile (a prune that deletes a point and then the packs only
    /// it used makes a reader that started before fail on a missing pack), or damaged.
    /// </summary>
    private async Task<CommittedPoint?> ReportUnreadableAsync(PointKey key, RecoveryPointName name, BackupException e, List<BackupCopyProblem> problems, CancellationToken cancellationToken)
    {
        var stillThere = e.Code != BackupErrorCode.NotFound &&
            (await _repository.ListPointsAsync(key.BackupId, key.Date, cancellationToken).ConfigureAwait(false)).Contains(key);
        if (!stillThere)
        {
            problems.Add(new BackupCopyProblem(key.BackupId, name, BackupCopyProblemKind.DeletedAtSource, DeletedAtSource(key, e)));
            return null;
        }

        Log.CopySourceDamaged(_logger, key.BackupId, key.Date, key.Sequence);
        problems.Add(new BackupCopyProblem(key.BackupId, name, BackupCopyProblemKind.SourceDamaged, new BackupIntegrityException(new Refusal(
            BackupErrorCode.IntegrityViolation, $"recovery point {name} of backup '{key.BackupId}'",
            $"Recovery point {name} of backup '{key.BackupId}' does not authenticate in the source repository ({e.Message}); it was not copied.",
            "Run verify on the source to list every damaged object. The other points were copied; a later point holds the instance's state as of its own time."))));
        return null;
    }

    private static BackupException DeletedAtSource(PointKey key, BackupException cause) => new(new Refusal(
        BackupErrorCode.NotFound, $"recovery point {new RecoveryPointName(key.Date, key.Sequence)} of backup '{key.BackupId}'",
        $"Recovery point {new RecoveryPointName(key.Date, key.Sequence)} of backup '{key.BackupId}' was deleted from the source (a prune, a reset or a release) while it was being copied; nothing of it was committed in the destination.",
        "Nothing to do: the source no longer keeps this point."), cause);

    /// <summary>
    /// Refuses to add points to a backup whose destination history is not the source's: the newest point both hold by name
    /// must be the same point (taken at the same instant). Reads one manifest on each side.
    /// </summary>
    private async Task CheckSameHistoryAsync(List<PointKey> sourcePoints, List<PointKey> targetPoints, BackupRepository target, CancellationToken cancellationToken)
    {
        var sourceNames = sourcePoints.ToHashSet();
        var last = targetPoints.FindLastIndex(sourceNames.Contains);
        if (last < 0)
        {
            return;
        }

        var common = targetPoints[last];

        PointManifest ours;
        PointManifest theirs;
        try
        {
            ours = await _repository.ReadPointAsync(common, cancellationToken).ConfigureAwait(false);
            theirs = await target.ReadPointAsync(common, cancellationToken).ConfigureAwait(false);
        }
        catch (BackupException e) when (e.Code == BackupErrorCode.NotFound)
        {
            return; // deleted meanwhile (a prune on either side): the points are compared by name only
        }

        if (ours.TakenAt != theirs.TakenAt || ours.Kind != theirs.Kind || ours.KeyRoot.Count != theirs.KeyRoot.Count || ours.SecretRoot.Count != theirs.SecretRoot.Count)
        {
            var name = new RecoveryPointName(common.Date, common.Sequence);
            throw new BackupException(new Refusal(
                BackupErrorCode.CopyConflict, $"recovery point {name} of backup '{common.BackupId}'",
                $"The destination's recovery point {name} of backup '{common.BackupId}' is not the source's (taken {ViewableWindow.Iso(theirs.TakenAt)}, the source's {ViewableWindow.Iso(ours.TakenAt)}): the destination's backup was written by another writer. Nothing of the backup was copied.",
                "Copy into a repository that only copies write (do not run backups against a copy), or delete the backup from the destination first."));
        }
    }

    /// <summary>The copy's fence: the destination's lease is held, and the backup's state there is still the version the copy started from.</summary>
    private static async Task EnsureCopyStillValidAsync(CatalogEntry decidedOn, BackupRepository target, StoreLease lease, CancellationToken cancellationToken)
    {
        await lease.EnsureHeldAsync(cancellationToken).ConfigureAwait(false);
        var current = await target.LoadStateAsync(decidedOn.State.Id, cancellationToken).ConfigureAwait(false);
        if (current?.Version != decidedOn.Version)
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.LeaseLost, $"backup '{decidedOn.State.Id}'",
                $"The destination's state of backup '{decidedOn.State.Id}' changed while the copy was in flight; the point was not committed.",
                "Run the copy again: it goes on from what landed."));
        }
    }

    /// <summary>Runs a read of the source, turning what says the source point is gone or damaged into <see cref="SourceUnreadableException"/>.</summary>
    private static async Task<T> ReadSourceAsync<T>(Func<Task<T>> read)
    {
        try
        {
            return await read().ConfigureAwait(false);
        }
        catch (BackupException e) when (e.Code == BackupErrorCode.NotFound || e is BackupIntegrityException)
        {
            throw new SourceUnreadableException(e);
        }
    }

    /// <summary>A read of the source failed: the point is gone or damaged (never a failure of the destination).</summary>
    private sealed class SourceUnreadableException(BackupException cause) : Exception(cause.Message, cause)
    {
        public BackupException Cause { get; } = cause;
    }

    /// <summary>An update of the destination's previous point did not give the source point's item counts: copy it whole.</summary>
    private sealed class CopyFallbackException : Exception
    {
    }
}
