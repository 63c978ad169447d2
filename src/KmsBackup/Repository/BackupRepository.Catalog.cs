using System.Globalization;

namespace KmsBackup.Repository;
// The store's time and the catalog of backup states.
internal sealed partial class BackupRepository
{
    // --- store time ---

    /// <summary>
    /// Compares this host's clock with the latest time the store has seen. For a commit, a clock behind it by
    /// more than the allowed lag is refused, and a clock that is neither behind nor too far ahead records
    /// its time (at most once a minute). Reads pass <paramref name="commit"/> false and write nothing.
    /// </summary>
    public async Task<StoreClockReading> CheckClockAsync(bool commit, CancellationToken cancellationToken)
    {
        var now = ClockPolicy.Time.GetUtcNow();
        var storeTime = await _storeClock.ReadAsync(cancellationToken).ConfigureAwait(false);
        if (storeTime is { } seen && commit && now < seen - ClockPolicy.MaximumLag)
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.ClockBehindStore, "clock",
                string.Create(CultureInfo.InvariantCulture,
                    $"This host's clock reads {ViewableWindow.Iso(now)}, {(seen - now).TotalMinutes:0.#} minutes behind {ViewableWindow.Iso(seen)}, the latest time a writer of this store has seen; it may lag by at most {ClockPolicy.MaximumLag.TotalMinutes:0.#} minutes."),
                "Synchronise this host's clock (NTP) with the other hosts of the store, then retry. If the store's time is wrong instead, confirm this clock with ConfirmClockAsync (kmsbackup clock confirm)."));
        }

        var held = storeTime is { } known && now - known > ClockPolicy.MaximumLead;
        if (commit && !held && (storeTime is null || now - storeTime.Value >= StoreClockPolicy.RecordEvery))
        {
            try
            {
                await _storeClock.RecordAsync(now, discardLater: false, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.StoreUnavailable)
            {
                // Recording the time is a courtesy to the other hosts: the commit that follows reports the store's failure itself.
            }
        }

        return new StoreClockReading(now, storeTime, held);
    }

    /// <summary>Records this host's clock as the store's time, discarding any later time: an operator has confirmed it.</summary>
    public async Task<StoreClockReading> ConfirmClockAsync(CancellationToken cancellationToken)
    {
        var now = ClockPolicy.Time.GetUtcNow();
        await _storeClock.RecordAsync(now, discardLater: true, cancellationToken).ConfigureAwait(false);
        return new StoreClockReading(now, now, DeletionsHeld: false);
    }

    // --- catalog ---

    /// <summary>Loads the latest state of one backup, or null when the catalog has none.</summary>
    public async Task<CatalogEntry?> LoadStateAsync(string backupId, CancellationToken cancellationToken)
    {
        var versions = await ListCatalogVersionsAsync(backupId, cancellationToken).ConfigureAwait(false);
        for (var i = versions.Count - 1; i >= 0; i--)
        {
            if (await TryReadStateAsync(backupId, versions[i], cached: false, cancellationToken).ConfigureAwait(false) is { } entry)
            {
                return entry;
            }
        }

        return null;
    }

    /// <summary>
    /// Stores the next version of a backup's state: version <see cref="CatalogEntry.Version"/> + 1, created
    /// only if absent, so that a writer working from a stale state fails instead of overwriting a newer one.
    /// </summary>
    public async Task<CatalogEntry> SaveStateAsync(CatalogEntry entry, CancellationToken cancellationToken)
    {
        await CheckClockAsync(commit: true, cancellationToken).ConfigureAwait(false);
        var state = entry.State;
        var next = entry.Version + 1;
        var sealedBytes = _crypto.Seal(CatalogCodec.Encode(entry), CatalogCodec.AssociatedData(state.Id, next));
        if (!await _store.TryCreateAsync(CatalogCodec.KeyOf(state.Id, next), sealedBytes, cancellationToken).ConfigureAwait(false))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.LeaseLost, $"backup '{state.Id}'",
                $"The state of backup '{state.Id}' was changed by another writer meanwhile.",
                "Reload the backup and retry the operation."));
        }

        // Versions before the previous one are history only; keep one as a fallback.
        if (next > 2)
        {
            await _store.DeleteAsync(CatalogCodec.KeyOf(state.Id, next - 2), cancellationToken).ConfigureAwait(false);
        }

        return entry with { Version = next };
    }

    /// <summary>
    /// Loads the latest state of every backup in the catalog. A damaged entry stays local: it is reported
    /// apart, with its previous version when that one still opens (it names the owner), and every other backup
    /// loads as usual.
    /// </summary>
    public Task<CatalogListing> LoadStatesAsync(CancellationToken cancellationToken) => LoadStatesAsync(cached: false, cancellationToken);

    /// <summary>
    /// Loads the latest state of every backup, as <see cref="LoadStatesAsync(CancellationToken)"/>; with
    /// <paramref name="cached"/>, entries already decoded come from <see cref="EntryCache"/> and only new versions are read
    /// (for the scheduler tick and the health report, which run every minute). Damage to an entry after it was decoded
    /// is then seen by the next uncached load (a verify, a listing of backups, a new process), not by the tick.
    /// </summary>
    public async Task<CatalogListing> LoadStatesAsync(bool cached, CancellationToken cancellationToken)
    {
        var versions = new Dictionary<string, List<long>>(StringComparer.Ordinal);
        await foreach (var entry in _store.ListAsync("catalog/", cancellationToken).ConfigureAwait(false))
        {
            var parts = entry.Key.Split('/');
            if (parts.Length == 3 && long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var version))
            {
                if (!versions.TryGetValue(parts[1], out var list))
                {
                    versions[parts[1]] = list = [];
                }

                list.Add(version);
            }
        }

        var states = new List<CatalogEntry>(versions.Count);
        var damaged = new List<DamagedCatalogEntry>();
        foreach (var (backupId, list) in versions.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            list.Sort();
            var latest = list[^1];
            try
            {
                if (await TryReadStateAsync(backupId, latest, cached, cancellationToken).ConfigureAwait(false) is { } state)
                {
                    states.Add(state);
                }
            }
            catch (BackupIntegrityException e)
            {
                CatalogEntry? previous = null;
                if (list.Count > 1)
                {
                    try
                    {
                        previous = await TryReadStateAsync(backupId, list[^2], cached: false, cancellationToken).ConfigureAwait(false);
                    }
                    catch (BackupIntegrityException)
                    {
                        // Both damaged: no owner is known; verify still names the backup.
                    }
                }

                damaged.Add(new DamagedCatalogEntry(backupId, previous, e));
            }
        }

        return new CatalogListing(states, damaged);
    }

    /// <summary>
    /// Where decoded catalog entries are kept between loads, by backup and version. A version of an entry is written
    /// once (create-if-absent) and never rewritten, and its seal binds the backup ID and version, so a kept entry is the
    /// stored one for as long as that version exists: a scheduler tick or a health report then lists the catalog and
    /// reads only the entries that changed (<see cref="LoadStatesAsync(bool, CancellationToken)"/>). Every other load
    /// reads the store, and keeps what it decoded. <see langword="null"/>: nothing is kept.
    /// </summary>
    public ICatalogEntryCache? EntryCache { get; set; }

    private async Task<CatalogEntry?> TryReadStateAsync(string backupId, long version, bool cached, CancellationToken cancellationToken)
    {
        if (cached && EntryCache?.TryGet(backupId, version) is { } kept)
        {
            return kept;
        }

        var bytes = await _store.TryReadAsync(CatalogCodec.KeyOf(backupId, version), cancellationToken).ConfigureAwait(false);
        if (bytes is null)
        {
            return null;
        }

        var plain = await Objects.WithKeysAsync(() => _crypto.Open(bytes, CatalogCodec.AssociatedData(backupId, version), $"catalog entry of backup '{backupId}'"), cancellationToken).ConfigureAwait(false);
        var entry = CatalogCodec.Decode(plain, backupId) with { Version = version };
        EntryCache?.Set(entry);
        return entry;
    }

    private async Task<List<long>> ListCatalogVersionsAsync(string backupId, CancellationToken cancellationToken)
    {
        var versions = new List<long>();
        var prefix = CatalogCodec.Prefix(backupId);
        await foreach (var entry in _store.ListAsync(prefix, cancellationToken).ConfigureAwait(false))
        {
            if (long.TryParse(entry.Key[prefix.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var version))
            {
                versions.Add(version);
            }
        }

        versions.Sort();
        return versions;
    }
}

/// <summary>Keeps decoded catalog entries by backup and version (see <see cref="BackupRepository.EntryCache"/>).</summary>
internal interface ICatalogEntryCache
{
    /// <summary>The kept entry of <paramref name="backupId"/> at <paramref name="version"/>, or <see langword="null"/>.</summary>
    CatalogEntry? TryGet(string backupId, long version);

    /// <summary>Keeps <paramref name="entry"/> under its backup and version.</summary>
    void Set(CatalogEntry entry);
}
