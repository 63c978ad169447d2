using System.IO.Abstractions;
using KmsBackup.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace KmsBackup.Hosting.Tests;

/// <summary>AddKmsBackup: defaults, named instances, and parts a host replaces.</summary>
public class DependencyInjectionTests
{
    [Fact]
    public async Task The_defaults_are_the_system_clock_the_real_file_system_and_no_gateway()
    {
        var services = new ServiceCollection();
        services.AddKmsBackup();
        await using var provider = services.BuildServiceProvider();

        Assert.Same(TimeProvider.System, provider.GetRequiredService<TimeProvider>());
        Assert.IsType<FileSystem>(provider.GetRequiredService<IFileSystem>());
        Assert.Contains(provider.GetServices<IHostedService>(), s => s is BackupSchedulerService);
        Assert.Equal([""], provider.GetRequiredService<BackupClientProvider>().Names);

        // No key management service is chosen for the host: the embedded one stores instances in local files,
        // for development and tests, and a host that forgot its own must not quietly get it.
        Assert.Null(provider.GetService<InstanceGateway>());
    }

    [Fact]
    public async Task A_host_whose_instance_has_no_gateway_fails_to_start_naming_the_instance_and_the_remedy()
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddSingleton<IFileSystem>(new System.IO.Abstractions.TestingHelpers.MockFileSystem());
        builder.Services.AddKmsBackup(o => o.DataPath = "/data").UseEmbeddedKeyManagementService();
        builder.Services.AddKmsBackup("east", o => o.DataPath = "/east");
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());
        Assert.Contains("'east' has no InstanceGateway", error.Message, StringComparison.Ordinal);
        Assert.Contains("UseInstanceGateway", error.Message, StringComparison.Ordinal);
        Assert.Contains("UseEmbeddedKeyManagementService", error.Message, StringComparison.Ordinal);
        var clients = host.Services.GetRequiredService<BackupClientProvider>();
        Assert.Contains("'east' has no InstanceGateway", (await Assert.ThrowsAsync<InvalidOperationException>(async () => await clients.GetClientAsync("east"))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Named_instances_have_their_own_options_parts_and_client()
    {
        await using var h = HostHarness.Create(services: s =>
        {
            s.AddKmsBackup("east", o => { o.DataPath = "/east"; o.Client.TimeZone = BackupTimeZone.FromId("Asia/Shanghai"); }).UseEmbeddedKeyManagementService();
            s.AddKmsBackup("west", o => { o.DataPath = "/west"; o.Client.TimeZone = BackupTimeZone.FromId("America/Los_Angeles"); }).UseEmbeddedKeyManagementService();
        });
        var clients = h.Services.GetRequiredService<BackupClientProvider>();

        Assert.Equal(["", "east", "west"], clients.Names.Order(StringComparer.Ordinal));
        var east = await clients.GetClientAsync("east");
        var west = await clients.GetClientAsync("west");
        Assert.NotSame(east, west);
        Assert.Same(east, await clients.GetClientAsync("east"));
        Assert.NotSame(east, await clients.GetClientAsync());
        Assert.NotSame(h.Services.GetRequiredKeyedService<InstanceGateway>("east"), h.Services.GetRequiredKeyedService<InstanceGateway>("west"));

        var eastBackup = await east.CreateDefaultBackupAsync(HostHarness.Owner);
        var westBackup = await west.CreateDefaultBackupAsync(HostHarness.Owner);
        Assert.Equal("Asia/Shanghai", eastBackup.TimeZone.Id);
        Assert.Equal("America/Los_Angeles", westBackup.TimeZone.Id);
        Assert.Contains(h.Files.AllFiles, f => f.StartsWith("/east/store/", StringComparison.Ordinal));
        Assert.Contains(h.Files.AllFiles, f => f.StartsWith("/west/store/", StringComparison.Ordinal));
        Assert.Contains(h.Files.AllFiles, f => f == "/east/keys/repository.key");

        var unknown = await Assert.ThrowsAsync<ArgumentException>(async () => await clients.GetClientAsync("north"));
        Assert.Contains("'north'", unknown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_host_registration_made_before_AddKmsBackup_replaces_the_default_clock()
    {
        // The harness registers its fake clock and in-memory file system before AddKmsBackup.
        await using var h = HostHarness.Create();
        var client = await h.ClientAsync();

        var backup = await client.CreateDefaultBackupAsync(HostHarness.Owner);

        Assert.Same(h.Clock, h.Services.GetRequiredService<TimeProvider>());
        Assert.Equal(HostHarness.Start, backup.CreatedAt);
        Assert.Contains(h.Files.AllFiles, f => f.StartsWith("/data/store/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_store_registered_after_AddKmsBackup_replaces_the_default_store()
    {
        await using var h = HostHarness.Create(services: s =>
            s.AddSingleton<BackupStore>(p => new FlakyStore(new FileSystemBackupStore(p.GetRequiredService<IFileSystem>(), "/elsewhere", p.GetRequiredService<TimeProvider>()))));
        var client = await h.ClientAsync();

        await client.CreateDefaultBackupAsync(HostHarness.Owner);

        Assert.True(((FlakyStore)h.Services.GetRequiredService<BackupStore>()).Writes > 0);
        Assert.DoesNotContain(h.Files.AllFiles, f => f.StartsWith("/data/store/", StringComparison.Ordinal));
        Assert.Contains(h.Files.AllFiles, f => f.StartsWith("/elsewhere/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_builder_replaces_a_named_instances_store_and_key_provider()
    {
        FlakyStore? store = null;
        KeyFileRepositoryKeyProvider? keys = null;
        await using var h = HostHarness.Create(services: s => s.AddKmsBackup("east", o => o.DataPath = "/east")
            .UseEmbeddedKeyManagementService()
            .UseStore(p => store = new FlakyStore(new FileSystemBackupStore(p.GetRequiredService<IFileSystem>(), "/east-store", p.GetRequiredService<TimeProvider>())))
            .UseRepositoryKeyProvider(p => keys = KeyFileRepositoryKeyProvider.OpenOrCreateAsync(p.GetRequiredService<IFileSystem>(), "/vault/east.key").GetAwaiter().GetResult()));

        var client = await h.ClientAsync("east");
        await client.CreateDefaultBackupAsync(HostHarness.Owner);

        Assert.NotNull(store);
        Assert.True(store.Writes > 0);
        Assert.NotNull(keys);
        Assert.Contains(h.Files.AllFiles, f => f == "/vault/east.key");
        Assert.DoesNotContain(h.Files.AllFiles, f => f == "/east/keys/repository.key");
        Assert.Same(store, h.Services.GetRequiredKeyedService<BackupStore>("east"));
        keys.Dispose();
    }

    [Fact]
    public void Options_bind_from_configuration()
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["KmsBackup:Client:TimeZone"] = "Asia/Shanghai",
            ["KmsBackup:Client:Schedule:IncrementalInterval"] = "00:10:00",
            ["KmsBackup:Client:Schedule:DailyFullTime"] = "02:30",
            ["KmsBackup:Client:AutomaticBackupCutoffs:HardwareCreatedOnOrAfter"] = "2026-06-01T00:00:00Z",
            ["KmsBackup:Client:LeaseDuration"] = "00:02:00",
            ["KmsBackup:Scheduler:Tick"] = "00:00:30",
            ["KmsBackup:StorePath"] = "/shared/store",
        });
        builder.Services.AddKmsBackup();
        builder.Services.AddOptions<KmsBackupOptions>().Bind(builder.Configuration.GetSection("KmsBackup"));
        using var host = builder.Build();

        var options = host.Services.GetRequiredService<IOptionsMonitor<KmsBackupOptions>>().Get(Options.DefaultName);

        Assert.Equal(BackupTimeZone.FromId("Asia/Shanghai"), options.Client.TimeZone);
        Assert.Equal(TimeSpan.FromMinutes(10), options.Client.Schedule.IncrementalInterval);
        Assert.Equal(new TimeOnly(2, 30), options.Client.Schedule.DailyFullTime);
        Assert.Equal(new DateTimeOffset(2026, 6, 1, 0, 0, 0, TimeSpan.Zero), options.Client.AutomaticBackupCutoffs.HardwareCreatedOnOrAfter);
        Assert.Equal(TimeSpan.FromMinutes(2), options.Client.LeaseDuration);

        // Binding set properties of per-instance defaults, not of the shared ones.
        Assert.Equal(BackupSchedulePolicy.Default, new BackupClientOptions().Schedule);
        Assert.Equal(AutomaticBackupCutoffs.Default, new BackupClientOptions().AutomaticBackupCutoffs);
        Assert.Equal(TimeSpan.FromMinutes(5), BackupSchedulePolicy.Default.IncrementalInterval);
        Assert.Equal(TimeSpan.FromSeconds(30), options.Scheduler.Tick);
        Assert.Equal("/shared/store", options.StorePath);
    }

    [Fact]
    public async Task A_client_that_fails_to_open_is_opened_again_on_the_next_call()
    {
        var fail = true;
        await using var h = HostHarness.Create(services: s => s.AddKmsBackup().UseStore(p =>
        {
            var flaky = new FlakyStore(new FileSystemBackupStore(p.GetRequiredService<IFileSystem>(), "/data/store", p.GetRequiredService<TimeProvider>()));
            flaky.FailWrites = fail;
            return flaky;
        }));
        var store = (FlakyStore)h.Services.GetRequiredService<BackupStore>();

        var error = await Assert.ThrowsAsync<BackupException>(async () => await h.ClientAsync());
        Assert.Equal(BackupErrorCode.StoreUnavailable, error.Code);

        store.FailWrites = fail = false;
        Assert.NotNull(await h.ClientAsync());
    }
}
