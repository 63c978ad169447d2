using KmsBackup.Diagnostics;
using KmsBackup.Repository;
using Microsoft.Extensions.Logging;
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

        // The payload holds key material and secret ciphertexts: pinned, so that the GC never leaves a copy as it grows,
        // and zeroed when the download ends.
        var payload = new RecordWriter(64 * 1024, pinned: true);
        var dataKey = BackupFileCodec.GenerateDataKey();
        try
        {
            payload.WriteRaw(DayPayload.Magic);
            payload.WriteString(backupId);
            payload.WriteInt32(backupDate.DayNumber);
            payload.WriteString(entry.State.TimeZone.Id);
            await WriteSnapshotAsync(payload, full, cancellationToken).ConfigureAwait(false);
            await WriteSnapshotAsync(payload, last, cancellationToken).ConfigureAwait(false);
            payload.WriteVarUInt((ulong)changes.Count);
            foreach (var change in changes)
            {
                payload.WriteByte((byte)change.Type);
                payload.WriteByte((byte)change.Kind);
                payload.WriteString(change.Name);
            }

            // Read the payload in place: a copy of it (key material, secret ciphertexts) would outlive the Wipe below.
            using var plaintext = payload.OpenRead();
            var length = await BackupFileCodec.EncryptAsync(plaintext, destination, dataKey, cancellationToken).ConfigureAwait(false);
            return new BackupFileDownload(SensitiveBytes.Copy(dataKey), backupId, backupDate, length);
        }
        finally
        {
            payload.Wipe();
            CryptographicOperations.ZeroMemory(dataKey);
        }
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

    internal async Task WriteSnapshotAsync(RecordWriter payload, PointManifest point, CancellationToken cancellationToken)
    {
        var snapshot = await _repository.ReadSnapshotAsync(point, withValues: true, cancellationToken).ConfigureAwait(false);
        try
        {
            payload.WriteInstant(snapshot.TakenAt);
            payload.WriteString(snapshot.Source.InstanceId);
            payload.WriteByte((byte)snapshot.Source.Kind);
            payload.WriteString(snapshot.Source.Region);
            payload.WriteString(snapshot.Source.OwnerAccount);
            payload.WriteVarUInt((ulong)snapshot.Keys.Length);
            foreach (var key in snapshot.Keys)
            {
                ItemCodec.Write(payload, key);
            }

            payload.WriteVarUInt((ulong)snapshot.Secrets.Length);
            foreach (var secret in snapshot.Secrets)
            {
                ItemCodec.Write(payload, secret);
            }
        }
        finally
        {
            // The payload holds the bytes now; the decoded records need not keep key material or secret values around.
            SensitiveValues.Clear(snapshot);
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
