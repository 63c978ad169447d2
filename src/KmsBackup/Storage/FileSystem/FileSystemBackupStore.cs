using System.Globalization;
using System.IO.Abstractions;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;

namespace KmsBackup.Storage;

/// <summary>
/// A <see cref="BackupStore"/> in a folder of a file system: a local disk, or a share that several hosts
/// mount. Objects are files under <c>objects/</c> (the key <c>data/ab/cd</c> is the file
/// <c>objects/data/ab/cd</c>); leases are small record files under <c>leases/</c>.
/// </summary>
/// <remarks>
/// <para><b>Writes.</b> <see cref="TryCreateAsync"/> writes the content to a temporary file in the
/// object's folder (a name starting with <c>.~tmp-</c>, which holds a character no key may hold, so that
/// <see cref="ListAsync"/> never shows it), flushes it to disk (<c>fsync</c>), and then publishes it under
/// the object's name only if that name is free:</para>
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
/// <para><b>Leases</b> use only the same create-if-absent publish, as a compare-and-swap: a lease is a
/// folder of immutable, numbered generation files, and the highest number is the lease's state (holder,
/// random token, expiry, released or not). Acquiring, taking over an expired lease, renewing and releasing
/// each create generation <c>n + 1</c> after reading generation <c>n</c>; since only one writer can create
/// <c>n + 1</c>, two writers racing for the same expired lease cannot both win, and a renewal racing with
/// a takeover either keeps the lease or learns it is lost. After creating a generation, the writer checks
/// that no higher one exists (old generations are deleted, and a stalled writer could otherwise re-create
/// one of those numbers). Expiry compares the writers' clocks (<see cref="TimeProvider"/>): hosts that
/// share a store need clocks in sync to well within a lease's duration.</para>
/// <para><b>Limits of a file system.</b> A path is a file or a folder, not both: an object key cannot also
/// be a folder of other keys (<c>a</c> and <c>a/b</c>); the second write is refused with
/// <see cref="BackupErrorCode.StoreUnavailable"/>. On case-insensitive file systems (Windows, macOS by
/// default) keys that differ only in case are the same object; on Windows, reserved device names
/// (<c>CON</c>, <c>NUL</c>, ...) and segments ending in <c>.</c> cannot be stored. A key segment longer than
/// the file system's name limit (255 bytes on most) is refused. Network file systems: NFS makes
/// <c>link(2)</c> atomic on the server, but a lost reply to a retransmitted <c>link</c> can report an object
/// as existing that this very call created (the call then returns <see langword="false"/> for content it
/// wrote); SMB shares without hard links fall back to the move described above.</para>
/// <para>The store is thread-safe, and several processes and hosts may share one folder.</para>
/// </remarks>
public sealed partial class FileSystemBackupStore : BackupStore
{
    private const string ObjectsFolderName = "objects";
    private const string LeasesFolderName = "leases";
    private const string TemporaryPrefix = ".~tmp-";
    private const string DeletingPrefix = ".~del-";
    private const int WriteChunkSize = 1 << 20;

    private static readonly ConditionalWeakTable<IFileSystem, SemaphoreSlim> s_gates = new();
    private static readonly Lock s_moveFallback = new();

    private readonly IFileSystem _fileSystem;
    private readonly TimeProvider _time;
    private readonly string _objectsPath;
    private readonly string _leasesPath;
    private readonly SemaphoreSlim? _gate;
    private readonly bool _isRealFileSystem;

    /// <summary>Creates a store in the folder <paramref name="rootPath"/> of the local file system, with the system clock.</summary>
    /// <param name="rootPath">The store's folder; created on the first write.</param>
    /// <exception cref="ArgumentException"><paramref name="rootPath"/> is empty or not a valid path.</exception>
    public FileSystemBackupStore(string rootPath)
        : this(new System.IO.Abstractions.FileSystem(), rootPath)
    {
    }

