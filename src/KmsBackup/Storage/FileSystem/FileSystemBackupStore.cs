using System.Globalization;
using System.IO.Abstractions;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;

using EntryKind = KmsBackup.Storage.PosixFileOperations.EntryKind;

namespace KmsBackup.Storage;

/// <summary>
/// A <see cref="BackupStore"/> in a folder of a file system: a local disk, or a share that several hosts
/// mount. Objects are files under <c>objects/</c> (the key <c>data/ab/cd</c> is the file
/// <c>objects/data/ab/cd</c>), and the records of leases, which are kept under the key prefix <c>leases/</c>,
/// are files under <c>objects/leases/</c>.
/// </summary>
/// <remarks>
/// <para><b>Writes.</b> <see cref="BackupStore.TryCreateAsync"/> writes the content to a temporary file in
/// the object's folder (a name starting with <c>.~tmp-</c>, which holds a character no key may hold, so that
/// <see cref="BackupStore.ListAsync"/> never shows it), flushes it to disk (<c>fsync</c>), and then publishes
/// it under the object's name only if that name is free:</para>
/// <list type="bullet">
/// <item>on Linux and macOS with the real file system, with <c>link(2)</c>, which the kernel (or the NFS
/// server) fails atomically when the name exists, and then <c>fsync</c> of the folder so that the new name
/// survives a power loss. .NET's <c>File.Move(..., overwrite: false)</c> is not used there: on Unix it
/// checks that the destination is absent and then calls <c>rename(2)</c>, which would silently replace an
/// object that a concurrent writer published in between. On a file system without hard links (FAT, some
/// FUSE and SMB mounts) the store falls back to that move, serialized within this process; across
/// processes it then has that small race.</item>
/// <item>on Windows with the real file system, with <c>File.Move(..., overwrite: false)</c>, which is
/// <c>MoveFileEx</c> without <c>MOVEFILE_REPLACE_EXISTING</c>: an atomic rename that fails when the name
/// exists.</item>
/// <item>with any other <see cref="IFileSystem"/> (a mock, a decorator), with
/// <c>File.Move(..., overwrite: false)</c>. Such file systems are not assumed to be thread-safe (the
/// testing <c>MockFileSystem</c> is not), so the store serializes every call it makes to one of them,
/// across all stores of this process that share the instance.</item>
/// </list>
/// <para>A crash at any point leaves either no object or the whole object: the name appears only after the
/// content is on disk. What a crash leaves behind is a temporary file, never listed, which
/// <see cref="CleanUpAsync"/> removes.</para>
/// <para><b>Leases</b> are <see cref="BackupStore"/>'s, written over the four primitives: numbered, immutable
/// generation records, each created with the same create-if-absent publish as any object, so that of two writers
/// racing for a lease exactly one creates the next generation. Expiry compares the writers' clocks (the
/// <see cref="TimeProvider"/> given to the store): hosts that share a store need clocks in sync to well within a
/// lease's duration.</para>
/// <para><b>Limits of a file system.</b> A path is a file or a folder, not both: an object key cannot also
/// be a folder of other keys (<c>a</c> and <c>a/b</c>); the second write is refused with
/// <see cref="BackupErrorCode.StoreUnavailable"/>. On case-insensitive file systems (Windows, macOS by
/// default) keys that differ only in case are the same object; on Windows, reserved device names
/// (<c>CON</c>, <c>NUL</c>, ...) and segments ending in <c>.</c> cannot be stored. A key segment longer than
/// the file system's name limit (255 bytes on most) is refused. Network file systems: NFS makes
/// <c>link(2)</c> atomic on the server, but a lost reply to a retransmitted <c>link</c> can report an object
/// as existing that this very call created (the call then returns <see langword="false"/> for content it
/// wrote); SMB shares without hard links fall back to the move described above.</para>
/// <para><b>Links.</b> The store never follows a symbolic link (or a Windows junction) below its root, whatever
/// it points at: not when listing, reading, writing, deleting, taking a lease or cleaning up. Every path it
/// touches is resolved from the root one segment at a time, each segment looked at without following it
/// (<c>lstat</c>); a link met on the way, or as the object or lease file itself, is refused with
/// <see cref="BackupErrorCode.StoreLinkRefused"/>, naming the link's path below the root, and the link and
/// its target are left as they are. A listing that meets a link (as a folder or as an object) fails there
/// rather than skipping it, so that a prune or a verify never acts on a listing with a hole in it; a listing
/// of another prefix is not affected. The root itself, and the folders above it, may be links: the store's
/// folder is the administrator's choice (<c>/data</c> leading to <c>/mnt/disk</c>, say); only links below it
/// are refused.</para>
/// <para>How far that holds against someone who swaps a folder for a link while the store works: on Linux
/// with the real file system, the store holds each folder open while it works in it and opens the next
/// segment relative to it with <c>O_NOFOLLOW</c>, and creates, links, renames and deletes names relative to
/// it (<c>openat</c>, <c>mkdirat</c>, <c>linkat</c>, <c>renameat</c>, <c>unlinkat</c>); it lists an open
/// folder through <c>/proc/self/fd</c>. A swap then cannot redirect a call: what was checked is what is used.
/// What remains there: an object swapped for a link between the check and a deletion is renamed and removed
/// as the link itself (the target is untouched, the link is gone). Elsewhere (Windows, macOS, any other
/// <see cref="IFileSystem"/>), each segment is checked just before the call that uses the path, and a swap in
/// between can still redirect that one call. Hard links are not links in this sense: a hard link is another
/// name of a file, which deleting removes without touching the file, and making one needs access to the file
/// already.</para>
/// <para>The store is thread-safe, and several processes and hosts may share one folder.</para>
/// </remarks>
public sealed partial class FileSystemBackupStore : BackupStore
{
    private const string ObjectsFolderName = "objects";
    private const string TemporaryPrefix = ".~tmp-";
    private const string DeletingPrefix = ".~del-";
    private const int WriteChunkSize = 1 << 20;

