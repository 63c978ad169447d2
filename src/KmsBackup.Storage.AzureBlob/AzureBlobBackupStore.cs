using System.Net;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;

using Azure;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace KmsBackup.Storage.AzureBlob;

/// <summary>
/// A <see cref="BackupStore"/> in a container of Azure Blob Storage (or of Azurite, its emulator), which many
/// hosts can share. Objects are block blobs under <c>{prefix}objects/</c> (the key <c>data/ab/cd</c> is the blob
/// <c>{prefix}objects/data/ab/cd</c>), and the records of leases, which are kept under the key prefix <c>leases/</c>,
/// are blobs under <c>{prefix}objects/leases/</c>.
/// </summary>
/// <remarks>
/// <para><b>Writes</b> are conditional creates: an upload with <c>If-None-Match: *</c>, which the service refuses
/// (409 <c>BlobAlreadyExists</c>) when the blob exists. An object larger than
/// <see cref="AzureBlobBackupStoreOptions.SingleUploadLimit"/> is staged as blocks, which stay invisible until the
/// final, conditional commit of the block list: a reader or a listing sees an object whole or not at all, and a
/// crash or cancellation midway leaves only uncommitted blocks, which the service discards. Each upload carries a
/// random write token in its metadata, so that when the service created the blob but its reply was lost and the
/// Azure SDK's retry is told the blob exists, the store still recognises the blob as its own.</para>
/// <para><b>Leases</b> are <see cref="BackupStore"/>'s, written over the four primitives: numbered, immutable
/// generation records, each created with the same conditional create as any object (<c>If-None-Match: *</c>), so
/// that of writers racing to take or take over a lease exactly one wins, and a second writer reads who holds it and
/// until when; the service's listings are strongly consistent, which the protocol needs. They are not the
/// service's native blob leases, whose durations are 15 to 60 seconds (the port promises 1 second to 1 hour),
/// whose holder cannot be named to a second writer, and whose expiry follows the service's clock rather than the
/// <see cref="TimeProvider"/> the store is given. Expiry compares the writers' clocks: hosts that share a store need
/// clocks in sync to well within a lease's duration.</para>
/// <para><b>Failures.</b> Retries are the Azure SDK's, configured on the client (<c>BlobClientOptions.Retry</c>).
/// What fails after them (the service unreachable, a refused request, a missing container) is a
/// <see cref="BackupException"/> with <see cref="BackupErrorCode.StoreUnavailable"/> that names the store and the
/// object; the Azure exception is its inner exception. Cancellation throws <see cref="OperationCanceledException"/>.</para>
/// <para>The store is thread-safe.</para>
/// </remarks>
public sealed partial class AzureBlobBackupStore : BackupStore
{
    private const string ObjectsFolder = "objects/";
    private const string WriteTokenMetadata = "kmsbackupwrite";

    private readonly BlobContainerClient _container;
    private readonly AzureBlobBackupStoreOptions _options;
    private readonly string _objectsPrefix;

    /// <summary>Creates a store in the container <paramref name="container"/>.</summary>
    /// <param name="container">
    /// The container, with its account, credentials and retry options (<c>BlobClientOptions.Retry</c>) configured
    /// as for any Azure SDK client: a connection string, a SAS URI, or a URI with a <c>TokenCredential</c>.
    /// </param>
    /// <param name="options">How the store lays out its blobs; the defaults when <see langword="null"/>. Copied: later changes have no effect.</param>
    /// <param name="timeProvider">The clock for lease expiry; the system clock by default.</param>
    /// <exception cref="ArgumentException">An option is out of range (see <see cref="AzureBlobBackupStoreOptions.Validate"/>).</exception>
    public AzureBlobBackupStore(BlobContainerClient container, AzureBlobBackupStoreOptions? options = null, TimeProvider? timeProvider = null)
        : base(timeProvider)
    {
        ArgumentNullException.ThrowIfNull(container);
        options ??= new AzureBlobBackupStoreOptions();
        options.Validate();
        _container = container;
        _options = new AzureBlobBackupStoreOptions
        {
            Prefix = options.Prefix,
            CreateContainerIfMissing = options.CreateContainerIfMissing,
            ListPageSize = options.ListPageSize,
            SingleUploadLimit = options.SingleUploadLimit,
            BlockSize = options.BlockSize,
            UploadConcurrency = options.UploadConcurrency,
        };
        _objectsPrefix = _options.NormalizedPrefix + ObjectsFolder;

        // The URI without its query: a SAS token is a credential and never goes into a message.
        Location = $"{container.Uri.GetLeftPart(UriPartial.Path).TrimEnd('/')}/{_options.NormalizedPrefix}";
    }

