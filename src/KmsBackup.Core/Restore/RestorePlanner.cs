using System.Collections.Immutable;

namespace KmsBackup.Domain;

/// <summary>
/// Everything a restore plan is decided on: who asks, the backup and the date of its data, the items
/// chosen from it, and what the target instance and its region look like now. The engine gathers
/// these facts; <see cref="RestorePlanner.Plan"/> decides.
/// </summary>
/// <remarks>The records hold key material and secret ciphertexts; the plan made from them holds neither.</remarks>
internal sealed record RestorePlanInput
{
    /// <summary>The restore operation's ID.</summary>
    public required string OperationId { get; init; }

    /// <summary>The account asking for the restore.</summary>
    public required string CallerAccount { get; init; }

    /// <summary>The account that owns the backup (the resource owner).</summary>
    public required string BackupOwnerAccount { get; init; }

    /// <summary>The backup's state.</summary>
    public required BackupState Backup { get; init; }

    /// <summary>The date of the data, in the backup's time zone.</summary>
    public required DateOnly BackupDate { get; init; }

    /// <summary>The current instant.</summary>
    public required DateTimeOffset Now { get; init; }

    /// <summary>When the recovery point that holds the data was taken; <see langword="null"/> when there is none.</summary>
    public DateTimeOffset? PointTakenAt { get; init; }

    /// <summary>The instance the data was backed up from; <see langword="null"/> when no point holds data for the date.</summary>
    public SnapshotSource? Source { get; init; }

    /// <summary>The keys chosen for the restore, as backed up.</summary>
    public IReadOnlyList<KeyRecord> Keys { get; init; } = [];

    /// <summary>The secrets chosen for the restore, as backed up.</summary>
    public IReadOnlyList<SecretRecord> Secrets { get; init; } = [];

    /// <summary>Names of keys asked for that the chosen data does not hold.</summary>
    public IReadOnlyList<string> MissingKeyNames { get; init; } = [];

    /// <summary>Names of secrets asked for that the chosen data does not hold.</summary>
    public IReadOnlyList<string> MissingSecretNames { get; init; } = [];

    /// <summary>The target instance's ID.</summary>
    public required string TargetInstanceId { get; init; }

    /// <summary>
    /// The target instance as its service describes it now; <see langword="null"/> when there is no such instance.
    /// An instance of another account than the backup owner's is planned as if it were <see langword="null"/>: the
    /// plan uses none of its facts, nor <see cref="NamesInUse"/>, <see cref="TargetKeyIds"/> or
    /// <see cref="KeyIdsWithMaterial"/>, so that it tells the caller nothing about another account.
    /// </summary>
    public InstanceDescription? Target { get; init; }

    /// <summary>The chosen items' names that are in use anywhere in the target's region (keys and secrets).</summary>
    public IReadOnlyList<NameInUse> NamesInUse { get; init; } = [];

    /// <summary>Which key IDs the target holds, of the chosen keys' IDs and the chosen secrets' encrypting key IDs.</summary>
    public IReadOnlySet<string> TargetKeyIds { get; init; } = ImmutableHashSet<string>.Empty;

    /// <summary>
    /// The names of the chosen secrets' encrypting keys, by key ID, as the backup's data holds them (restore requests
    /// take key names); an ID missing here is a key that data does not hold.
    /// </summary>
    public IReadOnlyDictionary<string, string> EncryptionKeyNames { get; init; } = ImmutableDictionary<string, string>.Empty;

    /// <summary>
    /// For hardware data: the HSM cluster the target instance is connected to, whose key material
    /// <see cref="KeyIdsWithMaterial"/> lists; <see langword="null"/> when not checked.
    /// </summary>
    public string? TargetClusterId { get; init; }

    /// <summary>
    /// For hardware data: which of the chosen keys' IDs have their material in the target's HSM cluster
    /// (rule H7); <see langword="null"/> when not checked (software data, or no HSM gateway configured).
    /// </summary>
    public IReadOnlySet<string>? KeyIdsWithMaterial { get; init; }
}

