namespace KmsBackup.Tests.Schedule;

/// <summary>Backup states made through <see cref="BackupLifecycle"/>, as the engine would make them.</summary>
internal static class Backups
{
    public const string InstanceId = "kms-sched-1";

    public const string Region = "cn-hangzhou";

    /// <summary>Cutoffs that make any software instance eligible, so that enabling instants before 2024 work too.</summary>
    public static AutomaticBackupCutoffs AnyAge { get; } = new()
    {
        SoftwareCreatedOnOrAfter = new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero),
        HardwareCreatedOnOrAfter = new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero),
    };

    public static InstanceInfo Instance(DateTimeOffset createdAt, string id = InstanceId) =>
        new(id, InstanceKind.Software, Region, createdAt);

    /// <summary>A backup of <paramref name="kind"/> enabled for <see cref="InstanceId"/> at <paramref name="enabledAt"/>.</summary>
    public static BackupState Enabled(BackupKind kind, BackupTimeZone zone, DateTimeOffset enabledAt) => kind switch
    {
        BackupKind.Automatic => BackupLifecycle
            .CreateAutomatic("auto-1", Instance(enabledAt.AddHours(-1)), [], AnyAge, zone, enabledAt)
            .GetBackupsOrThrow()[0],
        BackupKind.Default => Enable(Unbound(BackupKind.Default, zone, enabledAt.AddDays(-3)), enabledAt),
        BackupKind.Purchased => Enable(Unbound(BackupKind.Purchased, zone, enabledAt.AddDays(-1)), enabledAt),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Only automatic, default and purchased backups back up an instance."),
    };

    /// <summary>An unbound default backup, or an unbound purchased one (12 months, 30 viewable days).</summary>
    public static BackupState Unbound(BackupKind kind, BackupTimeZone zone, DateTimeOffset createdAt) => kind switch
    {
        BackupKind.Default => BackupLifecycle.CreateDefault("default-1", zone, createdAt),
        BackupKind.Purchased => Purchased(zone, createdAt, PurchaseTerm.FromMonths(12)),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Only default and purchased backups are created unbound."),
    };

    public static BackupState Purchased(BackupTimeZone zone, DateTimeOffset purchasedAt, PurchaseTerm term) =>
        BackupLifecycle.Purchase("order-1", new PurchaseOrder(Region, 30, term), zone, purchasedAt).GetBackupsOrThrow()[0];

    public static BackupState Enable(BackupState state, DateTimeOffset at, string instanceId = InstanceId) =>
        Apply(state, new EnableBackup(Instance(at.AddDays(-30), instanceId), InstanceKind.Software, "alias"), at);

    public static BackupState Apply(BackupState state, BackupCommand command, DateTimeOffset at) =>
        BackupLifecycle.Apply(state, command, at).GetStateOrThrow();
}
