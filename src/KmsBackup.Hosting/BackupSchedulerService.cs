using KmsBackup.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KmsBackup.Hosting;

/// <summary>What one scheduler tick did for one instance.</summary>
public sealed class BackupSchedulerTickEventArgs : EventArgs
{
    /// <summary>Creates the event data.</summary>
    /// <param name="instanceName">The instance's name.</param>
    /// <param name="startedAt">When the tick started.</param>
    /// <param name="runs">The runs that committed a recovery point.</param>
    /// <param name="failures">The backups whose runs failed.</param>
    /// <param name="error">What failed the whole tick (opening the client, reading the catalog), if anything did.</param>
    public BackupSchedulerTickEventArgs(string instanceName, DateTimeOffset startedAt, IReadOnlyList<BackupRunResult> runs, IReadOnlyList<BackupRunFailure> failures, Exception? error)
    {
        InstanceName = instanceName;
        StartedAt = startedAt;
        Runs = runs;
        Failures = failures;
        Error = error;
    }

    /// <summary>The instance's name; empty for the unnamed instance.</summary>
    public string InstanceName { get; }

    /// <summary>When the tick started, by the host's <see cref="TimeProvider"/>.</summary>
    public DateTimeOffset StartedAt { get; }

    /// <summary>The runs that committed a recovery point.</summary>
    public IReadOnlyList<BackupRunResult> Runs { get; }

    /// <summary>The backups whose runs failed; the other due backups ran.</summary>
    public IReadOnlyList<BackupRunFailure> Failures { get; }

    /// <summary>What failed the whole tick (opening the client, reading the catalog), if anything did.</summary>
    public Exception? Error { get; }
}

/// <summary>What one scheduled copy (<see cref="KmsBackupCopyOptions"/>) did for one instance.</summary>
public sealed class BackupSchedulerCopyEventArgs : EventArgs
{
    /// <summary>Creates the event data.</summary>
    /// <param name="instanceName">The instance copied from.</param>
    /// <param name="destinationName">The instance copied into.</param>
    /// <param name="startedAt">When the copy started.</param>
    /// <param name="report">What the copy did, or <see langword="null"/> when it failed whole.</param>
    /// <param name="error">What failed the whole copy (a client that did not open, a catalog that could not be read), if anything did.</param>
    public BackupSchedulerCopyEventArgs(string instanceName, string destinationName, DateTimeOffset startedAt, BackupCopyReport? report, Exception? error)
    {
        InstanceName = instanceName;
        DestinationName = destinationName;
        StartedAt = startedAt;
        Report = report;
        Error = error;
    }

    /// <summary>The instance copied from; empty for the unnamed instance.</summary>
    public string InstanceName { get; }

    /// <summary>The instance copied into.</summary>
    public string DestinationName { get; }

    /// <summary>When the copy started, by the host's <see cref="TimeProvider"/>.</summary>
    public DateTimeOffset StartedAt { get; }

    /// <summary>What the copy did (its problems included), or <see langword="null"/> when it failed whole.</summary>
    public BackupCopyReport? Report { get; }

    /// <summary>What failed the whole copy, if anything did.</summary>
    public Exception? Error { get; }
}

/// <summary>
/// The hosted scheduler: for each registered instance whose <see cref="KmsBackupSchedulerOptions.Enabled"/> is
/// set, looks for due backups at once and then every <see cref="KmsBackupSchedulerOptions.Tick"/> of the host's
/// <see cref="TimeProvider"/>, and runs them (rules S1–S5; <see cref="BackupClient.RunDueBackupsAsync"/>).
/// </summary>
/// <remarks>
/// A failed run is logged and counted (metrics, <see cref="BackupClient.GetHealthAsync"/>), and the other due
/// backups still run; a tick that fails whole (the store is down) is logged, and the next tick tries again.
/// Nothing that a tick throws stops the host. Stopping the host cancels the tick in progress (a cancelled run
/// commits nothing) and ends the scheduler. Ticks that the host missed (a paused process) are not replayed: the
/// next tick catches up as rule S4 says.
/// </remarks>
public sealed class BackupSchedulerService : BackgroundService
{
    private readonly BackupClientProvider _clients;
    private readonly IOptionsMonitor<KmsBackupOptions> _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    /// <summary>Creates the scheduler.</summary>
    /// <param name="clients">Gives each instance's client.</param>
    /// <param name="options">Each instance's options.</param>
    /// <param name="timeProvider">Where ticks come from.</param>
    /// <param name="logger">Where the scheduler logs; <see langword="null"/> for nowhere.</param>
    public BackupSchedulerService(BackupClientProvider clients, IOptionsMonitor<KmsBackupOptions> options, TimeProvider timeProvider, ILogger<BackupSchedulerService>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(clients);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _clients = clients;
        _options = options;
        _time = timeProvider;
        _logger = logger ?? (ILogger)NullLogger.Instance;
    }

    /// <summary>Raised after each scheduled copy of each instance (<see cref="KmsBackupCopyOptions"/>), on the scheduler's thread; a handler that throws is logged and ignored.</summary>
    public event EventHandler<BackupSchedulerCopyEventArgs>? CopyCompleted;

