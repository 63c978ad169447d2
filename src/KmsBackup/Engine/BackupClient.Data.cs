using KmsBackup.Diagnostics;

namespace KmsBackup;

// Account operations (each takes the caller account first): reads of backed-up data and the backup file, delegated to BackupDataReader and BackupFileTransfer.
public partial class BackupClient
{
    /// <summary>The most items a data page can hold.</summary>
    public const int MaximumPageSize = 1000;

    /// <summary>
    /// Reads one page of a date's data of one type (rules D2, D3): all keys or secrets of that day's full
    /// backup, or those added or rotated that day. The date must be in the viewable window (W2–W4) of a
    /// backup that is not expired (L4). Items carry metadata only, never key material or secret values.
    /// </summary>
    /// <remarks>
    /// A page of a full view (<see cref="BackupDataType.FullyBackedUpKeys"/>, <see cref="BackupDataType.FullyBackedUpSecrets"/>)
    /// without a name filter seeks through the day's tree to its position, so it costs about the same at a million items
    /// as at ten thousand; a filtered page and the added and rotated views read the view whole. Continuation tokens are
    /// opaque: pass back the one a page returned, with the same type and filter.
    /// </remarks>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">The backup.</param>
    /// <param name="backupDate">The date, in the backup's time zone.</param>
    /// <param name="type">Which of the six data types.</param>
    /// <param name="query">Page size, name filter and continuation; <see langword="null"/> for the first 100 items.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <exception cref="BackupException">The date is outside the window (the error gives the viewable days needed), the backup is expired, or the caller is not its owner.</exception>
    public virtual Task<BackupDataPage> GetDataPageAsync(
        string callerAccount, string backupId, DateOnly backupDate, BackupDataType type, BackupDataQuery? query = null, CancellationToken cancellationToken = default) =>
        _data.GetDataPageAsync(callerAccount, backupId, backupDate, type, query, cancellationToken);

