using System.Globalization;

namespace KmsBackup.Cli.Output;

/// <summary>How the tool spells the domain's values on the command line, in tables and in JSON.</summary>
internal static class Names
{
    private static readonly (BackupDataType Type, string Name, string Title)[] s_dataTypes =
    [
        (BackupDataType.FullyBackedUpKeys, "fully-backed-up-keys", "Fully Backed up Keys"),
        (BackupDataType.IncrementallyBackedUpKeys, "incrementally-backed-up-keys", "Incrementally Backed up Keys"),
        (BackupDataType.RotatedKeys, "rotated-keys", "Rotated Keys"),
        (BackupDataType.FullyBackedUpSecrets, "fully-backed-up-secrets", "Fully Backed up Secrets"),
        (BackupDataType.IncrementallyBackedUpSecrets, "incrementally-backed-up-secrets", "Incrementally Backed up Secrets"),
        (BackupDataType.RotatedSecrets, "rotated-secrets", "Rotated Secrets"),
    ];

    public static IEnumerable<BackupDataType> DataTypes => s_dataTypes.Select(t => t.Type);

    public static IEnumerable<string> DataTypeNames => s_dataTypes.Select(t => t.Name);

    public static string Of(BackupDataType type) => s_dataTypes.First(t => t.Type == type).Name;

    /// <summary>The seed's title of a data type, as the console shows it.</summary>
    public static string Title(BackupDataType type) => s_dataTypes.First(t => t.Type == type).Title;

    /// <summary>Parses a data type as the tool spells it (<c>fully-backed-up-keys</c>) or as the SDK names it (<c>FullyBackedUpKeys</c>), in any case.</summary>
    public static bool TryParseDataType(string text, out BackupDataType type)
    {
        foreach (var (t, name, _) in s_dataTypes)
        {
            if (string.Equals(name, text, StringComparison.OrdinalIgnoreCase) || string.Equals(t.ToString(), text, StringComparison.OrdinalIgnoreCase))
            {
                type = t;
                return true;
            }
        }

        type = default;
        return false;
    }

    public static string Of(ItemType type) => type == ItemType.Key ? "key" : "secret";

    public static string Of(BackupStatus status) => status switch
    {
        BackupStatus.Disabled => "disabled",
        BackupStatus.Enabled => "enabled",
        BackupStatus.Expired => "expired",
        BackupStatus.Released => "released",
        _ => status.ToString().ToLowerInvariant(),
    };

    public static string Of(BackupKind kind) => kind.ToString().ToLowerInvariant();

    public static string Of(InstanceKind kind) => kind.ToString().ToLowerInvariant();

    public static string Of(RestoreItemOutcome outcome) => outcome switch
    {
        RestoreItemOutcome.Restore => "restore",
        RestoreItemOutcome.AlreadyRestored => "already-restored",
        RestoreItemOutcome.Refused => "refused",
        _ => outcome.ToString().ToLowerInvariant(),
    };

    public static string Of(RecoveryDrillOutcome outcome) => outcome.ToString().ToLowerInvariant();

    public static string Of(BackupRunKind kind) => kind == BackupRunKind.Full ? "full" : "incremental";

    /// <summary>A schedule reason in the tool's spelling: <c>daily-full</c>, <c>catch-up-incremental</c>.</summary>
    public static string Of(ScheduleReason reason) => string.Concat(reason.ToString().Select((c, i) => char.IsUpper(c) ? (i > 0 ? "-" : "") + char.ToLowerInvariant(c) : c.ToString()));

    /// <summary>A duration in its two largest units, e.g. <c>1d 2h</c>, <c>30m</c>, <c>0s</c>.</summary>
    public static string Duration(TimeSpan duration)
    {
        var sign = duration < TimeSpan.Zero ? "-" : "";
        duration = duration.Duration();
        var parts = new (long Value, string Unit)[] { (duration.Days, "d"), (duration.Hours, "h"), (duration.Minutes, "m"), (duration.Seconds, "s") }
            .SkipWhile(p => p.Value == 0).Take(2).Where(p => p.Value != 0).Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Value}{p.Unit}")).ToList();
        return parts.Count == 0 ? "0s" : sign + string.Join(' ', parts);
    }

    /// <summary>A count and its noun, singular for one: <c>1 key</c>, <c>2 keys</c>.</summary>
    public static string Count(long count, string noun) => string.Create(CultureInfo.InvariantCulture, $"{count:N0} {noun}{(count == 1 ? string.Empty : "s")}");

    public static string Date(DateOnly date) => date.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    public static string Instant(DateTimeOffset instant) => instant.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    public static string? Instant(DateTimeOffset? instant) => instant is { } i ? Instant(i) : null;
}
