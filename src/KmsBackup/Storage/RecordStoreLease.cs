namespace KmsBackup.Storage;

/// <summary>
/// A <see cref="StoreLease"/> kept as a record in the store itself (a lease file, a lease blob): the store
/// renews, checks and releases it by compare-and-swap on the record this holder wrote last. This class
/// runs those operations one at a time, tracks the newest record and its expiry, and makes releasing a
/// courtesy (a lease that cannot be released expires). For authors of <see cref="BackupStore"/> adapters.
/// </summary>
/// <typeparam name="TRecord">The store's lease record.</typeparam>
/// <remarks>Thread-safe.</remarks>
public sealed class RecordStoreLease<TRecord> : StoreLease
    where TRecord : class
{
    private readonly Func<TRecord, DateTimeOffset> _expiresAt;
    private readonly Func<TRecord, CancellationToken, Task<TRecord>> _renew;
    private readonly Func<TRecord, CancellationToken, Task> _ensureHeld;
    private readonly Func<TRecord, Task> _release;
    private readonly SemaphoreSlim _sync = new(1, 1);
    private TRecord _record;
    private bool _disposed;

    /// <summary>Creates the lease from the record its acquisition wrote.</summary>
    /// <param name="name">What the lease guards.</param>
    /// <param name="holder">Who holds it.</param>
    /// <param name="record">The record the acquisition wrote.</param>
    /// <param name="expiresAt">A record's expiry.</param>
    /// <param name="renew">Writes the renewed record after the given one, or throws <see cref="BackupErrorCode.LeaseLost"/>.</param>
    /// <param name="ensureHeld">Throws <see cref="BackupErrorCode.LeaseLost"/> unless the given record is still the lease's current one and unexpired.</param>
    /// <param name="release">Marks the lease released if the given record is still current.</param>
    public RecordStoreLease(
        string name, string holder, TRecord record, Func<TRecord, DateTimeOffset> expiresAt,
        Func<TRecord, CancellationToken, Task<TRecord>> renew, Func<TRecord, CancellationToken, Task> ensureHeld, Func<TRecord, Task> release)
        : base(name, holder, (expiresAt ?? throw new ArgumentNullException(nameof(expiresAt)))(record ?? throw new ArgumentNullException(nameof(record))))
    {
        ArgumentNullException.ThrowIfNull(renew);
        ArgumentNullException.ThrowIfNull(ensureHeld);
        ArgumentNullException.ThrowIfNull(release);
        _record = record;
        _expiresAt = expiresAt;
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
            ExpiresAt = _expiresAt(_record);
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
