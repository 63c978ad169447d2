using System.IO.Abstractions;
using System.IO.Abstractions.TestingHelpers;
using System.Threading.Channels;
using KmsBackup.DevelopmentKms;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Hosting.Tests;

/// <summary>
/// A generic host with KmsBackup registered on the embedded defaults over an in-memory file system, a fake
/// clock and fake logging; the scheduler's ticks are read one by one, so a test moves time a tick at a time.
/// </summary>
public sealed class HostHarness : IAsyncDisposable
{
    public const string Owner = "acct-owner";
    public const string Region = "cn-hangzhou";
    public static readonly DateTimeOffset Start = new(2026, 5, 1, 9, 0, 0, TimeSpan.Zero);
    public static readonly TimeSpan Tick = TimeSpan.FromMinutes(5);

    private readonly Channel<BackupSchedulerTickEventArgs> _ticks = Channel.CreateUnbounded<BackupSchedulerTickEventArgs>();
    private bool _started;

    private HostHarness(IHost host, FakeTimeProvider clock, MockFileSystem files)
    {
        Host = host;
        Clock = clock;
        Files = files;
        Scheduler = host.Services.GetRequiredService<BackupSchedulerService>();
        Scheduler.TickCompleted += (_, tick) => _ticks.Writer.TryWrite(tick);
    }

    public IHost Host { get; }

    public IServiceProvider Services => Host.Services;

    public FakeTimeProvider Clock { get; }

    public MockFileSystem Files { get; }

    public BackupSchedulerService Scheduler { get; }

    public FakeLogCollector Logs => Services.GetFakeLogCollector();

    public EmbeddedKeyManagementService Kms => (EmbeddedKeyManagementService)Services.GetRequiredService<InstanceGateway>();

    public static HostBuilderResult Build(Action<KmsBackupOptions>? configure = null, Action<IServiceCollection>? services = null, FakeTimeProvider? clock = null, MockFileSystem? files = null)
    {
        clock ??= new FakeTimeProvider(Start);
        files ??= new MockFileSystem();
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.SetMinimumLevel(LogLevel.Trace);
        builder.Services.AddFakeLogging();
        builder.Services.AddMetrics();

        // Registered before AddKmsBackup: its TryAdd defaults step aside.
        builder.Services.AddSingleton<TimeProvider>(clock);
        builder.Services.AddSingleton<IFileSystem>(files);
        builder.Services.AddKmsBackup(o =>
        {
            o.DataPath = "/data";
            o.Client.LeaseHolder = "test-host";
            o.Scheduler.Tick = Tick;
            configure?.Invoke(o);
        }).UseEmbeddedKeyManagementService();
        services?.Invoke(builder.Services);
        return new HostBuilderResult(builder.Build(), clock, files);
    }

    public static async Task<HostHarness> StartAsync(Action<KmsBackupOptions>? configure = null, Action<IServiceCollection>? services = null)
    {
        var built = Build(configure, services);
        var harness = new HostHarness(built.Host, built.Clock, built.Files);
        await built.Host.StartAsync();
        harness._started = true;
        return harness;
    }

    /// <summary>Creates the harness without starting the host, so that a test can set up data first.</summary>
    public static HostHarness Create(Action<KmsBackupOptions>? configure = null, Action<IServiceCollection>? services = null)
    {
        var built = Build(configure, services);
        return new HostHarness(built.Host, built.Clock, built.Files);
    }

    public async Task StartHostAsync()
    {
        await Host.StartAsync();
        _started = true;
    }

    public ValueTask<BackupClient> ClientAsync(string? name = null) => Services.GetRequiredService<BackupClientProvider>().GetClientAsync(name);

    /// <summary>The next tick the scheduler completes (the first comes right after start).</summary>
    public async Task<BackupSchedulerTickEventArgs> NextTickAsync() =>
        await _ticks.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(60));

    /// <summary>Moves the clock one tick on and waits for the scheduler's tick.</summary>
    public async Task<BackupSchedulerTickEventArgs> AdvanceAsync()
    {
        Clock.Advance(Tick);
        return await NextTickAsync();
    }

    public Task<InstanceDescription> CreateInstanceAsync(string id, string region = Region) =>
        Kms.CreateInstanceAsync(new EmbeddedInstanceSpec(id, InstanceKind.Software, region, Owner) { CreatedAt = Clock.GetUtcNow().AddDays(-1) });

    public async ValueTask DisposeAsync()
    {
        if (_started)
        {
            await Host.StopAsync();
        }

        Host.Dispose();
    }
}

public sealed record HostBuilderResult(IHost Host, FakeTimeProvider Clock, MockFileSystem Files);
