using KmsBackup.Diagnostics;
using KmsBackup.Repository;
using Microsoft.Extensions.Logging;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;

namespace KmsBackup;

/// <summary>Download of a day as an encrypted backup file (rule F1) and upload of such a file as an uploaded backup (rule F2).</summary>
internal sealed class BackupFileTransfer
{
    private readonly BackupCatalog _catalog;
    private readonly BackupDataReader _data;
    private readonly BackupRepository _repository;
    private readonly BackupClientOptions _options;
    private readonly ILogger _logger;

    internal BackupFileTransfer(BackupCatalog catalog, BackupDataReader data)
    {
        _catalog = catalog;
        _data = data;
        _repository = catalog.Repository;
        _options = catalog.Options;
        _logger = catalog.Logger;
    }

    internal async Task<BackupFileDownload> DownloadAsync(string callerAccount, string backupId, DateOnly backupDate, Stream destination, CancellationToken cancellationToken = default)
    {
        var download = await DownloadCoreAsync(callerAccount, backupId, backupDate, destination, cancellationToken).ConfigureAwait(false);
        Log.DownloadCompleted(_logger, backupId, backupDate, download.Length);
        return download;
    }

    internal async Task<BackupFileDownload> DownloadCoreAsync(string callerAccount, string backupId, DateOnly backupDate, Stream destination, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var entry = await _catalog.LoadOwnedForAsync(callerAccount, backupId, BackupOperation.Download, backupDate, cancellationToken).ConfigureAwait(false);

        var day = await _repository.ListPointsAsync(backupId, backupDate, cancellationToken).ConfigureAwait(false);
        if (await _data.FullPointOfAsync(day, cancellationToken).ConfigureAwait(false) is not { } fullKey)
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, $"backup '{backupId}' date {backupDate:yyyy-MM-dd}",
                $"No full backup of backup '{backupId}' ran on {backupDate:yyyy-MM-dd}, so there is nothing to download for that date.",
                "Choose a date on which the backup ran (list its recovery points)."));
        }

        var full = await _catalog.ReadPointAsync(fullKey, cancellationToken).ConfigureAwait(false);
        var last = await _catalog.ReadPointAsync(day[^1], cancellationToken).ConfigureAwait(false);
        var changes = new List<ItemChange>();
        foreach (var key in day.SkipWhile(k => k != fullKey).Skip(1))
        {
            changes.AddRange((await _catalog.ReadPointAsync(key, cancellationToken).ConfigureAwait(false)).Changes);
        }

        // The payload is made as it is encrypted, leaf by leaf (ProducedStream): the download holds a batch of leaves and
        // one segment, not the day. What it holds of key material and secret ciphertexts is pinned and zeroed as it goes.
        var dataKey = BackupFileCodec.GenerateDataKey();
        try
        {
            var payload = new ProducedStream((buffer, token) => WritePayloadAsync(buffer, backupId, backupDate, entry.State.TimeZone.Id, full, last, changes, token));
            await using (payload.ConfigureAwait(false))
            {
                var length = await BackupFileCodec.EncryptAsync(payload, destination, dataKey, cancellationToken).ConfigureAwait(false);
                return new BackupFileDownload(SensitiveBytes.Copy(dataKey), backupId, backupDate, length);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    /// <summary>Writes a day's payload (docs/backup-file-format.md) into <paramref name="buffer"/>, yielding after each piece.</summary>
    private async IAsyncEnumerable<ReadOnlyMemory<byte>> WritePayloadAsync(
        RecordWriter buffer, string backupId, DateOnly backupDate, string timeZone, PointManifest full, PointManifest last, List<ItemChange> changes,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        buffer.WriteRaw(DayPayload.Magic);
        buffer.WriteString(backupId);
        buffer.WriteInt32(backupDate.DayNumber);
        buffer.WriteString(timeZone);
        await foreach (var piece in WriteSnapshotAsync(buffer, full, cancellationToken).ConfigureAwait(false))
        {
            yield return piece;
        }

        await foreach (var piece in WriteSnapshotAsync(buffer, last, cancellationToken).ConfigureAwait(false))
        {
            yield return piece;
        }

        buffer.WriteVarUInt((ulong)changes.Count);
        foreach (var change in changes)
        {
            buffer.WriteByte((byte)change.Type);
            buffer.WriteByte((byte)change.Kind);
            buffer.WriteString(change.Name);
        }

        yield return ReadOnlyMemory<byte>.Empty;
    }

    internal async Task<BackupDetails> UploadAsync(string callerAccount, Stream file, ReadOnlyMemory<byte> dataKey, string backupName, CancellationToken cancellationToken = default)
    {
        try
        {
            var details = await UploadCoreAsync(callerAccount, file, dataKey, backupName, cancellationToken).ConfigureAwait(false);
            Log.UploadCompleted(_logger, details.Id, details.LatestPoint?.Date);
            return details;
        }
        catch (BackupFileException e)
        {
            Log.UploadRefused(_logger, BackupTelemetry.ErrorType(e));
            throw;
        }
    }

    internal async Task<BackupDetails> UploadCoreAsync(string callerAccount, Stream file, ReadOnlyMemory<byte> dataKey, string backupName, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(callerAccount);
        ArgumentNullException.ThrowIfNull(file);
        if (BackupLifecycle.AliasRefusal(backupName, "name") is { } badName)
        {
            throw badName.ToException();
        }

        await RefuseNameInUseAsync(callerAccount, backupName, cancellationToken).ConfigureAwait(false);

        // Everything is read and checked before the first write: a refused file leaves the store as it was.
        using var day = await ReadUploadAsync(file, dataKey, backupName, cancellationToken).ConfigureAwait(false);

        for (var attempt = 1; ; attempt++)
        {
            var backup = BackupLifecycle.CreateUploaded(BackupCatalog.NewId("bku"), backupName, day.Date, day.Full.Source.Region, day.TimeZone, _catalog.Clock.GetUtcNow()).GetBackupsOrThrow()[0];
            PointKey[] points = [new(backup.Id, day.Date, 1), new(backup.Id, day.Date, 2)];
            try
            {
                // Commit order: data and points first, the catalog entry that makes the backup visible last.
                await WriteUploadedPointAsync(backup.Id, 1, BackupRunKind.Full, ScheduleReason.FirstFull, day, day.Full, [], cancellationToken).ConfigureAwait(false);
                await WriteUploadedPointAsync(backup.Id, 2, BackupRunKind.Incremental, ScheduleReason.Incremental, day, day.Last, day.Changes, cancellationToken).ConfigureAwait(false);

                // Points without a catalog entry look abandoned to a prune, which marks them and deletes them a
                // grace period later. Points a prune has marked are not relied on: write them again under a new ID.
                // Unmarked now, they cannot be deleted before the catalog entry below lands (a marker made later
                // waits out the grace period, and its prune lists the catalog after reading it).
                var markers = await _repository.ReadPruneMarkersAsync(cancellationToken).ConfigureAwait(false);
                if (points.Any(p => markers.MarksPoint(p.StoreKey)))
                {
                    await DeletePointsQuietlyAsync(points).ConfigureAwait(false);
                    if (attempt >= UploadAttempts)
                    {
                        throw new BackupException(new Refusal(
                            BackupErrorCode.LeaseLost, $"uploaded file '{backupName}'",
                            BackupCatalog.Invariant($"Prunes marked the recovery points of the upload '{backupName}' as abandoned before its catalog entry was written, {attempt} times; nothing was imported."),
                            "Retry the upload; if this recurs, run prunes less often, or with a longer PruneGracePeriod."));
                    }

                    continue;
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // No catalog entry was attempted: nothing will ever refer to these points.
                await DeletePointsQuietlyAsync(points).ConfigureAwait(false);
                throw;
            }

            var entry = await _repository.SaveStateAsync(new CatalogEntry(backup, callerAccount), cancellationToken).ConfigureAwait(false);
            return _catalog.ToDetails(entry, await _catalog.LatestPointAsync(entry.State, cancellationToken).ConfigureAwait(false));
        }
    }

    internal const int UploadAttempts = 5;

    /// <summary>Decrypts, parses and validates an uploaded file as a stream, writing nothing.</summary>
    /// <summary>
    /// Refuses a name that another uploaded backup of the account has (not deleted): the name is how the account tells its
    /// uploads apart. Two uploads of one name at the same instant, on two hosts, can both pass this check.
    /// </summary>
    private async Task RefuseNameInUseAsync(string callerAccount, string backupName, CancellationToken cancellationToken)
    {
        foreach (var stored in (await _repository.LoadStatesAsync(cancellationToken).ConfigureAwait(false)).States)
        {
            var entry = _catalog.Observe(stored);
            if (entry.State.Kind == BackupKind.Uploaded && entry.State.Status != BackupStatus.Released &&
                string.Equals(entry.OwnerAccount, callerAccount, StringComparison.Ordinal) &&
                string.Equals(entry.State.Alias, backupName, StringComparison.Ordinal))
            {
                throw new BackupException(new Refusal(
                    BackupErrorCode.NameConflict, $"uploaded file '{backupName}'",
                    $"The account already has an uploaded backup named '{backupName}' ('{entry.State.Id}', the date {entry.State.UploadedDate:yyyy-MM-dd}). Nothing was imported.",
                    $"Upload under another name, or delete the backup '{entry.State.Id}' first (DeleteBackupAsync, or kmsbackup delete)."));
            }
        }
    }

    internal async Task<UploadedDay> ReadUploadAsync(Stream file, ReadOnlyMemory<byte> dataKey, string backupName, CancellationToken cancellationToken)
    {
        var maximum = _options.MaximumUploadSize;
        BackupFileException TooLarge() => new(new Refusal(
            BackupErrorCode.FileTooLarge, $"uploaded file '{backupName}'",
            BackupCatalog.Invariant($"The uploaded file '{backupName}' is larger than {maximum:N0} bytes, the most this client accepts (BackupClientOptions.MaximumUploadSize). Nothing was imported."),
            "Upload the file on a client whose MaximumUploadSize is large enough, if the file is genuine."));
        BackupFileException Malformed(string why) => new(new Refusal(
            BackupErrorCode.FileCorrupt, $"uploaded file '{backupName}'",
            $"The uploaded file '{backupName}' opened under its data key, but what it holds is not a valid day of backup data: {why}. Nothing was imported.",
            "Upload the file exactly as a KmsBackup download wrote it, with the data key of that download. A file that opens under its key but holds other content was not written by a download, or was changed by someone who had the key."));

        UploadSizeLimit.CheckDeclaredLength(file, maximum, TooLarge);
        var limited = new UploadSizeLimit(file, maximum, TooLarge);
        await using (limited.ConfigureAwait(false))
        {
            var plaintext = BackupFileCodec.CreateDecryptingStream(limited, dataKey, leaveOpen: true);
            await using (plaintext.ConfigureAwait(false))
            {
                return await DayPayload.ReadAsync(plaintext, Malformed, _options.UploadTemporaryFolder ?? Path.GetTempPath(), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    internal async Task DeletePointsQuietlyAsync(IEnumerable<PointKey> points)
    {
        foreach (var point in points)
        {
            try
            {
                await _repository.DeletePointAsync(point, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // The store is failing (or the process is going down): a prune deletes what is left, once it has
                // marked it. The upload's own error is the one to report.
            }
        }
    }

    /// <summary>
    /// Writes one recovery point's snapshot into the payload: its source, then its keys and its secrets, each a count and
    /// the items in name order, copied leaf by leaf from the trees (a leaf holds its items in the payload's encoding).
    /// Yields each leaf in place, after the records written before it; the walk zeroes the leaf's plaintext once the
    /// stream has taken it and asks for the next.
    /// </summary>
    private async IAsyncEnumerable<ReadOnlyMemory<byte>> WriteSnapshotAsync(RecordWriter payload, PointManifest point, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        payload.WriteInstant(point.TakenAt);
        payload.WriteString(point.Source.InstanceId);
        payload.WriteByte((byte)point.Source.Kind);
        payload.WriteString(point.Source.Region);
        payload.WriteString(point.Source.OwnerAccount);
        payload.WriteVarUInt((ulong)point.KeyRoot.Count);
        await foreach (var leaf in ItemTree.LeavesAsync(_repository.Objects, point.KeyRoot, ItemCodec.SkipKey, cancellationToken).ConfigureAwait(false))
        {
            yield return leaf;
        }

        payload.WriteVarUInt((ulong)point.SecretRoot.Count);
        await foreach (var leaf in ItemTree.LeavesAsync(_repository.Objects, point.SecretRoot, ItemCodec.SkipSecret, cancellationToken).ConfigureAwait(false))
        {
            yield return leaf;
        }
    }

    internal async Task WriteUploadedPointAsync(
        string backupId, long sequence, BackupRunKind kind, ScheduleReason reason, UploadedDay day, UploadedSnapshot snapshot, IReadOnlyList<ItemChange> changes,
        CancellationToken cancellationToken)
    {
        await _repository.CommitPointAsync(
            (writer, token) => _repository.WriteUploadedTreesAsync(day, snapshot, writer, token),
            snapshot.Source.InstanceId,
            (keyRoot, secretRoot) => new PointManifest
            {
                BackupId = backupId,
                Sequence = sequence,
                Kind = kind,
                Reason = reason,
                StartedAt = snapshot.TakenAt,
                CompletedAt = snapshot.TakenAt,
                Slot = snapshot.TakenAt,
                TakenAt = snapshot.TakenAt,
                Source = snapshot.Source,
                KeyRoot = keyRoot,
                SecretRoot = secretRoot,
                Changes = changes,
            },
            day.Date, static _ => Task.CompletedTask, cancellationToken).ConfigureAwait(false);
    }
}
