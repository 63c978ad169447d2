using System.Collections.Immutable;
using System.Globalization;

namespace KmsBackup;

/// <summary>What a restore will do with one item.</summary>
public enum RestoreItemOutcome
{
    /// <summary>The item will be created in the target.</summary>
    Restore = 1,

    /// <summary>This restore operation created the item in the target already (a rerun): it is left as it is (rule R7).</summary>
    AlreadyRestored = 2,

    /// <summary>The item cannot be restored: see <see cref="RestorePlanItem.Refusals"/>.</summary>
    Refused = 3,
}

/// <summary>One item of a restore plan: what it is, what will happen to it, and why not if it cannot be restored.</summary>
/// <remarks>Metadata only: a plan never holds key material or secret values, so it is safe to log or show.</remarks>
public sealed record RestorePlanItem
{
    /// <summary>Key or secret.</summary>
    public required ItemType Type { get; init; }

    /// <summary>The item's name.</summary>
    public required string Name { get; init; }

    /// <summary>The key's ID (kept by the restore, rule R9); <see langword="null"/> for a secret.</summary>
    public string? KeyId { get; init; }

    /// <summary>The ID of the key that encrypts a secret; <see langword="null"/> for a key.</summary>
    public string? EncryptionKeyId { get; init; }

    /// <summary>The account that created the item (the owner, or a consumer of a shared instance).</summary>
    public required string CreatorAccount { get; init; }

    /// <summary>How many versions the item has; all are restored.</summary>
    public required int VersionCount { get; init; }

    /// <summary>What the restore will do with the item.</summary>
    public required RestoreItemOutcome Outcome { get; init; }

    /// <summary>Why the item cannot be restored, each with its error code and remedy; empty unless <see cref="Outcome"/> is <see cref="RestoreItemOutcome.Refused"/>.</summary>
    public IReadOnlyList<Refusal> Refusals { get; init; } = [];

    /// <summary>The item in one line, e.g. <c>key 'orders' (key-1): Restore</c>.</summary>
    public override string ToString() => $"{(Type == ItemType.Key ? "key" : "secret")} '{Name}'{(KeyId is null ? "" : $" ({KeyId})")}: {Outcome}";
}

/// <summary>
/// What a restore would do, worked out without changing anything (rule R6): every item with its
/// outcome, in the order it would be created (keys before the secrets they encrypt, rule R7), and
/// every violated precondition (rules R1–R5, R8) with its error code and remedy.
/// </summary>
/// <remarks>Metadata only: safe to log or show. Execute it only when <see cref="CanExecute"/>.</remarks>
public sealed record RestorePlan
{
    /// <summary>The restore operation's ID: creating an item twice under it is a no-op, and a rollback removes only what it created.</summary>
    public required string OperationId { get; init; }

    /// <summary>The backup the data comes from.</summary>
    public required string BackupId { get; init; }

    /// <summary>The date of the data, in the backup's time zone.</summary>
    public required DateOnly BackupDate { get; init; }

    /// <summary>When the recovery point that holds the data was taken; <see langword="null"/> when no point was found.</summary>
    public DateTimeOffset? PointTakenAt { get; init; }

    /// <summary>The instance the data was backed up from.</summary>
    public string? SourceInstanceId { get; init; }

    /// <summary>The target instance.</summary>
    public required string TargetInstanceId { get; init; }

    /// <summary>The target's region; <see langword="null"/> when the target was not found.</summary>
    public string? TargetRegion { get; init; }

    /// <summary>The items, in the order a restore creates them: keys, then secrets, each by name.</summary>
    public required ImmutableArray<RestorePlanItem> Items { get; init; }

    /// <summary>Violations that concern the whole batch (owner, target, window, quota), each with its error code and remedy.</summary>
    public required ImmutableArray<Refusal> BatchRefusals { get; init; }

    /// <summary>Every violation: the batch's first, then each item's in item order.</summary>
    public IEnumerable<Refusal> AllRefusals => BatchRefusals.Concat(Items.SelectMany(i => i.Refusals));

    /// <summary>Whether the plan can be executed: no violation at all (a batch is all-or-nothing).</summary>
    public bool CanExecute => BatchRefusals.IsEmpty && Items.All(i => i.Outcome != RestoreItemOutcome.Refused);

    /// <summary>How many keys the restore would create.</summary>
    public int KeysToRestore => Items.Count(i => i.Type == ItemType.Key && i.Outcome == RestoreItemOutcome.Restore);

    /// <summary>How many secrets the restore would create.</summary>
    public int SecretsToRestore => Items.Count(i => i.Type == ItemType.Secret && i.Outcome == RestoreItemOutcome.Restore);

    /// <summary>How many items this operation restored already.</summary>
    public int AlreadyRestored => Items.Count(i => i.Outcome == RestoreItemOutcome.AlreadyRestored);

    /// <summary>The plan in one line.</summary>
    public override string ToString() =>
        $"restore {OperationId}: backup '{BackupId}' {BackupDate.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)} -> instance '{TargetInstanceId}': " +
        $"{KeysToRestore} keys and {SecretsToRestore} secrets to restore, {AlreadyRestored} already restored, " +
        $"{AllRefusals.Count()} violations";
}