/// <summary>
/// Decides a restore (rule R6): a pure function from the facts to a <see cref="RestorePlan"/> that
/// lists every item with its outcome and every violated precondition with its code and remedy.
/// </summary>
internal static class RestorePlanner
{
    private const string QuotaRemedy =
        "Delete unused items from the target instance to free up quota, or upgrade the target instance to a higher specification; then retry the restore.";

    private const string ForeignConflictRemedy =
        "The name is taken in this region by an item of another account, which only that account can rename or delete: restore into an instance in another region, or leave the item out of this restore.";

    private const string ConflictRemedy =
        "Delete the conflicting item first (rename it before deleting it to keep it), or restore to another target instance (in another region, for instance).";

    /// <summary>Plans a restore. Changes nothing; the same facts always give the same plan.</summary>
    /// <param name="input">The facts.</param>
    /// <returns>The plan; <see cref="RestorePlan.CanExecute"/> says whether it may be carried out.</returns>
    /// <remarks>
    /// Checks, in the words of DESIGN.md: R2 only the resource owner restores, and consumer-created items
    /// only to their original shared instance; R1 the target is an enabled instance of the owner's
    /// account, in any region, of the data's kind; R3 hardware data only to a new hardware instance;
    /// R5 the date is in the window of a backup that has not expired, and not before it was enabled;
    /// R4 quota for the whole batch, no name in use in the target's region, each secret's encrypting key
    /// in the target or in the batch; R8 each conflict named with the instance that holds it (when that instance is of the
    /// backup owner's account; see <see cref="NameInUse.OwnerAccount"/>); H7, for
    /// hardware data, each key's material in the target's HSM cluster. Items a rerun of the same operation
    /// created already are <see cref="RestoreItemOutcome.AlreadyRestored"/> (R7).
    /// <para>A target the caller cannot use, because it does not exist or because it belongs to another account,
    /// gets one refusal, <see cref="BackupErrorCode.NotFound"/>, with the same item, message and remedy in both
    /// cases; nothing else about it is checked or reported (not its region, kind, state, quota, names or keys),
    /// so that a plan never reveals another account's names or figures. A caller who does not own the backup
    /// gets the <see cref="BackupErrorCode.AccessDenied"/> refusal and nothing about the target either.</para>
    /// </remarks>
    public static RestorePlan Plan(RestorePlanInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentException.ThrowIfNullOrWhiteSpace(input.OperationId);
        ArgumentException.ThrowIfNullOrWhiteSpace(input.TargetInstanceId);
        ArgumentNullException.ThrowIfNull(input.Backup);

        var backupId = input.Backup.Id;
        var batch = new List<Refusal>();
        if (!string.Equals(input.CallerAccount, input.BackupOwnerAccount, StringComparison.Ordinal))
        {
            batch.Add(new Refusal(BackupErrorCode.AccessDenied, $"backup '{backupId}'",
                $"The account '{input.CallerAccount}' is not the owner of backup '{backupId}'; only the resource owner may restore.",
                "Act as the account that owns the backup."));
        }

        if (BackupLifecycle.CheckDate(input.Backup, input.BackupDate, BackupOperation.Restore, input.Now) is { } dateRefusal)
        {
            batch.Add(dateRefusal);
        }
        else if (input.Source is null)
        {
            batch.Add(new Refusal(BackupErrorCode.NotFound, $"backup '{backupId}' date {Iso(input.BackupDate)}",
                $"The backup '{backupId}' holds no recovery point for {Iso(input.BackupDate)}.",
                "Choose a date on which a backup ran; list the recovery points of the date to see what it holds."));
        }

        foreach (var name in input.MissingKeyNames)
        {
            batch.Add(Missing(ItemType.Key, name, backupId, input.BackupDate));
        }

        foreach (var name in input.MissingSecretNames)
        {
            batch.Add(Missing(ItemType.Secret, name, backupId, input.BackupDate));
        }

        // Facts about a target the caller may not restore into are never used: the plan for another account's
        // instance must be the plan for a missing one, or it would tell one tenant about another.
        var callerOwnsBackup = string.Equals(input.CallerAccount, input.BackupOwnerAccount, StringComparison.Ordinal);
        var target = callerOwnsBackup && input.Target is { } described &&
            string.Equals(described.OwnerAccount, input.BackupOwnerAccount, StringComparison.Ordinal) ? described : null;
        if (callerOwnsBackup)
        {
            CheckTarget(input, target, batch);
        }

        var uses = (target is null ? [] : input.NamesInUse).ToLookup(n => (n.Type, n.Name));
        var targetKeyIds = target is null ? ImmutableHashSet<string>.Empty : input.TargetKeyIds;
        var keyIdsWithMaterial = target is null ? null : input.KeyIdsWithMaterial;
        var items = ImmutableArray.CreateBuilder<RestorePlanItem>(input.Keys.Count + input.Secrets.Count);
        var batchKeyIds = new HashSet<string>(input.Keys.Select(k => k.Id), StringComparer.Ordinal);
        foreach (var key in input.Keys.OrderBy(k => k.Name, ItemNameComparer.Instance))
        {
            var refusals = new List<Refusal>();
            var already = AlreadyRestored(uses[(ItemType.Key, key.Name)], input);
            if (!already)
            {
                CheckCreator(input, ItemType.Key, key.Name, key.CreatorAccount, refusals);
                CheckNames(input, ItemType.Key, key.Name, uses[(ItemType.Key, key.Name)], refusals);
                if (keyIdsWithMaterial is { } present && input.TargetClusterId is { } cluster)
                {
                    refusals.AddRange(HardwareRules.CheckKeyMaterial(cluster, [(key.Name, key.Id)], present));
                }

                // The same key already in the target conflicts by name and by ID: one refusal says it.
                var nameTakenInTarget = uses[(ItemType.Key, key.Name)].Any(u => string.Equals(u.InstanceId, input.TargetInstanceId, StringComparison.Ordinal));
                if (targetKeyIds.Contains(key.Id) && !nameTakenInTarget)
                {
                    refusals.Add(new Refusal(BackupErrorCode.NameConflict, $"key '{key.Name}'",
                        $"The target instance '{input.TargetInstanceId}' already holds a key with the ID '{key.Id}' of the key '{key.Name}'.",
                        "The key is in the target already: leave it out of the restore (its secrets can still be restored), or delete it there first."));
                }
            }

            items.Add(new RestorePlanItem
            {
                Type = ItemType.Key,
                Name = key.Name,
                KeyId = key.Id,
                CreatorAccount = key.CreatorAccount,
                VersionCount = key.Versions.Length,
                Outcome = OutcomeOf(already, refusals),
                Refusals = refusals,
            });
        }

        foreach (var secret in input.Secrets.OrderBy(s => s.Name, ItemNameComparer.Instance))
        {
            var refusals = new List<Refusal>();
            var already = AlreadyRestored(uses[(ItemType.Secret, secret.Name)], input);
            if (!already)
            {
                CheckCreator(input, ItemType.Secret, secret.Name, secret.CreatorAccount, refusals);
                CheckNames(input, ItemType.Secret, secret.Name, uses[(ItemType.Secret, secret.Name)], refusals);
                if (target is not null && !targetKeyIds.Contains(secret.EncryptionKeyId) && !batchKeyIds.Contains(secret.EncryptionKeyId))
                {
                    refusals.Add(input.EncryptionKeyNames.TryGetValue(secret.EncryptionKeyId, out var keyName)
                        ? new Refusal(BackupErrorCode.EncryptionKeyMissing, $"secret '{secret.Name}'",
                            $"The secret '{secret.Name}' is encrypted under the key '{keyName}' (ID '{secret.EncryptionKeyId}'), which is neither in the target instance '{input.TargetInstanceId}' nor restored earlier in this batch.",
                            $"Restore the key '{keyName}' (ID '{secret.EncryptionKeyId}') first (from the fully backed-up keys of the same date), or in the same batch as the secret; then restore the secret.")
                        : new Refusal(BackupErrorCode.EncryptionKeyMissing, $"secret '{secret.Name}'",
                            $"The secret '{secret.Name}' is encrypted under the key with the ID '{secret.EncryptionKeyId}', which is neither in the target instance '{input.TargetInstanceId}' nor restored earlier in this batch, and which this backup's data of {input.BackupDate:yyyy-MM-dd} does not hold.",
                            $"Restore the key with the ID '{secret.EncryptionKeyId}' first, from a date whose fully backed-up keys hold it, or from another backup; then restore the secret."));
                }
            }

            items.Add(new RestorePlanItem
            {
                Type = ItemType.Secret,
                Name = secret.Name,
                EncryptionKeyId = secret.EncryptionKeyId,
                CreatorAccount = secret.CreatorAccount,
                VersionCount = secret.Versions.Length,
                Outcome = OutcomeOf(already, refusals),
                Refusals = refusals,
            });
        }

        var planned = items.ToImmutable();
        if (target is not null)
        {
            CheckQuota(target, ItemType.Key, planned, batch);
            CheckQuota(target, ItemType.Secret, planned, batch);
        }

        return new RestorePlan
        {
            OperationId = input.OperationId,
            BackupId = backupId,
            BackupDate = input.BackupDate,
            PointTakenAt = input.PointTakenAt,
            SourceInstanceId = input.Source?.InstanceId,
            TargetInstanceId = input.TargetInstanceId,
            TargetRegion = target?.Info.Region,
            Items = planned,
            BatchRefusals = [.. batch],
        };
    }