    /// <summary>Creates a store in the folder <paramref name="rootPath"/> of <paramref name="fileSystem"/>.</summary>
    /// <param name="fileSystem">The file system; <see cref="System.IO.Abstractions.FileSystem"/> for the real one.</param>
    /// <param name="rootPath">The store's folder; created on the first write.</param>
    /// <param name="timeProvider">The clock for lease expiry and for the age of leftover temporary files; the system clock by default.</param>
    /// <exception cref="ArgumentException"><paramref name="rootPath"/> is empty or not a valid path.</exception>
    public FileSystemBackupStore(IFileSystem fileSystem, string rootPath, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        ArgumentException.ThrowIfNullOrWhiteSpace(rootPath);
        _fileSystem = fileSystem;
        _time = timeProvider ?? TimeProvider.System;
        RootPath = fileSystem.Path.GetFullPath(rootPath);
        _objectsPath = fileSystem.Path.Combine(RootPath, ObjectsFolderName);
        _leasesPath = fileSystem.Path.Combine(RootPath, LeasesFolderName);

        // Only the real file system is trusted with concurrent calls and with link(2) on its paths.
        _isRealFileSystem = fileSystem.GetType() == typeof(System.IO.Abstractions.FileSystem);
        _gate = _isRealFileSystem ? null : s_gates.GetValue(fileSystem, static _ => new SemaphoreSlim(1, 1));
    }

    /// <summary>The store's folder, as a full path.</summary>
    public string RootPath { get; }

    private bool UsesPosixCalls => _isRealFileSystem && PosixFileOperations.IsSupported;