    private static readonly ConditionalWeakTable<IFileSystem, SemaphoreSlim> s_gates = new();
    private static readonly Lock s_moveFallback = new();

    private readonly IFileSystem _fileSystem;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim? _gate;
    private readonly bool _isRealFileSystem;
    private readonly bool _usesDirectoryHandles;

    /// <summary>Creates a store in the folder <paramref name="rootPath"/> of the local file system, with the system clock.</summary>
    /// <param name="rootPath">The store's folder; created on the first write. It may be reached through a link; nothing below it may be one.</param>
    /// <exception cref="ArgumentException"><paramref name="rootPath"/> is empty or not a valid path.</exception>
    public FileSystemBackupStore(string rootPath)
        : this(new System.IO.Abstractions.FileSystem(), rootPath)
    {
    }

    /// <summary>Creates a store in the folder <paramref name="rootPath"/> of <paramref name="fileSystem"/>.</summary>
    /// <param name="fileSystem">The file system; <see cref="System.IO.Abstractions.FileSystem"/> for the real one.</param>
    /// <param name="rootPath">The store's folder; created on the first write. It may be reached through a link; nothing below it may be one.</param>
    /// <param name="timeProvider">The clock for lease expiry and for the age of leftover temporary files; the system clock by default.</param>
    /// <exception cref="ArgumentException"><paramref name="rootPath"/> is empty or not a valid path.</exception>
    public FileSystemBackupStore(IFileSystem fileSystem, string rootPath, TimeProvider? timeProvider = null)
        : base(timeProvider)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        ArgumentException.ThrowIfNullOrWhiteSpace(rootPath);
        _fileSystem = fileSystem;
        _time = timeProvider ?? TimeProvider.System;
        RootPath = fileSystem.Path.GetFullPath(rootPath);

        // Only the real file system is trusted with concurrent calls and with link(2) on its paths.
        _isRealFileSystem = fileSystem.GetType() == typeof(System.IO.Abstractions.FileSystem);
        _gate = _isRealFileSystem ? null : s_gates.GetValue(fileSystem, static _ => new SemaphoreSlim(1, 1));

