using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using KmsBackup.Diagnostics;
using KmsBackup.Repository;
using Microsoft.Extensions.Logging;

namespace KmsBackup;

/// <summary>
/// The client's view of the catalog: loads a backup's state with the owner check and the date check an
/// operation opens with, changes states under the backup's lease, and caches what is safe to cache between
/// calls (the point list of each backup, point manifests, the last point's digest), dropping a backup's
/// caches whenever its catalog version moves. Every service of a <see cref="BackupClient"/> shares one.
/// </summary>
internal sealed partial class BackupCatalog
{
    private readonly BoundedCache _cache;
    private readonly ConcurrentDictionary<string, long> _versions = new(StringComparer.Ordinal);
    private readonly BackupRepository _repository;
    private readonly InstanceGateway _instances;
    private readonly BackupClientOptions _options;
    private readonly ILogger _logger;

    internal BackupCatalog(BackupRepository repository, InstanceGateway instances, HsmClusterGateway? hsmClusters, BackupClientOptions options)
    {
        Repository = _repository = repository;
        Instances = _instances = instances;
        HsmClusters = hsmClusters;
        Options = _options = options;
        Logger = _logger = options.LoggerFactory.CreateLogger("KmsBackup.BackupClient");
        Telemetry = BackupTelemetry.For(options.MeterFactory);
        _cache = new BoundedCache(options.CacheSize, Telemetry);
        repository.EntryCache = new CatalogEntries(_cache);
    }

    /// <summary>The cache of point lists, manifests and last points.</summary>
    internal BoundedCache Cache => _cache;

    internal BackupRepository Repository { get; }

    internal InstanceGateway Instances { get; }

    /// <summary>The HSM cluster gateway, if the client was opened with one.</summary>
    internal HsmClusterGateway? HsmClusters { get; }

    internal BackupClientOptions Options { get; }

    internal ILogger Logger { get; }

    internal BackupTelemetry Telemetry { get; }

    internal TimeProvider Clock => _options.TimeProvider;

