namespace KmsBackup.Storage;

/// <summary>
/// A <see cref="StoreLease"/> kept as records in the store itself (<see cref="BackupStore.AcquireLeaseAsync"/>): the
/// store renews, checks and releases it from the record this holder wrote last. This class runs those operations
/// one at a time, tracks the newest record and its expiry, and makes releasing a courtesy (a lease that cannot be
/// released expires).
/// </summary>
/// <remarks>Thread-safe.</remarks>
internal sealed class RecordStoreLease : StoreLease
{
    private readonly Func<StoreLeaseRecord, CancellationToken, Task<StoreLeaseRecord>> _renew;
    private readonly Func<StoreLeaseRecord, CancellationToken, Task> _ensureHeld;
    private readonly Func<StoreLeaseRecord, Task> _release;
    private readonly SemaphoreSlim _sync = new(1, 1);
    private StoreLeaseRecord _record;
    private bool _disposed;

    /// <summary>Creates the lease from the record its acquisition wrote.</summary>
    /// <param name="record">The record the acquisition wrote.</param>
    /// <param name="renew">Writes the renewed record after the given one, or throws <see cref="BackupErrorCode.LeaseLost"/>.</param>
    /// <param name="ensureHeld">Throws <see cref="BackupErrorCode.LeaseLost"/> unless the given record is still the lease's current one and unexpired.</param>
    /// <param name="release">Marks the lease released if the given record is still current.</param>
    public RecordStoreLease(
        StoreLeaseRecord record, Func<StoreLeaseRecord, CancellationToken, Task<StoreLeaseRecord>> renew,
        Func<StoreLeaseRecord, CancellationToken, Task> ensureHeld, Func<StoreLeaseRecord, Task> release)
        : base(record.LeaseName, record.Holder, record.ExpiresAt)
    {
        _record = record;
        _renew = renew;
        _ensureHeld = ensureHeld;
        _release = release;
    }

    /// <inheritdoc />
    public override async Task RenewAsync(CancellationToken cancellationToken = default)
    {
        await _sync.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _record = await _renew(_record, cancellationToken).ConfigureAwait(false);
            ExpiresAt = _record.ExpiresAt;
        }
        finally
        {
            _sync.Release();
        }
    }

    /// <inheritdoc />
    public override async Task EnsureHeldAsync(CancellationToken cancellationToken = default)
    {
        await _sync.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            await _ensureHeld(_record, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _sync.Release();
        }
    }

    /// <inheritdoc />
    /// <remarks>If the store fails while releasing, the lease is left to expire.</remarks>
    public override async ValueTask DisposeAsync()
    {
        await _sync.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            await _release(_record).ConfigureAwait(false);
        }
        catch (BackupException)
        {
            // Releasing is a courtesy: a lease that could not be released expires.
        }
        finally
        {
            _sync.Release();
        }
    }
}
