using KmsBackup.Repository;

namespace KmsBackup;

// The points of each backup as this client caches them: point lists, manifests, the last point's digest.
internal sealed partial class BackupCatalog
{
    // The kinds of entry in the cache, as the cache metrics tag them.
    private const string PointListKind = "point_list";
    private const string ManifestKind = "manifest";
    private const string LastPointKind = "last_point";

    /// <summary>
    /// Remembers a point this client just committed: its manifest, its place in the backup's point list, and its digest
    /// as the backup's last point. An incremental from the change feed has no digest (it never held the whole snapshot):
    /// the digest of the point before is dropped, and a later run that needs one reads it from the point.
    /// </summary>
    internal void RememberCommitted(PointKey key, PointManifest manifest, SnapshotDigest? digest, string? cursor)
    {
        KeepManifest(key, manifest);
        if (_cache.TryPeek(PointListKind, key.BackupId, out List<PointKey> list))
        {
            KeepPointList(key.BackupId, [.. list, key]);
        }

        if (digest is null)
        {
            _cache.Remove(LastPointKind, key.BackupId);
        }
        else
        {
            RememberLastPoint(key.BackupId, new CachedPoint(key, digest, cursor));
        }
    }

    /// <summary>The backup's last point as this client remembers it, if it is <paramref name="last"/>.</summary>
    internal CachedPoint? LastPointIf(string backupId, PointKey last) =>
        _cache.TryGet(LastPointKind, backupId, out CachedPoint cached) && cached.Point == last ? cached : null;

    /// <summary>Remembers <paramref name="point"/> as the backup's last point.</summary>
    internal void RememberLastPoint(string backupId, CachedPoint point) =>
        _cache.Set(LastPointKind, backupId, point, 128 + point.Digest.EstimatedBytes + (2L * (point.Cursor?.Length ?? 0)));

    private void KeepManifest(PointKey key, PointManifest manifest) =>
        _cache.Set(ManifestKind, key, manifest, 512 + manifest.Changes.Sum(c => 48L + (2L * c.Name.Length)));

    private void KeepPointList(string backupId, List<PointKey> points) =>
        _cache.Set(PointListKind, backupId, points, 64 + (48L * points.Count));

    internal static RecoveryPoint ToPoint(PointManifest manifest, DateOnly date) => new()
    {
        BackupId = manifest.BackupId,
        Sequence = manifest.Sequence,
        Kind = manifest.Kind,
        Reason = manifest.Reason,
        Date = date,
        TakenAt = manifest.TakenAt,
        CompletedAt = manifest.CompletedAt,
        KeyCount = manifest.KeyRoot.Count,
        SecretCount = manifest.SecretRoot.Count,
        ChangeCount = manifest.Changes.Count,
    };

    internal async Task<PointManifest> ReadPointAsync(PointKey key, CancellationToken cancellationToken)
    {
        if (_cache.TryGet(ManifestKind, key, out PointManifest cached))
        {
            return cached;
        }

        var manifest = await _repository.ReadPointAsync(key, cancellationToken).ConfigureAwait(false);
        KeepManifest(key, manifest);
        return manifest;
    }

    /// <summary>
    /// The backup's points as this client last listed them, oldest first, listing them only when it knows none: for a
    /// first look at whether a run may be due, which then costs no store call. Points other writers committed since are
    /// missing, and that can only make a run look due sooner than it is; the decision under the lease lists them
    /// (<see cref="PointsAsync"/>). A reset or release that deleted points changed the catalog version, which drops the list.
    /// </summary>
    internal async Task<List<PointKey>> KnownPointsAsync(BackupState state, CancellationToken cancellationToken) =>
        _cache.TryGet(PointListKind, state.Id, out List<PointKey> known) && known.Count > 0
            ? [.. known]
            : await PointsAsync(state, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// The backup's points, oldest first. The first call lists them all; later calls list only the dates
    /// from the last known point's date to today (where new points appear), so that a run costs the same
    /// after a year of points as after a day.
    /// </summary>
    internal async Task<List<PointKey>> PointsAsync(BackupState state, CancellationToken cancellationToken)
    {
        if (!_cache.TryGet(PointListKind, state.Id, out List<PointKey> known) || known.Count == 0)
        {
            var all = await _repository.ListPointsAsync(state.Id, cancellationToken).ConfigureAwait(false);
            ForgetVanished(state.Id, known ?? [], all);
            KeepPointList(state.Id, all);
            return [.. all];
        }

        var today = state.TimeZone.DateOf(Clock.GetUtcNow());
        var from = known[^1].Date;
        List<PointKey> merged;
        if (today.DayNumber - from.DayNumber > 3)
        {
            // After a long gap one full listing is cheaper than a call per empty day.
            merged = await _repository.ListPointsAsync(state.Id, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            // The dates listed again replace what was known of them: a point known from an earlier listing may be gone
            // (its writer found its fence broken after writing it, and took it back).
            merged = [.. known.Where(k => k.Date < from)];
            for (var date = from; date <= today; date = date.AddDays(1))
            {
                merged.AddRange(await _repository.ListPointsAsync(state.Id, date, cancellationToken).ConfigureAwait(false));
            }
        }

        merged.Sort((a, b) => a.Sequence.CompareTo(b.Sequence));
        ForgetVanished(state.Id, known, merged);
        KeepPointList(state.Id, merged);
        return [.. merged];
    }

    /// <summary>
    /// Drops what this client remembers of points it knew that a listing no longer shows: their manifests, and the
    /// last point's digest. Such a point was taken back by its writer; another run may later write a point with the
    /// same date and sequence, which must not be mistaken for it.
    /// </summary>
    internal void ForgetVanished(string backupId, List<PointKey> known, List<PointKey> listed)
    {
        var present = listed.ToHashSet();
        foreach (var gone in known.Where(k => !present.Contains(k)))
        {
            _cache.Remove(ManifestKind, gone);
            if (_cache.TryPeek(LastPointKind, backupId, out CachedPoint last) && last.Point == gone)
            {
                _cache.Remove(LastPointKind, backupId);
            }
        }
    }

    /// <summary>Forgets the backup's point list, and with it what was cached of those points: the next look lists and reads them again.</summary>
    internal void ForgetPoints(string backupId)
    {
        if (_cache.TryRemove(PointListKind, backupId, out List<PointKey> known))
        {
            ForgetVanished(backupId, known, []);
        }
    }

    /// <summary>The latest recovery point of a backup that holds data (enabled, or expired awaiting renewal); <see langword="null"/> otherwise.</summary>
    internal async Task<RecoveryPoint?> LatestPointAsync(BackupState state, CancellationToken cancellationToken)
    {
        if (state.Status is not (BackupStatus.Enabled or BackupStatus.Expired))
        {
            return null; // a reset or release that crashed may have left points no state keeps
        }

        var points = await _repository.ListPointsAsync(state.Id, cancellationToken).ConfigureAwait(false);
        if (points.Count == 0)
        {
            return null;
        }

        var last = points[^1];
        try
        {
            return ToPoint(await ReadPointAsync(last, cancellationToken).ConfigureAwait(false), last.Date);
        }
        catch (BackupException e) when (e.Code == BackupErrorCode.NotFound)
        {
            return null; // deleted since it was listed (a reset or release by another writer): no latest point to show
        }
    }

    /// <summary>A backup's last recovery point as a client remembers it between runs: metadata only (see <see cref="SnapshotDigest"/>).</summary>
    internal sealed record CachedPoint(PointKey Point, SnapshotDigest Digest, string? Cursor);
}
