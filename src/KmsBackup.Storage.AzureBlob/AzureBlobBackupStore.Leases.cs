using System.Net;
using System.Security.Cryptography;

using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace KmsBackup.Storage.AzureBlob;

// Leases: one record blob per lease under leases/, changed only by compare-and-swap on its ETag.
public sealed partial class AzureBlobBackupStore
{
    private const int MaxLeaseAttempts = 16;
    /// <inheritdoc />
    /// <remarks>
    /// The lease is the blob <c>{prefix}leases/{leaseName}</c>, never listed as an object. A lease that expired (its
    /// holder stopped renewing it, crashed or was killed) is taken over by the first writer that asks for it; of
    /// writers racing for it, exactly one wins and the others get <see cref="BackupErrorCode.LeaseHeld"/>, which
    /// names the winner.
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="leaseName"/> breaks the key rules, or <paramref name="holder"/> is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="duration"/> is shorter than 1 second or longer than 1 hour.</exception>
    public override async Task<StoreLease> AcquireLeaseAsync(string leaseName, string holder, TimeSpan duration, CancellationToken cancellationToken = default)
    {
        ValidateKey(leaseName);
        ArgumentException.ThrowIfNullOrWhiteSpace(holder);
        ValidateLeaseDuration(duration);

        cancellationToken.ThrowIfCancellationRequested();
        var blob = LeaseBlob(leaseName);
        var token = RandomNumberGenerator.GetHexString(32, lowercase: true);
        try
        {
            for (var attempt = 0; attempt < MaxLeaseAttempts; attempt++)
            {
                var (head, etag) = await ReadLeaseAsync(blob, leaseName, cancellationToken).ConfigureAwait(false);
                var now = _time.GetUtcNow();
                if (head is not null && !head.IsFreeAt(now))
                {
                    throw head.HeldException();
                }

                var record = new StoreLeaseRecord(leaseName, (head?.Generation ?? 0) + 1, holder, token, now + duration, Released: false);
                if (await TryWriteLeaseAsync(blob, record, head is null ? null : etag, cancellationToken).ConfigureAwait(false))
                {
                    return new RecordStoreLease<StoreLeaseRecord>(record.LeaseName, record.Holder, record, r => r.ExpiresAt, (r, c) => RenewLeaseAsync(r, duration, c), EnsureLeaseHeldAsync, ReleaseLeaseAsync);
                }

                // Another writer changed the lease first: read the new state and judge again.
            }

            throw new Refusal(
                BackupErrorCode.StoreUnavailable,
                StoreLeaseRecord.Item(leaseName),
                $"The lease '{leaseName}' in the Azure Blob store at '{Location}' changed hands {MaxLeaseAttempts} times while this writer tried to acquire it.",
                "Retry; if it keeps happening, fewer writers should compete for one lease.")
                .ToException();
        }
        catch (Exception ex) when (IsStoreFailure(ex, cancellationToken))
        {
            throw Unavailable(StoreLeaseRecord.Item(leaseName), $"acquire the lease '{leaseName}'", ex);
        }
    }

    /// <summary>Renews <paramref name="mine"/> with a new expiry, if it is still this holder's.</summary>
    internal async Task<StoreLeaseRecord> RenewLeaseAsync(StoreLeaseRecord mine, TimeSpan duration, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var blob = LeaseBlob(mine.LeaseName);
        try
        {
            var (head, etag) = await ReadLeaseAsync(blob, mine.LeaseName, cancellationToken).ConfigureAwait(false);
            var now = _time.GetUtcNow();

            // Expired but not taken over: renewing takes it back, since no one else can hold it.
            if (head is null || head.Token != mine.Token || head.Released)
            {
                throw StoreLeaseRecord.LostException(mine, head, now);
            }

            var renewed = head with { ExpiresAt = now + duration };
            if (await TryWriteLeaseAsync(blob, renewed, etag, cancellationToken).ConfigureAwait(false))
            {
                return renewed;
            }

            throw StoreLeaseRecord.LostException(mine, (await ReadLeaseAsync(blob, mine.LeaseName, cancellationToken).ConfigureAwait(false)).Record, now);
        }
        catch (Exception ex) when (IsStoreFailure(ex, cancellationToken))
        {
            throw Unavailable(StoreLeaseRecord.Item(mine.LeaseName), $"renew the lease '{mine.LeaseName}'", ex);
        }
    }

