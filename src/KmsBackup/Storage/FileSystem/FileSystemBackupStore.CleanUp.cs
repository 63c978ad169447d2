using System.Globalization;
using System.Security.Cryptography;

using EntryKind = KmsBackup.Storage.PosixFileOperations.EntryKind;

namespace KmsBackup.Storage;

// Leftovers: the temporary files a crash leaves, their names, and removing them.
public sealed partial class FileSystemBackupStore
{
    /// <summary>
    /// Removes what interrupted writes and deletions left behind (temporary files that were never published
    /// or never removed, after a crash or a failed write) once they are older than <paramref name="olderThan"/>.
    /// Call it when a host starts, or from time to time; it never touches an object or a live lease.
    /// </summary>
    /// <param name="olderThan">
    /// How old a leftover must be to be removed, by this store's clock. Keep it well above the longest write
    /// (an hour, say): removing the temporary file of a write in progress makes that write fail (it never
    /// publishes a partial object).
    /// </param>
    /// <param name="cancellationToken">Cancels the cleanup; what was removed stays removed.</param>
    /// <returns>The number of files removed.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="olderThan"/> is negative.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.
    /// <see cref="BackupErrorCode.StoreLinkRefused"/>: the store's folder holds a link below its root (the
    /// error names it); nothing behind it was touched.</exception>
    public async Task<int> CleanUpAsync(TimeSpan olderThan, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(olderThan, TimeSpan.Zero);
        var now = _time.GetUtcNow();
        var removed = 0;
        var folders = new Stack<string[]>([[ObjectsFolderName]]);
        while (folders.Count > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var segments = folders.Pop();
            using (await EnterAsync(cancellationToken).ConfigureAwait(false))
            {
                try
                {
                    using var folder = OpenFolder(segments, create: false, out _);
                    foreach (var entry in folder?.ReadEntries() ?? [])
                    {
                        switch (entry.Kind)
                        {
                            case EntryKind.Link:
                                throw LinkRefused(folder!.Child(entry.Name));
                            case EntryKind.Folder:
                                folders.Push([.. segments, entry.Name]);
                                break;
                            case EntryKind.File when IsLeftoverName(entry.Name) &&
                                                     now - (LeftoverCreatedAt(entry.Name) ?? new DateTimeOffset(entry.LastWriteTimeUtc, TimeSpan.Zero)) >= olderThan:
                                folder!.Delete(entry.Name);
                                removed++;
                                break;
                        }
                    }
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    throw Unavailable($"store '{RootPath}'", $"clean up the folder '{string.Join('/', segments)}'", ex);
                }
            }
        }

        return removed;
    }

    /// <summary>A unique name for a temporary file, holding its creation time so that cleanup can judge its age by this store's clock.</summary>
    private string NewLeftoverName(string prefix) =>
        string.Create(CultureInfo.InvariantCulture, $"{prefix}{_time.GetUtcNow().ToUnixTimeSeconds()}-{RandomNumberGenerator.GetHexString(16, lowercase: true)}");

    private static bool IsLeftoverName(string name) =>
        name.StartsWith(TemporaryPrefix, StringComparison.Ordinal) || name.StartsWith(DeletingPrefix, StringComparison.Ordinal);

    private static DateTimeOffset? LeftoverCreatedAt(string name)
    {
        var rest = name.AsSpan(TemporaryPrefix.Length); // both prefixes have the same length
        var dash = rest.IndexOf('-');
        return dash > 0 && long.TryParse(rest[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) &&
               seconds <= DateTimeOffset.MaxValue.ToUnixTimeSeconds()
            ? DateTimeOffset.FromUnixTimeSeconds(seconds)
            : null;
    }
}
