
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
