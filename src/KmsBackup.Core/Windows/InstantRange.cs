using System.Globalization;

namespace KmsBackup.Domain;

/// <summary>
/// A half-open range of instants, [<see cref="Start"/>, <see cref="End"/>): what a backup run covers.
/// Unlike <see cref="ViewableWindow"/> (closed, of calendar days), the end is excluded, so adjacent
/// ranges neither overlap nor leave a gap.
/// </summary>
internal readonly struct InstantRange : IEquatable<InstantRange>
{
    /// <summary>Creates a range.</summary>
    /// <param name="start">The first instant, inclusive.</param>
    /// <param name="end">The end, exclusive; not before <paramref name="start"/>.</param>
    /// <exception cref="ArgumentException"><paramref name="end"/> is before <paramref name="start"/>.</exception>
    public InstantRange(DateTimeOffset start, DateTimeOffset end)
    {
        if (end < start)
        {
            throw new ArgumentException("The range's end is before its start.", nameof(end));
        }

        Start = start;
        End = end;
    }

    /// <summary>The first instant, inclusive.</summary>
    public DateTimeOffset Start { get; }

    /// <summary>The end, exclusive.</summary>
    public DateTimeOffset End { get; }

    /// <summary>The length of the range.</summary>
    public TimeSpan Duration => End - Start;

    /// <summary>Whether <paramref name="instant"/> is in [Start, End).</summary>
    /// <param name="instant">Any instant.</param>
    public bool Contains(DateTimeOffset instant) => instant >= Start && instant < End;

    /// <summary>The range in ISO 8601 form, <c>start/end</c>, in UTC.</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Start.UtcDateTime:yyyy-MM-ddTHH:mm:ss.FFFFFFFZ}/{End.UtcDateTime:yyyy-MM-ddTHH:mm:ss.FFFFFFFZ}");

    /// <inheritdoc />
    public bool Equals(InstantRange other) => Start == other.Start && End == other.End;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is InstantRange other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Start.UtcTicks, End.UtcTicks);

    /// <summary>Whether two ranges are the same.</summary>
    public static bool operator ==(InstantRange left, InstantRange right) => left.Equals(right);

    /// <summary>Whether two ranges differ.</summary>
    public static bool operator !=(InstantRange left, InstantRange right) => !left.Equals(right);
}