    /// <inheritdoc />
    public override async Task<bool> TryCreateAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default)
    {
        ValidateKey(key);
        cancellationToken.ThrowIfCancellationRequested();
        var path = ObjectPath(key);
        using (await EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                if (_fileSystem.Directory.Exists(path))
                {
                    throw ObjectIsFolder(key);
                }

                // Not needed for correctness (publishing refuses an existing name), but saves writing the content.
                if (_fileSystem.File.Exists(path))
                {
                    return false;
                }

                var folder = _fileSystem.Path.GetDirectoryName(path)!;
                EnsureFolder(folder, key);
                return await CreateFileAsync(folder, path, content, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw Unavailable(ObjectItem(key), $"create the object '{key}'", ex);
            }
        }
    }

    /// <inheritdoc />
    public override async Task<byte[]?> TryReadAsync(string key, CancellationToken cancellationToken = default)
    {
        ValidateKey(key);
        cancellationToken.ThrowIfCancellationRequested();
        var path = ObjectPath(key);
        using (await EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                // A folder (a prefix of other keys) is not an object; some file systems would read it as empty.
                if (!_fileSystem.File.Exists(path))
                {
                    return null;
                }

                return await ReadFileAsync(path, cancellationToken).ConfigureAwait(false);
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
    /// with the store; objects created or deleted while the listing runs may or may not be listed.
    /// </remarks>
    public override IAsyncEnumerable<StoreObject> ListAsync(string prefix, CancellationToken cancellationToken = default)
    {
        ValidatePrefix(prefix);
        return ListCoreAsync(prefix, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// The object is first renamed to a unique temporary name, so that of two concurrent deletions exactly
    /// one returns <see langword="true"/>, and then removed. Readers that opened it before finish reading it.
    /// </remarks>
    public override async Task<bool> DeleteAsync(string key, CancellationToken cancellationToken = default)
    {
        ValidateKey(key);
        cancellationToken.ThrowIfCancellationRequested();
        var path = ObjectPath(key);
        using (await EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                if (!_fileSystem.File.Exists(path))
                {
                    return false;
                }

                var folder = _fileSystem.Path.GetDirectoryName(path)!;
                var doomed = _fileSystem.Path.Combine(folder, NewLeftoverName(DeletingPrefix));
                try
                {
                    _fileSystem.File.Move(path, doomed);
                }
                catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
                {
                    return false; // another deletion won
                }

                if (UsesPosixCalls)
                {
                    PosixFileOperations.SyncDirectory(folder);
                }

                // The object is gone from every view; if removing the renamed file fails, CleanUpAsync removes it later.
                TryDeleteQuietly(doomed);
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
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    public async Task<int> CleanUpAsync(TimeSpan olderThan, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(olderThan, TimeSpan.Zero);
        var now = _time.GetUtcNow();
        var removed = 0;
        var folders = new Stack<string>([_objectsPath, _leasesPath]);
        while (folders.Count > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var folder = folders.Pop();
            using (await EnterAsync(cancellationToken).ConfigureAwait(false))
            {
                try
                {
                    foreach (var entry in ReadFolder(folder))
                    {
                        if (entry is IDirectoryInfo)
                        {
                            folders.Push(entry.FullName);
                        }
                        else if (IsLeftoverName(entry.Name) &&
                                 now - (LeftoverCreatedAt(entry.Name) ?? new DateTimeOffset(entry.LastWriteTimeUtc, TimeSpan.Zero)) >= olderThan)
                        {
                            _fileSystem.File.Delete(entry.FullName);
                            removed++;
                        }
                    }
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    throw Unavailable($"store '{RootPath}'", $"clean up the folder '{folder}'", ex);
                }
            }
        }

        return removed;
    }

    private async IAsyncEnumerable<StoreObject> ListCoreAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var slash = prefix.LastIndexOf('/');
        var startKey = slash < 0 ? string.Empty : prefix[..slash];
        var namePrefix = prefix[(slash + 1)..];
        var start = await ReadObjectFolderAsync(startKey, prefix, cancellationToken).ConfigureAwait(false);
        start.RemoveAll(entry => !entry.Name.StartsWith(namePrefix, StringComparison.Ordinal));

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
                var children = await ReadObjectFolderAsync(key, prefix, cancellationToken).ConfigureAwait(false);
                stack.Push(new ListingFrame(key, children));
            }
            else
            {
                yield return new StoreObject(key, entry.Length);
            }
        }
    }

    private async Task<List<ListingEntry>> ReadObjectFolderAsync(string folderKey, string prefix, CancellationToken cancellationToken)
    {
        var path = folderKey.Length == 0 ? _objectsPath : ObjectPath(folderKey);
        using (await EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                var entries = new List<ListingEntry>();
                foreach (var info in ReadFolder(path))
                {
                    // Temporary files, deletions in progress and anything else that is not a key segment are not objects.
                    if (!IsKeySegment(info.Name))
                    {
                        continue;
                    }

                    if (info is IDirectoryInfo)
                    {
                        entries.Add(new ListingEntry(info.Name, IsFolder: true, 0));
                    }
                    else if (info is IFileInfo file)
                    {
                        try
                        {
                            entries.Add(new ListingEntry(info.Name, IsFolder: false, file.Length));
                        }
                        catch (FileNotFoundException)
                        {
                            // deleted meanwhile
                        }
                    }
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

    /// <summary>The entries of a folder, or none if it does not exist.</summary>
    private List<IFileSystemInfo> ReadFolder(string path)
    {
        try
        {
            return _fileSystem.Directory.Exists(path)
                ? _fileSystem.DirectoryInfo.New(path).EnumerateFileSystemInfos().ToList()
                : [];
        }
        catch (DirectoryNotFoundException)
        {
            return [];
        }
    }

    /// <summary>Writes <paramref name="content"/> to a new temporary file in <paramref name="folder"/>, then publishes it as <paramref name="path"/> if that name is free.</summary>
    private async Task<bool> CreateFileAsync(string folder, string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        var temporaryPath = _fileSystem.Path.Combine(folder, NewLeftoverName(TemporaryPrefix));
        try
        {
            var stream = _fileSystem.FileStream.New(temporaryPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 4096, FileOptions.None);
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
            return Publish(temporaryPath, path);
        }
        finally
        {
            // After a link(2) publish this removes the second name; after a failure, the partial file.
            TryDeleteQuietly(temporaryPath);
        }
    }

    /// <summary>Gives the complete, flushed file <paramref name="temporaryPath"/> the name <paramref name="path"/> if no file has it.</summary>
    /// <returns><see langword="true"/> if published; <see langword="false"/> if the name was taken.</returns>
    private bool Publish(string temporaryPath, string path)
    {
        if (UsesPosixCalls)
        {
            var folder = _fileSystem.Path.GetDirectoryName(path)!;
            switch (PosixFileOperations.TryLink(temporaryPath, path))
            {
                case PosixFileOperations.LinkResult.Linked:
                    PosixFileOperations.SyncDirectory(folder);
                    return true;
                case PosixFileOperations.LinkResult.Exists:
                    return false;
            }

            // No hard links on this file system: a check-then-rename move, atomic only within this process.
            lock (s_moveFallback)
            {
                if (!MoveIfAbsent(temporaryPath, path))
                {
                    return false;
                }
            }

            PosixFileOperations.SyncDirectory(folder);
            return true;
        }

        // Windows: MoveFileEx without replace is atomic. Other file systems: calls are serialized by the gate.
        return MoveIfAbsent(temporaryPath, path);
    }

    private bool MoveIfAbsent(string temporaryPath, string path)
    {
        if (_fileSystem.File.Exists(path))
        {
            return false;
        }

        try
        {
            _fileSystem.File.Move(temporaryPath, path, overwrite: false);
            return true;
        }
        catch (IOException) when (_fileSystem.File.Exists(path))
        {
            return false;
        }
    }

    private async Task<byte[]> ReadFileAsync(string path, CancellationToken cancellationToken)
    {
        var stream = _fileSystem.FileStream.New(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 4096, FileOptions.None);
        await using (stream.ConfigureAwait(false))
        {
            var length = stream.Length;
            if (length > Array.MaxLength)
            {
                throw new IOException($"The file '{path}' has {length} bytes, more than an array can hold.");
            }

            var content = new byte[length];
            var read = 0;
            while (read < content.Length)
            {
                var n = await stream.ReadAsync(content.AsMemory(read), cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    throw new IOException($"The file '{path}' ended after {read} of {length} bytes; objects never change, so the store's folder was altered.");
                }

                read += n;
            }

            return content;
        }
    }

    /// <summary>Creates <paramref name="folder"/> and its missing parents, and makes their names durable.</summary>
    /// <param name="folder">The folder.</param>
    /// <param name="objectKey">The key of the object to be written in it, to refuse a folder that would pass through an object; <see langword="null"/> for the lease area.</param>
    private void EnsureFolder(string folder, string? objectKey)
    {
        if (_fileSystem.Directory.Exists(folder))
        {
            return;
        }

        if (objectKey is not null)
        {
            var segments = objectKey.Split('/');
            for (var i = 1; i < segments.Length; i++)
            {
                var ancestor = string.Join('/', segments, 0, i);
                if (_fileSystem.File.Exists(ObjectPath(ancestor)))
                {
                    throw FolderIsObject(objectKey, ancestor);
                }
            }
        }

        var missing = new List<string>();
        for (var path = folder; !string.IsNullOrEmpty(path) && !_fileSystem.Directory.Exists(path); path = _fileSystem.Path.GetDirectoryName(path))
        {
            missing.Add(path);
        }

        _fileSystem.Directory.CreateDirectory(folder);
        if (UsesPosixCalls)
        {
            for (var i = missing.Count - 1; i >= 0; i--)
            {
                PosixFileOperations.SyncDirectory(_fileSystem.Path.GetDirectoryName(missing[i])!);
            }
        }
    }

    private void TryDeleteQuietly(string path)
    {
        try
        {
            _fileSystem.File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Left for CleanUpAsync: a leftover is never listed.
        }
    }

    private string ObjectPath(string key) =>
        _fileSystem.Path.Combine(_objectsPath, key.Replace('/', _fileSystem.Path.DirectorySeparatorChar));

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

    private static bool IsKeySegment(string name) =>
        name.Length > 0 && name is not "." and not ".." && name.All(IsKeyCharacter);

    private static bool IsKeyCharacter(char c) => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-';

    /// <summary>A prefix is a key whose last segment may be partial (or empty, after a trailing '/').</summary>
    private static void ValidatePrefix(string prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        if (prefix.Length > MaximumKeyLength)
        {
            throw new ArgumentException($"A store prefix has at most {MaximumKeyLength} characters; this one has {prefix.Length}.", nameof(prefix));
        }

        var segments = prefix.Split('/');
        for (var i = 0; i < segments.Length; i++)
        {
            var segment = segments[i];
            // The last segment may be partial: empty (after a trailing '/'), '.' or '..' start valid segments too.
            var valid = i == segments.Length - 1 ? segment.All(IsKeyCharacter) : IsKeySegment(segment);
            if (!valid)
            {
                throw new ArgumentException($"The store prefix '{prefix}' has an invalid segment '{segment}': use letters, digits, '.', '_' and '-', separated by '/'.", nameof(prefix));
            }
        }
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
