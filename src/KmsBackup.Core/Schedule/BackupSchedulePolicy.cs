using System.Globalization;

namespace KmsBackup;

/// <summary>
/// When backups run (rules S2, S3, S6): a full backup daily at <see cref="DailyFullTime"/> in the
/// backup's time zone, and an incremental every <see cref="IncrementalInterval"/> after each full
/// completes. The defaults are the seed's: 00:00 and 5 minutes.
/// </summary>
public sealed record BackupSchedulePolicy
{
    /// <summary>The shortest incremental interval: one second.</summary>
    public static TimeSpan MinimumIncrementalInterval { get; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest incremental interval: 12 hours.</summary>
    public static TimeSpan MaximumIncrementalInterval { get; } = TimeSpan.FromHours(12);

    /// <summary>
    /// The seed's schedule: fulls at 00:00, incrementals every 5 minutes. A new instance on each read, so that
    /// nothing (a configuration binder setting properties through reflection, say) can change the default of another.
    /// </summary>
    public static BackupSchedulePolicy Default => new();

    /// <summary>The spacing of the incremental grid: incrementals are due at the last full's completion plus 1, 2, 3... intervals (a late run does not shift the grid). Default 5 minutes; 1 second to 12 hours.</summary>
    public TimeSpan IncrementalInterval { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>The local time of day of the daily full backup. Default 00:00.</summary>
    public TimeOnly DailyFullTime { get; init; } = TimeOnly.MinValue;

    /// <summary>Why the policy is not valid, or <see langword="null"/> when it is.</summary>
    public Refusal? Validate()
    {
        if (IncrementalInterval < MinimumIncrementalInterval || IncrementalInterval > MaximumIncrementalInterval)
        {
            var shown = IncrementalInterval.ToString("c", CultureInfo.InvariantCulture);
            return new Refusal(
                BackupErrorCode.InvalidScheduleOption, $"incrementalInterval={shown}",
                $"An incremental interval of {shown} is outside 1 second to 12 hours.",
                "Choose an interval from 00:00:01 to 12:00:00; the seed's is 00:05:00.");
        }

        return null;
    }

    /// <summary>Throws when the policy is not valid.</summary>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.InvalidScheduleOption"/>.</exception>
    internal void ThrowIfInvalid()
    {
        if (Validate() is { } refusal)
        {
            throw refusal.ToException();
        }
    }
}