    private static void CheckTarget(RestorePlanInput input, InstanceDescription? target, List<Refusal> batch)
    {
        var id = input.TargetInstanceId;
        var item = $"instance '{id}'";
        if (target is null)
        {
            // Missing and another account's read the same, to the letter: neither says which it is (DESIGN.md §4).
            batch.Add(new Refusal(BackupErrorCode.NotFound, item,
                $"There is no instance '{id}' of the account that owns backup '{input.Backup.Id}' to restore into: it does not exist, or it belongs to another account.",
                "Check the target instance ID, or create the instance first; a backup restores only into instances of its owner's account, in any region."));
            return;
        }

        if (target.ReleasedAt is not null)
        {
            batch.Add(new Refusal(BackupErrorCode.InstanceNotEnabled, item,
                $"The target instance '{id}' was released at {ViewableWindow.Iso(target.ReleasedAt.Value)}.",
                "Choose another target instance, or create a new one."));
        }
        else if (!target.Info.IsEnabled)
        {
            batch.Add(new Refusal(BackupErrorCode.InstanceNotEnabled, item,
                $"The target instance '{id}' is not enabled.", "Enable the target instance, then retry the restore."));
        }

        if (input.Source is not { } source)
        {
            return;
        }

        if (source.Kind != target.Info.Kind)
        {
            batch.Add(new Refusal(BackupErrorCode.InstanceKindMismatch, item,
                source.Kind == InstanceKind.Software
                    ? $"The backup '{input.Backup.Id}' holds a software instance's data, which restores only into software instances; '{id}' is a hardware instance."
                    : $"The backup '{input.Backup.Id}' holds a hardware instance's data (key metadata, its material in the HSM cluster), which restores only into a new hardware instance; '{id}' is a software instance.",
                source.Kind == InstanceKind.Software
                    ? "Choose a software instance of the account as the target."
                    : "Restore the HSM cluster's image into a new cluster, create a new hardware instance on it, and restore into that."));
        }
        else if (source.Kind == InstanceKind.Hardware && string.Equals(source.InstanceId, id, StringComparison.Ordinal))
        {
            batch.Add(new Refusal(BackupErrorCode.RestoreTargetNotAllowed, item,
                $"The data of hardware instance '{id}' cannot be restored into that same instance; a hardware instance's data restores only into a new instance.",
                "Restore the HSM cluster's most recent image into a new cluster, create a new hardware instance on it, and restore into that."));
        }
    }

