using Microsoft.Extensions.Logging;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.IO.Abstractions;
using System.Text;
using KmsBackup.Diagnostics;
using KmsBackup.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace KmsBackup.Hosting.Tests;

/// <summary>Metrics, traces, logs and health: what they report, and that no secret is ever in them.</summary>
public class ObservabilityTests
{
    [Fact]
    public async Task Runs_failures_bytes_items_duration_and_lag_are_measured_with_their_kinds()
    {
        await using var h = HostHarness.Create(services: s => s.AddKmsBackup().UseStore(p =>
            new FlakyStore(new FileSystemBackupStore(p.GetRequiredService<IFileSystem>(), "/data/store", p.GetRequiredService<TimeProvider>()))));
        var meters = h.Services.GetRequiredService<IMeterFactory>();
        using var runs = new MetricCollector<long>(meters, KmsBackupDiagnostics.MeterName, KmsBackupDiagnostics.RunsInstrument);
        using var failures = new MetricCollector<long>(meters, KmsBackupDiagnostics.MeterName, KmsBackupDiagnostics.FailuresInstrument);
        using var bytes = new MetricCollector<long>(meters, KmsBackupDiagnostics.MeterName, KmsBackupDiagnostics.BytesInstrument);
        using var items = new MetricCollector<long>(meters, KmsBackupDiagnostics.MeterName, KmsBackupDiagnostics.ItemsInstrument);
        using var duration = new MetricCollector<double>(meters, KmsBackupDiagnostics.MeterName, KmsBackupDiagnostics.DurationInstrument);
        using var lag = new MetricCollector<double>(meters, KmsBackupDiagnostics.MeterName, KmsBackupDiagnostics.LagInstrument);

        await h.CreateInstanceAsync("kst-a");
        await h.Kms.GenerateKeyAsync("kst-a", "orders", HostHarness.Owner);
        await h.Kms.GenerateKeyAsync("kst-a", "payments", HostHarness.Owner);
        await (await h.ClientAsync()).OnInstanceEnabledAsync("kst-a");
        await h.StartHostAsync();
        await h.NextTickAsync();
        h.Clock.Advance(TimeSpan.FromMinutes(7)); // two minutes late for the 09:05 incremental
        await h.NextTickAsync();
        var store = (FlakyStore)h.Services.GetRequiredService<BackupStore>();
        store.FailWrites = true;
        await h.AdvanceAsync();

        var committed = runs.GetMeasurementSnapshot();
        Assert.Equal(2, committed.Count);
        Assert.Equal(("automatic", "full", "first_full"), TagsOf(committed[0].Tags));
        Assert.Equal(("automatic", "incremental", "incremental"), TagsOf(committed[1].Tags));
        Assert.True(bytes.GetMeasurementSnapshot()[0].Value > 0);
        Assert.Equal(2, items.GetMeasurementSnapshot()[0].Value);
        Assert.Equal([0d, 120d], lag.GetMeasurementSnapshot().Select(m => m.Value));
        var failure = Assert.Single(failures.GetMeasurementSnapshot());
        Assert.Equal("StoreUnavailable", failure.Tags[KmsBackupDiagnostics.ErrorTypeTag]);
        Assert.Equal("incremental", failure.Tags[KmsBackupDiagnostics.RunKindTag]);
        Assert.Equal(3, duration.GetMeasurementSnapshot().Count);
    }

    [Fact]
    public async Task Backup_runs_restores_downloads_and_uploads_are_traced()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = Listen(spans);
        await using var h = HostHarness.Create();
        var client = await h.ClientAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.CreateInstanceAsync("kst-new");
        await h.Kms.GenerateKeyAsync("kst-a", "orders", HostHarness.Owner);
        var backup = (await client.OnInstanceEnabledAsync("kst-a"))!;
        var today = DateOnly.FromDateTime(HostHarness.Start.UtcDateTime);

        using var file = new MemoryStream();
        using var download = await client.DownloadAsync(HostHarness.Owner, backup.Id, today, file);
        file.Position = 0;
        var uploaded = await client.UploadAsync(HostHarness.Owner, file, download.DataKey.Span.ToArray(), "copy");
        await h.Kms.DeleteKeyAsync("kst-a", "orders");
        var request = new RestoreRequest { CallerAccount = HostHarness.Owner, BackupId = backup.Id, TargetInstanceId = "kst-new", BackupDate = today, AllItems = true };
        await client.PlanRestoreAsync(request);
        await client.RestoreAsync(request);
        await Assert.ThrowsAsync<RestoreException>(() => client.RestoreAsync(request with { OperationId = null, TargetInstanceId = "kst-a" }));

