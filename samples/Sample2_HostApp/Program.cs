// Sample2_HostApp: a generic host that runs the KmsBackup scheduler on the embedded defaults (the
// file-system store and the embedded key management service in a local folder).
//
//   dotnet run --project samples/Sample2_HostApp                 runs on the real clock until Ctrl+C
//   dotnet run --project samples/Sample2_HostApp -- --simulate   runs 4 simulated hours (across midnight)
//                                                                  in about 20 seconds, prints a summary
//                                                                  and exits 0 when every run succeeded
// Options: --data <folder> (default: KmsBackup.Samples/sample2 in the user's local application data folder, so that
//          nothing is written into the clone; --simulate uses a fresh temporary folder),
//          --hours <n> (simulated hours, default 4), --speed <x> (default 720).
using System.Diagnostics.Metrics;
using System.Globalization;
using System.IO.Abstractions;
using KmsBackup.Diagnostics;
using KmsBackup.Hosting;
using KmsBackup.DevelopmentKms;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Sample2_HostApp;

var simulate = args.Contains("--simulate");
var hours = double.Parse(Option("--hours") ?? "4", CultureInfo.InvariantCulture);
var speed = double.Parse(Option("--speed") ?? "720", CultureInfo.InvariantCulture);
var dataPath = Option("--data") ?? (simulate
    ? Path.Combine(Path.GetTempPath(), $"kmsbackup-sample2-{Environment.ProcessId}-{Guid.NewGuid():N}")
    : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "KmsBackup.Samples", "sample2"));
var cleanUp = simulate && Option("--data") is null;

// 21:55 UTC: the simulated hours cross midnight, so the daily full shows.
var start = new DateTimeOffset(2026, 5, 1, 21, 55, 0, TimeSpan.Zero);
TimeProvider clock = simulate ? new AcceleratedTimeProvider(start, speed) : TimeProvider.System;

var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [], ContentRootPath = AppContext.BaseDirectory });
if (simulate)
{
    // The timeline below tells the story; the SDK's own logs show only warnings and errors.
    builder.Logging.AddFilter("KmsBackup", LogLevel.Warning);
}

builder.Services.AddSingleton(clock);
builder.Services.AddSingleton<Timeline>();
builder.Services.AddSingleton(s => new EmbeddedKeyManagementService(
    s.GetRequiredService<IFileSystem>(), Path.Combine(dataPath, "kms"), s.GetRequiredService<TimeProvider>()));
builder.Services.AddKmsBackup(o =>
    {
        o.DataPath = dataPath;
        o.Scheduler.Tick = TimeSpan.FromMinutes(1);
        if (simulate)
        {
            // At 720x a real second is 12 simulated minutes: a busy machine must not make the lease of a
            // run in progress lapse, nor a tick that came half a second late look like a backup falling behind.
            o.Client.LeaseDuration = TimeSpan.FromHours(1);
            o.Health.MaximumLag = TimeSpan.FromHours(1);
        }
    })
    .UseInstanceGateway(s => s.GetRequiredService<EmbeddedKeyManagementService>());
builder.Services.AddHostedService<Workload>();

using var host = builder.Build();
var timeline = host.Services.GetRequiredService<Timeline>();
host.Services.GetRequiredService<BackupSchedulerService>().TickCompleted += timeline.OnTick;

// Listens to the SDK's meter as an exporter would (OpenTelemetry: AddMeter(KmsBackupDiagnostics.MeterName)).
long bytesWritten = 0;
using var meterListener = new MeterListener
{
    InstrumentPublished = (instrument, listener) =>
    {
        if (instrument.Meter.Name == KmsBackupDiagnostics.MeterName && instrument.Name == KmsBackupDiagnostics.BytesInstrument)
        {
            listener.EnableMeasurementEvents(instrument);
        }
    },
};
meterListener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref bytesWritten, value));
meterListener.Start();

Console.WriteLine($"Sample2_HostApp: KmsBackup scheduler on the embedded defaults in {(cleanUp ? "a temporary folder" : dataPath)}{(simulate ? $", {hours} simulated hours at {speed}x" : "; Ctrl+C stops")}");
var exitCode = 0;
if (!simulate)
{
    await host.RunAsync();
    return exitCode;
}

try
{
    await host.StartAsync();
    await Task.Delay(TimeSpan.FromHours(hours), clock);
    var client = await host.Services.GetRequiredService<BackupClientProvider>().GetClientAsync();
    var health = await client.GetHealthAsync();
    var check = ActivatorUtilities.CreateInstance<KmsBackupHealthCheck>(host.Services);
    var status = await check.CheckHealthAsync(new HealthCheckContext
    {
        Registration = new HealthCheckRegistration("kmsbackup", check, HealthStatus.Unhealthy, null),
    });
    await host.StopAsync();

    foreach (var backup in health)
    {
        Console.WriteLine($"health: backup {backup.BackupId}: last success {backup.LastSuccessAt:O}, {backup.ConsecutiveFailures} failures in a row, lag {backup.Lag}");
    }

    var ok = timeline.Fulls >= 2 && timeline.Incrementals >= 10 && timeline.FailedRuns == 0 && timeline.FailedTicks == 0 && status.Status == HealthStatus.Healthy;
    exitCode = ok ? 0 : 1;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"Summary: {timeline.Fulls} full backups, {timeline.Incrementals} incremental backups, {timeline.FailedRuns} failed runs, {timeline.FailedTicks} failed ticks in {timeline.Ticks} ticks; {bytesWritten} bytes written; health {status.Status}: {(ok ? "OK" : "FAILED")}"));
}
finally
{
    if (cleanUp)
    {
        try
        {
            Directory.Delete(dataPath, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

return exitCode;

string? Option(string name)
{
    var at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
}
