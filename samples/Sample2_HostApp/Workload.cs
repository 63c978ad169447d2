using KmsBackup;
using KmsBackup.Hosting;
using KmsBackup.DevelopmentKms;
using Microsoft.Extensions.Hosting;

namespace Sample2_HostApp;

/// <summary>
/// Plays the key management service's users: creates the instance <c>kst-sample</c> with a few keys and a
/// secret, enables it (which creates its automatic backup and runs the first full at once), then adds a key
/// and rotates another every half hour, so that the incrementals have something to carry.
/// </summary>
internal sealed class Workload(EmbeddedKeyManagementService kms, BackupClientProvider clients, TimeProvider clock, Timeline timeline) : BackgroundService
{
    public const string InstanceId = "kst-sample";
    public const string Owner = "acct-sample";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (await kms.GetInstanceAsync(InstanceId, stoppingToken) is null)
        {
            await kms.CreateInstanceAsync(new EmbeddedInstanceSpec(InstanceId, InstanceKind.Software, "cn-hangzhou", Owner) { CreatedAt = clock.GetUtcNow().AddDays(-1) }, stoppingToken);
            await kms.GenerateKeyAsync(InstanceId, "orders", Owner, cancellationToken: stoppingToken);
            await kms.GenerateKeyAsync(InstanceId, "payments", Owner, cancellationToken: stoppingToken);
            await kms.StoreSecretAsync(InstanceId, "db-password", "orders", "sample-secret-value"u8.ToArray(), Owner, cancellationToken: stoppingToken);
        }

        var client = await clients.GetClientAsync(cancellationToken: stoppingToken);
        if (await client.OnInstanceEnabledAsync(InstanceId, stoppingToken) is { } automatic)
        {
            timeline.Enabled(automatic);
        }

        for (var n = 1; !stoppingToken.IsCancellationRequested; n++)
        {
            await Task.Delay(TimeSpan.FromMinutes(30), clock, stoppingToken);
            await kms.GenerateKeyAsync(InstanceId, $"key-{n:D3}", Owner, cancellationToken: stoppingToken);
            await kms.RotateKeyAsync(InstanceId, "orders", stoppingToken);
        }
    }
}