        // Folders held open and names resolved relative to them (see "Links" in the remarks); listing an open folder needs /proc.
        _usesDirectoryHandles = _isRealFileSystem && PosixFileOperations.SupportsDirectoryHandles && fileSystem.Directory.Exists("/proc/self/fd");
    }

    /// <summary>The store's folder, as a full path.</summary>
    public string RootPath { get; }

    private bool UsesPosixCalls => _isRealFileSystem && PosixFileOperations.IsSupported;

    /// <inheritdoc />
    protected override async Task<bool> TryCreateCoreAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        var (segments, name) = ObjectLocation(key);
        using (await EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                using var folder = OpenFolder(segments, create: true, out var fileAt) ?? throw FolderIsFile(key, segments, fileAt);
                switch (folder.Probe(name))
                {
                    case EntryKind.Link:
                        throw LinkRefused(folder.Child(name));
                    case EntryKind.Folder:
                        throw ObjectIsFolder(key);
                    case EntryKind.File:
                        return false; // not needed for correctness (publishing refuses an existing name), but saves writing the content
                }

                return await CreateFileAsync(folder, name, content, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw Unavailable(ObjectItem(key), $"create the object '{key}'", ex);
            }
        }
    }

    /// <inheritdoc />
    protected override async Task<byte[]?> TryReadCoreAsync(string key, CancellationToken cancellationToken)
    {
        var (segments, name) = ObjectLocation(key);
        using (await EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                using var folder = OpenFolder(segments, create: false, out _);
                var stream = folder?.OpenRead(name);
                if (stream is null)
                {
                    return null;
                }

                await using (stream.ConfigureAwait(false))
                {
                    return await ReadToEndAsync(stream, folder!.Child(name), cancellationToken).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
            {
                return null; // deleted meanwhile
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw Unavailable(ObjectItem(key), $"read the object '{key}'", ex);
            }
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Folders are read one at a time, each sorted, so that memory grows with the largest folder and not
    /// with the store; objects created or deleted while the listing runs may or may not be listed. A link
    /// under the prefix (a folder or an object that is a link) fails the listing there with
    /// <see cref="BackupErrorCode.StoreLinkRefused"/>, after the keys that sort before it: a listing never
    /// skips what it cannot see, so that a prune never takes what a link hides for garbage.
    /// </remarks>
    protected override async IAsyncEnumerable<StoreObject> ListCoreAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var slash = prefix.LastIndexOf('/');
        var startKey = slash < 0 ? string.Empty : prefix[..slash];
        var namePrefix = prefix[(slash + 1)..];
        var start = await ReadObjectFolderAsync(startKey, namePrefix, prefix, cancellationToken).ConfigureAwait(false);

        // Depth first, each folder sorted so that the keys come out in ordinal order: a folder 'a' sorts
        // as 'a/' among its siblings, since every key under it starts with 'a/'.
        var stack = new Stack<ListingFrame>();
        stack.Push(new ListingFrame(startKey, start));
        while (stack.Count > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var frame = stack.Peek();
            if (frame.Next == frame.Entries.Count)
            {
                stack.Pop();
                continue;
            }

            var entry = frame.Entries[frame.Next++];
            var key = frame.FolderKey.Length == 0 ? entry.Name : $"{frame.FolderKey}/{entry.Name}";
            if (entry.IsFolder)
            {
                var children = await ReadObjectFolderAsync(key, string.Empty, prefix, cancellationToken).ConfigureAwait(false);
                stack.Push(new ListingFrame(key, children));
            }
            else
            {
                yield return new StoreObject(key, entry.Length);
            }
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// The object is first renamed to a unique temporary name, so that of two concurrent deletions exactly
    /// one returns <see langword="true"/>, and then removed. Readers that opened it before finish reading it.
    /// </remarks>
    protected override async Task<bool> DeleteCoreAsync(string key, CancellationToken cancellationToken)
    {
        var (segments, name) = ObjectLocation(key);
        using (await EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                using var folder = OpenFolder(segments, create: false, out _);
                switch (folder?.Probe(name))
                {
                    case EntryKind.Link:
                        throw LinkRefused(folder.Child(name));
                    case EntryKind.File:
                        break;
                    default:
                        return false; // absent, or a folder (a prefix of other keys), which is not an object
                }

                var doomed = NewLeftoverName(DeletingPrefix);
                if (!folder.TryRename(name, doomed))
                {
                    return false; // another deletion won
                }

                folder.Sync();

                // The object is gone from every view; if removing the renamed file fails, CleanUpAsync removes it later.
                folder.TryDeleteQuietly(doomed);
                return true;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw Unavailable(ObjectItem(key), $"delete the object '{key}'", ex);
            }
        }
    }

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

    /// <summary>The entries of the folder <paramref name="folderKey"/> whose names start with <paramref name="namePrefix"/>, sorted in key order.</summary>
    private async Task<List<ListingEntry>> ReadObjectFolderAsync(string folderKey, string namePrefix, string prefix, CancellationToken cancellationToken)
    {
        string[] segments = folderKey.Length == 0 ? [ObjectsFolderName] : [ObjectsFolderName, .. folderKey.Split('/')];
        using (await EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                var entries = new List<ListingEntry>();
                using var folder = OpenFolder(segments, create: false, out _);
                foreach (var entry in folder?.ReadEntries() ?? [])
                {
                    // Temporary files, deletions in progress and anything else that is not a key segment are not objects.
                    if (!IsKeySegment(entry.Name) || !entry.Name.StartsWith(namePrefix, StringComparison.Ordinal))
                    {
                        continue;
                    }

                    // A listing with a hole where the link is could let a prune take what is behind it for garbage: fail instead.
                    if (entry.Kind == EntryKind.Link)
                    {
                        throw LinkRefused(folder!.Child(entry.Name));
                    }

                    entries.Add(new ListingEntry(entry.Name, entry.Kind == EntryKind.Folder, entry.Length));
                }

                entries.Sort(ListingEntry.CompareInKeyOrder);
                return entries;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw Unavailable($"store prefix '{prefix}'", $"list the objects under '{prefix}'", ex);
            }
        }
    }

    /// <summary>Writes <paramref name="content"/> to a new temporary file in <paramref name="folder"/>, then publishes it as <paramref name="name"/> if that name is free.</summary>
    private async Task<bool> CreateFileAsync(StoreFolder folder, string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        var temporaryName = NewLeftoverName(TemporaryPrefix);
        try
        {
            var stream = folder.CreateNew(temporaryName);
            await using (stream.ConfigureAwait(false))
            {
                for (var offset = 0; offset < content.Length; offset += WriteChunkSize)
                {
                    var chunk = content.Slice(offset, Math.Min(WriteChunkSize, content.Length - offset));
                    await stream.WriteAsync(chunk, cancellationToken).ConfigureAwait(false);
                }

                stream.Flush(flushToDisk: true);
            }

            // The last point where cancelling leaves nothing behind; once published, the object stays.
            cancellationToken.ThrowIfCancellationRequested();
            return folder.Publish(temporaryName, name);
        }
        finally
        {
            // After a link(2) publish this removes the second name; after a failure, the partial file.
            folder.TryDeleteQuietly(temporaryName);
        }
    }

    /// <summary>Reads an object's file whole.</summary>
    /// <param name="stream">The file, open for reading.</param>
    /// <param name="relativePath">The file's path below the root, for messages.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    private static async Task<byte[]> ReadToEndAsync(Stream stream, string relativePath, CancellationToken cancellationToken)
    {
        if (!stream.CanSeek)
        {
            throw new IOException($"'{relativePath}' is not a regular file (a pipe or a device?); objects are files, so the store's folder was altered.");
        }

        var length = stream.Length;
        if (length > Array.MaxLength)
        {
            throw new IOException($"The file '{relativePath}' has {length} bytes, more than an array can hold.");
        }

        var content = new byte[length];
        var read = 0;
        while (read < content.Length)
        {
            var n = await stream.ReadAsync(content.AsMemory(read), cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException($"The file '{relativePath}' ended after {read} of {length} bytes; objects never change, so the store's folder was altered.");
            }

            read += n;
        }

        return content;
    }

    /// <summary>The folder of an object (its segments below the root) and its name in that folder.</summary>
    private static (string[] Folder, string Name) ObjectLocation(string key)
    {
        var segments = key.Split('/');
        return ([ObjectsFolderName, .. segments.AsSpan(0, segments.Length - 1)], segments[^1]);
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

    private async ValueTask<GateEntry> EnterAsync(CancellationToken cancellationToken)
    {
        if (_gate is null)
        {
            return default;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        return new GateEntry(_gate);
    }

    private static string ObjectItem(string key) => $"store object '{key}'";

    private BackupException Unavailable(string item, string action, Exception cause) =>
        new(
            new Refusal(
                BackupErrorCode.StoreUnavailable,
                item,
                $"The file-system store at '{RootPath}' could not {action}: {cause.Message}",
                "Check that the store's folder exists, is writable by this process and has free space (for a network share, that it is mounted and reachable), then retry."),
            cause);

    private BackupException ObjectIsFolder(string key) =>
        new Refusal(
            BackupErrorCode.StoreUnavailable,
            ObjectItem(key),
            $"The file-system store at '{RootPath}' cannot hold the object '{key}': objects with keys under '{key}/' exist, and on a file system a path is a folder or a file, not both.",
            "Use keys where no object's key is also a folder of other keys (for example 'a/index' and 'a/b' rather than 'a' and 'a/b').")
        .ToException();

    /// <summary>Why the folder of the object <paramref name="key"/> cannot be opened: segment <paramref name="fileAt"/> of <paramref name="segments"/> is a file.</summary>
    private Exception FolderIsFile(string key, string[] segments, int fileAt) =>
        fileAt >= 1 ? FolderIsObject(key, string.Join('/', segments, 1, fileAt)) : FolderNotOpened(segments, fileAt);

    /// <summary>Why a folder the store writes in could not be opened: segment <paramref name="fileAt"/> of <paramref name="segments"/> is a file, or (-1) the root vanished.</summary>
    private IOException FolderNotOpened(string[] segments, int fileAt) =>
        fileAt >= 0
            ? new IOException($"'{string.Join('/', segments, 0, fileAt + 1)}' in the store's folder is a file, where the store keeps a folder.")
            : new IOException($"The store's folder '{RootPath}' disappeared while it was opened.");

    private BackupException FolderIsObject(string key, string ancestor) =>
        new Refusal(
            BackupErrorCode.StoreUnavailable,
            ObjectItem(key),
            $"The file-system store at '{RootPath}' cannot hold the object '{key}': '{ancestor}' is an object, and on a file system a path is a file or a folder, not both.",
            "Use keys where no object's key is also a folder of other keys (for example 'a/index' and 'a/b' rather than 'a' and 'a/b').")
        .ToException();

    private readonly record struct ListingEntry(string Name, bool IsFolder, long Length)
    {
        /// <summary>Orders siblings as their keys sort: a folder 'a' as 'a/', since every key under it starts so.</summary>
        public static int CompareInKeyOrder(ListingEntry x, ListingEntry y)
        {
            var common = Math.Min(x.Name.Length, y.Name.Length);
            var order = string.CompareOrdinal(x.Name, 0, y.Name, 0, common);
            return order != 0 ? order : x.CharAt(common).CompareTo(y.CharAt(common));
        }

        private int CharAt(int index) => index < Name.Length ? Name[index] : IsFolder ? '/' : -1;
    }

    private sealed class ListingFrame(string folderKey, List<ListingEntry> entries)
    {
        public string FolderKey { get; } = folderKey;

        public List<ListingEntry> Entries { get; } = entries;

        public int Next { get; set; }
    }

    private readonly struct GateEntry(SemaphoreSlim? gate) : IDisposable
    {
        public void Dispose() => gate?.Release();
    }
}