        var mine = spans.Where(s => s.GetTagItem(KmsBackupDiagnostics.BackupIdTag) is string id && (id == backup.Id || id == uploaded.Id)).ToList();
        var run = Assert.Single(mine, s => s.OperationName == KmsBackupDiagnostics.BackupRunActivity);
        Assert.Equal("full", run.GetTagItem(KmsBackupDiagnostics.RunKindTag));
        Assert.Single(mine, s => s.OperationName == KmsBackupDiagnostics.DownloadActivity);
        Assert.Single(mine, s => s.OperationName == KmsBackupDiagnostics.UploadActivity && Equals(s.GetTagItem(KmsBackupDiagnostics.BackupIdTag), uploaded.Id));
        Assert.Single(mine, s => s.OperationName == KmsBackupDiagnostics.RestorePlanActivity);
        var restores = mine.Where(s => s.OperationName == KmsBackupDiagnostics.RestoreActivity).ToList();
        Assert.Equal(2, restores.Count);
        Assert.Contains(restores, s => s.Status == ActivityStatusCode.Unset && Equals(s.GetTagItem(KmsBackupDiagnostics.RestoredItemsTag), 1));
        Assert.Contains(restores, s => s.Status == ActivityStatusCode.Error && s.GetTagItem(KmsBackupDiagnostics.ErrorTypeTag) is string);
    }

    [Fact]
    public async Task Key_rotation_and_each_rekey_step_are_traced_once_by_the_client_and_a_step_with_nothing_to_do_is_not()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = Listen(spans);
        await using var h = HostHarness.Create();
        var client = await h.ClientAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.Kms.GenerateKeyAsync("kst-a", "orders", HostHarness.Owner);
        await client.OnInstanceEnabledAsync("kst-a");
        using var test = new Activity("test").Start(); // spans of this test only: other tests run in parallel

        Assert.Null(await client.RekeyInBackgroundAsync(4)); // no rotation yet: nothing to do, no span
        await client.RotateRepositoryKeyAsync();
        var step = await client.RekeyInBackgroundAsync(4);
        await client.RekeyAsync();

        Assert.NotNull(step);
        var mine = spans.Where(s => s.TraceId == test.TraceId && s != test).ToList();
        Assert.Single(mine, s => s.OperationName == KmsBackupDiagnostics.RotateKeyActivity);
        Assert.Equal(2, mine.Count(s => s.OperationName == KmsBackupDiagnostics.RekeyActivity));
        Assert.Equal(3, mine.Count);
        Assert.All(mine, s => Assert.Equal(test.SpanId, s.ParentSpanId));
    }

    [Fact]
    public async Task Logs_and_traces_never_hold_a_secret_value_key_material_or_a_data_key()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = Listen(spans);
        await using var h = HostHarness.Create(services: s => s.AddKmsBackup().UseStore(p =>
            new FlakyStore(new FileSystemBackupStore(p.GetRequiredService<IFileSystem>(), "/data/store", p.GetRequiredService<TimeProvider>()))));
        var client = await h.ClientAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.CreateInstanceAsync("kst-new", "cn-shanghai"); // a copy to another region (rule R1): names are unique per region
        var secretValue = "correct-horse-battery-staple-7f3a9c"u8.ToArray();
        var key = await h.Kms.GenerateKeyAsync("kst-a", "orders", HostHarness.Owner);
        await h.Kms.StoreSecretAsync("kst-a", "db-password", "orders", secretValue, HostHarness.Owner);
        var backup = (await client.OnInstanceEnabledAsync("kst-a"))!;
        await h.StartHostAsync();
        await h.NextTickAsync();
        await h.Kms.RotateKeyAsync("kst-a", "orders");
        await h.Kms.PutSecretValueAsync("kst-a", "db-password", "second-value-of-the-secret-11"u8.ToArray());
        await h.AdvanceAsync();
        ((FlakyStore)h.Services.GetRequiredService<BackupStore>()).FailWrites = true;
        await h.AdvanceAsync();
        ((FlakyStore)h.Services.GetRequiredService<BackupStore>()).FailWrites = false;
        await h.AdvanceAsync();

        var today = DateOnly.FromDateTime(HostHarness.Start.UtcDateTime);
        using var file = new MemoryStream();
        using var download = await client.DownloadAsync(HostHarness.Owner, backup.Id, today, file);
        var dataKey = download.DataKey.Span.ToArray();
        file.Position = 0;
        await client.UploadAsync(HostHarness.Owner, file, dataKey, "copy");
        var wrongKey = (byte[])dataKey.Clone();
        wrongKey[0] ^= 1;
        file.Position = 0;
        await Assert.ThrowsAnyAsync<BackupException>(() => client.UploadAsync(HostHarness.Owner, file, wrongKey, "bad"));
        await client.RestoreAsync(new RestoreRequest { CallerAccount = HostHarness.Owner, BackupId = backup.Id, TargetInstanceId = "kst-new", BackupDate = today, AllItems = true });

        var material = (await h.Kms.GetKeyAsync("kst-a", "orders"))!.Versions.Select(v => v.Material!.Span.ToArray()).Append(key.CurrentVersion.Material!.Span.ToArray()).ToList();
        var forbidden = new List<string> { "correct-horse-battery-staple-7f3a9c", "second-value-of-the-secret-11" };
        foreach (var bytes in material.Append(dataKey).Append(secretValue))
        {
            forbidden.Add(Convert.ToHexString(bytes));
            forbidden.Add(Convert.ToHexStringLower(bytes));
            forbidden.Add(Convert.ToBase64String(bytes));
        }

        var logs = h.Logs.GetSnapshot();
        Assert.True(logs.Count > 10, "the scenario should have logged runs, failures, a download, uploads and a restore");
        var text = new StringBuilder();
        foreach (var record in logs)
        {
            text.AppendLine(record.Message).AppendLine(record.Exception?.ToString());
            foreach (var (name, value) in record.StructuredState ?? [])
            {
                text.Append(name).Append('=').AppendLine(value);
            }
        }

        foreach (var span in spans)
        {
            text.AppendLine(span.DisplayName).AppendLine(span.StatusDescription);
            foreach (var (name, value) in span.TagObjects)
            {
                text.Append(name).Append('=').AppendLine(Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        var all = text.ToString();
        Assert.Contains(backup.Id, all, StringComparison.Ordinal);
        Assert.All(forbidden, secret => Assert.DoesNotContain(secret, all, StringComparison.Ordinal));
        Assert.Contains(logs, r => r.Id.Id == 1201); // the download was logged, without its key
        Assert.Contains(logs, r => r.Id.Id == 1203); // the refused upload too
    }

    [Fact]
    public async Task The_health_check_is_degraded_while_a_clock_far_ahead_of_the_store_holds_deletions()
    {
        await using var h = HostHarness.Create(o => o.Client.MaximumClockLead = TimeSpan.FromHours(6));
        var client = await h.ClientAsync();
        var check = ActivatorUtilities.CreateInstance<KmsBackupHealthCheck>(h.Services);
        var context = new HealthCheckContext { Registration = new HealthCheckRegistration("kmsbackup", check, HealthStatus.Unhealthy, null) };
        await client.CreateDefaultBackupAsync(HostHarness.Owner); // a commit: the store records its time
        Assert.Equal(HealthStatus.Healthy, (await check.CheckHealthAsync(context)).Status);

        // The host's clock jumps 7 hours, past the 6 the options allow, with no run recorded in between.
        h.Clock.Advance(TimeSpan.FromHours(7));
        var held = await check.CheckHealthAsync(context);
        Assert.Equal(HealthStatus.Degraded, held.Status);
        Assert.Contains("holds every deletion", held.Description, StringComparison.Ordinal);
        Assert.Contains("kmsbackup clock confirm", held.Description, StringComparison.Ordinal);
        Assert.True((await client.PruneAsync()).DeletionsHeld);
        Assert.Contains(h.Logs.GetSnapshot(), r => r.Id.Id == 1004 && r.Level == LogLevel.Warning);

        await client.ConfirmClockAsync();
        Assert.Equal(HealthStatus.Healthy, (await check.CheckHealthAsync(context)).Status);
    }

    [Fact]
    [Trait("Rule", "L4")]
    public async Task The_health_report_and_check_show_failures_lag_and_expiry_ahead()
    {
        await using var h = HostHarness.Create(services: s => s.AddKmsBackup().UseStore(p =>
            new FlakyStore(new FileSystemBackupStore(p.GetRequiredService<IFileSystem>(), "/data/store", p.GetRequiredService<TimeProvider>()))));
        var client = await h.ClientAsync();
        var check = ActivatorUtilities.CreateInstance<KmsBackupHealthCheck>(h.Services);
        var context = new HealthCheckContext { Registration = new HealthCheckRegistration("kmsbackup", check, HealthStatus.Unhealthy, null) };
        await h.CreateInstanceAsync("kst-a");
        await h.CreateInstanceAsync("kst-b");
        var automatic = (await client.OnInstanceEnabledAsync("kst-a"))!;
        var purchased = (await client.PurchaseBackupsAsync(HostHarness.Owner, new PurchaseOrder(HostHarness.Region, 30, PurchaseTerm.FromMonths(1))))[0];
        await client.EnableBackupAsync(HostHarness.Owner, purchased.Id, "kst-b", InstanceKind.Software);

        var healthy = await check.CheckHealthAsync(context);
        Assert.Equal(HealthStatus.Healthy, healthy.Status);
        Assert.Equal(2, healthy.Data.Count);

        // Ten minutes without a tick: both backups lag; past the maximum lag the check is unhealthy.
        h.Clock.Advance(TimeSpan.FromMinutes(10));
        var report = await client.GetHealthAsync();
        Assert.All(report, b => Assert.Equal(TimeSpan.FromMinutes(5), b.Lag));
        h.Clock.Advance(TimeSpan.FromMinutes(11));
        Assert.Equal(HealthStatus.Unhealthy, (await check.CheckHealthAsync(context)).Status);

        // A failed run: degraded; three in a row: unhealthy, naming the error.
        (await client.RunDueBackupsAsync()).ThrowIfAnyFailed();
        var store = (FlakyStore)h.Services.GetRequiredService<BackupStore>();
        store.FailWrites = true;
        h.Clock.Advance(TimeSpan.FromMinutes(5));
        await Assert.ThrowsAsync<AggregateException>(async () => (await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        var degraded = await check.CheckHealthAsync(context);
        Assert.Equal(HealthStatus.Degraded, degraded.Status);
        for (var i = 0; i < 2; i++)
        {
            h.Clock.Advance(TimeSpan.FromMinutes(5));
            await Assert.ThrowsAsync<AggregateException>(async () => (await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        }

        var unhealthy = await check.CheckHealthAsync(context);
        Assert.Equal(HealthStatus.Unhealthy, unhealthy.Status);
        Assert.Contains("3 times in a row (StoreUnavailable)", unhealthy.Description, StringComparison.Ordinal);
        var health = (await client.GetHealthAsync()).Single(b => b.BackupId == automatic.Id);
        Assert.Equal((3, "StoreUnavailable"), (health.ConsecutiveFailures, health.LastErrorType));
        Assert.NotNull(health.LastErrorMessage);
        Assert.Equal(h.Clock.GetUtcNow().AddMinutes(-15), health.LastSuccessAt!.Value, TimeSpan.FromSeconds(1));

        // Back to normal, then three weeks on: the purchased backup expires within a week.
        store.FailWrites = false;
        (await client.RunDueBackupsAsync()).ThrowIfAnyFailed();
        Assert.Equal(HealthStatus.Healthy, (await check.CheckHealthAsync(context)).Status);
        h.Clock.Advance(TimeSpan.FromDays(25));
        (await client.RunDueBackupsAsync()).ThrowIfAnyFailed();
        var expiring = await check.CheckHealthAsync(context);
        Assert.Equal(HealthStatus.Degraded, expiring.Status);
        Assert.Contains($"'{purchased.Id}' expires in", expiring.Description, StringComparison.Ordinal);
        var expiry = (await client.GetHealthAsync()).Single(b => b.BackupId == purchased.Id);
        Assert.True(expiry.ExpiresIn > TimeSpan.Zero && expiry.ExpiresIn < TimeSpan.FromDays(7));
    }

    private static (object?, object?, object?) TagsOf(IReadOnlyDictionary<string, object?> tags) =>
        (tags[KmsBackupDiagnostics.BackupKindTag], tags[KmsBackupDiagnostics.RunKindTag], tags[KmsBackupDiagnostics.RunReasonTag]);

    private static ActivityListener Listen(ConcurrentQueue<Activity> spans)
    {
        var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == KmsBackupDiagnostics.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        return listener;
    }
}
