using System.Globalization;
using KmsBackup.Diagnostics;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace KmsBackup.Hosting;

/// <summary>
/// A health check over every registered KmsBackup instance, from <see cref="BackupClient.GetHealthAsync"/>:
/// unhealthy when an instance cannot open, a backup failed <see cref="KmsBackupHealthOptions.UnhealthyAfterFailures"/>
/// times in a row, or it is more than <see cref="KmsBackupHealthOptions.MaximumLag"/> behind schedule; degraded
/// after a failure, when a purchased backup expires within <see cref="KmsBackupHealthOptions.ExpiryWarning"/>, or
/// while deletions are held because this host's clock is too far ahead of the store's (<see cref="BackupClient.GetStoreClockAsync"/>).
/// Register it with <c>services.AddHealthChecks().AddCheck&lt;KmsBackupHealthCheck&gt;("kmsbackup")</c>.
/// </summary>
public sealed class KmsBackupHealthCheck : IHealthCheck
{
    private readonly BackupClientProvider _clients;
    private readonly IOptionsMonitor<KmsBackupOptions> _options;

    /// <summary>Creates the check.</summary>
    /// <param name="clients">Gives each instance's client.</param>
    /// <param name="options">Each instance's options.</param>
    public KmsBackupHealthCheck(BackupClientProvider clients, IOptionsMonitor<KmsBackupOptions> options)
    {
        ArgumentNullException.ThrowIfNull(clients);
        ArgumentNullException.ThrowIfNull(options);
        _clients = clients;
        _options = options;
    }

    /// <summary>Checks every instance's backups.</summary>
    /// <param name="context">The check's registration.</param>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <returns>The worst status found, with one line per problem and one data entry per backup.</returns>
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var status = HealthStatus.Healthy;
        var problems = new List<string>();
        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var name in _clients.Names)
        {
            var limits = _options.Get(name).Health;
            var label = name.Length == 0 ? "default" : name;
            IReadOnlyList<BackupHealth> report;
            StoreClockStatus clock;
            try
            {
                var client = await _clients.GetClientAsync(name, cancellationToken).ConfigureAwait(false);
                report = await client.GetHealthAsync(cancellationToken).ConfigureAwait(false);
                clock = await client.GetStoreClockAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException and not OperationCanceledException)
            {
                status = context.Registration?.FailureStatus ?? HealthStatus.Unhealthy;
                problems.Add($"instance '{label}' is unavailable ({BackupTelemetry.ErrorType(e)})");
                continue;
            }

            if (clock.DeletionsHeld)
            {
                status = Worse(status, HealthStatus.Degraded);
                problems.Add(string.Create(CultureInfo.InvariantCulture,
                    $"instance '{label}' holds every deletion: this host's clock ({Iso(clock.LocalTime)}) is more than {Format(clock.MaximumLead)} ahead of the store's time ({(clock.StoreTime is { } storeTime ? Iso(storeTime) : "none")}); fix the clock, or confirm it with 'kmsbackup clock confirm'"));
                data[$"{label}/clock"] = "deletions held";
            }

            foreach (var backup in report)
            {
                data[$"{label}/{backup.BackupId}"] = Describe(backup);
                if (backup.ConsecutiveFailures >= limits.UnhealthyAfterFailures)
                {
                    status = HealthStatus.Unhealthy;
                    problems.Add($"backup '{backup.BackupId}' failed {backup.ConsecutiveFailures} times in a row ({backup.LastErrorType})");
                }
                else if (backup.ConsecutiveFailures > 0)
                {
                    status = Worse(status, HealthStatus.Degraded);
                    problems.Add($"backup '{backup.BackupId}' failed its last run ({backup.LastErrorType})");
                }

                if (backup.Lag > limits.MaximumLag)
                {
                    status = HealthStatus.Unhealthy;
                    problems.Add($"backup '{backup.BackupId}' is {Format(backup.Lag)} behind schedule");
                }

                if (backup.ExpiresIn is { } left && backup.Status == BackupStatus.Enabled && left <= limits.ExpiryWarning)
                {
                    status = Worse(status, HealthStatus.Degraded);
                    problems.Add($"backup '{backup.BackupId}' expires in {Format(left)}: renew it");
                }
            }
        }

        var description = problems.Count == 0 ? "Every backup is on schedule." : string.Join("; ", problems) + ".";
        return new HealthCheckResult(status, description, data: data);
    }

    private static HealthStatus Worse(HealthStatus a, HealthStatus b) => a < b ? a : b;

    private static string Iso(DateTimeOffset instant) => instant.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string Format(TimeSpan span) => span.ToString(@"d\.hh\:mm\:ss", CultureInfo.InvariantCulture);

    private static string Describe(BackupHealth backup) => string.Create(CultureInfo.InvariantCulture,
        $"{backup.Status}; last success {(backup.LastSuccessAt is { } success ? Iso(success) : "never")}; {backup.ConsecutiveFailures} failures in a row; lag {Format(backup.Lag)}");
}
