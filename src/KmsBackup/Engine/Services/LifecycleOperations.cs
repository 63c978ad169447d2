using KmsBackup.Repository;
using System.Runtime.CompilerServices;

namespace KmsBackup;

/// <summary>The lifecycle of an account's backups (rules K, L): create, purchase, enable, extend, reset, renew, and the instance events that create and release automatic backups. Each change is decided by the domain core and stored under the backup's lease.</summary>
internal sealed class LifecycleOperations
{
    private readonly BackupCatalog _catalog;
    private readonly BackupRunner _runner;
    private readonly HardwareOperations _hardware;
    private readonly AutomaticBackups _automatic;
    private readonly BackupRepository _repository;
    private readonly BackupClientOptions _options;

    internal LifecycleOperations(BackupCatalog catalog, BackupRunner runner, HardwareOperations hardware, AutomaticBackups automatic)
    {
        _catalog = catalog;
        _automatic = automatic;
        _runner = runner;
        _hardware = hardware;
        _repository = catalog.Repository;
        _options = catalog.Options;
    }

    internal async Task<BackupDetails> CreateDefaultBackupAsync(string callerAccount, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(callerAccount);
        var entry = await _repository.SaveStateAsync(
            new CatalogEntry(BackupLifecycle.CreateDefault(BackupCatalog.NewId("bkd"), _options.TimeZone, _catalog.Clock.GetUtcNow()), callerAccount), cancellationToken).ConfigureAwait(false);
        return _catalog.ToDetails(entry, null);
    }

    internal async Task<IReadOnlyList<BackupDetails>> PurchaseBackupsAsync(string callerAccount, PurchaseOrder order, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(callerAccount);
        ArgumentNullException.ThrowIfNull(order);
        var backups = BackupLifecycle.Purchase(BackupCatalog.NewId("bkp"), order, _options.TimeZone, _catalog.Clock.GetUtcNow()).GetBackupsOrThrow();
        var details = new List<BackupDetails>(backups.Count);
        foreach (var backup in backups)
        {
            var entry = await _repository.SaveStateAsync(new CatalogEntry(backup, callerAccount), cancellationToken).ConfigureAwait(false);
            details.Add(_catalog.ToDetails(entry, null));
        }

        return details;
    }

