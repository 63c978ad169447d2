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
    private static readonly byte[] s_dayMagic = "KBDAY001"u8.ToArray();

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
        var entry = AsOfNow(await LoadOwnedAsync(callerAccount, backupId, cancellationToken).ConfigureAwait(false));
        if (BackupLifecycle.CheckDate(entry.State, backupDate, BackupOperation.Download, Clock.GetUtcNow()) is { } refusal)
        {
            throw refusal.ToException();
        }

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

        var payload = new RecordWriter(64 * 1024);
        var dataKey = BackupFileCodec.GenerateDataKey();
        try
        {
            payload.WriteRaw(s_dayMagic);
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
    /// holding the date the file held, viewable like the others. The whole file is decrypted and
    /// authenticated before anything is written: a wrong key, any tampering, truncation, reordering or
    /// trailing data is refused with a typed error, and nothing is imported. The plaintext is held in
    /// memory while it is imported.
    /// </summary>
    /// <param name="callerAccount">The account that will own the uploaded backup.</param>
    /// <param name="file">The backup file.</param>
    /// <param name="dataKey">The data key returned when the file was downloaded.</param>
    /// <param name="backupName">The new backup's name.</param>
    /// <param name="cancellationToken">Cancels the upload; nothing is imported then.</param>
    /// <exception cref="BackupFileException">The key is wrong or the file is damaged (see its code); <see cref="BackupErrorCode.FileCorrupt"/> also when
    /// the file opens with its key but its content is not a day of backup data.</exception>
    /// <exception cref="BackupException">The name is invalid.</exception>
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

        using var plaintext = new MemoryStream();
        try
        {
            await BackupFileCodec.DecryptAsync(file, plaintext, dataKey, cancellationToken).ConfigureAwait(false);
            (string, DateOnly, BackupTimeZone, InstanceSnapshot, InstanceSnapshot, List<ItemChange>) day;
            try
            {
                day = ParseDay(plaintext.GetBuffer().AsSpan(0, (int)plaintext.Length));
            }
            catch (BackupIntegrityException e)
            {
                // The reader speaks of the repository ("restore the store from a copy"); the fault is in the uploaded file.
                throw new BackupFileException(new Refusal(
                    BackupErrorCode.FileCorrupt, "content of the backup file",
                    $"The backup file uploaded as '{backupName}' opened with its data key, but its content is not a day of backup data that can be imported. Nothing was imported.",
                    "Upload a file that a download wrote, with the data key returned with it; nothing of this file may be imported."), null, e);
            }

            var (_, date, zone, full, last, changes) = day;

            var backup = BackupLifecycle.CreateUploaded(NewId("bku"), backupName, date, full.Source.Region, zone, Clock.GetUtcNow()).GetBackupsOrThrow()[0];

            // Commit order: data and points first, the catalog entry that makes the backup visible last.
            await WriteUploadedPointAsync(backup.Id, 1, BackupRunKind.Full, ScheduleReason.FirstFull, full, [], date, cancellationToken).ConfigureAwait(false);
            await WriteUploadedPointAsync(backup.Id, 2, BackupRunKind.Incremental, ScheduleReason.Incremental, last, changes, date, cancellationToken).ConfigureAwait(false);
            var entry = await _repository.SaveStateAsync(new CatalogEntry(backup, callerAccount), cancellationToken).ConfigureAwait(false);
            return ToDetails(entry, await LatestPointAsync(entry.State, cancellationToken).ConfigureAwait(false));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext.GetBuffer());
        }
    }

    private async Task WriteSnapshotAsync(RecordWriter payload, PointManifest point, CancellationToken cancellationToken)
    {
        var snapshot = await _repository.ReadSnapshotAsync(point, cancellationToken).ConfigureAwait(false);
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

        // The payload holds the bytes now; the decoded records need not keep key material around.
        foreach (var key in snapshot.Keys)
        {
            foreach (var version in key.Versions)
            {
                version.Material?.Clear();
            }
        }
    }

    private static (string SourceBackup, DateOnly Date, BackupTimeZone Zone, InstanceSnapshot Full, InstanceSnapshot Last, List<ItemChange> Changes) ParseDay(ReadOnlySpan<byte> plain)
    {
        var r = new RecordReader(plain, "backup file content");
        if (!r.ReadRaw(s_dayMagic.Length).SequenceEqual(s_dayMagic))
        {
            throw r.Malformed("it is not a day of backup data");
        }

        var sourceBackup = r.ReadRequiredString();
        var dayNumber = r.ReadInt32();
        if (dayNumber < DateOnly.MinValue.DayNumber || dayNumber > DateOnly.MaxValue.DayNumber ||
            !BackupTimeZone.TryFromId(r.ReadRequiredString(), out var zone, out _))
        {
            throw r.Malformed("its date or time zone is out of range");
        }

        var full = ReadSnapshot(ref r);
        var last = ReadSnapshot(ref r);
        var count = r.ReadCount(100_000_000);
        var changes = new List<ItemChange>(Math.Min(count, 100_000));
        for (var i = 0; i < count; i++)
        {
            var type = (ItemType)r.ReadByte();
            var kind = (ChangeKind)r.ReadByte();
            changes.Add(new ItemChange(type, r.ReadRequiredString(), kind));
        }

        r.ExpectEnd();
        return (sourceBackup, DateOnly.FromDayNumber(dayNumber), zone, full, last, changes);
    }

    private static InstanceSnapshot ReadSnapshot(ref RecordReader r)
    {
        var takenAt = r.ReadInstant();
        var source = new SnapshotSource(r.ReadRequiredString(), (InstanceKind)r.ReadByte(), r.ReadRequiredString(), r.ReadRequiredString());
        var keys = new List<KeyRecord>();
        for (var count = r.ReadCount(100_000_000); count > 0; count--)
        {
            keys.Add(ItemCodec.ReadKey(ref r));
        }

        var secrets = new List<SecretRecord>();
        for (var count = r.ReadCount(100_000_000); count > 0; count--)
        {
            secrets.Add(ItemCodec.ReadSecret(ref r));
        }

        try
        {
            return InstanceSnapshot.Create(source, takenAt, keys, secrets);
        }
        catch (ArgumentException e)
        {
            throw r.Malformed($"its items are inconsistent ({e.ParamName})");
        }
    }

    private async Task WriteUploadedPointAsync(
        string backupId, long sequence, BackupRunKind kind, ScheduleReason reason, InstanceSnapshot snapshot, IReadOnlyList<ItemChange> changes,
        DateOnly date, CancellationToken cancellationToken)
    {
        await _repository.CommitPointAsync(snapshot, (keyRoot, secretRoot) => new PointManifest
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
        }, date, static _ => Task.CompletedTask, cancellationToken).ConfigureAwait(false);
    }
}
