using System.Globalization;
using KmsBackup;
using KmsBackup.Hosting;

namespace Sample2_HostApp;

/// <summary>Prints what the scheduler does, one line per run, and counts it for the summary.</summary>
internal sealed class Timeline
{
    private readonly Lock _gate = new();

    public int Fulls { get; private set; }

    public int Incrementals { get; private set; }

    public int FailedRuns { get; private set; }

    public int FailedTicks { get; private set; }

    public int Ticks { get; private set; }

    public void Enabled(BackupDetails backup)
    {
        lock (_gate)
        {
            Console.WriteLine($"{Stamp(backup.CreatedAt)}  instance {backup.Instance?.Id} enabled: automatic backup {backup.Id} ({backup.Label}) created");
            if (backup.LatestPoint is { } first)
            {
                Count(first);
            }
        }
    }

    public void OnTick(object? sender, BackupSchedulerTickEventArgs tick)
    {
        lock (_gate)
        {
            Ticks++;
            foreach (var run in tick.Runs)
            {
                Count(run.Point);
            }

            foreach (var failure in tick.Failures)
            {
                FailedRuns++;
                Console.WriteLine($"{Stamp(tick.StartedAt)}  backup {failure.BackupId} failed: {failure.Error.GetType().Name}");
            }

            if (tick.Error is { } error)
            {
                FailedTicks++;
                Console.WriteLine($"{Stamp(tick.StartedAt)}  tick failed: {error.GetType().Name}");
            }
        }
    }

    private void Count(RecoveryPoint point)
    {
        if (point.Kind == BackupRunKind.Full)
        {
            Fulls++;
            Console.WriteLine($"{Stamp(point.TakenAt)}  full backup #{point.Sequence} ({point.Reason}): {point.KeyCount} keys, {point.SecretCount} secrets");
        }
        else
        {
            Incrementals++;
            if (point.ChangeCount > 0 || point.Reason == ScheduleReason.CatchUpIncremental)
            {
                Console.WriteLine($"{Stamp(point.TakenAt)}  incremental #{point.Sequence} ({point.Reason}): {point.ChangeCount} changes");
            }
        }
    }

    private static string Stamp(DateTimeOffset instant) => instant.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}
