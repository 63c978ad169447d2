// Over 400 lines: every path the store resolves is resolved here, so that a review of its handling of links reads one file.
using System.IO.Abstractions;

using Microsoft.Win32.SafeHandles;

using EntryKind = KmsBackup.Storage.PosixFileOperations.EntryKind;

namespace KmsBackup.Storage;

// Folders: the one place where the store resolves a path. Every operation opens the folder it works in with
// OpenFolder, which walks down from the root one segment at a time and refuses a link wherever it meets one;
// then it works on names inside that folder only. See the class remarks ("Links") for what each kind of
// folder guarantees.
public sealed partial class FileSystemBackupStore
{
    /// <summary>
    /// Opens the folder <paramref name="segments"/> below the root (for example <c>objects</c>, <c>packs</c>,
    /// <c>ab</c>), never following a link below the root: a segment that is a link is refused with
    /// <see cref="BackupErrorCode.StoreLinkRefused"/>, and nothing is done through it.
    /// </summary>
    /// <param name="segments">The folder's path below the root, one name per segment.</param>
    /// <param name="create">Whether to create missing folders (and the root).</param>
    /// <param name="fileAt">When <see langword="null"/> is returned because a segment is a file, its index; otherwise -1.</param>
    /// <returns>The folder, or <see langword="null"/> when a segment is absent (and not created) or is a file.</returns>
    private StoreFolder? OpenFolder(string[] segments, bool create, out int fileAt)
    {
        fileAt = -1;
        var folder = OpenRoot(create);
        for (var i = 0; folder is not null && i < segments.Length; i++)
        {
            using var parent = folder;
            folder = parent.OpenFolder(segments[i], create, out var found);
            if (folder is null && found == EntryKind.File)
            {
                fileAt = i;
            }
        }

        return folder;
    }

    /// <summary>
    /// Opens the root, following links on the way to it and at it: the root's path is the administrator's
    /// choice (<c>/data</c> may lead to <c>/mnt/disk</c>); only what is below it is the store's.
    /// </summary>
    private StoreFolder? OpenRoot(bool create)
    {
        if (create && !_fileSystem.Directory.Exists(RootPath))
        {
            CreateRoot();
        }

        if (_usesDirectoryHandles)
        {
            var handle = PosixFileOperations.OpenDirectory(RootPath);
            return handle is null ? null : new PosixFolder(this, string.Empty, handle);
        }

        return _fileSystem.Directory.Exists(RootPath) ? new PathFolder(this, string.Empty, RootPath) : null;
    }

    /// <summary>Creates the root and its missing parents, and makes their names durable.</summary>
    private void CreateRoot()
    {
        var missing = new List<string>();
        for (var path = RootPath; !string.IsNullOrEmpty(path) && !_fileSystem.Directory.Exists(path); path = _fileSystem.Path.GetDirectoryName(path))
        {
            missing.Add(path);
        }

        _fileSystem.Directory.CreateDirectory(RootPath);
        if (UsesPosixCalls)
        {
            for (var i = missing.Count - 1; i >= 0; i--)
            {
                PosixFileOperations.SyncDirectory(_fileSystem.Path.GetDirectoryName(missing[i])!);
            }
        }
    }

    /// <summary>What <paramref name="info"/> is, as <c>lstat</c> sees it: a link is never taken for what it points at.</summary>
    private static EntryKind Classify(IFileSystemInfo info)
    {
        var attributes = info.Attributes;
        if ((int)attributes == -1)
        {
            return EntryKind.Absent;
        }

        // Windows marks other things as reparse points too (deduplicated files, cloud placeholders), which
        // are files and folders like any other: only a link target makes a link (a symbolic link or a junction).
        if ((attributes & FileAttributes.ReparsePoint) != 0 && info.LinkTarget is not null)
        {
            return EntryKind.Link;
        }

        return (attributes & FileAttributes.Directory) != 0 ? EntryKind.Folder : EntryKind.File;
    }

    private BackupException LinkRefused(string relativePath) =>
        new Refusal(
            BackupErrorCode.StoreLinkRefused,
            $"store link '{relativePath}'",
            $"The file-system store at '{RootPath}' found a link at '{relativePath}' and refused to follow it: a link below the store's folder can lead outside it, and the store never lists, reads, writes or deletes anything through one. The link and what it points at were left as they are.",
            $"Remove the link '{relativePath}' from the store's folder; if it replaced a folder of the store, put that folder back in its place. The store's folder itself may be reached through a link; nothing below it may be one.")
        .ToException();

    /// <summary>An entry of a folder, classified without following it.</summary>
    private readonly record struct FolderEntry(string Name, EntryKind Kind, long Length, DateTime LastWriteTimeUtc);

    /// <summary>
    /// A folder of the store, reached from the root without following a link. Every operation on it takes
    /// one name inside it (never a path), and never follows a link that has that name.
    /// </summary>
    private abstract class StoreFolder(FileSystemBackupStore store, string relativePath) : IDisposable
    {
        protected FileSystemBackupStore Store { get; } = store;

