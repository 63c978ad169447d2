using FsCheck;
using FsCheck.Fluent;

namespace KmsBackup.Tests;

/// <summary>A day, the date a backup was enabled, and its viewable days: always enabledOn ≤ today, 1 ≤ days ≤ 600.</summary>
public sealed record WindowScenario(DateOnly Today, DateOnly EnabledOn, int ViewableDays)
{
    public ViewableWindow Window => ViewableWindow.On(Today, ViewableDays, EnabledOn);
}

/// <summary>A backup reached from creation by a random sequence of commands and time steps, and the instant it was last seen at.</summary>
/// <remarks>Public, so that properties can take it as a parameter; what it holds is internal to the domain.</remarks>
public sealed record LifecycleScenario
{
    internal LifecycleScenario(BackupState state, DateTimeOffset now, string trace)
    {
        State = state;
        Now = now;
        Trace = trace;
    }

    internal BackupState State { get; }

    internal DateTimeOffset Now { get; }

    internal string Trace { get; }

    public override string ToString() => $"{State.Kind} {State.Status} at {Now:O} via [{Trace}]";
}

/// <summary>A purchased backup that is enabled, with the instant it was enabled at and the current instant (before expiry).</summary>
/// <remarks>Public, so that properties can take it as a parameter; what it holds is internal to the domain.</remarks>
public sealed record PurchasedScenario
{
    internal PurchasedScenario(BackupState state, DateTimeOffset now)
    {
        State = state;
        Now = now;
    }

    internal BackupState State { get; }

    internal DateTimeOffset Now { get; }

    public override string ToString() => $"{State.Id} {State.ViewableDays}d enabled {State.EnabledAt:O} expires {State.ExpiresAt:O} now {Now:O} zone {State.TimeZone}";
}

/// <summary>Generators that only make valid domain values, so shrinking stays meaningful and nothing is discarded.</summary>
public static class DomainArbitraries
{
    public static readonly string[] ZoneIds =
    [
        "UTC", "Europe/Berlin", "America/New_York", "America/Santiago", "America/Havana",
        "Australia/Lord_Howe", "Asia/Kolkata", "Asia/Shanghai", "Pacific/Chatham",
    ];

    public static readonly InstanceInfo SoftwareInstance =
        new("kst-software-1", InstanceKind.Software, "cn-hangzhou", new DateTimeOffset(2024, 6, 1, 0, 0, 0, TimeSpan.Zero));

    private static readonly DateOnly s_minDate = new(2000, 1, 1);
    private static readonly DateOnly s_maxDate = new(2090, 12, 31);
    private static readonly DateTimeOffset s_epoch = new(2024, 6, 1, 0, 0, 0, TimeSpan.Zero);

    public static Gen<DateOnly> Dates { get; } =
        Gen.Choose(s_minDate.DayNumber, s_maxDate.DayNumber).Select(DateOnly.FromDayNumber);

    public static Gen<BackupTimeZone> Zones { get; } = Gen.Elements(ZoneIds).Select(BackupTimeZone.FromId);

    /// <summary>Instants from 2024-06-01 over about three years, at minute resolution.</summary>
    public static Gen<DateTimeOffset> Instants { get; } =
        Gen.Choose(0, 3 * 365 * 24 * 60).Select(minutes => s_epoch.AddMinutes(minutes));

    public static Gen<int> PurchasedViewableDays { get; } = Gen.Choose(BackupKindPolicy.MinimumPurchasedViewableDays, BackupKindPolicy.MaximumPurchasedViewableDays);

    public static Arbitrary<WindowScenario> WindowScenarios() =>
        (from today in Dates
         from back in Gen.Choose(0, 1200)
         from days in Gen.Choose(1, 600)
         select new WindowScenario(today, DateOnly.FromDayNumber(Math.Max(s_minDate.DayNumber, today.DayNumber - back)), days))
        .ToArbitrary();

    public static Arbitrary<BackupTimeZone> TimeZones() => Zones.ToArbitrary();

    /// <summary>Instants of 2024–2027 at second resolution, in any of a few offsets.</summary>
    public static Arbitrary<DateTimeOffset> AnyInstant() =>
        (from minute in Instants
         from second in Gen.Choose(0, 59)
         from offsetHours in Gen.Choose(-12, 14)
         select minute.AddSeconds(second).ToOffset(TimeSpan.FromHours(offsetHours)))
        .ToArbitrary();

