using System.IO.Abstractions;

namespace KmsBackup.Cli.Tests;

/// <summary>
/// The real file system, except that <c>File.Create(path)</c> first calls <c>beforeCreate(path)</c>: a test uses it
/// to act, as an attacker would, at the moment the tool creates a file.
/// </summary>
internal sealed class HookedFileSystem(IFileSystem inner, Action<string> beforeCreate) : IFileSystem
{
    public IFile File { get; } = new HookedFile(inner, beforeCreate);

    public IDirectory Directory => inner.Directory;

    public IFileInfoFactory FileInfo => inner.FileInfo;

    public IFileVersionInfoFactory FileVersionInfo => inner.FileVersionInfo;

    public IFileStreamFactory FileStream => inner.FileStream;

    public IPath Path => inner.Path;

    public IDirectoryInfoFactory DirectoryInfo => inner.DirectoryInfo;

    public IDriveInfoFactory DriveInfo => inner.DriveInfo;

    public IFileSystemWatcherFactory FileSystemWatcher => inner.FileSystemWatcher;

    public IRandomAccess RandomAccess => inner.RandomAccess;

    private sealed class HookedFile(IFileSystem fileSystem, Action<string> beforeCreate) : FileWrapper(fileSystem)
    {
        public override FileSystemStream Create(string path)
        {
            beforeCreate(path);
            return base.Create(path);
        }
    }
}
