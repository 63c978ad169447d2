using System.Text;

namespace KmsBackup.Tests.Engine;

/// <summary>Rules F1 and F2 through the engine: download a date as an encrypted file, upload it as a backup of its own.</summary>
public class EngineFileTests
{
    private static readonly DateOnly May1 = new(2026, 5, 1);

    private static async Task<(EngineHarness H, BackupDetails Backup)> BackedUpDayAsync()
    {
        var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.Kms.GenerateKeyAsync("kst-a", "orders", EngineHarness.Owner);
        await h.Kms.StoreSecretAsync("kst-a", "db-password", "orders", Encoding.UTF8.GetBytes("hunter2-the-value"), EngineHarness.Owner);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;
        await h.Kms.GenerateKeyAsync("kst-a", "invoices", EngineHarness.Owner);
        await h.Kms.RotateKeyAsync("kst-a", "orders");
        await h.RunUntilAsync(EngineHarness.Start.AddMinutes(15), TimeSpan.FromMinutes(5));
        return (h, backup);
    }

    private static async Task<List<string>> NamesAsync(EngineHarness h, string backupId, BackupDataType type)
    {
        var names = new List<string>();
        await foreach (var item in h.Client.GetDataAsync(EngineHarness.Owner, backupId, May1, type))
        {
            names.Add(item.Name);
        }

        return names;
    }

    [Fact]
    [Trait("Rule", "F1")]
    [Trait("Rule", "F2")]
    public async Task A_downloaded_date_uploads_as_a_backup_of_its_own_with_the_same_six_views()
    {
        var (h, backup) = await BackedUpDayAsync();
        await using var _ = h;
        using var file = new MemoryStream();
        using var download = await h.Client.DownloadAsync(EngineHarness.Owner, backup.Id, May1, file);
        Assert.Equal(32, download.DataKey.Length);
        Assert.Equal(file.Length, download.Length);
        Assert.DoesNotContain(Convert.ToHexString(download.DataKey.Span), download.ToString(), StringComparison.OrdinalIgnoreCase);

        file.Position = 0;
        var uploaded = await h.Client.UploadAsync(EngineHarness.Owner, file, download.DataKey.Span.ToArray(), "copy of May 1");

        Assert.Equal(BackupKind.Uploaded, uploaded.Kind);
        Assert.Equal("Upload", uploaded.Label);
        Assert.Equal("copy of May 1", uploaded.Alias);
        Assert.Equal(new ViewableWindow(May1, May1), uploaded.QueryableRange);
        foreach (var type in Enum.GetValues<BackupDataType>())
        {
            Assert.Equal(await NamesAsync(h, backup.Id, type), await NamesAsync(h, uploaded.Id, type));
        }

        Assert.Equal(["invoices"], await NamesAsync(h, uploaded.Id, BackupDataType.IncrementallyBackedUpKeys));
        Assert.Equal(["orders"], await NamesAsync(h, uploaded.Id, BackupDataType.RotatedKeys));
        var state = await h.Client.GetStateAtAsync(EngineHarness.Owner, uploaded.Id, h.Clock.GetUtcNow());
        var live = (await h.Kms.ReadSnapshotAsync("kst-a")).Snapshot;
        Assert.Equal(live.Keys.ToList(), state.Snapshot.Keys.ToList());
        Assert.Equal(live.Secrets.ToList(), state.Snapshot.Secrets.ToList());
        Assert.True((await h.Client.VerifyAsync()).IsClean);
    }

