using System.Globalization;
using System.Security.Cryptography;
using KmsBackup.Diagnostics;
using KmsBackup.Repository;

namespace KmsBackup;

/// <summary>A downloaded backup file's data key and what the file holds. The key is returned once: the SDK keeps neither it nor the file.</summary>
public sealed class BackupFileDownload : IDisposable
{
    internal BackupFileDownload(SensitiveBytes dataKey, string backupId, DateOnly date, long length)
    {
        DataKey = dataKey;
        BackupId = backupId;
        Date = date;
        Length = length;
    }

    /// <summary>The 256-bit data key that decrypts the file. Store it apart from the file; it is never shown by <see cref="ToString"/>.</summary>
    public SensitiveBytes DataKey { get; }

    /// <summary>The backup the file was downloaded from.</summary>
    public string BackupId { get; }

    /// <summary>The backup date the file holds.</summary>
    public DateOnly Date { get; }

    /// <summary>The file's length in bytes.</summary>
    public long Length { get; }

    /// <summary>Zeroes the data key in memory.</summary>
    public void Dispose() => DataKey.Clear();

    /// <summary>The download in one line, without the key.</summary>
    public override string ToString() => $"backup '{BackupId}' {Date:yyyy-MM-dd}, {Length} bytes, data key {DataKey}";
}

public partial class BackupClient
{
    /// <summary>
    /// Writes the backup data of <paramref name="backupDate"/> (its full backup and what was added and
    /// rotated that day: the six data types) to <paramref name="destination"/> as a backup file encrypted
    /// under a fresh 256-bit data key (rule F1; format in docs/backup-file-format.md). The key is returned
    /// once; the SDK stores neither the key nor the file.
    /// </summary>
    /// <param name="callerAccount">The backup's owner.</param>
    /// <param name="backupId">The backup.</param>
    /// <param name="backupDate">The date; it must be in the viewable window (extend the viewable days first otherwise).</param>
    /// <param name="destination">Where the file is written.</param>
    /// <param name="cancellationToken">Cancels the download.</param>
    /// <exception cref="BackupException">The date is outside the window (the error states the viewable days needed), no backup ran that day, or the backup is expired or not the caller's.</exception>
    public virtual async Task<BackupFileDownload> DownloadAsync(string callerAccount, string backupId, DateOnly backupDate, Stream destination, CancellationToken cancellationToken = default)
    {
        using var activity = BackupTelemetry.Source.StartActivity(KmsBackupDiagnostics.DownloadActivity);
        activity?.SetTag(KmsBackupDiagnostics.BackupIdTag, backupId);
        activity?.SetTag(KmsBackupDiagnostics.BackupDateTag, backupDate.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
        try
        {
            var download = await DownloadCoreAsync(callerAccount, backupId, backupDate, destination, cancellationToken).ConfigureAwait(false);
            Log.DownloadCompleted(_logger, backupId, backupDate, download.Length);
            return download;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            BackupTelemetry.SetFailed(activity, e);
            throw;
        }
    }

    private async Task<BackupFileDownload> DownloadCoreAsync(string callerAccount, string backupId, DateOnly backupDate, Stream destination, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var entry = await LoadOwnedForAsync(callerAccount, backupId, BackupOperation.Download, backupDate, cancellationToken).ConfigureAwait(false);

        var day = await _repository.ListPointsAsync(backupId, backupDate, cancellationToken).ConfigureAwait(false);
        if (await FullPointOfAsync(day, cancellationToken).ConfigureAwait(false) is not { } fullKey)
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, $"backup '{backupId}' date {backupDate:yyyy-MM-dd}",
                $"No full backup of backup '{backupId}' ran on {backupDate:yyyy-MM-dd}, so there is nothing to download for that date.",
                "Choose a date on which the backup ran (list its recovery points)."));
        }

        var full = await ReadPointAsync(fullKey, cancellationToken).ConfigureAwait(false);
        var last = await ReadPointAsync(day[^1], cancellationToken).ConfigureAwait(false);
        var changes = new List<ItemChange>();
        foreach (var key in day.SkipWhile(k => k != fullKey).Skip(1))
        {
            changes.AddRange((await ReadPointAsync(key, cancellationToken).ConfigureAwait(false)).Changes);
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
    public virtual async Task<BackupDetails> UploadAsync(string callerAccount, Stream file, ReadOnlyMemory<byte> dataKey, string backupName, CancellationToken cancellationToken = default)
    {
        using var activity = BackupTelemetry.Source.StartActivity(KmsBackupDiagnostics.UploadActivity);
        try
        {
            var details = await UploadCoreAsync(callerAccount, file, dataKey, backupName, cancellationToken).ConfigureAwait(false);
            activity?.SetTag(KmsBackupDiagnostics.BackupIdTag, details.Id);
            var date = details.LatestPoint?.Date;
            activity?.SetTag(KmsBackupDiagnostics.BackupDateTag, date?.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
            Log.UploadCompleted(_logger, details.Id, date);
            return details;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            BackupTelemetry.SetFailed(activity, e);
            if (e is BackupFileException)
            {
                Log.UploadRefused(_logger, BackupTelemetry.ErrorType(e));
            }

            throw;
        }
    }

    private async Task<BackupDetails> UploadCoreAsync(string callerAccount, Stream file, ReadOnlyMemory<byte> dataKey, string backupName, CancellationToken cancellationToken)
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
            var backup = BackupLifecycle.CreateUploaded(NewId("bku"), backupName, day.Date, day.Full.Source.Region, day.TimeZone, Clock.GetUtcNow()).GetBackupsOrThrow()[0];
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
                            Invariant($"Prunes marked the recovery points of the upload '{backupName}' as abandoned before its catalog entry was written, {attempt} times; nothing was imported."),
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
            return ToDetails(entry, await LatestPointAsync(entry.State, cancellationToken).ConfigureAwait(false));
        }
    }

    private const int UploadAttempts = 5;

    /// <summary>Decrypts, parses and validates an uploaded file as a stream, writing nothing.</summary>
    private async Task<UploadedDay> ReadUploadAsync(Stream file, ReadOnlyMemory<byte> dataKey, string backupName, CancellationToken cancellationToken)
    {
        var maximum = _options.MaximumUploadSize;
        BackupFileException TooLarge() => new(new Refusal(
            BackupErrorCode.FileTooLarge, $"uploaded file '{backupName}'",
            Invariant($"The uploaded file '{backupName}' is larger than {maximum:N0} bytes, the most this client accepts (BackupClientOptions.MaximumUploadSize). Nothing was imported."),
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

    private async Task DeletePointsQuietlyAsync(IEnumerable<PointKey> points)
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

    private async Task WriteSnapshotAsync(RecordWriter payload, PointManifest point, CancellationToken cancellationToken)
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

    private async Task WriteUploadedPointAsync(
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