        /// <summary>The folder's path below the root, '/'-separated; empty for the root.</summary>
        public string RelativePath { get; } = relativePath;

        /// <summary>The path below the root of the name <paramref name="name"/> in this folder, for messages.</summary>
        public string Child(string name) => RelativePath.Length == 0 ? name : $"{RelativePath}/{name}";

        /// <summary>What <paramref name="name"/> is, without following it.</summary>
        public abstract EntryKind Probe(string name);

        /// <summary>Opens the folder <paramref name="name"/>, creating it if asked; refuses a link.</summary>
        /// <param name="name">The folder's name.</param>
        /// <param name="create">Whether to create it when absent.</param>
        /// <param name="found">What has the name when no folder is returned (<see cref="EntryKind.Absent"/> or <see cref="EntryKind.File"/>).</param>
        public abstract StoreFolder? OpenFolder(string name, bool create, out EntryKind found);

        /// <summary>Opens the file <paramref name="name"/> for reading; <see langword="null"/> when absent or a folder; refuses a link.</summary>
        public abstract Stream? OpenRead(string name);

        /// <summary>Creates the file <paramref name="name"/> for writing; fails if the name exists in any form.</summary>
        public abstract FileSystemStream CreateNew(string name);

        /// <summary>Gives the complete, flushed file <paramref name="temporaryName"/> the name <paramref name="name"/> if no file has it.</summary>
        /// <returns><see langword="true"/> if published; <see langword="false"/> if the name was taken.</returns>
        public abstract bool Publish(string temporaryName, string name);

        /// <summary>Renames <paramref name="from"/> to <paramref name="to"/> (a link would be renamed itself, not followed).</summary>
        /// <returns><see langword="false"/> if <paramref name="from"/> did not exist.</returns>
        public abstract bool TryRename(string from, string to);

        /// <summary>Deletes the file <paramref name="name"/> (a link would be removed itself, not followed).</summary>
        public abstract void Delete(string name);

        /// <summary>Makes the names created in this folder durable.</summary>
        public abstract void Sync();

        /// <summary>The folder's entries, each classified without following it.</summary>
        public abstract List<FolderEntry> ReadEntries();

        /// <summary>Deletes <paramref name="name"/> if it can; a leftover that stays is removed by a later cleanup.</summary>
        public void TryDeleteQuietly(string name)
        {
            try
            {
                Delete(name);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Left for CleanUpAsync: a leftover is never listed.
            }
        }

        /// <summary>Closes the folder, if it was held open.</summary>
        public abstract void Dispose();

        /// <summary>The entries of a folder as .NET lists them, classified without following them.</summary>
        protected static List<FolderEntry> Entries(IDirectoryInfo folder)
        {
            var entries = new List<FolderEntry>();
            foreach (var info in folder.EnumerateFileSystemInfos())
            {
                try
                {
                    var kind = Classify(info);
                    var length = kind == EntryKind.File && info is IFileInfo file ? file.Length : 0;
                    if (kind != EntryKind.Absent)
                    {
                        entries.Add(new FolderEntry(info.Name, kind, length, info.LastWriteTimeUtc));
                    }
                }
                catch (FileNotFoundException)
                {
                    // deleted meanwhile
                }
            }

            return entries;
        }
    }

    /// <summary>
    /// A folder addressed by its path, through any <see cref="IFileSystem"/> (a mock, a decorator, the real
    /// one on Windows and macOS). Each name is checked (<see cref="Classify"/>) just before it is used: a
    /// folder swapped for a link between that check and the use can still redirect that one call.
    /// </summary>
    private sealed class PathFolder(FileSystemBackupStore store, string relativePath, string fullPath) : StoreFolder(store, relativePath)
    {
        private IFileSystem Files => Store._fileSystem;

        public override EntryKind Probe(string name) => Classify(Files.FileInfo.New(PathOf(name)));

        public override StoreFolder? OpenFolder(string name, bool create, out EntryKind found)
        {
            var path = PathOf(name);
            found = Probe(name);
            if (found == EntryKind.Absent && create)
            {
                Files.Directory.CreateDirectory(path);
                Sync();
                found = Probe(name); // a link planted meanwhile is seen here
            }

            if (found == EntryKind.Link)
            {
                throw Store.LinkRefused(Child(name));
            }

            return found == EntryKind.Folder ? new PathFolder(Store, Child(name), path) : null;
        }

        public override Stream? OpenRead(string name)
        {
            switch (Probe(name))
            {
                case EntryKind.Link:
                    throw Store.LinkRefused(Child(name));
                case EntryKind.File:
                    return Files.FileStream.New(PathOf(name), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 4096, FileOptions.None);
                default:
                    return null; // a folder (a prefix of other keys) is not an object; some file systems would read it as empty
            }
        }