    /// <summary>Reads every item of a date's data of one type, page by page (rules D2, D3).</summary>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">The backup.</param>
    /// <param name="backupDate">The date, in the backup's time zone.</param>
    /// <param name="type">Which of the six data types.</param>
    /// <param name="nameContains">Only items whose name contains this text; <see langword="null"/> for all.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public virtual IAsyncEnumerable<BackupDataItem> GetDataAsync(
        string callerAccount, string backupId, DateOnly backupDate, BackupDataType type, string? nameContains = null,
        CancellationToken cancellationToken = default) =>
        _data.GetDataAsync(callerAccount, backupId, backupDate, type, nameContains, cancellationToken);

    /// <summary>The recovery points of a date, oldest first (each full and each incremental).</summary>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">The backup.</param>
    /// <param name="backupDate">The date, in the backup's time zone; must be viewable.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public virtual Task<IReadOnlyList<RecoveryPoint>> ListRecoveryPointsAsync(string callerAccount, string backupId, DateOnly backupDate, CancellationToken cancellationToken = default) =>
        _data.ListRecoveryPointsAsync(callerAccount, backupId, backupDate, cancellationToken);

    /// <summary>
    /// The instance's state as backed up at <paramref name="at"/>: the latest recovery point taken at or
    /// before it (rule D4). Its date must be viewable. The snapshot holds key material and secret
    /// ciphertexts, in pinned buffers that the client keeps no reference to: keep it no longer than needed, and
    /// dispose the result to zero them (<c>using var state = await client.GetStateAtAsync(...)</c>).
    /// </summary>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">The backup.</param>
    /// <param name="at">The instant.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no point at or before the instant; or the date is not viewable.</exception>
    public virtual Task<RecoveryPointState> GetStateAtAsync(
        string callerAccount, string backupId, DateTimeOffset at, CancellationToken cancellationToken = default) =>
        _data.GetStateAtAsync(callerAccount, backupId, at, cancellationToken);

    /// <summary>
    /// Writes the backup data of <paramref name="backupDate"/> (its full backup and what was added and
    /// rotated that day: the six data types) to <paramref name="destination"/> as a backup file encrypted
    /// under a fresh 256-bit data key (rule F1; format in docs/backup-file-format.md). The key is returned
    /// once; the SDK stores neither the key nor the file.
    /// </summary>
    /// <remarks>
    /// The file is written as it is made, a leaf of the backup's trees at a time, so a download's memory does not grow
    /// with the day. When it fails part way (a damaged object, a store failure, cancellation), the destination holds the
    /// start of a file, which verify and upload refuse as truncated: discard it (the tool deletes it).
    /// </remarks>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">The backup.</param>
    /// <param name="backupDate">The date; it must be in the viewable window (extend the viewable days first otherwise).</param>
    /// <param name="destination">Where the file is written.</param>
    /// <param name="cancellationToken">Cancels the download.</param>
    /// <exception cref="BackupException">The date is outside the window (the error states the viewable days needed), no backup ran that day, or the backup is expired or not the caller's.</exception>
    public virtual Task<BackupFileDownload> DownloadAsync(string callerAccount, string backupId, DateOnly backupDate, Stream destination, CancellationToken cancellationToken = default) =>
        BackupTelemetry.TraceAsync(
            KmsBackupDiagnostics.DownloadActivity, _ => _files.DownloadAsync(callerAccount, backupId, backupDate, destination, cancellationToken), backupId, backupDate);

    /// <summary>
    /// Imports a downloaded backup file as a backup of kind uploaded (label <c>Upload</c>, rule F2),
    /// holding the date the file held, viewable like the others. The file is read once, as a stream: each
    /// segment is authenticated as it is decrypted, and the day it holds is parsed and validated (every field,
    /// count, enum and reference: docs/backup-file-format.md, "The payload") to the file's authenticated end
    /// before anything is written. A wrong key, any tampering, truncation, reordering or trailing data, and
    /// content that is not a valid day of backup data are refused with a typed error, and the store is left
    /// exactly as it was. Then the day's recovery points are written, and the catalog entry that makes the
    /// backup visible last.
    /// </summary>
    /// <remarks>
    /// Memory: the day's distinct items in their stored encoding (an item of the last recovery point equal to the
    /// full backup's is held once) and about 36 bytes per item, plus the tree writer's buffers for the largest leaf
    /// and a constant; never the file or its plaintext whole (the README, "Download and upload", has measurements).
    /// An upload interrupted after it began writing (cancelled, a store failure, a crash) leaves no backup:
    /// at most packs that nothing refers to and, after a crash, recovery points without a catalog entry, which
    /// nothing lists and a later prune deletes (docs/repository-format.md, "Writers and maintenance").
    /// </remarks>
    /// <param name="callerAccount">The account that will own the uploaded backup.</param>
    /// <param name="file">The backup file, read forward once to its end.</param>
    /// <param name="dataKey">The data key returned when the file was downloaded.</param>
    /// <param name="backupName">The new backup's name; errors about the file name it.</param>
    /// <param name="cancellationToken">Cancels the upload; nothing is imported then.</param>
    /// <exception cref="BackupFileException">The key is wrong, the file is damaged, its content is not a valid day of
    /// backup data (<see cref="BackupErrorCode.FileCorrupt"/>, naming what is wrong), or it is larger than
    /// <see cref="BackupClientOptions.MaximumUploadSize"/> (<see cref="BackupErrorCode.FileTooLarge"/>).</exception>
    /// <exception cref="BackupException">The name is invalid, or the store failed.</exception>
    public virtual Task<BackupDetails> UploadAsync(string callerAccount, Stream file, ReadOnlyMemory<byte> dataKey, string backupName, CancellationToken cancellationToken = default) =>
        BackupTelemetry.TraceAsync(KmsBackupDiagnostics.UploadActivity, async activity =>
        {
            var details = await _files.UploadAsync(callerAccount, file, dataKey, backupName, cancellationToken).ConfigureAwait(false);
            BackupTelemetry.TagBackup(activity, details.Id, details.LatestPoint?.Date);
            return details;
        });
}
