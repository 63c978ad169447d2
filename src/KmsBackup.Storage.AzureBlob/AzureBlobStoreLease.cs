namespace KmsBackup.Storage.AzureBlob;

/// <summary>A lease held in an <see cref="AzureBlobBackupStore"/>: the record this holder wrote last.</summary>
/// <remarks>Thread-safe: its operations run one at a time.</remarks>
internal sealed class AzureBlobStoreLease : StoreLease
{
    private readonly AzureBlobBackupStore _store;
    private readonly TimeSpan _duration;
    private readonly SemaphoreSlim _sync = new(1, 1);
    private AzureLeaseRecord _record;
    private bool _disposed;

    public AzureBlobStoreLease(AzureBlobBackupStore store, AzureLeaseRecord record, TimeSpan duration)
        : base(record.LeaseName, record.Holder, record.ExpiresAt)
    {
        _store = store;
        _record = record;
        _duration = duration;
    }

    /// <inheritdoc />
    public override async Task RenewAsync(CancellationToken cancellationToken = default)
    {
        await _sync.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _record = await _store.RenewLeaseAsync(_record, _duration, cancellationToken).ConfigureAwait(false);
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
            await _store.EnsureLeaseHeldAsync(_record, cancellationToken).ConfigureAwait(false);
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
            await _store.ReleaseLeaseAsync(_record).ConfigureAwait(false);
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
