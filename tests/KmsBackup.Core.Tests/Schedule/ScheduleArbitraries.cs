using System.Globalization;
using FsCheck;
using FsCheck.Fluent;

namespace KmsBackup.Tests.Schedule;

/// <summary>A backup enabled at <see cref="EnabledAt"/> in the zone <see cref="ZoneId"/>.</summary>
/// <param name="ZoneId">One of <see cref="ZoneFacts.ZoneIds"/>.</param>
/// <param name="Kind">Automatic, default or purchased: the kinds that back up an instance.</param>
/// <param name="EnabledAt">When the backup was enabled (in UTC).</param>
public sealed record EnablingCase(string ZoneId, BackupKind Kind, DateTimeOffset EnabledAt)
{
    /// <summary>The backup's zone.</summary>
    public BackupTimeZone Zone => BackupTimeZone.FromId(ZoneId);

    /// <summary>The enabled backup.</summary>
    internal BackupState Backup() => Backups.Enabled(Kind, Zone, EnabledAt);

    /// <inheritdoc />
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Kind} backup in {ZoneId} enabled at {EnabledAt:O} (local {Zone.ToLocal(EnabledAt):O})");
}

/// <summary>How long runs take, used in turn: each from 0 to 4 minutes.</summary>
/// <param name="Cycle">At least one duration.</param>
public sealed record RunDurations(IReadOnlyList<TimeSpan> Cycle)
{
    /// <summary>The longest duration a generated run has.</summary>
    public static TimeSpan Longest { get; } = TimeSpan.FromMinutes(4);

    /// <summary>Every run takes no time.</summary>
    public static RunDurations Instant { get; } = new([TimeSpan.Zero]);

    /// <summary>The duration of the <paramref name="index"/>-th run.</summary>
    public TimeSpan this[int index] => Cycle[index % Cycle.Count];

    /// <inheritdoc />
    public override string ToString() =>
        "RunDurations [" + string.Join(", ", Cycle.Select(d => d.ToString("c", CultureInfo.InvariantCulture))) + "]";
}

/// <summary>The host is down for <see cref="Length"/>, starting <see cref="After"/> the end of the previous window (or the enabling).</summary>
/// <param name="After">The gap before the window: at least 30 minutes.</param>
/// <param name="Length">How long the host is down.</param>
public sealed record Downtime(TimeSpan After, TimeSpan Length);

/// <summary>Downtime windows, in order, separated by at least 30 minutes.</summary>
/// <param name="Windows">Zero or more windows.</param>
public sealed record DowntimePlan(IReadOnlyList<Downtime> Windows)
{
    /// <summary>No downtime.</summary>
    public static DowntimePlan None { get; } = new([]);

    /// <summary>The windows as instants [From, To), counted from <paramref name="start"/>.</summary>
    public IReadOnlyList<(DateTimeOffset From, DateTimeOffset To)> From(DateTimeOffset start)
    {
        var result = new List<(DateTimeOffset From, DateTimeOffset To)>();
        var cursor = start;
        foreach (var window in Windows)
        {
            var from = cursor + window.After;
            cursor = from + window.Length;
            result.Add((from, cursor));
        }

        return result;
    }

    /// <inheritdoc />
    public override string ToString() =>
        "DowntimePlan [" + string.Join(", ", Windows.Select(w => string.Create(CultureInfo.InvariantCulture, $"after {w.After:c} down {w.Length:c}"))) + "]";
}

/// <summary>A number of days to simulate: 2 to 10.</summary>
/// <param name="Value">The number of days.</param>
public sealed record DayCount(int Value);

/// <summary>An incremental interval of at least 5 minutes, longer than any generated run.</summary>
/// <param name="Value">The interval.</param>
public sealed record GridInterval(TimeSpan Value);

/// <summary>A valid schedule policy: interval 1 minute to 12 hours, any daily time to the minute.</summary>
/// <param name="Policy">The policy.</param>
public sealed record ValidPolicy(BackupSchedulePolicy Policy)
{
    /// <inheritdoc />
    public override string ToString() => string.Create(
        CultureInfo.InvariantCulture,
        $"Policy interval {Policy.IncrementalInterval:c}, daily full at {Policy.DailyFullTime:HH:mm}");
}

/// <summary>How long after an instant the engine asks: 0 to 3 days.</summary>
/// <param name="Value">The delay.</param>
public sealed record Lateness(TimeSpan Value);

/// <summary>An incremental interval the policy must refuse: zero, negative, under one second or over 12 hours.</summary>
/// <param name="Value">The interval.</param>
public sealed record InvalidInterval(TimeSpan Value);

