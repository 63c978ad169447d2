using System.Runtime.CompilerServices;
using KmsBackup.Repository;

namespace KmsBackup;

public partial class BackupClient
{
    /// <summary>Creates a default backup for <paramref name="callerAccount"/>: free, 7 viewable days, unbound until enabled (rules K1, K2, L3).</summary>
    /// <param name="callerAccount">The account that will own the backup.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual async Task<BackupDetails> CreateDefaultBackupAsync(string callerAccount, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(callerAccount);
        var entry = await _repository.SaveStateAsync(
            new CatalogEntry(BackupLifecycle.CreateDefault(NewId("bkd"), _options.TimeZone, Clock.GetUtcNow()), callerAccount), cancellationToken).ConfigureAwait(false);
        return ToDetails(entry, null);
    }

    /// <summary>Purchases backups (rules K3, K6): <see cref="PurchaseOrder.Quantity"/> unbound backups in the order's region.</summary>
    /// <param name="callerAccount">The account that buys and will own them.</param>
    /// <param name="order">What is bought.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="BackupException">The order is invalid (viewable days, term, quantity, region).</exception>
    public virtual async Task<IReadOnlyList<BackupDetails>> PurchaseBackupsAsync(string callerAccount, PurchaseOrder order, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(callerAccount);
        ArgumentNullException.ThrowIfNull(order);
        var backups = BackupLifecycle.Purchase(NewId("bkp"), order, _options.TimeZone, Clock.GetUtcNow()).GetBackupsOrThrow();
        var details = new List<BackupDetails>(backups.Count);
        foreach (var backup in backups)
        {
            var entry = await _repository.SaveStateAsync(new CatalogEntry(backup, callerAccount), cancellationToken).ConfigureAwait(false);
            details.Add(ToDetails(entry, null));
        }

        return details;
    }

    /// <summary>
    /// Tells the client that an instance was enabled. If the instance is eligible (rule K4) and has no
    /// automatic backup yet (K5), creates its automatic backup and runs the first full backup at once (S1),
    /// unless another writer (a scheduler that saw the new backup) holds its lease and runs it.
    /// </summary>
    /// <param name="instanceId">The instance that was enabled.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The automatic backup, or <see langword="null"/> when the instance is not eligible or already has one.</returns>
    public virtual async Task<BackupDetails?> OnInstanceEnabledAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        var instance = await GetInstanceAsync(instanceId, cancellationToken).ConfigureAwait(false);
        var existing = (await _repository.LoadStatesAsync(cancellationToken).ConfigureAwait(false)).States.Select(e => e.State);
        var outcome = BackupLifecycle.CreateAutomatic(NewId("bka"), instance.Info, existing, _options.AutomaticBackupCutoffs, _options.TimeZone, Clock.GetUtcNow());
        if (!outcome.IsAccepted)
        {
            return null;
        }

        var entry = await _repository.SaveStateAsync(new CatalogEntry(outcome.Backups[0], instance.OwnerAccount), cancellationToken).ConfigureAwait(false);
        var run = await RunFirstFullAsync(entry.State.Id, cancellationToken).ConfigureAwait(false);
        return ToDetails(entry, run?.Point);
    }

    /// <summary>
    /// Binds a default or purchased backup to an enabled instance the caller owns, and runs its first full backup at once
    /// (rules K7, S1), unless another writer (a scheduler that saw the backup enabled) holds its lease and runs it.
    /// </summary>
    /// <param name="callerAccount">The owner of the backup and of the instance.</param>
    /// <param name="backupId">The backup.</param>
    /// <param name="instanceId">The instance to back up.</param>
    /// <param name="instanceKind">The kind of instance the backup is chosen for (software or hardware); the instance must be of this kind.</param>
    /// <param name="backupAlias">A custom alias, or <see langword="null"/> for the backup ID.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="BackupException">The backup or instance is missing, not the caller's, or the lifecycle refuses (see <see cref="BackupLifecycle.Apply"/>).</exception>
    public virtual async Task<BackupDetails> EnableBackupAsync(
        string callerAccount, string backupId, string instanceId, InstanceKind instanceKind, string? backupAlias = null, CancellationToken cancellationToken = default)
    {
        var entry = await LoadOwnedAsync(callerAccount, backupId, cancellationToken).ConfigureAwait(false);
        var instance = await GetInstanceAsync(instanceId, cancellationToken).ConfigureAwait(false);
        if (!string.Equals(instance.OwnerAccount, callerAccount, StringComparison.Ordinal))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.AccessDenied, $"instance '{instanceId}'",
                $"The account '{callerAccount}' does not own the instance '{instanceId}'; only the resource owner may back it up.",
                "Act as the account that owns the instance."));
        }

        var info = instance.ReleasedAt is null ? instance.Info : instance.Info with { IsEnabled = false };
        var updated = await ApplyAsync(entry, new EnableBackup(info, instanceKind, backupAlias), cancellationToken).ConfigureAwait(false);
        var run = await RunFirstFullAsync(backupId, cancellationToken).ConfigureAwait(false);
        return ToDetails(updated, run?.Point);
    }

    /// <summary>Extends a purchased backup's viewable days, upward only, to at most 600 (rule L6).</summary>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">The backup.</param>
    /// <param name="viewableDays">The new viewable days.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual async Task<BackupDetails> ExtendViewableDaysAsync(string callerAccount, string backupId, int viewableDays, CancellationToken cancellationToken = default)
    {
        var entry = await LoadOwnedAsync(callerAccount, backupId, cancellationToken).ConfigureAwait(false);
        var updated = await ApplyAsync(entry, new ExtendViewableDays(viewableDays), cancellationToken).ConfigureAwait(false);
        return ToDetails(updated, await LatestPointAsync(updated.State, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Resets a default or purchased backup: permanently deletes all its data and unbinds it, leaving it <c>Disabled</c> (rule L5).</summary>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">The backup.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual async Task<BackupDetails> ResetBackupAsync(string callerAccount, string backupId, CancellationToken cancellationToken = default)
    {
        var entry = await LoadOwnedAsync(callerAccount, backupId, cancellationToken).ConfigureAwait(false);
        var updated = await ApplyAsync(entry, new ResetBackup(), cancellationToken).ConfigureAwait(false);
        return ToDetails(updated, null);
    }

    /// <summary>Renews a purchased backup: extends an active one, reactivates an expired one before release (rules L4, L7).</summary>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">The backup.</param>
    /// <param name="term">The renewal duration.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual async Task<BackupDetails> RenewBackupAsync(string callerAccount, string backupId, PurchaseTerm term, CancellationToken cancellationToken = default)
    {
        var entry = await LoadOwnedAsync(callerAccount, backupId, cancellationToken).ConfigureAwait(false);
        var updated = await ApplyAsync(entry, new RenewBackup(term), cancellationToken).ConfigureAwait(false);
        return ToDetails(updated, await LatestPointAsync(updated.State, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Tells the client that an instance was released: its backups take no new data, and its automatic backup is deleted 90 days later (rules L2, W6).</summary>
    /// <param name="instanceId">The released instance.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual async Task OnInstanceReleasedAsync(string instanceId, CancellationToken cancellationToken = default)
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

    /// <summary>Gets a backup's details, with its queryable range today (rule W2).</summary>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">The backup.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public virtual async Task<BackupDetails> GetBackupAsync(string callerAccount, string backupId, CancellationToken cancellationToken = default)
    {
        var entry = AsOfNow(await LoadOwnedAsync(callerAccount, backupId, cancellationToken).ConfigureAwait(false));
        return await WithHsmAsync(ToDetails(entry, await LatestPointAsync(entry.State, cancellationToken).ConfigureAwait(false)), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Lists the caller's backups, released ones included, by ID. A backup whose latest catalog entry is
    /// damaged is listed too, with the state of its previous entry and <see cref="BackupDetails.Damage"/> set.
    /// Reads only: nothing in the store changes, whatever the clock says.
    /// </summary>
    /// <param name="callerAccount">The owner.</param>
    /// <param name="cancellationToken">Cancels the listing.</param>
    public virtual async IAsyncEnumerable<BackupDetails> ListBackupsAsync(string callerAccount, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(callerAccount);
        var listing = await _repository.LoadStatesAsync(cancellationToken).ConfigureAwait(false);
        var damaged = listing.Damaged
            .Where(d => d.Previous is { } previous && string.Equals(previous.OwnerAccount, callerAccount, StringComparison.Ordinal))
            .Select(d => (Entry: d.Previous!, Damage: (Refusal?)d.Error.Refusal));
        var intact = listing.States.Select(Observe)
            .Where(e => string.Equals(e.OwnerAccount, callerAccount, StringComparison.Ordinal))
            .Select(e => (Entry: e, Damage: (Refusal?)null));
        foreach (var (entry, damage) in intact.Concat(damaged).OrderBy(e => e.Entry.State.Id, StringComparer.Ordinal))
        {
            var latest = damage is null ? await LatestPointAsync(AsOfNow(entry).State, cancellationToken).ConfigureAwait(false) : null;
            var details = await WithHsmAsync(ToDetails(AsOfNow(entry), latest), cancellationToken).ConfigureAwait(false);
            yield return details with { Damage = damage };
        }
    }

    /// <summary>Applies a lifecycle command under the backup's lease, to its state as read under the lease (see <see cref="ChangeStateAsync"/>).</summary>
    private Task<CatalogEntry> ApplyAsync(CatalogEntry entry, BackupCommand command, CancellationToken cancellationToken) =>
        ChangeStateAsync(entry.State.Id, current => BackupLifecycle.Apply(current.State, command, Clock.GetUtcNow()), cancellationToken);

    private async Task<InstanceDescription> GetInstanceAsync(string instanceId, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        return await _instances.GetInstanceAsync(instanceId, cancellationToken).ConfigureAwait(false)
            ?? throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, $"instance '{instanceId}'",
                $"There is no instance '{instanceId}'.",
                "Check the instance ID."));
    }
}
