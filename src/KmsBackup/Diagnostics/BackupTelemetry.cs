using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;

namespace KmsBackup.Diagnostics;

/// <summary>
/// The instruments of the <c>KmsBackup</c> meter, one set per meter, and the activity source. With an
/// <see cref="IMeterFactory"/> (a host's), the meter comes from it, so that a host's listeners and tests see
/// only their own measurements; without one, one process-wide meter serves every client.
/// </summary>
internal sealed class BackupTelemetry
{
    public static readonly ActivitySource Source = new(KmsBackupDiagnostics.ActivitySourceName, Version);

    private static readonly ConditionalWeakTable<Meter, BackupTelemetry> s_byMeter = new();
    private static readonly Lazy<Meter> s_shared = new(() => new Meter(KmsBackupDiagnostics.MeterName, Version));

    private readonly Counter<long> _runs;
    private readonly Counter<long> _failures;
    private readonly Histogram<double> _duration;
    private readonly Histogram<long> _items;
    private readonly Counter<long> _bytes;
    private readonly Histogram<double> _lag;
    private readonly Counter<long> _cacheHits;
    private readonly Counter<long> _cacheMisses;
    private readonly Counter<long> _cacheEvictions;
    private readonly UpDownCounter<long> _cacheSize;

    private BackupTelemetry(Meter meter)
    {
        _runs = meter.CreateCounter<long>(KmsBackupDiagnostics.RunsInstrument, "{run}", "Backup runs that committed a recovery point.");
        _failures = meter.CreateCounter<long>(KmsBackupDiagnostics.FailuresInstrument, "{run}", "Backup runs that failed.");
        _duration = meter.CreateHistogram<double>(KmsBackupDiagnostics.DurationInstrument, "s", "How long a backup run took.");
        _items = meter.CreateHistogram<long>(KmsBackupDiagnostics.ItemsInstrument, "{item}", "Keys and secrets in a committed recovery point.");
        _bytes = meter.CreateCounter<long>(KmsBackupDiagnostics.BytesInstrument, "By", "Bytes backup runs wrote to the store.");
        _lag = meter.CreateHistogram<double>(KmsBackupDiagnostics.LagInstrument, "s", "How late a backup run started after it was due.");
        _cacheHits = meter.CreateCounter<long>(KmsBackupDiagnostics.CacheHitsInstrument, "{lookup}", "Lookups the client's cache answered.");
        _cacheMisses = meter.CreateCounter<long>(KmsBackupDiagnostics.CacheMissesInstrument, "{lookup}", "Lookups the client's cache could not answer.");
        _cacheEvictions = meter.CreateCounter<long>(KmsBackupDiagnostics.CacheEvictionsInstrument, "{entry}", "Entries the client's cache dropped to stay within its size.");
        _cacheSize = meter.CreateUpDownCounter<long>(KmsBackupDiagnostics.CacheSizeInstrument, "By", "Bytes the clients' caches hold, as estimated.");
    }

    private static string Version => typeof(BackupTelemetry).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    public static BackupTelemetry For(IMeterFactory? meterFactory)
    {
        var meter = meterFactory?.Create(new MeterOptions(KmsBackupDiagnostics.MeterName) { Version = Version }) ?? s_shared.Value;
        return s_byMeter.GetValue(meter, m => new BackupTelemetry(m));
    }

    public void RunCommitted(BackupKind kind, ScheduledRun run, BackupRunResult result, TimeSpan duration, TimeSpan lag)
    {
        var tags = Tags(kind, run.Kind);
        tags.Add(KmsBackupDiagnostics.RunReasonTag, ReasonName(run.Reason));
        _runs.Add(1, tags);
        _lag.Record(Math.Max(0, lag.TotalSeconds), tags);
        var plain = Tags(kind, run.Kind);
        _duration.Record(duration.TotalSeconds, plain);
        _items.Record(result.Point.KeyCount + result.Point.SecretCount, plain);
        _bytes.Add(result.BytesWritten, plain);
    }

    public void RunFailed(BackupKind? kind, BackupRunKind? runKind, string errorType, TimeSpan? duration)
    {
        var tags = Tags(kind, runKind);
        tags.Add(KmsBackupDiagnostics.ErrorTypeTag, errorType);
        _failures.Add(1, tags);
        if (duration is { } elapsed)
        {
            _duration.Record(elapsed.TotalSeconds, tags);
        }
    }

