using System.ComponentModel.DataAnnotations;

namespace KmsBackup.Storage.AzureBlob;

/// <summary>
/// How an <see cref="AzureBlobBackupStore"/> lays out its blobs in its container. The container itself, the
/// account, the credentials and the retry policy are configured on the <c>BlobContainerClient</c> the store is
/// given (<c>BlobClientOptions.Retry</c>), the Azure way.
/// </summary>
/// <remarks>Validated once, when the store is created.</remarks>
public sealed class AzureBlobBackupStoreOptions
{
    /// <summary>The largest <see cref="ListPageSize"/>: Azure Blob Storage returns at most 5,000 blobs a page.</summary>
    public const int MaximumListPageSize = 5000;

    /// <summary>
    /// A folder-like prefix inside the container under which this store keeps everything (for example
    /// <c>kms/prod/</c>), so that several stores can share one container. Empty (the default) uses the whole
    /// container. Letters, digits, <c>.</c>, <c>_</c>, <c>-</c> and <c>/</c>; a trailing <c>/</c> is added when missing.
    /// </summary>
    public string Prefix { get; set; } = string.Empty;

    /// <summary>
    /// Whether the store creates its container when the container does not exist (on the first write that finds
    /// it missing). Default <see langword="true"/>. Turn it off when the identity the store uses may only read and
    /// write blobs; a missing container is then a <see cref="BackupErrorCode.StoreUnavailable"/> error that names it.
    /// </summary>
    public bool CreateContainerIfMissing { get; set; } = true;

    /// <summary>How many blobs one listing request asks for; from 1 to 5,000, default 1,000. Listings page on transparently.</summary>
    [Range(1, MaximumListPageSize)]
    public int ListPageSize { get; set; } = 1000;

    /// <summary>
    /// Objects up to this many bytes are uploaded with one request; larger ones are uploaded as blocks of
    /// <see cref="BlockSize"/> bytes and made visible at once by the final commit of the block list. From 1 MiB to
    /// 256 MiB, default 32 MiB.
    /// </summary>
    [Range(1 << 20, 256 << 20)]
    public int SingleUploadLimit { get; set; } = 32 << 20;

    /// <summary>The size of each block of a large upload; from 1 MiB to 100 MiB, default 8 MiB.</summary>
    [Range(1 << 20, 100 << 20)]
    public int BlockSize { get; set; } = 8 << 20;

    /// <summary>How many blocks of one large upload are sent at once; from 1 to 16, default 4.</summary>
    [Range(1, 16)]
    public int UploadConcurrency { get; set; } = 4;

    /// <summary>Checks the options; throws naming the first one out of range.</summary>
    /// <exception cref="ArgumentException"><see cref="Prefix"/> holds a character that no store key may hold.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A number is out of its range.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Prefix, nameof(Prefix));
        var prefix = Prefix.TrimEnd('/');
        if (prefix.Length > 0)
        {
            try
            {
                BackupStore.ValidateKey(prefix);
            }
            catch (ArgumentException ex)
            {
                throw new ArgumentException($"The store prefix '{Prefix}' is not a valid folder name: {ex.Message}", nameof(Prefix), ex);
            }
        }

        CheckRange(ListPageSize, 1, MaximumListPageSize, nameof(ListPageSize));
        CheckRange(SingleUploadLimit, 1 << 20, 256 << 20, nameof(SingleUploadLimit));
        CheckRange(BlockSize, 1 << 20, 100 << 20, nameof(BlockSize));
        CheckRange(UploadConcurrency, 1, 16, nameof(UploadConcurrency));
    }

    /// <summary>The prefix as it is put before every blob name: empty, or ending in <c>/</c>.</summary>
    internal string NormalizedPrefix => Prefix.TrimEnd('/') is { Length: > 0 } p ? p + "/" : string.Empty;

    private static void CheckRange(int value, int minimum, int maximum, string name)
    {
        if (value < minimum || value > maximum)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be from {minimum} to {maximum}.");
        }
    }
}