    public static Arbitrary<PurchasedScenario> PurchasedScenarios() =>
        (from zone in Zones
         from purchasedAt in Instants
         from days in PurchasedViewableDays
         from months in Gen.Choose(1, 36)
         from enableAfterMinutes in Gen.Choose(0, 60 * 24 * 20)
         from nowFraction in Gen.Choose(0, 1000)
         let state = Enable(BackupLifecycle.Purchase("order", new PurchaseOrder("cn-hangzhou", days, PurchaseTerm.FromMonths(months)), zone, purchasedAt)
                 .GetBackupsOrThrow()[0], purchasedAt.AddMinutes(enableAfterMinutes))
         let span = state.ExpiresAt!.Value - state.EnabledAt!.Value
         select new PurchasedScenario(state, state.EnabledAt!.Value + (span * nowFraction / 1001)))
        .Where(s => s.State.ExpiresAt > s.State.EnabledAt)
        .ToArbitrary();

    /// <summary>Any state a backup can reach: created as any kind, then 0–8 random commands at random later instants.</summary>
    public static Arbitrary<LifecycleScenario> LifecycleScenarios() =>
        (from kind in Gen.Elements(BackupKind.Automatic, BackupKind.Default, BackupKind.Purchased, BackupKind.Uploaded)
         from zone in Zones
         from createdAt in Instants
         from days in PurchasedViewableDays
         from months in Gen.Choose(1, 12)
         from steps in Gen.ListOf(StepGen).Select(l => l.Take(8).ToArray())
         select Run(kind, zone, createdAt, days, months, steps))
        .ToArbitrary();

    private static Gen<(int Minutes, int Command, int Argument)> StepGen { get; } =
        from minutes in Gen.Frequency((3, Gen.Choose(0, 60 * 24 * 3)), (2, Gen.Choose(0, 60 * 24 * 120)), (1, Gen.Choose(0, 60 * 24 * 500)))
        from command in Gen.Choose(0, 6)
        from argument in Gen.Choose(1, 700)
        select (minutes, command, argument);

    internal static BackupState Enable(BackupState state, DateTimeOffset at, InstanceInfo? instance = null) =>
        BackupLifecycle.Apply(state, new EnableBackup(instance ?? SoftwareInstance, InstanceKind.Software, "alias"), at).GetStateOrThrow();

    private static LifecycleScenario Run(BackupKind kind, BackupTimeZone zone, DateTimeOffset createdAt, int days, int months, (int Minutes, int Command, int Argument)[] steps)
    {
        var state = kind switch
        {
            BackupKind.Automatic => BackupLifecycle.CreateAutomatic("auto", SoftwareInstance, [], AutomaticBackupCutoffs.Default, zone, createdAt).GetBackupsOrThrow()[0],
            BackupKind.Default => BackupLifecycle.CreateDefault("default", zone, createdAt),
            BackupKind.Purchased => BackupLifecycle.Purchase("paid", new PurchaseOrder("cn-hangzhou", days, PurchaseTerm.FromMonths(months)), zone, createdAt).GetBackupsOrThrow()[0],
            _ => BackupLifecycle.CreateUploaded("upload", "uploaded", zone.DateOf(createdAt).AddDays(-3), "cn-hangzhou", zone, createdAt).GetBackupsOrThrow()[0],
        };

        var now = createdAt;
        var trace = new List<string>();
        foreach (var (minutes, command, argument) in steps)
        {
            now = now.AddMinutes(minutes);
            BackupCommand cmd = command switch
            {
                0 => new EnableBackup(SoftwareInstance, InstanceKind.Software, "alias"),
                1 => new ExtendViewableDays(argument),
                2 => new ResetBackup(),
                3 => new RenewBackup(PurchaseTerm.FromMonths(1 + (argument % 12))),
                4 => new InstanceReleased(SoftwareInstance.Id),
                5 => new DeleteBackup(),
                _ => new EnableBackup(SoftwareInstance with { }, InstanceKind.Software, null),
            };
            var outcome = BackupLifecycle.Apply(state, cmd, now);
            trace.Add($"+{minutes}m {cmd.GetType().Name}:{(outcome.IsAccepted ? "ok" : outcome.Refusal.Code.ToString())}");
            state = outcome.State;
        }

        return new LifecycleScenario(state, now, string.Join("; ", trace));
    }
}
