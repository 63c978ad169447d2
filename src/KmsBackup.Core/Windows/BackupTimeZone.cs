using System.ComponentModel;

namespace KmsBackup;

/// <summary>
/// The time zone whose calendar days a backup counts in (rule W1): days begin at 00:00 local time,
/// and a daylight-saving change makes a day 23 or 25 hours long. Any IANA zone the system knows.
/// </summary>
/// <remarks>
/// A local time that a daylight-saving change skips is moved forward by the length of the skip
/// (so a day whose 00:00 is skipped begins at 01:00); a local time that occurs twice resolves to
/// its first occurrence. This is the usual "lenient" resolution (NodaTime's
/// <c>Resolvers.LenientResolver</c> behaves the same way).
/// <para>Configuration binds a zone from its ID (a <see cref="TypeConverter"/> converts to and from the ID), so a
/// setting such as <c>"TimeZone": "Asia/Shanghai"</c> binds to a property of this type.</para>
/// </remarks>
[TypeConverter(typeof(BackupTimeZoneConverter))]
public sealed class BackupTimeZone : IEquatable<BackupTimeZone>
{
    private readonly TimeZoneInfo _zone;

    private BackupTimeZone(TimeZoneInfo zone) => _zone = zone;

    /// <summary>Coordinated Universal Time, the default zone of a backup.</summary>
    public static BackupTimeZone Utc { get; } = new(TimeZoneInfo.Utc);

    /// <summary>The zone's ID as given, e.g. <c>Europe/Berlin</c>.</summary>
    public string Id => _zone.Id;

    /// <summary>The underlying system time zone.</summary>
    public TimeZoneInfo TimeZoneInfo => _zone;

    /// <summary>Finds a zone by its IANA ID.</summary>
    /// <param name="id">An IANA time zone ID such as <c>Europe/Berlin</c> or <c>UTC</c>.</param>
    /// <returns>The zone.</returns>
    /// <exception cref="BackupException">
    /// <see cref="BackupErrorCode.UnknownTimeZone"/>: the system has no zone with that ID.
    /// </exception>
    public static BackupTimeZone FromId(string id)
    {
        if (TryFromId(id, out var zone, out var refusal))
        {
            return zone;
        }

        throw refusal.ToException();
    }

    /// <summary>Finds a zone by its IANA ID, or says why not.</summary>
    /// <param name="id">An IANA time zone ID.</param>
    /// <param name="zone">The zone, when found.</param>
    /// <param name="refusal">Why the ID was refused, when not found.</param>
    /// <returns>Whether the zone was found.</returns>
    public static bool TryFromId(
        string? id,
        [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out BackupTimeZone? zone,
        [System.Diagnostics.CodeAnalysis.NotNullWhen(false)] out Refusal? refusal)
    {
        zone = null;
        refusal = null;
        if (!string.IsNullOrWhiteSpace(id))
        {
            if (string.Equals(id, Utc.Id, StringComparison.Ordinal))
            {
                zone = Utc;
                return true;
            }

            if (TimeZoneInfo.TryFindSystemTimeZoneById(id, out var info))
            {
                zone = new BackupTimeZone(info);
                return true;
            }
        }

        var shown = id is null ? "(null)" : $"'{id}'";
        refusal = new Refusal(
            BackupErrorCode.UnknownTimeZone,
            $"timeZone={shown}",
            $"The time zone {shown} is not known to this system.",
            "Use an IANA time zone ID such as 'UTC', 'Europe/Berlin' or 'Asia/Shanghai' (on Linux, install the tzdata package).");
        return false;
    }

    /// <summary>The calendar date of <paramref name="instant"/> in this zone.</summary>
    /// <param name="instant">Any instant.</param>
    public DateOnly DateOf(DateTimeOffset instant) => DateOnly.FromDateTime(ToLocal(instant).DateTime);

    /// <summary>The instant as local time in this zone.</summary>
    /// <param name="instant">Any instant.</param>
    public DateTimeOffset ToLocal(DateTimeOffset instant) => TimeZoneInfo.ConvertTime(instant, _zone);

    /// <summary>The instant at which <paramref name="date"/> begins: 00:00 local, or the first instant of the day if a daylight-saving change skips 00:00.</summary>
    /// <param name="date">A calendar date in this zone.</param>
    public DateTimeOffset StartOf(DateOnly date) => At(date, TimeOnly.MinValue);

    /// <summary>
    /// The instant of local <paramref name="time"/> on <paramref name="date"/>, resolved leniently:
    /// a skipped time moves forward by the length of the skip, a repeated time takes its first occurrence.
    /// </summary>
    /// <param name="date">A calendar date in this zone.</param>
    /// <param name="time">A local time of day.</param>
    public DateTimeOffset At(DateOnly date, TimeOnly time)
    {
        var local = date.ToDateTime(time, DateTimeKind.Unspecified);
        TimeSpan offset;
        if (_zone.IsInvalidTime(local))
        {
            // In a gap: take the offset in force before the gap, which maps the time forward by the gap's length.
            offset = _zone.GetUtcOffset(local.AddHours(-6));
        }
        else if (_zone.IsAmbiguousTime(local))
        {
            // Repeated: the first occurrence has the larger offset.
            offset = _zone.GetAmbiguousTimeOffsets(local).Max();
        }
        else
        {
            offset = _zone.GetUtcOffset(local);
        }

        var utc = new DateTimeOffset(local.Ticks - offset.Ticks, TimeSpan.Zero);
        return ToLocal(utc);
    }

    /// <summary>The zone's ID.</summary>
    public override string ToString() => Id;

    /// <inheritdoc />
    public bool Equals(BackupTimeZone? other) => other is not null && string.Equals(Id, other.Id, StringComparison.Ordinal);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as BackupTimeZone);

    /// <inheritdoc />
    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Id);
}