    private static void CheckCreator(RestorePlanInput input, ItemType type, string name, string creator, List<Refusal> refusals)
    {
        // Rule R2: what a consumer of a shared instance created restores only to that original instance.
        if (input.Source is not { } source || string.Equals(creator, input.BackupOwnerAccount, StringComparison.Ordinal) ||
            string.Equals(source.InstanceId, input.TargetInstanceId, StringComparison.Ordinal))
        {
            return;
        }

        refusals.Add(new Refusal(BackupErrorCode.RestoreTargetNotAllowed, $"{Noun(type)} '{name}'",
            $"The {Noun(type)} '{name}' was created by the account '{creator}', a consumer of the shared instance '{source.InstanceId}'; it restores only into that original instance, not into '{input.TargetInstanceId}'.",
            $"Restore it into the instance '{source.InstanceId}', or leave it out of this restore."));
    }

    private static void CheckNames(RestorePlanInput input, ItemType type, string name, IEnumerable<NameInUse> uses, List<Refusal> refusals)
    {
        foreach (var use in uses)
        {
            var inTarget = string.Equals(use.InstanceId, input.TargetInstanceId, StringComparison.Ordinal);

            // Names are unique in a region across accounts, so another account's item is a real conflict; but which of
            // its instances holds it is that account's to know, not the caller's (DESIGN.md §4).
            var ours = inTarget || string.Equals(use.OwnerAccount, input.BackupOwnerAccount, StringComparison.Ordinal);
            var where = inTarget
                ? $"the target instance '{use.InstanceId}'"
                : ours ? $"the instance '{use.InstanceId}' of the same region" : "an instance of another account in the same region";

            // An item another restore operation left in the target is most often a restore that died before
            // its rollback: name the operation, so that a caller who lost its ID can finish or undo it.
            var remedy = inTarget && use.RestoredByOperation is { } other
                ? $"The {Noun(type)} was created by the restore operation '{other}': if that restore did not finish, resume it or roll it back by that ID. Otherwise: {ConflictRemedy}"
                : ours ? ConflictRemedy : ForeignConflictRemedy;
            refusals.Add(new Refusal(BackupErrorCode.NameConflict, $"{Noun(type)} '{name}'",
                $"A {Noun(type)} named '{name}' already exists in {where}; names are unique within a region.",
                remedy));
        }
    }

