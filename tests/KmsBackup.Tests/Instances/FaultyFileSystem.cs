using System.IO.Abstractions;

using Microsoft.Win32.SafeHandles;

namespace KmsBackup.Tests.Instances;

/// <summary>
/// A file system that fails file writes on demand, as a full or failing disk would: the stream is
/// created (an empty file appears) and then the write fails. Everything else goes to the inner file system.
/// </summary>
internal sealed class FaultyFileSystem(IFileSystem inner) : IFileSystem
{
    /// <summary>Whether writes through <see cref="IFileStreamFactory.New(string, FileStreamOptions)"/> fail.</summary>
    public bool FailWrites { get; set; }

    /// <summary>How many writes failed.</summary>
    public int FailedWrites { get; private set; }

    public IDirectory Directory => inner.Directory;

    public IDirectoryInfoFactory DirectoryInfo => inner.DirectoryInfo;

    public IDriveInfoFactory DriveInfo => inner.DriveInfo;

    public IFile File => inner.File;

    public IFileInfoFactory FileInfo => inner.FileInfo;

    public IFileStreamFactory FileStream => new Streams(this, inner.FileStream);

    public IFileSystemWatcherFactory FileSystemWatcher => inner.FileSystemWatcher;

    public IFileVersionInfoFactory FileVersionInfo => inner.FileVersionInfo;

    public IPath Path => inner.Path;

    public IRandomAccess RandomAccess => inner.RandomAccess;

    private sealed class Streams(FaultyFileSystem owner, IFileStreamFactory streams) : IFileStreamFactory
    {
        public IFileSystem FileSystem => owner;

        public FileSystemStream New(string path, FileStreamOptions options)
        {
            var stream = streams.New(path, options);
            if (owner.FailWrites && options.Access.HasFlag(FileAccess.Write))
            {
                stream.Dispose();
                owner.FailedWrites++;
                throw new IOException("No space left on device (simulated).");
            }

            return stream;
        }

        public FileSystemStream New(SafeFileHandle handle, FileAccess access) => streams.New(handle, access);

        public FileSystemStream New(SafeFileHandle handle, FileAccess access, int bufferSize) => streams.New(handle, access, bufferSize);

        public FileSystemStream New(SafeFileHandle handle, FileAccess access, int bufferSize, bool isAsync) => streams.New(handle, access, bufferSize, isAsync);

        public FileSystemStream New(string path, FileMode mode) => streams.New(path, mode);

        public FileSystemStream New(string path, FileMode mode, FileAccess access) => streams.New(path, mode, access);

        public FileSystemStream New(string path, FileMode mode, FileAccess access, FileShare share) => streams.New(path, mode, access, share);

        public FileSystemStream New(string path, FileMode mode, FileAccess access, FileShare share, int bufferSize) => streams.New(path, mode, access, share, bufferSize);

        public FileSystemStream New(string path, FileMode mode, FileAccess access, FileShare share, int bufferSize, bool useAsync) => streams.New(path, mode, access, share, bufferSize, useAsync);

        public FileSystemStream New(string path, FileMode mode, FileAccess access, FileShare share, int bufferSize, FileOptions options) => streams.New(path, mode, access, share, bufferSize, options);

        public FileSystemStream Wrap(FileStream fileStream) => streams.Wrap(fileStream);
    }
}