    /// <summary>Where the store is, as errors name it: the container's URI (never its query, which may hold a SAS token) and the prefix.</summary>
    public string Location { get; }

    /// <inheritdoc />
    protected override async Task<bool> TryCreateCoreAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        var blob = _container.GetBlobClient(_objectsPrefix + key);
        var token = RandomNumberGenerator.GetHexString(32, lowercase: true);
        try
        {
            return await WithContainerAsync(
                async ct =>
                {
                    try
                    {
                        await blob.UploadAsync(BinaryData.FromBytes(content), CreateOptions(token), ct).ConfigureAwait(false);
                        return true;
                    }
                    catch (RequestFailedException ex) when (IsLostCreateRace(ex))
                    {
                        return await IsOwnWriteAsync(blob, token, ct).ConfigureAwait(false);
                    }
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStoreFailure(ex, cancellationToken))
        {
            throw Unavailable(ObjectItem(key), $"create the object '{key}'", ex);
        }
    }

    /// <inheritdoc />
    protected override async Task<byte[]?> TryReadCoreAsync(string key, CancellationToken cancellationToken)
    {
        var blob = _container.GetBlobClient(_objectsPrefix + key);
        try
        {
            var response = await blob.DownloadContentAsync(cancellationToken).ConfigureAwait(false);
            return response.Value.Content.ToArray();
        }
        catch (RequestFailedException ex) when (ex.Status == (int)HttpStatusCode.NotFound)
        {
            return null;
        }
        catch (Exception ex) when (IsStoreFailure(ex, cancellationToken))
        {
            throw Unavailable(ObjectItem(key), $"read the object '{key}'", ex);
        }
    }

    /// <inheritdoc />
    /// <remarks>One ranged GET (an HTTP <c>Range</c> header): only the range crosses the network.</remarks>
    protected override async Task<byte[]?> TryReadRangeCoreAsync(string key, long offset, int length, CancellationToken cancellationToken) =>
        (await DownloadRangeAsync(key, offset, length, cancellationToken).ConfigureAwait(false))?.ToArray();

    /// <inheritdoc />
    protected override async Task<int?> TryReadRangeIntoCoreAsync(string key, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        if (await DownloadRangeAsync(key, offset, destination.Length, cancellationToken).ConfigureAwait(false) is not { } content)
        {
            return null;
        }

        var bytes = content.ToMemory();
        if (bytes.Length > destination.Length)
        {
            throw Unavailable(ObjectItem(key), $"read {destination.Length} bytes at {offset} of the object '{key}'", new InvalidDataException($"The service returned {bytes.Length} bytes for a range of {destination.Length}."));
        }

        bytes.CopyTo(destination);
        return bytes.Length;
    }

    /// <summary>Up to <paramref name="length"/> bytes of the blob from <paramref name="offset"/>, or <see langword="null"/> when there is no such blob.</summary>
    private async Task<BinaryData?> DownloadRangeAsync(string key, long offset, int length, CancellationToken cancellationToken)
    {
        var blob = _container.GetBlobClient(_objectsPrefix + key);
        try
        {
            var response = await blob.DownloadContentAsync(new BlobDownloadOptions { Range = new HttpRange(offset, length) }, cancellationToken).ConfigureAwait(false);
            return response.Value.Content;
        }
        catch (RequestFailedException ex) when (ex.Status == (int)HttpStatusCode.NotFound)
        {
            return null;
        }
        catch (RequestFailedException ex) when (ex.Status == (int)HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            return BinaryData.Empty; // the blob ends at or before the offset
        }
        catch (Exception ex) when (IsStoreFailure(ex, cancellationToken))
        {
            throw Unavailable(ObjectItem(key), $"read {length} bytes at {offset} of the object '{key}'", ex);
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Pages through the service's listing, <see cref="AzureBlobBackupStoreOptions.ListPageSize"/> blobs a request; blobs whose commit has
    /// not completed are never listed. A blob under the store's prefix whose name is not a store key (see
    /// <see cref="BackupStore.ValidateKey"/>: a space, a character outside ASCII letters, digits, <c>.</c>, <c>_</c> and <c>-</c>, an empty
    /// segment, too long) is not an object of the store, which never writes such a name: it is left out, as the file-system store leaves
    /// out files whose names are not keys. Refusing it instead would let anyone who can write one blob into the container stop every
    /// listing, and with it every account's backups, views and verify; and a name the store could not read, delete or verify would only
    /// move the failure to the caller.
    /// </remarks>
    protected override async IAsyncEnumerable<StoreObject> ListCoreAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var pages = _container
            .GetBlobsAsync(BlobTraits.None, BlobStates.None, _objectsPrefix + prefix, cancellationToken)
            .AsPages(continuationToken: null, pageSizeHint: _options.ListPageSize);
        var enumerator = pages.GetAsyncEnumerator(cancellationToken);
        await using (enumerator.ConfigureAwait(false))
        {
            while (true)
            {
                Page<BlobItem> page;
                try
                {
                    if (!await enumerator.MoveNextAsync().ConfigureAwait(false))
                    {
                        yield break;
                    }

                    page = enumerator.Current;
                }
                catch (RequestFailedException ex) when (ex.Status == (int)HttpStatusCode.NotFound)
                {
                    yield break; // no container yet: nothing stored
                }
                catch (Exception ex) when (IsStoreFailure(ex, cancellationToken))
                {
                    throw Unavailable($"store objects under '{prefix}'", $"list the objects under '{prefix}'", ex);
                }

                foreach (var item in page.Values)
                {
                    var key = item.Name[_objectsPrefix.Length..];
                    if (IsKey(key))
                    {
                        yield return new StoreObject(key, item.Properties.ContentLength ?? 0);
                    }
                }
            }
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// If the service deleted the blob but its reply was lost, the Azure SDK's retry finds the blob gone and this
    /// returns <see langword="false"/> for a blob this very call deleted; the blob is gone either way.
    /// </remarks>
    protected override async Task<bool> DeleteCoreAsync(string key, CancellationToken cancellationToken)
    {
        var blob = _container.GetBlobClient(_objectsPrefix + key);
        try
        {
            var response = await blob.DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, conditions: null, cancellationToken).ConfigureAwait(false);
            return response.Value;
        }
        catch (RequestFailedException ex) when (ex.Status == (int)HttpStatusCode.NotFound)
        {
            return false;
        }
        catch (Exception ex) when (IsStoreFailure(ex, cancellationToken))
        {
            throw Unavailable(ObjectItem(key), $"delete the object '{key}'", ex);
        }
    }

    private BlobUploadOptions CreateOptions(string writeToken) => new()
    {
        Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
        Metadata = new Dictionary<string, string>(StringComparer.Ordinal) { [WriteTokenMetadata] = writeToken },
        TransferOptions = new StorageTransferOptions
        {
            InitialTransferSize = _options.SingleUploadLimit,
            MaximumTransferSize = _options.BlockSize,
            MaximumConcurrency = _options.UploadConcurrency,
        },
    };

    /// <summary>
    /// The service refused a create because the blob exists: 409 <c>BlobAlreadyExists</c> for one request, 412 for a
    /// conditional commit, or 400 <c>InvalidBlockList</c> when another writer's commit discarded this writer's staged blocks.
    /// </summary>
    private static bool IsLostCreateRace(RequestFailedException ex) =>
        ex.Status is (int)HttpStatusCode.Conflict or (int)HttpStatusCode.PreconditionFailed ||
        ex.ErrorCode is "BlobAlreadyExists" or "ConditionNotMet" or "InvalidBlockList";

    /// <summary>After a refused create: whether the blob that exists is this writer's own (its first attempt's reply was lost).</summary>
    private static async Task<bool> IsOwnWriteAsync(BlobClient blob, string writeToken, CancellationToken cancellationToken)
    {
        try
        {
            var properties = await blob.GetPropertiesAsync(conditions: null, cancellationToken).ConfigureAwait(false);
            return properties.Value.Metadata.TryGetValue(WriteTokenMetadata, out var stored) &&
                string.Equals(stored, writeToken, StringComparison.Ordinal);
        }
        catch (RequestFailedException ex) when (ex.Status == (int)HttpStatusCode.NotFound)
        {
            // Refused, yet absent: the other writer's object was deleted since. Nothing of this writer's is there.
            throw new RequestFailedException(ex.Status, $"The blob '{blob.Name}' was reported to exist but is absent; the create did not complete.", ex.ErrorCode, ex);
        }
    }

    /// <summary>Runs a write; when the container is missing and may be created, creates it and runs the write again.</summary>
    private async Task<T> WithContainerAsync<T>(Func<CancellationToken, Task<T>> write, CancellationToken cancellationToken)
    {
        try
        {
            return await write(cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.ErrorCode == "ContainerNotFound" && _options.CreateContainerIfMissing)
        {
            await _container.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            return await write(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Whether a listed name is a store key; <see cref="BackupStore.ValidateKey"/> is the one rule, so that the two never disagree.</summary>
    private static bool IsKey(string name)
    {
        try
        {
            ValidateKey(name);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>Whether <paramref name="ex"/> is the store failing (after the Azure SDK's retries), not the caller cancelling.</summary>
    private static bool IsStoreFailure(Exception ex, CancellationToken cancellationToken) => ex switch
    {
        RequestFailedException or HttpRequestException or IOException or TimeoutException => true,
        AggregateException aggregate => aggregate.InnerExceptions.All(e => IsStoreFailure(e, cancellationToken)),
        // The Azure SDK's network timeout cancels the request; the caller's token did not.
        OperationCanceledException => !cancellationToken.IsCancellationRequested,
        _ => false,
    };

    private static string ObjectItem(string key) => $"store object '{key}'";

    private BackupException Unavailable(string item, string action, Exception cause)
    {
        var (what, remedy) = Describe(cause);
        return new BackupException(
            new Refusal(
                BackupErrorCode.StoreUnavailable,
                item,
                $"The Azure Blob store at '{Location}' could not {action}: {what}",
                remedy),
            cause);
    }

    /// <summary>What went wrong, in words, from the status and error code only (an Azure message can quote request headers).</summary>
    private static (string What, string Remedy) Describe(Exception cause)
    {
        var failed = cause is AggregateException aggregate ? aggregate.InnerExceptions[^1] : cause;
        if (failed is RequestFailedException { Status: > 0 } request)
        {
            var code = request.ErrorCode is { Length: > 0 } c ? $" {c}" : string.Empty;
            return request.Status switch
            {
                (int)HttpStatusCode.Forbidden or (int)HttpStatusCode.Unauthorized => (
                    $"the service refused access (HTTP {request.Status}{code}).",
                    "Check the credentials the BlobContainerClient was created with and that they may read, write, list and delete blobs in the container."),
                (int)HttpStatusCode.NotFound when request.ErrorCode == "ContainerNotFound" => (
                    $"the container does not exist (HTTP {request.Status}{code}).",
                    "Create the container, or let the store create it (AzureBlobBackupStoreOptions.CreateContainerIfMissing)."),
                _ => (
                    $"the service answered HTTP {request.Status}{code}.",
                    "Retry; if it keeps failing, check the storage account's health and limits."),
            };
        }

        var reason = (failed as RequestFailedException)?.InnerException ?? failed;
        return (
            $"the service did not answer ({reason.GetType().Name}: {reason.Message}).",
            "Check that the storage account (or Azurite) is running and reachable from this host, then retry; the Azure SDK's retries (BlobClientOptions.Retry) were used up.");
    }
}
