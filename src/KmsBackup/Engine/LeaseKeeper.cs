namespace KmsBackup;

/// <summary>
/// Keeps a lease renewed while work runs under it: renews it every third of its duration (on the
/// client's clock), and if a renewal finds the lease lost, cancels <see cref="Token"/> so that the work
/// stops before it commits anything, and keeps the error to report.
/// </summary>
internal sealed class LeaseKeeper : IAsyncDisposable
{
    private readonly StoreLease _lease;
    private readonly CancellationTokenSource _stop;
    private readonly Task _loop;

    private LeaseKeeper(StoreLease lease, TimeSpan duration, TimeProvider clock, CancellationToken cancellationToken)
    {
        _lease = lease;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _loop = RenewAsync(duration / 3, clock, _stop.Token);
    }

    /// <summary>Cancelled when the caller cancels, or when the lease was lost.</summary>
    public CancellationToken Token => _stop.Token;

    /// <summary>Why the lease was lost, once it was; <see langword="null"/> while it is held.</summary>
    public BackupException? Lost { get; private set; }

    public static LeaseKeeper Start(StoreLease lease, TimeSpan duration, TimeProvider clock, CancellationToken cancellationToken) =>
        new(lease, duration, clock, cancellationToken);

    private async Task RenewAsync(TimeSpan every, TimeProvider clock, CancellationToken token)
    {
        try
        {
            while (true)
            {
                await Task.Delay(every, clock, token).ConfigureAwait(false);
                await _lease.RenewAsync(token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // The work ended or the caller cancelled.
        }
        catch (BackupException e)
        {
            // Lost (another writer took it) or unreachable store: either way the work must not commit.
            Lost = e;
            await _stop.CancelAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }
}