/// <summary>FsCheck arbitraries for the schedule tests, built from generators that only make valid values.</summary>
public static class ScheduleArbitraries
{
    private static readonly int s_rangeSeconds = checked((int)(ZoneFacts.RangeEnd - ZoneFacts.RangeStart).TotalSeconds);

    private static readonly BackupKind[] s_kinds = [BackupKind.Automatic, BackupKind.Default, BackupKind.Purchased];

    private static readonly TimeSpan[] s_gridIntervals =
        [TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(7), TimeSpan.FromMinutes(15), TimeSpan.FromHours(1), TimeSpan.FromMinutes(150)];

    /// <summary>Zones from <see cref="ZoneFacts.ZoneIds"/>.</summary>
    public static Arbitrary<BackupTimeZone> TimeZones() =>
        Gen.Elements(ZoneFacts.ZoneIds.ToArray()).Select(BackupTimeZone.FromId).ToArbitrary();

    /// <summary>Enabling instants in 2020–2030: anywhere, within two days of a DST change, or within 15 minutes of a local midnight.</summary>
    public static Arbitrary<EnablingCase> EnablingCases()
    {
        var gen =
            from zoneId in Gen.Elements(ZoneFacts.ZoneIds.ToArray())
            from kind in Gen.Elements(s_kinds)
            from at in Gen.Frequency(
                (2, AnyInstant()),
                (3, NearTransition(zoneId)),
                (2, NearLocalMidnight(zoneId)))
            select new EnablingCase(zoneId, kind, at);
        return Arb.From(gen, ShrinkEnabling);
    }

    /// <summary>Cycles of 1 to 12 run durations of 0 to 4 minutes (to the second), often 0 or 4 minutes exactly.</summary>
    public static Arbitrary<RunDurations> Durations()
    {
        var one = Gen.Frequency(
            (1, Gen.Constant(0)),
            (1, Gen.Constant((int)RunDurations.Longest.TotalSeconds)),
            (4, Gen.Choose(0, (int)RunDurations.Longest.TotalSeconds)));
        var gen =
            from count in Gen.Choose(1, 12)
            from seconds in one.ArrayOf(count)
            select new RunDurations(seconds.Select(s => TimeSpan.FromSeconds(s)).ToArray());
        return Arb.From(gen, ShrinkDurations);
    }

    /// <summary>0 to 3 downtime windows: short (under 10 minutes), medium (up to 6 hours) or long (up to 3 days).</summary>
    public static Arbitrary<DowntimePlan> Downtimes()
    {
        var length = Gen.Frequency(
            (3, Gen.Choose(1, 600)),
            (3, Gen.Choose(600, 6 * 3600)),
            (2, Gen.Choose(6 * 3600, 3 * 86400)));
        var window =
            from after in Gen.Choose(1800, 2 * 86400)
            from seconds in length
            select new Downtime(TimeSpan.FromSeconds(after), TimeSpan.FromSeconds(seconds));
        var gen =
            from count in Gen.Frequency((1, Gen.Constant(1)), (2, Gen.Constant(2)), (1, Gen.Constant(3)))
            from windows in window.ArrayOf(count)
            select new DowntimePlan(windows);
        return Arb.From(gen, ShrinkDowntimes);
    }

    /// <summary>2 to 10 days.</summary>
    public static Arbitrary<DayCount> DayCounts() =>
        Arb.From(Gen.Choose(2, 10).Select(d => new DayCount(d)), d => Enumerable.Range(2, d.Value - 2).Select(v => new DayCount(v)));

    /// <summary>Incremental intervals of 5 or 7 minutes, 15 minutes, 1 hour or 2.5 hours.</summary>
    public static Arbitrary<GridInterval> GridIntervals() =>
        Gen.Elements(s_gridIntervals).Select(i => new GridInterval(i)).ToArbitrary();

    /// <summary>Valid policies: an interval of 1 minute to 12 hours, a daily time to the minute (including 02:00–03:00, skipped in many zones).</summary>
    public static Arbitrary<ValidPolicy> Policies()
    {
        var interval = Gen.Frequency(
            (1, Gen.Elements(1, 2, 5, 15, 60, 720)),
            (2, Gen.Choose(10, 720)));
        var time = Gen.Frequency(
            (1, Gen.Constant(0)),
            (1, Gen.Choose(120, 179)),
            (3, Gen.Choose(0, (24 * 60) - 1)));
        var gen =
            from minutes in interval
            from minuteOfDay in time
            select new ValidPolicy(new BackupSchedulePolicy
            {
                IncrementalInterval = TimeSpan.FromMinutes(minutes),
                DailyFullTime = new TimeOnly(minuteOfDay / 60, minuteOfDay % 60),
            });
        return gen.ToArbitrary();
    }