    /// <summary>Issue 16, finding 6: uploaded backups can be deleted (and only they), and one name is one upload.</summary>
    [Fact]
    [Trait("Rule", "F2")]
    [Trait("Rule", "K1")]
    public async Task An_uploaded_backup_can_be_deleted_with_its_data_and_its_name_used_once()
    {
        var (h, backup) = await BackedUpDayAsync();
        await using var _ = h;
        using var file = new MemoryStream();
        using var download = await h.Client.DownloadAsync(EngineHarness.Owner, backup.Id, May1, file);
        var key = download.DataKey.Span.ToArray();
        file.Position = 0;
        var uploaded = await h.Client.UploadAsync(EngineHarness.Owner, file, key, "copy of May 1");

        // The same name again is refused before anything is read or written.
        List<string> StoreImage() => [.. h.StoreFilesContent().Where(f => !f.Path.Contains("/leases/", StringComparison.Ordinal))
            .Select(f => $"{f.Path} {Convert.ToHexString(f.Bytes)}").Order(StringComparer.Ordinal)];
        var before = StoreImage();
        file.Position = 0;
        var twice = await Assert.ThrowsAsync<BackupException>(() => h.Client.UploadAsync(EngineHarness.Owner, file, key, "copy of May 1"));
        Assert.Equal(BackupErrorCode.NameConflict, twice.Code);
        Assert.Contains(uploaded.Id, twice.Message, StringComparison.Ordinal);
        Assert.Contains("another name", twice.Remedy, StringComparison.Ordinal);
        Assert.Equal(before, StoreImage());

        // Only uploaded backups can be deleted.
        var notUploaded = await Assert.ThrowsAsync<BackupException>(() => h.Client.DeleteBackupAsync(EngineHarness.Owner, backup.Id));
        Assert.Equal(BackupErrorCode.OperationNotSupported, notUploaded.Code);
        Assert.Contains("reset", notUploaded.Remedy, StringComparison.Ordinal);
        var notOwner = await Assert.ThrowsAsync<BackupException>(() => h.Client.DeleteBackupAsync("acct-other", uploaded.Id));
        Assert.Equal(BackupErrorCode.AccessDenied, notOwner.Code);

        var deleted = await h.Client.DeleteBackupAsync(EngineHarness.Owner, uploaded.Id);
        Assert.Equal(BackupStatus.Released, deleted.Status);
        Assert.DoesNotContain(h.StoreFilesContent(), f => f.Path.Contains($"/points/{uploaded.Id}/", StringComparison.Ordinal));
        await Assert.ThrowsAsync<BackupException>(() => h.Client.GetDataPageAsync(EngineHarness.Owner, uploaded.Id, May1, BackupDataType.FullyBackedUpKeys));
        await Assert.ThrowsAsync<BackupException>(() => h.Client.DeleteBackupAsync(EngineHarness.Owner, uploaded.Id));

        // The source is untouched, the store verifies, and the name can be used again.
        Assert.NotEmpty(await NamesAsync(h, backup.Id, BackupDataType.FullyBackedUpKeys));
        Assert.True((await h.Client.VerifyAsync()).IsClean);
        file.Position = 0;
        var again = await h.Client.UploadAsync(EngineHarness.Owner, file, key, "copy of May 1");
        Assert.NotEqual(uploaded.Id, again.Id);
    }

    [Fact]
    [Trait("Rule", "F1")]
    public async Task The_data_key_is_returned_once_and_stored_nowhere()
    {
        var (h, backup) = await BackedUpDayAsync();
        await using var _ = h;
        using var file = new MemoryStream();
        using var download = await h.Client.DownloadAsync(EngineHarness.Owner, backup.Id, May1, file);
        var key = download.DataKey.Span.ToArray();

        foreach (var path in h.Files.AllFiles)
        {
            var bytes = h.Files.File.ReadAllBytes(path);
            Assert.False(ByteSearch.Contains(bytes, key), $"the data key was found in {path}");
            Assert.False(ByteSearch.Contains(bytes, file.ToArray().AsSpan(0, 64)), $"the downloaded file was found in {path}");
        }

        // The file is not readable without the key and holds no plaintext.
        Assert.False(ByteSearch.Contains(file.ToArray(), "hunter2-the-value"u8));
        Assert.False(ByteSearch.Contains(file.ToArray(), "db-password"u8));
    }

