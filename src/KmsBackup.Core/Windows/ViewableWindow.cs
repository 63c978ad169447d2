using System.Globalization;

namespace KmsBackup;

/// <summary>
/// A closed range of calendar days, <see cref="Start"/> to <see cref="End"/>, both inclusive: the dates
/// of a backup that can be viewed, restored or downloaded on a day (rule W2). Never empty.
/// </summary>
public readonly struct ViewableWindow : IEquatable<ViewableWindow>
{
    /// <summary>Creates a window.</summary>
    /// <param name="start">The first date, inclusive.</param>
    /// <param name="end">The last date, inclusive.</param>
    /// <exception cref="ArgumentException"><paramref name="end"/> is before <paramref name="start"/>.</exception>
    public ViewableWindow(DateOnly start, DateOnly end)
    {
        if (end < start)
        {
            throw new ArgumentException($"The window's end {Iso(end)} is before its start {Iso(start)}.", nameof(end));
        }

        Start = start;
        End = end;
    }

    /// <summary>The first viewable date, inclusive.</summary>
    public DateOnly Start { get; }

    /// <summary>The last viewable date, inclusive.</summary>
    public DateOnly End { get; }

    /// <summary>The number of dates in the window.</summary>
    public int Length => End.DayNumber - Start.DayNumber + 1;

    /// <summary>The window's dates, oldest first.</summary>
    public IEnumerable<DateOnly> Dates
    {
        get
        {
            for (var day = Start.DayNumber; day <= End.DayNumber; day++)
            {
                yield return DateOnly.FromDayNumber(day);
            }
        }
    }

    /// <summary>
    /// The window on <paramref name="today"/> of a backup with <paramref name="viewableDays"/> viewable days
    /// that was last enabled on <paramref name="enabledOn"/>:
    /// [today − (viewableDays − 1), today] ∩ [enabledOn, today] (rule W2).
    /// </summary>
    /// <param name="today">The current date in the backup's time zone.</param>
    /// <param name="viewableDays">The backup's viewable days, at least 1.</param>
    /// <param name="enabledOn">The date the backup was last enabled, not after <paramref name="today"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="viewableDays"/> is less than 1, or <paramref name="enabledOn"/> is after <paramref name="today"/>.</exception>
    internal static ViewableWindow On(DateOnly today, int viewableDays, DateOnly enabledOn)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(viewableDays, 1);
        if (enabledOn > today)
        {
            throw new ArgumentOutOfRangeException(nameof(enabledOn), enabledOn, $"The backup cannot be enabled after today ({Iso(today)}).");
        }

        var start = Math.Max(today.DayNumber - (viewableDays - 1), enabledOn.DayNumber);
        return new ViewableWindow(DateOnly.FromDayNumber(start), today);
    }

    /// <summary>
    /// The viewable days needed on <paramref name="today"/> for <paramref name="date"/> to be in the window:
    /// today − date + 1 (rule W4). The seed's example: on 2024-05-20, 2024-05-05 needs 16.
    /// </summary>
    /// <param name="today">The current date in the backup's time zone.</param>
    /// <param name="date">A date not after <paramref name="today"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="date"/> is after <paramref name="today"/>.</exception>
    internal static int DaysNeeded(DateOnly today, DateOnly date)
    {
        if (date > today)
        {
            throw new ArgumentOutOfRangeException(nameof(date), date, $"The date is after today ({Iso(today)}).");
        }

        return today.DayNumber - date.DayNumber + 1;
    }

    /// <summary>Whether <paramref name="date"/> is in the window.</summary>
    /// <param name="date">A calendar date.</param>
    public bool Contains(DateOnly date) => date >= Start && date <= End;

    /// <summary>Whether every date of <paramref name="other"/> is in this window.</summary>
    /// <param name="other">Another window.</param>
    public bool Contains(ViewableWindow other) => other.Start >= Start && other.End <= End;

    /// <summary>The window in ISO form, e.g. <c>2024-05-11..2024-05-20</c>.</summary>
    public override string ToString() => $"{Iso(Start)}..{Iso(End)}";

    /// <inheritdoc />
    public bool Equals(ViewableWindow other) => Start == other.Start && End == other.End;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is ViewableWindow other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Start, End);

    /// <summary>Whether two windows are the same.</summary>
    public static bool operator ==(ViewableWindow left, ViewableWindow right) => left.Equals(right);

    /// <summary>Whether two windows differ.</summary>
    public static bool operator !=(ViewableWindow left, ViewableWindow right) => !left.Equals(right);

    internal static string Iso(DateOnly date) => date.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    /// <summary>An instant as messages write it: ISO 8601 in UTC to the second, with <c>Z</c> (never <c>+00:00</c>).</summary>
    internal static string Iso(DateTimeOffset instant) => instant.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}