    internal async Task<CatalogEntry> LoadAsync(string backupId, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(backupId);
        return Observe(await _repository.LoadStateAsync(backupId, cancellationToken).ConfigureAwait(false)
            ?? throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, $"backup '{backupId}'",
                $"There is no backup '{backupId}'.",
                "Check the backup ID; list the backups to see which exist.")));
    }

    /// <summary>
    /// Notes the catalog version of a state this client loaded. When it is not the version seen last, another
    /// writer (or this one) changed the backup: a reset and a re-enable make new points under the names of
    /// deleted ones, so every cached point list, manifest and snapshot of that backup is dropped.
    /// </summary>
    internal CatalogEntry Observe(CatalogEntry entry)
    {
        var id = entry.State.Id;
        if (_versions.TryGetValue(id, out var seen) && seen != entry.Version)
        {
            _cache.Remove(PointListKind, id);
            _cache.Remove(LastPointKind, id);
            _cache.RemoveWhere<PointKey>(ManifestKind, k => string.Equals(k.BackupId, id, StringComparison.Ordinal));
        }

        _versions[id] = entry.Version;
        return entry;
    }

    internal async Task<CatalogEntry> LoadOwnedAsync(string callerAccount, string backupId, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(callerAccount);
        var entry = await LoadAsync(backupId, cancellationToken).ConfigureAwait(false);
        ThrowIfNotOwner(callerAccount, entry);
        return entry;
    }

    internal static void ThrowIfNotOwner(string callerAccount, CatalogEntry entry)
    {
        if (!string.Equals(callerAccount, entry.OwnerAccount, StringComparison.Ordinal))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.AccessDenied, $"backup '{entry.State.Id}'",
                $"The account '{callerAccount}' is not the owner of backup '{entry.State.Id}'; only the resource owner may back up or restore.",
                "Act as the account that owns the instance and its backups."));
        }
    }

    /// <summary>
    /// A stored state as time has moved it on (expiry, release), in memory only. Reads use this: they never
    /// store a state or delete data, whatever the clock says.
    /// </summary>
    internal CatalogEntry AsOfNow(CatalogEntry entry) => entry with { State = BackupLifecycle.Advance(entry.State, Clock.GetUtcNow()).State };

    /// <summary>
    /// Maintenance only (a scheduled run, a prune), with the backup's lease held: stores what time changed
    /// in the state and carries out its effects (a release deletes the data), unless this host's clock is
    /// too far ahead of the store's, when nothing is stored and the state is only advanced in memory.
    /// </summary>
    /// <param name="entry">The state as read under the lease.</param>
    /// <param name="lease">The backup's lease.</param>
    /// <param name="now">The instant the caller checked against the store's time (a prune's), or <see langword="null"/> to read the clock once here: time is read once per decision, so that a clock stepping meanwhile cannot slip past the check.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    internal async Task<CatalogEntry> RefreshUnderLeaseAsync(CatalogEntry entry, StoreLease lease, DateTimeOffset? now, CancellationToken cancellationToken)
    {
        var reading = await _repository.CheckClockAsync(commit: false, cancellationToken).ConfigureAwait(false);
        var outcome = BackupLifecycle.Advance(entry.State, now ?? reading.Now);
        if (outcome.State == entry.State)
        {
            return entry;
        }

        if (reading.DeletionsHeld)
        {
            Log.DeletionsHeld(_logger, reading.Now, _options.MaximumClockLead, reading.StoreTime);
            return entry with { State = outcome.State };
        }

        return await CommitUnderLeaseAsync(entry, outcome.State, outcome.Effects, lease, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Changes one backup's state under its lease: the state is read again once the lease is held (another
    /// host may have changed it), <paramref name="change"/> is applied to that state, its data is deleted when
    /// the change says so, and the new state is stored, all before the lease is released. A run of the backup
    /// holds the same lease, so a change never interleaves with a run: the run either finished before, or
    /// starts after and reads the changed state.
    /// </summary>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.LeaseHeld"/>: a run or another change holds the lease (the error names the holder); or the change is refused.</exception>
    internal async Task<CatalogEntry> ChangeStateAsync(string backupId, Func<CatalogEntry, LifecycleOutcome> change, CancellationToken cancellationToken)
    {
        var lease = await AcquireLeaseAsync(backupId, cancellationToken).ConfigureAwait(false);
        await using (lease.ConfigureAwait(false))
        {
            var entry = await LoadAsync(backupId, cancellationToken).ConfigureAwait(false);
            var outcome = change(entry);
            if (!outcome.IsAccepted)
            {
                throw outcome.Refusal.ToException();
            }

            return outcome.State != entry.State || outcome.Effects.Count > 0
                ? await CommitUnderLeaseAsync(entry, outcome.State, outcome.Effects, lease, cancellationToken).ConfigureAwait(false)
                : entry;
        }
    }

    /// <summary>
    /// Stores a state and carries out its effects, the backup's lease held. A change that deletes all data
    /// (reset, release) stores the new state first: from then on no read shows the data and no run commits
    /// (runs are fenced by the catalog version), so a crash before the deletions finish leaves points that no
    /// state keeps, which prune deletes. Enabling a <c>Disabled</c> backup first deletes any such leftovers,
    /// so that a new enablement never shows points of an old one.
    /// </summary>
    internal async Task<CatalogEntry> CommitUnderLeaseAsync(CatalogEntry entry, BackupState state, IReadOnlyList<LifecycleEffect> effects, StoreLease lease, CancellationToken cancellationToken)
    {
        var id = entry.State.Id;
        if (effects.Contains(LifecycleEffect.DeleteAllData))
        {
            await lease.EnsureHeldAsync(cancellationToken).ConfigureAwait(false);
            var saved = Observe(await _repository.SaveStateAsync(entry with { State = state }, cancellationToken).ConfigureAwait(false));

            // The change has happened once its state is stored: deleting the points is clean-up. Should it stop
            // (the lease lapsed, the store failed), the change is still reported done, and what is left is
            // deleted by prune or by the next enable.
            try
            {
                await DeleteAllPointsUnderLeaseAsync(id, lease, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.LeaseLost || e.Code == BackupErrorCode.StoreUnavailable)
            {
                Log.PointsLeftBehind(_logger, id, BackupTelemetry.ErrorType(e));
            }

            return saved;
        }

        if (entry.State.Status == BackupStatus.Disabled && state.Status == BackupStatus.Enabled)
        {
            await DeleteAllPointsUnderLeaseAsync(id, lease, cancellationToken).ConfigureAwait(false);
        }

        await lease.EnsureHeldAsync(cancellationToken).ConfigureAwait(false);
        return Observe(await _repository.SaveStateAsync(entry with { State = state }, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>
    /// The opening of an account's operation on its backup: the backup, owned by the caller (or refused alike when
    /// missing or another's), advanced to now in memory (nothing is stored), and refused unless
    /// <paramref name="operation"/> is allowed on it now, on <paramref name="date"/> when one is given.
    /// </summary>
    internal async Task<CatalogEntry> LoadOwnedForAsync(string callerAccount, string backupId, BackupOperation operation, DateOnly? date, CancellationToken cancellationToken)
    {
        var entry = AsOfNow(await LoadOwnedAsync(callerAccount, backupId, cancellationToken).ConfigureAwait(false));
        var now = Clock.GetUtcNow();
        var refusal = date is { } day ? BackupLifecycle.CheckDate(entry.State, day, operation, now) : BackupLifecycle.Check(entry.State, operation, now);
        return refusal is null ? entry : throw refusal.ToException();
    }

    internal async Task DeleteAllPointsUnderLeaseAsync(string backupId, StoreLease lease, CancellationToken cancellationToken)
    {
        await DeletePointsUnderLeaseAsync(backupId, await _repository.ListPointsAsync(backupId, cancellationToken).ConfigureAwait(false), lease, cancellationToken).ConfigureAwait(false);
        _cache.Remove(LastPointKind, backupId);
    }

    /// <summary>
    /// Deletes <paramref name="points"/> of a backup, checking before each that this writer still holds the backup's
    /// lease, and forgets what this client cached of them and the backup's point list. Returns how many this call deleted.
    /// </summary>
    internal async Task<int> DeletePointsUnderLeaseAsync(string backupId, IEnumerable<PointKey> points, StoreLease lease, CancellationToken cancellationToken)
    {
        var deleted = 0;
        foreach (var point in points)
        {
            await lease.EnsureHeldAsync(cancellationToken).ConfigureAwait(false);
            if (await _repository.DeletePointAsync(point, cancellationToken).ConfigureAwait(false))
            {
                deleted++;
            }

            _cache.Remove(ManifestKind, point);
        }

        // The list is read again at the next look; what is cached of the points that remain stays valid.
        _cache.Remove(PointListKind, backupId);
        return deleted;
    }

    internal Task<StoreLease> AcquireLeaseAsync(string backupId, CancellationToken cancellationToken) =>
        _repository.Store.AcquireLeaseAsync($"backups/{backupId}", _options.LeaseHolder, _options.LeaseDuration, cancellationToken);

    internal static string NewId(string prefix) => $"{prefix}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}";

    internal BackupDetails ToDetails(CatalogEntry entry, RecoveryPoint? latest)
    {
        var state = entry.State;
        var now = Clock.GetUtcNow();
        return new BackupDetails
        {
            Id = state.Id,
            Kind = state.Kind,
            Status = state.Status,
            OwnerAccount = entry.OwnerAccount,
            Alias = state.Alias,
            Instance = state.Instance,
            Region = state.Region,
            TimeZone = state.TimeZone,
            ViewableDays = state.ViewableDays,
            QueryableRange = state.Status is BackupStatus.Enabled ? state.WindowAt(now) : null,
            CreatedAt = state.CreatedAt,
            EnabledAt = state.EnabledAt,
            ExpiresAt = state.ExpiresAt,
            ReleaseDueAt = state.ReleaseDueAt,
            Purchase = state.Purchase,
            LatestPoint = latest,
        };
    }

    internal static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    internal async Task<InstanceDescription> GetInstanceAsync(string instanceId, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        return await _instances.GetInstanceAsync(instanceId, cancellationToken).ConfigureAwait(false)
            ?? throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, $"instance '{instanceId}'",
                $"There is no instance '{instanceId}'.",
                "Check the instance ID."));
    }

    /// <summary>Decoded catalog entries in the client's cache (kind <c>catalog_entry</c>): metadata only, as every entry of the cache.</summary>
    private sealed class CatalogEntries(BoundedCache cache) : ICatalogEntryCache
    {
        private const string Kind = "catalog_entry";

        public CatalogEntry? TryGet(string backupId, long version) =>
            cache.TryGet(Kind, (backupId, version), out CatalogEntry entry) ? entry : null;

        // A state is a few IDs, names and instants: 1 KiB covers it with room.
        public void Set(CatalogEntry entry) => cache.Set(Kind, (entry.State.Id, entry.Version), entry, 1024);
    }
}