    [Fact]
    [Trait("Rule", "F1")]
    public async Task A_date_outside_the_window_is_refused_with_the_days_needed()
    {
        var h = await EngineHarness.CreateAsync();
        await using var _ = h;
        await h.CreateInstanceAsync("kst-a");
        var paid = (await h.Client.PurchaseBackupsAsync(EngineHarness.Owner, new PurchaseOrder(EngineHarness.Region, 7, PurchaseTerm.FromYears(1))))[0];
        await h.Client.EnableBackupAsync(EngineHarness.Owner, paid.Id, "kst-a", InstanceKind.Software);
        h.Clock.Advance(TimeSpan.FromDays(10));

        var error = await Assert.ThrowsAsync<BackupException>(() => h.Client.DownloadAsync(EngineHarness.Owner, paid.Id, May1, new MemoryStream()));
        Assert.Equal(BackupErrorCode.DateOutsideWindow, error.Code);
        Assert.Contains("Extend the viewable days to at least 11", error.Remedy, StringComparison.Ordinal);

        await h.Client.ExtendViewableDaysAsync(EngineHarness.Owner, paid.Id, 11);
        using var download = await h.Client.DownloadAsync(EngineHarness.Owner, paid.Id, May1, new MemoryStream());
        Assert.Equal(May1, download.Date);
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task A_file_whose_content_is_not_a_day_of_backup_data_is_refused_as_that_file_and_imports_nothing()
    {
        var (h, _) = await BackedUpDayAsync();
        await using var _h = h;

        // A file made with the public codec: authentic under its key, but its content is not a day of backup data.
        var dataKey = BackupFileCodec.GenerateDataKey();
        using var crafted = new MemoryStream();
        await BackupFileCodec.EncryptAsync(new MemoryStream("not a day of backup data, but encrypted properly"u8.ToArray()), crafted, dataKey);
        var before = h.StoreFilesContent().Select(f => f.Path).ToList();
        var listed = await h.Client.ListBackupsAsync(EngineHarness.Owner).CountAsync();

        crafted.Position = 0;
        var refused = await Assert.ThrowsAsync<BackupFileException>(() => h.Client.UploadAsync(EngineHarness.Owner, crafted, dataKey, "crafted upload"));

        // The refusal is about the uploaded file, not the repository: no "restore the store from a copy".
        Assert.Equal(BackupErrorCode.FileCorrupt, refused.Code);
        Assert.Equal("uploaded file 'crafted upload'", refused.Item);
        Assert.Contains("'crafted upload'", refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("repository", refused.Message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("store", refused.Remedy, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("verify", refused.Remedy, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(before, h.StoreFilesContent().Select(f => f.Path).ToList());
        Assert.Equal(listed, await h.Client.ListBackupsAsync(EngineHarness.Owner).CountAsync());
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task A_wrong_key_or_a_damaged_file_imports_nothing()
    {
        var (h, backup) = await BackedUpDayAsync();
        await using var _ = h;
        using var file = new MemoryStream();
        using var download = await h.Client.DownloadAsync(EngineHarness.Owner, backup.Id, May1, file);
        var bytes = file.ToArray();
        var storeBefore = h.StoreFilesContent().Select(f => f.Path).Order().ToList();

        var wrongKey = await Assert.ThrowsAsync<BackupFileException>(() => h.Client.UploadAsync(EngineHarness.Owner, new MemoryStream(bytes), new byte[32], "x"));
        Assert.Equal(BackupErrorCode.WrongFileKey, wrongKey.Code);

        var flipped = (byte[])bytes.Clone();
        flipped[bytes.Length / 2] ^= 0x10;
        var tampered = await Assert.ThrowsAsync<BackupFileException>(() => h.Client.UploadAsync(EngineHarness.Owner, new MemoryStream(flipped), download.DataKey.Span.ToArray(), "x"));
        Assert.Equal(BackupErrorCode.FileCorrupt, tampered.Code);

        var truncated = await Assert.ThrowsAsync<BackupFileException>(() => h.Client.UploadAsync(EngineHarness.Owner, new MemoryStream(bytes[..^20]), download.DataKey.Span.ToArray(), "x"));
        Assert.True(truncated.Code == BackupErrorCode.FileTruncated || truncated.Code == BackupErrorCode.FileCorrupt, truncated.Code.ToString());

        var trailing = await Assert.ThrowsAsync<BackupFileException>(() => h.Client.UploadAsync(EngineHarness.Owner, new MemoryStream([.. bytes, 0x00]), download.DataKey.Span.ToArray(), "x"));
        Assert.Equal(BackupErrorCode.FileCorrupt, trailing.Code);

        Assert.Equal(storeBefore, h.StoreFilesContent().Select(f => f.Path).Order().ToList());
        var owned = new List<BackupDetails>();
        await foreach (var b in h.Client.ListBackupsAsync(EngineHarness.Owner))
        {
            owned.Add(b);
        }

        Assert.DoesNotContain(owned, b => b.Kind == BackupKind.Uploaded);
        await Assert.ThrowsAsync<BackupException>(() => h.Client.UploadAsync(EngineHarness.Owner, new MemoryStream(bytes), download.DataKey.Span.ToArray(), " bad name"));
    }
}
