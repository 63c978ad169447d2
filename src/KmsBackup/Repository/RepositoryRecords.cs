using System.Globalization;

namespace KmsBackup.Repository;

/// <summary>A recovery point just committed, and what writing it cost.</summary>
internal sealed record CommittedPoint(PointManifest Manifest, long BytesWritten, int ObjectsWritten);

/// <summary>This host's clock against the store's time.</summary>
/// <param name="Now">This host's clock.</param>
/// <param name="StoreTime">The latest time a writer recorded; <see langword="null"/> when none has.</param>
/// <param name="DeletionsHeld">Whether this clock is so far ahead that deletions are held.</param>
internal readonly record struct StoreClockReading(DateTimeOffset Now, DateTimeOffset? StoreTime, bool DeletionsHeld);

/// <summary>The catalog: every backup's latest state, and the entries that did not open.</summary>
internal sealed record CatalogListing(List<CatalogEntry> States, List<DamagedCatalogEntry> Damaged);

/// <summary>A backup whose latest catalog entry did not open, with the version before it when that one opens (it names the owner).</summary>
internal sealed record DamagedCatalogEntry(string BackupId, CatalogEntry? Previous, BackupIntegrityException Error);

/// <summary>A prune marker: packs, and recovery points of backups without a catalog entry (an abandoned upload's), marked for deletion by a later prune, and when.</summary>
internal sealed record PruneMarker(string Key, DateTimeOffset MarkedAt, HashSet<string> Packs, HashSet<string> Points);

/// <summary>The pending prune markers, and those that did not open.</summary>
internal sealed record PruneMarkers(List<PruneMarker> Markers, List<(string Key, string Problem)> Unreadable)
{
    public HashSet<string> MarkedPacks => Markers.SelectMany(m => m.Packs).ToHashSet(StringComparer.Ordinal);

    /// <summary>Whether any marker names the recovery point stored under <paramref name="storeKey"/>.</summary>
    public bool MarksPoint(string storeKey) => Markers.Any(m => m.Points.Contains(storeKey));
}

/// <summary>Where a recovery point is stored: <c>points/&lt;backup&gt;/&lt;date&gt;/&lt;sequence&gt;</c>.</summary>
internal readonly record struct PointKey(string BackupId, DateOnly Date, long Sequence)
{
    /// <summary>Where recovery points are stored.</summary>
    public const string AreaPrefix = "points/";

    public string StoreKey => string.Create(CultureInfo.InvariantCulture, $"points/{BackupId}/{Date:yyyy-MM-dd}/{Sequence:D12}");

    public static bool TryParse(string backupId, string rest, out PointKey key)
    {
        key = default;
        var parts = rest.Split('/');
        if (parts.Length != 2 ||
            !DateOnly.TryParseExact(parts[0], "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date) ||
            !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var sequence))
        {
            return false;
        }

        key = new PointKey(backupId, date, sequence);
        return true;
    }
}