    /// <summary>Checks that <paramref name="mine"/> is still the lease's state and has not expired.</summary>
    internal async Task EnsureLeaseHeldAsync(StoreLeaseRecord mine, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            var (head, _) = await ReadLeaseAsync(LeaseBlob(mine.LeaseName), mine.LeaseName, cancellationToken).ConfigureAwait(false);
            var now = _time.GetUtcNow();
            if (head is null || head.Token != mine.Token || head.IsFreeAt(now))
            {
                throw StoreLeaseRecord.LostException(mine, head, now);
            }
        }
        catch (Exception ex) when (IsStoreFailure(ex, cancellationToken))
        {
            throw Unavailable(StoreLeaseRecord.Item(mine.LeaseName), $"check the lease '{mine.LeaseName}'", ex);
        }
    }

    /// <summary>Releases <paramref name="mine"/> if it is still the lease's state; otherwise does nothing.</summary>
    internal async Task ReleaseLeaseAsync(StoreLeaseRecord mine)
    {
        var blob = LeaseBlob(mine.LeaseName);
        try
        {
            var (head, etag) = await ReadLeaseAsync(blob, mine.LeaseName, CancellationToken.None).ConfigureAwait(false);
            if (head is null || head.Token != mine.Token || head.Released)
            {
                return;
            }

            var released = head with { ExpiresAt = _time.GetUtcNow(), Released = true };
            _ = await TryWriteLeaseAsync(blob, released, etag, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStoreFailure(ex, CancellationToken.None))
        {
            throw Unavailable(StoreLeaseRecord.Item(mine.LeaseName), $"release the lease '{mine.LeaseName}'", ex);
        }
    }

    private BlobClient LeaseBlob(string leaseName) => _container.GetBlobClient(_leasesPrefix + leaseName);

    /// <summary>Reads the lease's record and the ETag to change it with; no record if it was never taken.</summary>
    private async Task<(StoreLeaseRecord? Record, ETag ETag)> ReadLeaseAsync(BlobClient blob, string leaseName, CancellationToken cancellationToken)
    {
        BlobDownloadResult result;
        try
        {
            result = (await blob.DownloadContentAsync(cancellationToken).ConfigureAwait(false)).Value;
        }
        catch (RequestFailedException ex) when (ex.Status == (int)HttpStatusCode.NotFound)
        {
            return (null, default);
        }

        var record = StoreLeaseRecord.TryParse(result.Content.ToMemory().Span);
        if (record is null || record.LeaseName != leaseName)
        {
            throw new Refusal(
                BackupErrorCode.StoreUnavailable,
                StoreLeaseRecord.Item(leaseName),
                $"The Azure Blob store at '{Location}' has a lease blob '{blob.Name}' that is not a record of the lease '{leaseName}'.",
                "The container was altered by hand or by another program. Stop every writer of this store, delete the lease blob, and restart them.")
                .ToException();
        }

        return (record, result.Details.ETag);
    }

    /// <summary>
    /// Writes <paramref name="record"/> if the lease blob is still at <paramref name="etag"/> (absent when
    /// <see langword="null"/>): the compare-and-swap. Returns whether it was written.
    /// </summary>
    private async Task<bool> TryWriteLeaseAsync(BlobClient blob, StoreLeaseRecord record, ETag? etag, CancellationToken cancellationToken)
    {
        var options = new BlobUploadOptions
        {
            Conditions = etag is { } match ? new BlobRequestConditions { IfMatch = match } : new BlobRequestConditions { IfNoneMatch = ETag.All },
        };
        return await WithContainerAsync(
            async ct =>
            {
                try
                {
                    await blob.UploadAsync(BinaryData.FromBytes(record.ToJson()), options, ct).ConfigureAwait(false);
                    return true;
                }
                catch (RequestFailedException ex) when (ex.Status is (int)HttpStatusCode.Conflict or (int)HttpStatusCode.PreconditionFailed)
                {
                    // Lost the race, unless the first attempt of this very write succeeded and only its reply was lost.
                    var (head, _) = await ReadLeaseAsync(blob, record.LeaseName, ct).ConfigureAwait(false);
                    return head == record;
                }
            },
            cancellationToken).ConfigureAwait(false);
    }
}