    public void CacheHit(string kind) => _cacheHits.Add(1, new KeyValuePair<string, object?>(KmsBackupDiagnostics.CacheKindTag, kind));

    public void CacheMiss(string kind) => _cacheMisses.Add(1, new KeyValuePair<string, object?>(KmsBackupDiagnostics.CacheKindTag, kind));

    public void CacheEvicted(string kind) => _cacheEvictions.Add(1, new KeyValuePair<string, object?>(KmsBackupDiagnostics.CacheKindTag, kind));

    public void CacheResized(string kind, long delta) => _cacheSize.Add(delta, new KeyValuePair<string, object?>(KmsBackupDiagnostics.CacheKindTag, kind));

    public static string KindName(BackupKind kind) => kind switch
    {
        BackupKind.Automatic => "automatic",
        BackupKind.Default => "default",
        BackupKind.Purchased => "purchased",
        BackupKind.Uploaded => "uploaded",
        _ => "unknown",
    };

    public static string RunKindName(BackupRunKind kind) => kind == BackupRunKind.Full ? "full" : "incremental";

    public static string ReasonName(ScheduleReason reason) => reason switch
    {
        ScheduleReason.FirstFull => "first_full",
        ScheduleReason.DailyFull => "daily_full",
        ScheduleReason.CatchUpFull => "catch_up_full",
        ScheduleReason.Incremental => "incremental",
        ScheduleReason.CatchUpIncremental => "catch_up_incremental",
        _ => "unknown",
    };

    /// <summary>
    /// Runs one public operation of the client in its span: starts the span <paramref name="name"/> with the tags known
    /// before the operation runs, gives it to the operation (which tags what it learns on the way), marks it failed with
    /// the error type when the operation throws, and ends it. The client's front calls this; the services it delegates
    /// to start no span of their own, except the one span per backup run inside a batch of runs.
    /// </summary>
    public static async Task<T> TraceAsync<T>(
        string name, Func<Activity?, Task<T>> operation, string? backupId = null, DateOnly? backupDate = null, string? targetInstanceId = null)
    {
        using var activity = Source.StartActivity(name);
        if (activity is not null)
        {
            TagBackup(activity, backupId, backupDate);
            if (targetInstanceId is not null)
            {
                activity.SetTag(KmsBackupDiagnostics.TargetInstanceTag, targetInstanceId);
            }
        }

        try
        {
            return await operation(activity).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            SetFailed(activity, e);
            throw;
        }
    }

    /// <summary>Tags <paramref name="activity"/> with the backup and the date it concerns, those that are known.</summary>
    public static void TagBackup(Activity? activity, string? backupId, DateOnly? backupDate)
    {
        if (activity is null)
        {
            return;
        }

        if (backupId is not null)
        {
            activity.SetTag(KmsBackupDiagnostics.BackupIdTag, backupId);
        }

        if (backupDate is { } date)
        {
            activity.SetTag(KmsBackupDiagnostics.BackupDateTag, date.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    /// <summary>A failure as a stable name: the error code of a <see cref="BackupException"/>, else the exception's type name (never its message).</summary>
    public static string ErrorType(Exception error) => error is BackupException backup ? backup.Code.ToString() : error.GetType().Name;

    /// <summary>Marks <paramref name="activity"/> failed with <paramref name="error"/>'s error type only: exception messages stay out of traces.</summary>
    public static void SetFailed(Activity? activity, Exception error)
    {
        if (activity is null)
        {
            return;
        }

        var type = ErrorType(error);
        activity.SetTag(KmsBackupDiagnostics.ErrorTypeTag, type);
        activity.SetStatus(ActivityStatusCode.Error, type);
    }

    private static TagList Tags(BackupKind? kind, BackupRunKind? runKind)
    {
        var tags = default(TagList);
        if (kind is { } k)
        {
            tags.Add(KmsBackupDiagnostics.BackupKindTag, KindName(k));
        }

        if (runKind is { } r)
        {
            tags.Add(KmsBackupDiagnostics.RunKindTag, RunKindName(r));
        }

        return tags;
    }
}
