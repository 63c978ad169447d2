using System.Runtime.InteropServices;

using Microsoft.Win32.SafeHandles;

namespace KmsBackup.Storage;

// The libc entry points behind PosixFileOperations.
internal static partial class PosixFileOperations
{
    [DllImport(LibC, EntryPoint = "link", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Link(byte[] existingPath, byte[] newPath);

    [DllImport(LibC, EntryPoint = "open", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Open(byte[] path, int flags);

    [DllImport(LibC, EntryPoint = "fsync", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int FSync(int fd);

    [DllImport(LibC, EntryPoint = "fsync", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int FSync(SafeFileHandle fd);

    [DllImport(LibC, EntryPoint = "openat", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int OpenAtNative(SafeFileHandle directory, byte[] path, int flags, int mode);

    [DllImport(LibC, EntryPoint = "mkdirat", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int MkDirAt(SafeFileHandle directory, byte[] path, int mode);

    [DllImport(LibC, EntryPoint = "linkat", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int LinkAt(SafeFileHandle existingDirectory, byte[] existingPath, SafeFileHandle newDirectory, byte[] newPath, int flags);

    [DllImport(LibC, EntryPoint = "renameat", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int RenameAt(SafeFileHandle fromDirectory, byte[] from, SafeFileHandle toDirectory, byte[] to);

    [DllImport(LibC, EntryPoint = "statx", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Statx(SafeFileHandle directory, byte[] path, int flags, uint mask, byte[] status);

    [DllImport(LibC, EntryPoint = "unlinkat", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int UnlinkAt(SafeFileHandle directory, byte[] path, int flags);

    [DllImport(LibC, EntryPoint = "close", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Close(int fd);
}
