using System.Runtime.InteropServices;
using System.Text;

namespace KmsBackup.Storage;

/// <summary>
/// The few POSIX calls the file-system store and the repository key file need and .NET does not expose:
/// <c>link(2)</c>, the create-if-absent publish, and <c>fsync(2)</c> of a directory, which makes a new
/// directory entry durable. Used only with the real file system on Linux and macOS.
/// </summary>
/// <remarks>
/// Why not <c>File.Move(source, destination, overwrite: false)</c>: on Unix, .NET implements it as
/// "if the destination does not exist, <c>rename(2)</c>", and <c>rename(2)</c> replaces a destination
/// that a concurrent creator made between the check and the rename: two writers of one key could both
/// be told they created it, and the first one's object would be silently replaced. <c>link(2)</c>
/// fails with <c>EEXIST</c> atomically, in the kernel (and, on NFS, on the server).
/// </remarks>
internal static class PosixFileOperations
{
    private const string LibC = "libc";

    // Errno values shared by Linux and macOS.
    private const int EPERM = 1;
    private const int EINTR = 4;
    private const int EEXIST = 17;
    private const int EXDEV = 18;
    private const int EINVAL = 22;
    private const int EMLINK = 31;

    private static volatile bool s_unavailable;

    /// <summary>Whether this platform can use these calls at all (the real file system must also be in use).</summary>
    public static bool IsSupported => (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()) && !s_unavailable;

    /// <summary>The outcome of <see cref="TryLink"/>.</summary>
    public enum LinkResult
    {
        /// <summary>The new name now refers to the file.</summary>
        Linked,

        /// <summary>The new name existed already; nothing changed.</summary>
        Exists,

        /// <summary>This file system has no hard links (FAT, some FUSE and SMB mounts): use another way.</summary>
        NotSupported,
    }

    /// <summary>Gives the file <paramref name="existingPath"/> the new name <paramref name="newPath"/> if that name is free.</summary>
    /// <exception cref="IOException">The call failed for another reason (the message has the system's).</exception>
    public static LinkResult TryLink(string existingPath, string newPath)
    {
        var existing = ToNative(existingPath);
        var created = ToNative(newPath);
        while (true)
        {
            int result;
            try
            {
                result = Link(existing, created);
            }
            catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
            {
                s_unavailable = true;
                return LinkResult.NotSupported;
            }

            if (result == 0)
            {
                return LinkResult.Linked;
            }

            var errno = Marshal.GetLastPInvokeError();
            switch (errno)
            {
                case EINTR:
                    continue;
                case EEXIST:
                    return LinkResult.Exists;
                case EPERM or EXDEV or EMLINK:
                    return LinkResult.NotSupported;
                default:
                    if (IsNotSupported(errno))
                    {
                        return LinkResult.NotSupported;
                    }

                    throw Failure("link", newPath, errno);
            }
        }
    }

    /// <summary>
    /// Flushes the directory <paramref name="directoryPath"/> to disk, so that the names created in it
    /// survive a power loss. File systems that cannot sync a directory are skipped.
    /// </summary>
    /// <exception cref="IOException">The flush failed (an I/O error: the names may not be durable).</exception>
    public static void SyncDirectory(string directoryPath)
    {
        int fd;
        try
        {
            fd = Open(ToNative(directoryPath), 0 /* O_RDONLY */);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            s_unavailable = true;
            return;
        }

        if (fd < 0)
        {
            throw Failure("open", directoryPath, Marshal.GetLastPInvokeError());
        }

        try
        {
            if (FSync(fd) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno != EINVAL && !IsNotSupported(errno))
                {
                    throw Failure("fsync", directoryPath, errno);
                }
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    // ENOTSUP/EOPNOTSUPP and ENOSYS differ between Linux and macOS.
    private static bool IsNotSupported(int errno) =>
        OperatingSystem.IsLinux() ? errno is 95 or 38 : errno is 45 or 102 or 78;

    private static IOException Failure(string call, string path, int errno) =>
        new($"{call}(2) failed for '{path}': {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).", errno);

    private static byte[] ToNative(string path)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(path) + 1];
        Encoding.UTF8.GetBytes(path, bytes);
        return bytes;
    }

    [DllImport(LibC, EntryPoint = "link", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Link(byte[] existingPath, byte[] newPath);

    [DllImport(LibC, EntryPoint = "open", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Open(byte[] path, int flags);

    [DllImport(LibC, EntryPoint = "fsync", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int FSync(int fd);

    [DllImport(LibC, EntryPoint = "close", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Close(int fd);
}