    /// <summary>Delays of 0 to 3 days (to the second), often none.</summary>
    public static Arbitrary<Lateness> Latenesses() =>
        Gen.Frequency((1, Gen.Constant(0)), (1, Gen.Choose(1, 600)), (2, Gen.Choose(0, 3 * 86400)))
            .Select(s => new Lateness(TimeSpan.FromSeconds(s)))
            .ToArbitrary();

    /// <summary>Intervals outside 1 second to 12 hours.</summary>
    public static Arbitrary<InvalidInterval> InvalidIntervals()
    {
        var twelveHours = BackupSchedulePolicy.MaximumIncrementalInterval.Ticks;
        var gen = Gen.OneOf(
            Gen.Constant(TimeSpan.Zero),
            Gen.Choose(1, 999).Select(ms => TimeSpan.FromMilliseconds(ms)),
            Gen.Constant(TimeSpan.FromTicks(BackupSchedulePolicy.MinimumIncrementalInterval.Ticks - 1)),
            Gen.Choose(1, int.MaxValue).Select(s => -TimeSpan.FromSeconds(s)),
            Gen.Constant(TimeSpan.FromTicks(twelveHours + 1)),
            Gen.Choose(1, 1_000_000).Select(s => TimeSpan.FromTicks(twelveHours) + TimeSpan.FromSeconds(s)));
        return gen.Select(i => new InvalidInterval(i)).ToArbitrary();
    }

    private static Gen<DateTimeOffset> AnyInstant() =>
        Gen.Choose(0, s_rangeSeconds - 1).Select(s => ZoneFacts.RangeStart.AddSeconds(s));

    private static Gen<DateTimeOffset> NearTransition(string zoneId)
    {
        var transitions = ZoneFacts.Transitions(zoneId)
            .Where(t => t >= ZoneFacts.RangeStart.AddDays(2) && t < ZoneFacts.RangeEnd.AddDays(-2))
            .ToArray();
        if (transitions.Length == 0)
        {
            return NearLocalMidnight(zoneId);
        }

        return from transition in Gen.Elements(transitions)
               from seconds in Gen.Choose(-2 * 86400, 2 * 86400)
               select transition.AddSeconds(seconds);
    }

    private static Gen<DateTimeOffset> NearLocalMidnight(string zoneId)
    {
        var zone = TimeZoneInfo.FindSystemTimeZoneById(zoneId);
        var first = DateOnly.FromDateTime(ZoneFacts.RangeStart.UtcDateTime).AddDays(1);
        var days = (int)(ZoneFacts.RangeEnd - ZoneFacts.RangeStart).TotalDays - 2;
        return from day in Gen.Choose(0, days - 1)
               from seconds in Gen.Choose(-900, 900)
               select ZoneFacts.FirstInstantOf(zone, first.AddDays(day)).AddSeconds(seconds);
    }

    private static IEnumerable<EnablingCase> ShrinkEnabling(EnablingCase value)
    {
        if (!string.Equals(value.ZoneId, "UTC", StringComparison.Ordinal))
        {
            yield return value with { ZoneId = "UTC" };
        }

        if (value.Kind != BackupKind.Default)
        {
            yield return value with { Kind = BackupKind.Default };
        }

        foreach (var unit in new[] { TimeSpan.FromDays(1), TimeSpan.FromHours(1), TimeSpan.FromMinutes(1) })
        {
            var rounded = new DateTimeOffset(value.EnabledAt.UtcTicks - (value.EnabledAt.UtcTicks % unit.Ticks), TimeSpan.Zero);
            if (rounded != value.EnabledAt)
            {
                yield return value with { EnabledAt = rounded };
            }
        }
    }

    private static IEnumerable<RunDurations> ShrinkDurations(RunDurations value)
    {
        if (value.Cycle.Count > 1)
        {
            yield return new RunDurations([value.Cycle[0]]);
            for (var i = 0; i < value.Cycle.Count; i++)
            {
                yield return new RunDurations(value.Cycle.Where((_, j) => j != i).ToArray());
            }
        }

        if (value.Cycle.Any(d => d != TimeSpan.Zero))
        {
            yield return RunDurations.Instant;
        }
    }

    private static IEnumerable<DowntimePlan> ShrinkDowntimes(DowntimePlan value)
    {
        for (var i = 0; i < value.Windows.Count && value.Windows.Count > 1; i++)
        {
            yield return new DowntimePlan(value.Windows.Where((_, j) => j != i).ToArray());
        }
    }
}