    /// <summary>Raised after each tick of each instance, on the scheduler's thread; a handler that throws is logged and ignored.</summary>
    public event EventHandler<BackupSchedulerTickEventArgs>? TickCompleted;

    /// <summary>Runs each instance's ticks until the host stops.</summary>
    /// <param name="stoppingToken">Signals that the host is stopping.</param>
    /// <returns>A task that completes when every instance's loop has stopped.</returns>
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(_clients.Names.Select(name => RunInstanceAsync(name, stoppingToken)));

    /// <summary>How logs name a client: its options name, or "the default client" for the unnamed one.</summary>
    private static string Shown(string name) => name.Length == 0 ? "the default client" : name;

    private async Task RunInstanceAsync(string name, CancellationToken stoppingToken)
    {
        var options = _options.Get(name).Scheduler;
        if (!options.Enabled)
        {
            Log.SchedulerDisabled(_logger, Shown(name));
            return;
        }

        await Task.Yield();
        long ticks = 0;
        DateTimeOffset? nextCopy = null;
        using var timer = new PeriodicTimer(options.Tick, _time);
        Log.SchedulerStarted(_logger, Shown(name), options.Tick);
        try
        {
            do
            {
                await TickAsync(name, stoppingToken).ConfigureAwait(false);
                nextCopy = await CopyIfDueAsync(name, nextCopy, stoppingToken).ConfigureAwait(false);
                ticks++;
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The host is stopping.
        }

        Log.SchedulerStopped(_logger, Shown(name), ticks);
    }

    /// <summary>
    /// Copies this instance's new points into <see cref="KmsBackupCopyOptions.ToInstance"/> when a copy is due; returns when
    /// the next is. A copy that fails is logged and tried again at the next interval; nothing it throws stops the host.
    /// </summary>
    private async Task<DateTimeOffset?> CopyIfDueAsync(string name, DateTimeOffset? due, CancellationToken stoppingToken)
    {
        var options = _options.Get(name).Copy;
        var now = _time.GetUtcNow();
        if (options.ToInstance is not { } target || (due is { } at && now < at))
        {
            return due;
        }

        BackupCopyReport? report = null;
        Exception? error = null;
        try
        {
            if (string.Equals(target, name, StringComparison.Ordinal) || !_clients.Names.Contains(target))
            {
                throw new InvalidOperationException(
                    $"Copy.ToInstance of {Shown(name)} names '{target}', which is {(target == name ? "the instance itself" : "not a registered KmsBackup instance")}: register the copy's store and key as an instance of its own (AddKmsBackup(\"{target}\", ...)).");
            }

            var source = await _clients.GetClientAsync(name, stoppingToken).ConfigureAwait(false);
            var destination = await _clients.GetClientAsync(target, stoppingToken).ConfigureAwait(false);
            report = await source.CopyToAsync(destination, cancellationToken: stoppingToken).ConfigureAwait(false);
            Log.ScheduledCopyCompleted(_logger, Shown(name), target, report.PointsCopied, report.Problems.Count);
            foreach (var problem in report.Problems)
            {
                Log.ScheduledCopyProblem(_logger, Shown(name), problem.BackupId, problem.Point?.ToString(), problem.Kind.ToString(), problem.Error.Code.ToString());
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            error = e;
            Log.ScheduledCopyFailed(_logger, e, Shown(name), target, BackupTelemetry.ErrorType(e));
        }

        try
        {
            CopyCompleted?.Invoke(this, new BackupSchedulerCopyEventArgs(name, target, now, report, error));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Log.TickFailed(_logger, e, Shown(name), BackupTelemetry.ErrorType(e));
        }

        return now + options.Interval;
    }

    private async Task TickAsync(string name, CancellationToken stoppingToken)
    {
        var startedAt = _time.GetUtcNow();
        IReadOnlyList<BackupRunResult> runs = [];
        IReadOnlyList<BackupRunFailure> failures = [];
        Exception? error = null;
        try
        {
            var client = await _clients.GetClientAsync(name, stoppingToken).ConfigureAwait(false);
            var report = await client.RunDueBackupsAsync(stoppingToken).ConfigureAwait(false);
            (runs, failures) = (report, report.Failures);
            Log.TickCompleted(_logger, Shown(name), runs.Count, failures.Count);
            if (_options.Get(name).Scheduler.RekeyPacksPerTick is > 0 and var budget)
            {
                try
                {
                    await client.RekeyInBackgroundAsync(budget, stoppingToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OutOfMemoryException && !stoppingToken.IsCancellationRequested)
                {
                    // The backups of this tick ran; the rekey tries again at the next tick.
                    Log.RekeyFailed(_logger, e, Shown(name), BackupTelemetry.ErrorType(e));
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            error = e;
            Log.TickFailed(_logger, e, Shown(name), BackupTelemetry.ErrorType(e));
        }

        try
        {
            TickCompleted?.Invoke(this, new BackupSchedulerTickEventArgs(name, startedAt, runs, failures, error));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Log.TickFailed(_logger, e, Shown(name), BackupTelemetry.ErrorType(e));
        }
    }
}
