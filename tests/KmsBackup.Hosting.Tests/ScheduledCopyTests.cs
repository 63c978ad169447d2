using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace KmsBackup.Hosting.Tests;

/// <summary>Issue 17: the hosted scheduler copies every new point into a second registered instance on a schedule.</summary>
[Trait("Issue", "17")]
public class ScheduledCopyTests
{
    private static HostHarness WithCopy(Action<KmsBackupOptions>? configure = null, bool registerCopy = true) => HostHarness.Create(
        o =>
        {
            o.Copy.ToInstance = "copy";
            o.Copy.Interval = TimeSpan.FromMinutes(15);
            configure?.Invoke(o);
        },
        services =>
        {
            if (registerCopy)
            {
                services.AddKmsBackup("copy", o =>
                {
                    o.DataPath = "/copy-data";
                    o.Client.LeaseHolder = "test-host-copier";
                    o.Scheduler.Enabled = false; // a copy repository is written by copies only
                }).UseInstanceGateway(sp => sp.GetRequiredService<InstanceGateway>());
            }
        });

    [Fact]
    public async Task Every_interval_the_scheduler_copies_the_new_points_into_the_copy_instance_which_holds_the_same_points()
    {
        await using var h = WithCopy();
        var copies = Channel.CreateUnbounded<BackupSchedulerCopyEventArgs>();
        h.Scheduler.CopyCompleted += (_, e) => copies.Writer.TryWrite(e);
        await h.CreateInstanceAsync("kst-a");
        await h.Kms.GenerateKeyAsync("kst-a", "orders", HostHarness.Owner);
        var backup = (await (await h.ClientAsync()).OnInstanceEnabledAsync("kst-a"))!;
        await h.StartHostAsync();
        await h.NextTickAsync();
        var first = await copies.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Null(first.Error);
        Assert.Equal(("", "copy"), (first.InstanceName, first.DestinationName));
        Assert.Equal(1, first.Report!.PointsCopied);

        // Three 5-minute ticks make three incrementals; the copy 15 minutes after the first takes them.
        for (var i = 0; i < 3; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"key-{i}", HostHarness.Owner);
            await h.AdvanceAsync();
        }

        var second = await copies.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(second.Report!.IsComplete);
        Assert.Equal(3, second.Report.PointsCopied);
        Assert.False(copies.Reader.TryRead(out _));

        var source = await (await h.ClientAsync()).ListRecoveryPointsAsync(HostHarness.Owner, backup.Id, new DateOnly(2026, 5, 1));
        var copy = await (await h.ClientAsync("copy")).ListRecoveryPointsAsync(HostHarness.Owner, backup.Id, new DateOnly(2026, 5, 1));
        Assert.Equal(source.Select(p => (p.Sequence, p.TakenAt)), copy.Select(p => (p.Sequence, p.TakenAt)));
        Assert.True((await (await h.ClientAsync("copy")).VerifyAsync()).IsClean);
    }

    [Fact]
    public async Task A_copy_into_an_instance_that_is_not_registered_is_reported_and_the_backups_still_run()
    {
        await using var h = WithCopy(registerCopy: false);
        var copies = Channel.CreateUnbounded<BackupSchedulerCopyEventArgs>();
        h.Scheduler.CopyCompleted += (_, e) => copies.Writer.TryWrite(e);
        await h.CreateInstanceAsync("kst-a");
        await (await h.ClientAsync()).OnInstanceEnabledAsync("kst-a");
        await h.StartHostAsync();
        await h.NextTickAsync();
        var failed = await copies.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Null(failed.Report);
        Assert.Contains("not a registered KmsBackup instance", failed.Error!.Message, StringComparison.Ordinal);
        Assert.Single((await h.AdvanceAsync()).Runs);
    }

    [Theory]
    [InlineData("Copy.ToInstance")]
    [InlineData("Copy.Interval")]
    public async Task A_blank_copy_destination_or_an_interval_out_of_range_stops_the_host_at_start_naming_the_option(string option)
    {
        using var host = HostHarness.Build(o =>
        {
            if (option == "Copy.ToInstance")
            {
                o.Copy.ToInstance = " ";
            }
            else
            {
                o.Copy.Interval = TimeSpan.FromSeconds(1);
            }
        }).Host;

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains(option, error.Message, StringComparison.Ordinal);
    }
}
