namespace KmsBackup.Domain;

/// <summary>
/// What a backup kind is and allows, in one place (rules K1–K3 and L2–L7): its label, viewable
/// days, whether they can be extended, its cost, its deletion policy and its operations.
/// </summary>
/// <remarks>
/// <list type="table">
/// <listheader><term>kind</term><description>label · viewable days · cost · deletion · operations</description></listheader>
/// <item><term>Automatic</term><description><c>System Created</c> · 90, fixed · free · 90 days after its instance is released, never by hand · view, restore, download</description></item>
/// <item><term>Default</term><description><c>Default</c> · 7, fixed · free · valid until reset · enable, view, restore, download, reset</description></item>
/// <item><term>Purchased</term><description><c>Paid</c> · 7–600, extendable upward · paid · released 15 days after expiry, or reset · enable, view, restore, download, extend, reset, renew</description></item>
/// <item><term>Uploaded</term><description><c>Upload</c> · the date the file holds · free · deleted by hand · view, restore, download, delete</description></item>
/// </list>
/// </remarks>
internal sealed class BackupKindPolicy
{
    /// <summary>The fewest viewable days a purchased backup can have.</summary>
    public const int MinimumPurchasedViewableDays = 7;

    /// <summary>The most viewable days a purchased backup can have, and the days of data it retains.</summary>
    public const int MaximumPurchasedViewableDays = 600;

    /// <summary>The viewable days of an automatic backup.</summary>
    public const int AutomaticViewableDays = 90;

    /// <summary>The viewable days of a default backup.</summary>
    public const int DefaultViewableDays = 7;

    /// <summary>How long an expired purchased backup is kept, renewable, before it is released.</summary>
    public static TimeSpan PurchasedReleaseDelay { get; } = TimeSpan.FromDays(15);

    /// <summary>How long an automatic backup is kept after its instance is released.</summary>
    public static TimeSpan AutomaticReleaseDelay { get; } = TimeSpan.FromDays(90);

    private static readonly BackupKindPolicy s_automatic = new(
        BackupKind.Automatic, "System Created",
        minimumViewableDays: AutomaticViewableDays, maximumViewableDays: AutomaticViewableDays, initialViewableDays: AutomaticViewableDays,
        BackupCost.Free,
        "Deleted 90 days after the backed-up instance is released; cannot be deleted, reset or renewed by hand.",
        BackupOperation.View | BackupOperation.Restore | BackupOperation.Download);

    private static readonly BackupKindPolicy s_default = new(
        BackupKind.Default, "Default",
        minimumViewableDays: DefaultViewableDays, maximumViewableDays: DefaultViewableDays, initialViewableDays: DefaultViewableDays,
        BackupCost.Free,
        "Valid indefinitely; deleted only by a reset.",
        BackupOperation.Enable | BackupOperation.View | BackupOperation.Restore | BackupOperation.Download | BackupOperation.Reset);

    private static readonly BackupKindPolicy s_purchased = new(
        BackupKind.Purchased, "Paid",
        minimumViewableDays: MinimumPurchasedViewableDays, maximumViewableDays: MaximumPurchasedViewableDays, initialViewableDays: MinimumPurchasedViewableDays,
        BackupCost.Paid,
        "Expires at the end of the purchase duration; released with all its data 15 days after expiry unless renewed; can be reset.",
        BackupOperation.Enable | BackupOperation.View | BackupOperation.Restore | BackupOperation.Download |
        BackupOperation.Extend | BackupOperation.Reset | BackupOperation.Renew);

    private static readonly BackupKindPolicy s_uploaded = new(
        BackupKind.Uploaded, "Upload",
        minimumViewableDays: 1, maximumViewableDays: 1, initialViewableDays: 1,
        BackupCost.Free,
        "Holds the one date its file held; kept until deleted by hand.",
        BackupOperation.View | BackupOperation.Restore | BackupOperation.Download | BackupOperation.Delete);

    private BackupKindPolicy(
        BackupKind kind, string label, int minimumViewableDays, int maximumViewableDays, int initialViewableDays,
        BackupCost cost, string deletionPolicy, BackupOperation allowedOperations)
    {
        Kind = kind;
        Label = label;
        MinimumViewableDays = minimumViewableDays;
        MaximumViewableDays = maximumViewableDays;
        InitialViewableDays = initialViewableDays;
        Cost = cost;
        DeletionPolicy = deletionPolicy;
        AllowedOperations = allowedOperations;
    }

    /// <summary>All four policies, in the order of <see cref="BackupKind"/>.</summary>
    public static IReadOnlyList<BackupKindPolicy> All { get; } = [s_automatic, s_default, s_purchased, s_uploaded];

    /// <summary>The kind this policy describes.</summary>
    public BackupKind Kind { get; }

    /// <summary>The backup type label the console shows: <c>System Created</c>, <c>Default</c>, <c>Paid</c> or <c>Upload</c>.</summary>
    public string Label { get; }

    /// <summary>The fewest viewable days a backup of this kind can have.</summary>
    public int MinimumViewableDays { get; }

    /// <summary>The most viewable days a backup of this kind can have (by extending, for purchased backups).</summary>
    public int MaximumViewableDays { get; }

    /// <summary>The viewable days a backup of this kind starts with, unless chosen at purchase.</summary>
    public int InitialViewableDays { get; }

    /// <summary>Whether the viewable days can be extended after creation (upward only).</summary>
    public bool CanExtendViewableDays => (AllowedOperations & BackupOperation.Extend) != 0;

    /// <summary>Whether the backup is charged for.</summary>
    public BackupCost Cost { get; }

    /// <summary>When the backup and its data are deleted, in words.</summary>
    public string DeletionPolicy { get; }

    /// <summary>The operations this kind supports.</summary>
    public BackupOperation AllowedOperations { get; }

    /// <summary>How many days of data a backup of this kind keeps since it was enabled (rule W5): as many as its window can ever reach.</summary>
    public int RetainedDays => MaximumViewableDays;

    /// <summary>Whether this kind supports <paramref name="operation"/> (every flag of it).</summary>
    /// <param name="operation">One operation, or several combined.</param>
    public bool Allows(BackupOperation operation) => operation != BackupOperation.None && (AllowedOperations & operation) == operation;

    /// <summary>The policy of <paramref name="kind"/>.</summary>
    /// <param name="kind">A backup kind.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="kind"/> is not a defined kind.</exception>
    public static BackupKindPolicy For(BackupKind kind) => kind switch
    {
        BackupKind.Automatic => s_automatic,
        BackupKind.Default => s_default,
        BackupKind.Purchased => s_purchased,
        BackupKind.Uploaded => s_uploaded,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not a defined backup kind."),
    };

    /// <summary>The kind and its label, e.g. <c>Purchased (Paid)</c>.</summary>
    public override string ToString() => $"{Kind} ({Label})";
}
