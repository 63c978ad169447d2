using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace KmsBackup.Hosting.Tests;

/// <summary>Options are validated once, when the host starts: a host with an invalid value does not start, and the error names the option.</summary>
public class OptionsValidationTests
{
    [Fact]
    [Trait("Rule", "W1")]
    public async Task An_unknown_time_zone_in_configuration_stops_the_host_at_start_and_the_error_names_the_setting_and_the_zone()
    {
        var configuration = Configuration(("KmsBackup:Client:TimeZone", "Mars/Olympus_Mons"));
        using var host = HostHarness.Build(services: s => s.AddOptions<KmsBackupOptions>().Bind(configuration.GetSection("KmsBackup"))).Host;

        var error = await Assert.ThrowsAnyAsync<Exception>(() => host.StartAsync());

        Assert.Contains("KmsBackup:Client:TimeZone", error.Message, StringComparison.Ordinal);
        var cause = Assert.IsType<BackupException>(error.InnerException);
        Assert.Equal(BackupErrorCode.UnknownTimeZone, cause.Code);
        Assert.Contains("Mars/Olympus_Mons", cause.Message, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "W1")]
    public async Task A_time_zone_in_configuration_reaches_the_backups_the_client_creates()
    {
        var configuration = Configuration(("KmsBackup:Client:TimeZone", "Asia/Shanghai"));
        await using var h = await HostHarness.StartAsync(services: s => s.AddOptions<KmsBackupOptions>().Bind(configuration.GetSection("KmsBackup")));
        await h.CreateInstanceAsync("kst-tz");

        var backup = await (await h.ClientAsync()).OnInstanceEnabledAsync("kst-tz");

        Assert.NotNull(backup);
        Assert.Equal("Asia/Shanghai", backup.TimeZone.Id);
    }

    [Fact]
    public async Task Setting_the_clock_in_the_options_instead_of_the_container_stops_the_host_at_start_and_says_where_it_belongs()
    {
        using var host = HostHarness.Build(o => o.Client.TimeProvider = new Microsoft.Extensions.Time.Testing.FakeTimeProvider()).Host;

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("Client.TimeProvider", error.Message, StringComparison.Ordinal);
        Assert.Contains("service container", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Client.LeaseDuration")]
    [InlineData("Client.LeaseHolder")]
    [InlineData("Client.MaximumClockLead")]
    [InlineData("Scheduler.Tick")]
    [InlineData("Client.Schedule.IncrementalInterval")]
    [InlineData("Health.UnhealthyAfterFailures")]
    [InlineData("DataPath")]
    [Trait("Rule", "S6")]
    public async Task An_option_out_of_range_stops_the_host_at_start_and_the_error_names_it(string option)
    {
        using var host = HostHarness.Build(o =>
        {
            switch (option)
            {
                case "Client.LeaseDuration": o.Client.LeaseDuration = TimeSpan.FromHours(2); break;
                case "Client.LeaseHolder": o.Client.LeaseHolder = ""; break;
                case "Client.MaximumClockLead": o.Client.MaximumClockLead = TimeSpan.FromSeconds(5); break;
                case "Scheduler.Tick": o.Scheduler.Tick = TimeSpan.Zero; break;
                case "Client.Schedule.IncrementalInterval": o.Client.Schedule = new() { IncrementalInterval = TimeSpan.FromHours(13) }; break;
                case "Health.UnhealthyAfterFailures": o.Health.UnhealthyAfterFailures = 0; break;
                case "DataPath": o.DataPath = "  "; break;
            }
        }).Host;

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains(option.StartsWith("Client.", StringComparison.Ordinal) ? option : option.Split('.')[^1], error.Message, StringComparison.Ordinal);
        Assert.Equal(typeof(KmsBackupOptions), error.OptionsType);
    }

    [Fact]
    public async Task A_named_instance_is_validated_at_start_too()
    {
        using var host = HostHarness.Build(services: s => s.AddKmsBackup("east", o => o.Client.LeaseDuration = TimeSpan.Zero)).Host;

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Equal("east", error.OptionsName);
        Assert.Contains("Client.LeaseDuration", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Valid_options_start_and_stop()
    {
        await using var h = await HostHarness.StartAsync(o => o.Client.TimeZone = BackupTimeZone.FromId("Asia/Shanghai"));
        var tick = await h.NextTickAsync();
        Assert.Null(tick.Error);
    }

    [Fact]
    public void An_invalid_instance_name_is_refused_at_registration()
    {
        var services = new ServiceCollection();
        var error = Assert.Throws<ArgumentException>(() => services.AddKmsBackup("../escape", _ => { }));
        Assert.Contains("../escape", error.Message, StringComparison.Ordinal);
    }

    private static IConfiguration Configuration(params (string Key, string Value)[] settings) =>
        new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => KeyValuePair.Create(s.Key, (string?)s.Value))).Build();
}