        public override FileSystemStream CreateNew(string name) =>
            Files.FileStream.New(PathOf(name), FileMode.CreateNew, FileAccess.Write, FileShare.None, 4096, FileOptions.None);

        public override bool Publish(string temporaryName, string name)
        {
            var temporaryPath = PathOf(temporaryName);
            var path = PathOf(name);
            if (Store.UsesPosixCalls)
            {
                switch (PosixFileOperations.TryLink(temporaryPath, path))
                {
                    case PosixFileOperations.LinkResult.Linked:
                        Sync();
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

                Sync();
                return true;
            }

            // Windows: MoveFileEx without replace is atomic. Other file systems: calls are serialized by the gate.
            return MoveIfAbsent(temporaryPath, path);
        }

        public override bool TryRename(string from, string to)
        {
            try
            {
                Files.File.Move(PathOf(from), PathOf(to));
                return true;
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
            {
                return false;
            }
        }

        public override void Delete(string name) => Files.File.Delete(PathOf(name));

        public override void Sync()
        {
            if (Store.UsesPosixCalls)
            {
                PosixFileOperations.SyncDirectory(fullPath);
            }
        }

        public override List<FolderEntry> ReadEntries()
        {
            try
            {
                return Files.Directory.Exists(fullPath) ? Entries(Files.DirectoryInfo.New(fullPath)) : [];
            }
            catch (DirectoryNotFoundException)
            {
                return [];
            }
        }

        public override void Dispose()
        {
            // Nothing is held open: each call resolves the folder's path again.
        }

        private string PathOf(string name) => Files.Path.Combine(fullPath, name);

        private bool MoveIfAbsent(string temporaryPath, string path)
        {
            if (Files.File.Exists(path))
            {
                return false;
            }

            try
            {
                Files.File.Move(temporaryPath, path, overwrite: false);
                return true;
            }
            catch (IOException) when (Files.File.Exists(path))
            {
                return false;
            }
        }
    }

    /// <summary>
    /// A folder held open (Linux, the real file system): every call resolves one name relative to this very
    /// folder with <c>O_NOFOLLOW</c> or a call that never follows a name (<c>linkat</c>, <c>renameat</c>,
    /// <c>unlinkat</c>), so a folder swapped for a link after it was opened changes nothing for this one.
    /// </summary>
    private sealed class PosixFolder(FileSystemBackupStore store, string relativePath, SafeFileHandle handle) : StoreFolder(store, relativePath)
    {
        public override EntryKind Probe(string name) => PosixFileOperations.Probe(handle, name);

        public override StoreFolder? OpenFolder(string name, bool create, out EntryKind found)
        {
            var child = PosixFileOperations.OpenDirectoryAt(handle, name, out found);
            if (child is null && found == EntryKind.Absent && create)
            {
                if (PosixFileOperations.MakeDirectoryAt(handle, name))
                {
                    Sync();
                }

                child = PosixFileOperations.OpenDirectoryAt(handle, name, out found);
            }

            if (found == EntryKind.Link)
            {
                throw Store.LinkRefused(Child(name));
            }

            return child is null ? null : new PosixFolder(Store, Child(name), child);
        }

        public override Stream? OpenRead(string name)
        {
            var file = PosixFileOperations.OpenFileAt(handle, name, out var found);
            if (found == EntryKind.Link)
            {
                throw Store.LinkRefused(Child(name));
            }

            return file is null ? null : Store._fileSystem.FileStream.New(file, FileAccess.Read, 4096);
        }

        public override FileSystemStream CreateNew(string name) => Store._fileSystem.FileStream.New(PosixFileOperations.CreateFileAt(handle, name), FileAccess.Write, 4096);

        public override bool Publish(string temporaryName, string name)
        {
            switch (PosixFileOperations.TryLinkAt(handle, temporaryName, name))
            {
                case PosixFileOperations.LinkResult.Linked:
                    Sync();
                    return true;
                case PosixFileOperations.LinkResult.Exists:
                    return false;
            }

            // No hard links on this file system: a check-then-rename, atomic only within this process.
            lock (s_moveFallback)
            {
                if (Probe(name) != EntryKind.Absent || !PosixFileOperations.TryRenameAt(handle, temporaryName, name))
                {
                    return false;
                }
            }

            Sync();
            return true;
        }

        public override bool TryRename(string from, string to) => PosixFileOperations.TryRenameAt(handle, from, to);

        public override void Delete(string name) => PosixFileOperations.TryUnlinkAt(handle, name);

        public override void Sync() => PosixFileOperations.SyncDirectory(handle, RelativePath.Length == 0 ? "." : RelativePath);

        // .NET lists a directory by path; /proc/self/fd/N is this open directory's own name, whatever its path leads to now.
        public override List<FolderEntry> ReadEntries() => Entries(Store._fileSystem.DirectoryInfo.New(PosixFileOperations.ListingPath(handle)));

        public override void Dispose() => handle.Dispose();
    }
}
