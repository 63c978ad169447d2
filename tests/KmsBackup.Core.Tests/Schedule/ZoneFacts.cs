using System.Collections.Concurrent;

namespace KmsBackup.Tests.Schedule;

/// <summary>
/// An oracle for calendar days and local times, computed from <see cref="TimeZoneInfo"/> conversions
/// alone (bisection over instants), so that the schedule tests do not check
/// <see cref="BackupTimeZone"/> against itself.
/// </summary>
internal static class ZoneFacts
{
    private static readonly ConcurrentDictionary<string, IReadOnlyList<DateTimeOffset>> s_transitions = new(StringComparer.Ordinal);

    /// <summary>The zones the schedule tests run in: no DST, usual DST, DST at local midnight, 30-minute DST, a half-hour offset.</summary>
    public static IReadOnlyList<string> ZoneIds { get; } =
    [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "America/Santiago",
        "America/Havana",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
    ];

    /// <summary>The first instant of the generated range of enabling instants.</summary>
    public static DateTimeOffset RangeStart { get; } = new(2020, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>The end (exclusive) of the generated range of enabling instants.</summary>
    public static DateTimeOffset RangeEnd { get; } = new(2031, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>The local calendar date of <paramref name="instant"/>.</summary>
    public static DateOnly DateOf(TimeZoneInfo zone, DateTimeOffset instant) =>
        DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(instant, zone).DateTime);

    /// <summary>The local wall-clock time of <paramref name="instant"/>.</summary>
    public static DateTime LocalOf(TimeZoneInfo zone, DateTimeOffset instant) =>
        TimeZoneInfo.ConvertTime(instant, zone).DateTime;

    /// <summary>The first instant (to the second) whose local date is <paramref name="date"/> or later.</summary>
    public static DateTimeOffset FirstInstantOf(TimeZoneInfo zone, DateOnly date)
    {
        var midnightAsUtc = new DateTimeOffset(date.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        var low = midnightAsUtc.AddHours(-16); // local date is before `date` here (offsets are at most +14:00)
        var high = midnightAsUtc.AddHours(16); // and on or after it here (offsets are at least -12:00)
        while ((high - low) > TimeSpan.FromSeconds(1))
        {
            var middle = low + TimeSpan.FromSeconds(Math.Floor((high - low).TotalSeconds / 2));
            if (DateOf(zone, middle) >= date)
            {
                high = middle;
            }
            else
            {
                low = middle;
            }
        }

        return high;
    }

    /// <summary>How long the local calendar day <paramref name="date"/> is: 24 hours, or 23, 25, 23.5, 24.5 on a DST change.</summary>
    public static TimeSpan DayLength(TimeZoneInfo zone, DateOnly date) =>
        FirstInstantOf(zone, date.AddDays(1)) - FirstInstantOf(zone, date);

    /// <summary>
    /// The instant of local <paramref name="time"/> on <paramref name="date"/> by the lenient rule, worked out
    /// from conversions: the earliest instant that shows that wall-clock time; if none does (a skipped time),
    /// the time read with the offset in force before the skip, which moves it forward by the skip's length.
    /// </summary>
    public static DateTimeOffset LenientInstant(TimeZoneInfo zone, DateOnly date, TimeOnly time)
    {
        var local = date.ToDateTime(time);
        var asUtc = new DateTimeOffset(local, TimeSpan.Zero);
        var before = zone.GetUtcOffset(asUtc.AddDays(-1));
        var after = zone.GetUtcOffset(asUtc.AddDays(1));
        var showing = new[] { before, after }
            .Distinct()
            .Select(offset => asUtc - offset)
            .Where(candidate => LocalOf(zone, candidate) == local)
            .OrderBy(candidate => candidate)
            .ToList();
        return showing.Count > 0 ? showing[0] : asUtc - before;
    }

    /// <summary>The daily slot of <paramref name="date"/>: the first instant of the day for 00:00, else the lenient instant of <paramref name="time"/>.</summary>
    public static DateTimeOffset Slot(TimeZoneInfo zone, DateOnly date, TimeOnly time) =>
        time == TimeOnly.MinValue ? FirstInstantOf(zone, date) : LenientInstant(zone, date, time);

    /// <summary>The daily slots strictly between <paramref name="after"/> and <paramref name="before"/>, in order.</summary>
    public static IReadOnlyList<DateTimeOffset> SlotsBetween(TimeZoneInfo zone, TimeOnly time, DateTimeOffset after, DateTimeOffset before)
    {
        var slots = new List<DateTimeOffset>();
        for (var date = DateOf(zone, after).AddDays(-1); date <= DateOf(zone, before).AddDays(1); date = date.AddDays(1))
        {
            var slot = Slot(zone, date, time);
            if (slot > after && slot < before)
            {
                slots.Add(slot);
            }
        }

        return slots;
    }

    /// <summary>The latest daily slot at or before <paramref name="instant"/>.</summary>
    public static DateTimeOffset LatestSlotAtOrBefore(TimeZoneInfo zone, TimeOnly time, DateTimeOffset instant)
    {
        var date = DateOf(zone, instant).AddDays(1);
        while (Slot(zone, date, time) > instant)
        {
            date = date.AddDays(-1);
        }

        return Slot(zone, date, time);
    }

    /// <summary>The first daily slot after <paramref name="instant"/>.</summary>
    public static DateTimeOffset NextSlotAfter(TimeZoneInfo zone, TimeOnly time, DateTimeOffset instant)
    {
        var date = DateOf(zone, instant).AddDays(-1);
        while (Slot(zone, date, time) <= instant)
        {
            date = date.AddDays(1);
        }

        return Slot(zone, date, time);
    }

    /// <summary>The instants at which the zone's UTC offset changes within the generated range (to the second).</summary>
    public static IReadOnlyList<DateTimeOffset> Transitions(string zoneId) =>
        s_transitions.GetOrAdd(zoneId, static id => FindTransitions(TimeZoneInfo.FindSystemTimeZoneById(id), RangeStart.AddDays(-2), RangeEnd.AddDays(2)));

    /// <summary>The local dates of <paramref name="year"/> that are not 24 hours long, with their lengths.</summary>
    public static IReadOnlyList<(DateOnly Date, TimeSpan Length)> UnusualDays(string zoneId, int year)
    {
        var zone = TimeZoneInfo.FindSystemTimeZoneById(zoneId);
        return Transitions(zoneId)
            .Where(t => t.UtcDateTime.Year == year)
            .SelectMany(t => new[] { DateOf(zone, t.AddDays(-1)), DateOf(zone, t), DateOf(zone, t.AddDays(1)) })
            .Distinct()
            .Select(d => (Date: d, Length: DayLength(zone, d)))
            .Where(d => d.Length != TimeSpan.FromHours(24))
            .OrderBy(d => d.Date)
            .ToList();
    }

    private static List<DateTimeOffset> FindTransitions(TimeZoneInfo zone, DateTimeOffset from, DateTimeOffset to)
    {
        var found = new List<DateTimeOffset>();
        var step = TimeSpan.FromHours(12);
        var previous = from;
        var previousOffset = zone.GetUtcOffset(previous);
        for (var probe = from + step; probe <= to; probe += step)
        {
            var offset = zone.GetUtcOffset(probe);
            if (offset != previousOffset)
            {
                var low = previous;
                var high = probe;
                while ((high - low) > TimeSpan.FromSeconds(1))
                {
                    var middle = low + TimeSpan.FromSeconds(Math.Floor((high - low).TotalSeconds / 2));
                    if (zone.GetUtcOffset(middle) == previousOffset)
                    {
                        low = middle;
                    }
                    else
                    {
                        high = middle;
                    }
                }

                found.Add(high);
            }

            previous = probe;
            previousOffset = offset;
        }

        return found;
    }
}
