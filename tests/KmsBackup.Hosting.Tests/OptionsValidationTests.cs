using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace KmsBackup.Hosting.Tests;

/// <summary>Options are validated once, when the host starts: a host with an invalid value does not start, and the error names the option.</summary>
public class OptionsValidationTests
{
    [Fact]
    [Trait("Rule", "W1")]
    public async Task An_unknown_time_zone_stops_the_host_at_start_and_the_error_names_it()
    {
        using var host = HostHarness.Build(o => o.TimeZone = "Mars/Olympus_Mons").Host;

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("Mars/Olympus_Mons", error.Message, StringComparison.Ordinal);
        Assert.Contains("TimeZone", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("LeaseDuration")]
    [InlineData("LeaseHolder")]
    [InlineData("Scheduler.Tick")]
    [InlineData("Schedule.IncrementalInterval")]
    [InlineData("Health.UnhealthyAfterFailures")]
    [InlineData("DataPath")]
    [Trait("Rule", "S6")]
    public async Task An_option_out_of_range_stops_the_host_at_start_and_the_error_names_it(string option)
    {
        using var host = HostHarness.Build(o =>
        {
            switch (option)
            {
                case "LeaseDuration": o.LeaseDuration = TimeSpan.FromHours(2); break;
                case "LeaseHolder": o.LeaseHolder = ""; break;
                case "Scheduler.Tick": o.Scheduler.Tick = TimeSpan.Zero; break;
                case "Schedule.IncrementalInterval": o.Schedule.IncrementalInterval = TimeSpan.FromHours(13); break;
                case "Health.UnhealthyAfterFailures": o.Health.UnhealthyAfterFailures = 0; break;
                case "DataPath": o.DataPath = "  "; break;
            }
        }).Host;

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains(option.Split('.')[^1], error.Message, StringComparison.Ordinal);
        Assert.Equal(typeof(KmsBackupOptions), error.OptionsType);
    }

    [Fact]
    public async Task A_named_instance_is_validated_at_start_too()
    {
        using var host = HostHarness.Build(services: s => s.AddKmsBackup("east", o => o.TimeZone = "Nowhere/Special")).Host;

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Equal("east", error.OptionsName);
        Assert.Contains("Nowhere/Special", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Valid_options_start_and_stop()
    {
        await using var h = await HostHarness.StartAsync(o => o.TimeZone = "Asia/Shanghai");
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
}
