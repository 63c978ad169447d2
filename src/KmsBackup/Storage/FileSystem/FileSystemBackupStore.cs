using System.IO.Abstractions;
using System.Runtime.CompilerServices;

using EntryKind = KmsBackup.Storage.PosixFileOperations.EntryKind;

namespace KmsBackup.Storage;

/// <summary>
/// A <see cref="BackupStore"/> in a folder of a file system: a local disk, or a share that several hosts
/// mount. Objects are files under <c>objects/</c> (the key <c>data/ab/cd</c> is the file
/// <c>objects/data/ab/cd</c>), and the records of leases, which are kept under the key prefix <c>leases/</c>,
/// are files under <c>objects/leases/</c>.
/// </summary>
/// <remarks>
/// <para>Writes publish a fully written, flushed temporary file under the object's name only if that name is
/// free (<c>link(2)</c> on Linux and macOS, an atomic no-replace move on Windows), so a crash leaves no object
/// or the whole object; <see cref="CleanUpAsync"/> removes the temporary files a crash leaves. Leases are
/// <see cref="BackupStore"/>'s, over the same create-if-absent publish. The store never follows a symbolic link
/// below its root (refused with <see cref="BackupErrorCode.StoreLinkRefused"/>, naming it). It is thread-safe,
/// and several processes and hosts may share one folder.</para>
/// <para>docs/repository-format.md, "On a file system", has the details: the publish on each platform, what
/// a crash leaves, the limits of file systems (case, reserved names, name lengths, NFS and SMB), and how far
/// the refusal of links holds against a folder swapped for a link while the store works.</para>
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
    protected override async Task<byte[]?> TryReadCoreAsync(string key, CancellationToken cancellationToken) =>
        (await ReadObjectAsync(key, static (stream, path, token) => ReadToEndAsync(stream, path, token), cancellationToken).ConfigureAwait(false)).Content;

    /// <inheritdoc />
    /// <remarks>Seeks in the object's file and reads the range only, through the same link-refusing open as a whole read.</remarks>
    protected override async Task<byte[]?> TryReadRangeCoreAsync(string key, long offset, int length, CancellationToken cancellationToken) =>
        (await ReadObjectAsync(key, (stream, path, token) => ReadRangeAsync(stream, path, offset, length, token), cancellationToken).ConfigureAwait(false)).Content;

    /// <inheritdoc />
    /// <remarks>Seeks in the object's file and reads the range straight into <paramref name="destination"/>, through the same link-refusing open as a whole read.</remarks>
    protected override async Task<int?> TryReadRangeIntoCoreAsync(string key, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        var (found, read) = await ReadObjectAsync(key, (stream, path, token) => ReadRangeIntoAsync(stream, path, offset, destination, token), cancellationToken).ConfigureAwait(false);
        return found ? read : null;
    }

    private async Task<(bool Found, T Content)> ReadObjectAsync<T>(string key, Func<Stream, string, CancellationToken, Task<T>> read, CancellationToken cancellationToken)
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
                    return default;
                }

                await using (stream.ConfigureAwait(false))
                {
                    return (true, await read(stream, folder!.Child(name), cancellationToken).ConfigureAwait(false));
                }
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
            {
                return default; // deleted meanwhile
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
    private static Task<byte[]> ReadToEndAsync(Stream stream, string relativePath, CancellationToken cancellationToken)
    {
        var length = RegularFileLength(stream, relativePath);
        if (length > Array.MaxLength)
        {
            throw new IOException($"The file '{relativePath}' has {length} bytes, more than an array can hold.");
        }

        return ReadExactlyAsync(stream, relativePath, 0, (int)length, cancellationToken);
    }

    private static async Task<byte[]> ReadRangeAsync(Stream stream, string relativePath, long offset, int length, CancellationToken cancellationToken)
    {
        var available = RegularFileLength(stream, relativePath) - offset;
        return available <= 0 ? [] : await ReadExactlyAsync(stream, relativePath, offset, (int)Math.Min(length, available), cancellationToken).ConfigureAwait(false);
    }

    private static async Task<int> ReadRangeIntoAsync(Stream stream, string relativePath, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        var available = RegularFileLength(stream, relativePath) - offset;
        if (available <= 0)
        {
            return 0;
        }

        var count = (int)Math.Min(destination.Length, available);
        await ReadExactlyAsync(stream, relativePath, offset, destination[..count], cancellationToken).ConfigureAwait(false);
        return count;
    }

    private static long RegularFileLength(Stream stream, string relativePath) =>
        stream.CanSeek
            ? stream.Length
            : throw new IOException($"'{relativePath}' is not a regular file (a pipe or a device?); objects are files, so the store's folder was altered.");

    private static async Task<byte[]> ReadExactlyAsync(Stream stream, string relativePath, long offset, int count, CancellationToken cancellationToken)
    {
        var content = new byte[count];
        await ReadExactlyAsync(stream, relativePath, offset, content, cancellationToken).ConfigureAwait(false);
        return content;
    }

    private static async Task ReadExactlyAsync(Stream stream, string relativePath, long offset, Memory<byte> content, CancellationToken cancellationToken)
    {
        stream.Position = offset;
        var read = 0;
        while (read < content.Length)
        {
            var n = await stream.ReadAsync(content[read..], cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException($"The file '{relativePath}' ended after {read} of the {content.Length} bytes expected at {offset}; objects never change, so the store's folder was altered.");
            }

            read += n;
        }
    }

    /// <summary>The folder of an object (its segments below the root) and its name in that folder.</summary>
    private static (string[] Folder, string Name) ObjectLocation(string key)
    {
        var segments = key.Split('/');
        return ([ObjectsFolderName, .. segments.AsSpan(0, segments.Length - 1)], segments[^1]);
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