    private static bool AlreadyRestored(IEnumerable<NameInUse> uses, RestorePlanInput input) =>
        uses.Any(u => string.Equals(u.InstanceId, input.TargetInstanceId, StringComparison.Ordinal) &&
                      string.Equals(u.RestoredByOperation, input.OperationId, StringComparison.Ordinal));

    private static void CheckQuota(InstanceDescription target, ItemType type, ImmutableArray<RestorePlanItem> items, List<Refusal> batch)
    {
        // Rule R4 counts the whole batch: every item the batch would still create, refused or not.
        var adding = items.Count(i => i.Type == type && i.Outcome != RestoreItemOutcome.AlreadyRestored);
        var (count, quota) = type == ItemType.Key ? (target.KeyCount, target.KeyQuota) : (target.SecretCount, target.SecretQuota);
        if (adding == 0 || (long)count + adding <= quota)
        {
            return;
        }

        var room = Math.Max(0, quota - count);
        batch.Add(new Refusal(BackupErrorCode.InsufficientQuota, $"instance '{target.Info.Id}'",
            $"The target instance '{target.Info.Id}' holds {count} {Noun(type)}s of its quota of {quota}; this restore adds {adding} {Noun(type)}s, {adding - room} more than it has room for.",
            QuotaRemedy));
    }

    private static RestoreItemOutcome OutcomeOf(bool already, List<Refusal> refusals) =>
        already ? RestoreItemOutcome.AlreadyRestored : refusals.Count > 0 ? RestoreItemOutcome.Refused : RestoreItemOutcome.Restore;

    private static Refusal Missing(ItemType type, string name, string backupId, DateOnly date) =>
        new(BackupErrorCode.NotFound, $"{Noun(type)} '{name}'",
            $"The {Noun(type)} '{name}' is not in the data of backup '{backupId}' chosen for {Iso(date)}.",
            "Check the name, or choose the date and data type whose view shows the item.");

    private static string Noun(ItemType type) => type == ItemType.Key ? "key" : "secret";

    private static string Iso(DateOnly date) => ViewableWindow.Iso(date);
}