    internal async Task<BackupDetails?> OnInstanceEnabledAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        try
        {
            return await CreateAutomaticBackupAsync(instanceId, cancellationToken).ConfigureAwait(false);
        }
        catch (BackupException e) when (AutomaticBackups.IsNoAutomaticBackup(e))
        {
            _automatic.LogNoAutomaticBackup(instanceId, e);
            return null;
        }
    }

    internal async Task<BackupDetails> CreateAutomaticBackupAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        var instance = await _catalog.GetInstanceAsync(instanceId, cancellationToken).ConfigureAwait(false);
        var listing = await _repository.LoadStatesAsync(cancellationToken).ConfigureAwait(false);
        var entry = await _automatic.CreateEntryAsync(instance, listing, cancellationToken).ConfigureAwait(false);
        var run = await _runner.RunFirstFullAsync(entry.State.Id, cancellationToken).ConfigureAwait(false);
        return _catalog.ToDetails(entry, run?.Point);
    }

    internal async Task<BackupDetails> EnableBackupAsync(
        string callerAccount, string backupId, string instanceId, InstanceKind instanceKind, string? backupAlias = null, CancellationToken cancellationToken = default)
    {
        var entry = await _catalog.LoadOwnedAsync(callerAccount, backupId, cancellationToken).ConfigureAwait(false);
        var instance = await _catalog.GetInstanceAsync(instanceId, cancellationToken).ConfigureAwait(false);
        if (!string.Equals(instance.OwnerAccount, callerAccount, StringComparison.Ordinal))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.AccessDenied, $"instance '{instanceId}'",
                $"The account '{callerAccount}' does not own the instance '{instanceId}'; only the resource owner may back it up.",
                "Act as the account that owns the instance."));
        }

        var info = instance.ReleasedAt is null ? instance.Info : instance.Info with { IsEnabled = false };
        var updated = await ApplyAsync(entry, new EnableBackup(info, instanceKind, backupAlias), cancellationToken).ConfigureAwait(false);
        var run = await _runner.RunFirstFullAsync(backupId, cancellationToken).ConfigureAwait(false);
        return _catalog.ToDetails(updated, run?.Point);
    }

    internal async Task<BackupDetails> ExtendViewableDaysAsync(string callerAccount, string backupId, int viewableDays, CancellationToken cancellationToken = default)
    {
        var entry = await _catalog.LoadOwnedAsync(callerAccount, backupId, cancellationToken).ConfigureAwait(false);
        var updated = await ApplyAsync(entry, new ExtendViewableDays(viewableDays), cancellationToken).ConfigureAwait(false);
        return _catalog.ToDetails(updated, await _catalog.LatestPointAsync(updated.State, cancellationToken).ConfigureAwait(false));
    }

    internal async Task<BackupDetails> ResetBackupAsync(string callerAccount, string backupId, CancellationToken cancellationToken = default)
    {
        var entry = await _catalog.LoadOwnedAsync(callerAccount, backupId, cancellationToken).ConfigureAwait(false);
        var updated = await ApplyAsync(entry, new ResetBackup(), cancellationToken).ConfigureAwait(false);
        return _catalog.ToDetails(updated, null);
    }

    internal async Task<BackupDetails> DeleteBackupAsync(string callerAccount, string backupId, CancellationToken cancellationToken = default)
    {
        var entry = await _catalog.LoadOwnedAsync(callerAccount, backupId, cancellationToken).ConfigureAwait(false);
        var updated = await ApplyAsync(entry, new DeleteBackup(), cancellationToken).ConfigureAwait(false);
        return _catalog.ToDetails(updated, null);
    }

    internal async Task<BackupDetails> RenewBackupAsync(string callerAccount, string backupId, PurchaseTerm term, CancellationToken cancellationToken = default)
    {
        var entry = await _catalog.LoadOwnedAsync(callerAccount, backupId, cancellationToken).ConfigureAwait(false);
        var updated = await ApplyAsync(entry, new RenewBackup(term), cancellationToken).ConfigureAwait(false);
        return _catalog.ToDetails(updated, await _catalog.LatestPointAsync(updated.State, cancellationToken).ConfigureAwait(false));
    }

    internal async Task OnInstanceReleasedAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        foreach (var entry in (await _repository.LoadStatesAsync(cancellationToken).ConfigureAwait(false)).States)
        {
            if (string.Equals(entry.State.Instance?.Id, instanceId, StringComparison.Ordinal))
            {
                await ApplyAsync(entry, new InstanceReleased(instanceId), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    internal async Task<BackupDetails> GetBackupAsync(string callerAccount, string backupId, CancellationToken cancellationToken = default)
    {
        var entry = _catalog.AsOfNow(await _catalog.LoadOwnedAsync(callerAccount, backupId, cancellationToken).ConfigureAwait(false));
        return await _hardware.WithHsmAsync(_catalog.ToDetails(entry, await _catalog.LatestPointAsync(entry.State, cancellationToken).ConfigureAwait(false)), cancellationToken).ConfigureAwait(false);
    }

    internal async IAsyncEnumerable<BackupDetails> ListBackupsAsync(string callerAccount, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(callerAccount);
        var listing = await _repository.LoadStatesAsync(cancellationToken).ConfigureAwait(false);
        var damaged = listing.Damaged
            .Where(d => d.Previous is { } previous && string.Equals(previous.OwnerAccount, callerAccount, StringComparison.Ordinal))
            .Select(d => (Entry: d.Previous!, Damage: (Refusal?)d.Error.Refusal));
        var intact = listing.States.Select(_catalog.Observe)
            .Where(e => string.Equals(e.OwnerAccount, callerAccount, StringComparison.Ordinal))
            .Select(e => (Entry: e, Damage: (Refusal?)null));
        foreach (var (entry, damage) in intact.Concat(damaged).OrderBy(e => e.Entry.State.Id, StringComparer.Ordinal))
        {
            var latest = damage is null ? await _catalog.LatestPointAsync(_catalog.AsOfNow(entry).State, cancellationToken).ConfigureAwait(false) : null;
            var details = await _hardware.WithHsmAsync(_catalog.ToDetails(_catalog.AsOfNow(entry), latest), cancellationToken).ConfigureAwait(false);
            yield return details with { Damage = damage };
        }
    }

    /// <summary>Applies a lifecycle command under the backup's lease, to its state as read under the lease (see <see cref="BackupCatalog.ChangeStateAsync"/>).</summary>
    internal Task<CatalogEntry> ApplyAsync(CatalogEntry entry, BackupCommand command, CancellationToken cancellationToken) =>
        _catalog.ChangeStateAsync(entry.State.Id, current => BackupLifecycle.Apply(current.State, command, _catalog.Clock.GetUtcNow()), cancellationToken);
}
