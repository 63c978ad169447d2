// Over 400 lines for a reason: every POSIX call the file-system store makes, with its flags and errno meanings,
// kept in one place so that a reader checking the store's no-follow and create-if-absent guarantees reads one file.
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

using Microsoft.Win32.SafeHandles;

namespace KmsBackup.Storage;

/// <summary>
/// The few POSIX calls the file-system store and the repository key file need and .NET does not expose:
/// <c>link(2)</c>, the create-if-absent publish, and <c>fsync(2)</c> of a directory, which makes a new
/// directory entry durable. Used only with the real file system on Linux and macOS. On Linux, also the
/// calls relative to an open directory (<c>openat(2)</c> with <c>O_NOFOLLOW</c>, <c>mkdirat</c>,
/// <c>linkat</c>, <c>renameat</c>, <c>unlinkat</c>) with which the store walks down from its root without
/// ever following a symbolic link (<see cref="SupportsDirectoryHandles"/>).
/// </summary>
/// <remarks>
/// <para>Why not <c>File.Move(source, destination, overwrite: false)</c>: on Unix, .NET implements it as
/// "if the destination does not exist, <c>rename(2)</c>", and <c>rename(2)</c> replaces a destination
/// that a concurrent creator made between the check and the rename: two writers of one key could both
/// be told they created it, and the first one's object would be silently replaced. <c>link(2)</c>
/// fails with <c>EEXIST</c> atomically, in the kernel (and, on NFS, on the server).</para>
/// <para>Why directory handles: a path is resolved again by every call, so checking its segments for links
/// and then using it leaves a moment in which a folder can be swapped for a link. A call relative to a
/// directory that was opened with <c>O_NOFOLLOW</c> resolves one name inside that very directory, so what
/// the walk checked is what the call uses.</para>
/// </remarks>
internal static partial class PosixFileOperations
{
    private const string LibC = "libc";

    // Errno values shared by Linux and macOS.
    private const int EPERM = 1;
    private const int ENOENT = 2;
    private const int EINTR = 4;
    private const int EEXIST = 17;
    private const int EXDEV = 18;
    private const int EINVAL = 22;
    private const int EMLINK = 31;

    // Linux only (macOS has another value): "too many levels of symbolic links", what O_NOFOLLOW reports for a link.
    private const int LinuxELOOP = 40;

    // open(2) flags with the same value on every Linux architecture .NET runs on.
    private const int O_RDONLY = 0;
    private const int O_WRONLY = 1;
    private const int O_CREAT = 0x40;
    private const int O_EXCL = 0x80;
    private const int O_NONBLOCK = 0x800;
    private const int O_CLOEXEC = 0x80000;
    private const int O_PATH = 0x200000;

    // statx(2): flags, mask and the layout of struct statx, all the same on every Linux architecture.
    private const int AT_SYMLINK_NOFOLLOW = 0x100;
    private const int AT_EMPTY_PATH = 0x1000;
    private const uint STATX_TYPE = 0x1;
    private const int StatxSize = 256;
    private const int StatxModeOffset = 28; // __u16 stx_mode, after mask, blksize, attributes, nlink, uid and gid
    private const int S_IFMT = 0xF000;
    private const int S_IFDIR = 0x4000;
    private const int S_IFLNK = 0xA000;

    private static readonly (int Directory, int NoFollow)? s_linuxFolderFlags = LinuxFolderFlags();
    private static readonly Lazy<bool> s_statxWorks = new(StatxWorks);

    private static volatile bool s_unavailable;

    /// <summary>Whether this platform can use these calls at all (the real file system must also be in use).</summary>
    public static bool IsSupported => (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()) && !s_unavailable;

    /// <summary>
    /// Whether the calls relative to a directory handle can be used: Linux on an architecture whose
    /// <c>O_DIRECTORY</c> and <c>O_NOFOLLOW</c> values are known here, with a working <c>statx</c>. (The store
    /// also needs <c>/proc/self/fd</c>, to list an open directory through.)
    /// </summary>
    public static bool SupportsDirectoryHandles => s_linuxFolderFlags is not null && !s_unavailable && s_statxWorks.Value;

    /// <summary>What a name in a directory is, seen without following it.</summary>
    public enum EntryKind
    {
        /// <summary>Nothing has the name.</summary>
        Absent,

        /// <summary>A file (or anything else that is neither a directory nor a symbolic link).</summary>
        File,

        /// <summary>A directory.</summary>
        Folder,

        /// <summary>A symbolic link, whatever it points at.</summary>
        Link,
    }

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

    /// <summary>Opens the directory <paramref name="path"/>, following links on the way (the store's root may be reached through one).</summary>
    /// <returns>The directory's handle, or <see langword="null"/> if nothing has that path.</returns>
    /// <exception cref="IOException">The call failed for another reason (not a directory, no access...).</exception>
    public static SafeFileHandle? OpenDirectory(string path)
    {
        var flags = O_RDONLY | O_CLOEXEC | LinuxFlags().Directory;
        var native = ToNative(path);
        while (true)
        {
            var fd = Open(native, flags);
            if (fd >= 0)
            {
                return new SafeFileHandle(fd, ownsHandle: true);
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno == EINTR)
            {
                continue;
            }

            return errno == ENOENT ? null : throw Failure("open", path, errno);
        }
    }

    /// <summary>Opens the directory <paramref name="name"/> in <paramref name="directory"/> if it is one, never following a link.</summary>
    /// <param name="directory">The directory.</param>
    /// <param name="name">One name in it (no '/').</param>
    /// <param name="found">What has that name: <see cref="EntryKind.Folder"/> when a handle is returned.</param>
    /// <returns>The directory's handle, or <see langword="null"/> when <paramref name="name"/> is not a directory.</returns>
    public static SafeFileHandle? OpenDirectoryAt(SafeFileHandle directory, string name, out EntryKind found)
    {
        // O_PATH | O_NOFOLLOW takes whatever has the name, a link included, as one object; its type is then
        // read from that object, so a name swapped meanwhile cannot make a link pass for a directory.
        var fd = OpenAt(directory, name, O_PATH | O_CLOEXEC | LinuxFlags().NoFollow, 0, out var errno);
        if (fd < 0)
        {
            found = errno == ENOENT ? EntryKind.Absent : throw Failure("openat", name, errno);
            return null;
        }

        using var opened = new SafeFileHandle(fd, ownsHandle: true);
        found = KindOf(opened, name);
        if (found != EntryKind.Folder)
        {
            return null;
        }

        // An O_PATH handle cannot be flushed: open the same directory (".", never a link) for reading.
        var folder = OpenAt(opened, ".", O_RDONLY | O_CLOEXEC | LinuxFlags().Directory, 0, out errno);
        return folder >= 0 ? new SafeFileHandle(folder, ownsHandle: true) : throw Failure("openat", name, errno);
    }

    /// <summary>What <paramref name="name"/> in <paramref name="directory"/> is, without following it (<c>lstat</c>, through <c>statx</c>, whose layout is the same on every architecture).</summary>
    public static EntryKind Probe(SafeFileHandle directory, string name)
    {
        var status = new byte[StatxSize];
        var result = Statx(directory, ToNative(name), AT_SYMLINK_NOFOLLOW, STATX_TYPE, status);
        if (result != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            return errno == ENOENT ? EntryKind.Absent : throw Failure("statx", name, errno);
        }

        return KindOf(status);
    }

    /// <summary>Opens the file <paramref name="name"/> in <paramref name="directory"/> for reading, never following a link.</summary>
    /// <param name="directory">The directory.</param>
    /// <param name="name">One name in it.</param>
    /// <param name="found">What has that name: <see cref="EntryKind.File"/> when a handle is returned.</param>
    /// <returns>The file's handle, or <see langword="null"/> when <paramref name="name"/> is absent, a directory or a link.</returns>
    public static SafeFileHandle? OpenFileAt(SafeFileHandle directory, string name, out EntryKind found)
    {
        // O_NONBLOCK: a FIFO planted under an object's name must not block the reader; regular files ignore it.
        var fd = OpenAt(directory, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | LinuxFlags().NoFollow, 0, out var errno);
        if (fd < 0)
        {
            found = errno switch
            {
                ENOENT => EntryKind.Absent,
                LinuxELOOP => EntryKind.Link,
                _ => throw Failure("openat", name, errno),
            };
            return null;
        }

        var file = new SafeFileHandle(fd, ownsHandle: true);
        found = KindOf(file, name);
        if (found == EntryKind.File)
        {
            return file;
        }

        file.Dispose();
        return null;
    }

    /// <summary>Creates the file <paramref name="name"/> in <paramref name="directory"/> for writing; fails if the name exists, even as a link.</summary>
    /// <exception cref="IOException">The name exists, or the call failed.</exception>
    public static SafeFileHandle CreateFileAt(SafeFileHandle directory, string name)
    {
        var fd = OpenAt(directory, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | LinuxFlags().NoFollow, 438 /* 0666, less the umask */, out var errno);
        return fd >= 0 ? new SafeFileHandle(fd, ownsHandle: true) : throw Failure("openat", name, errno);
    }

    /// <summary>Creates the directory <paramref name="name"/> in <paramref name="directory"/>.</summary>
    /// <returns><see langword="true"/> if created; <see langword="false"/> if the name existed (as anything).</returns>
    public static bool MakeDirectoryAt(SafeFileHandle directory, string name)
    {
        var native = ToNative(name);
        while (true)
        {
            if (MkDirAt(directory, native, 511 /* 0777, less the umask */) == 0)
            {
                return true;
            }

            var errno = Marshal.GetLastPInvokeError();
            switch (errno)
            {
                case EINTR:
                    continue;
                case EEXIST:
                    return false;
                default:
                    throw Failure("mkdirat", name, errno);
            }
        }
    }

    /// <summary><see cref="TryLink"/> within one directory: gives the file <paramref name="existingName"/> the new name <paramref name="newName"/> if that name is free.</summary>
    public static LinkResult TryLinkAt(SafeFileHandle directory, string existingName, string newName)
    {
        var existing = ToNative(existingName);
        var created = ToNative(newName);
        while (true)
        {
            // Flags 0: the existing name is not followed if it is a link (it never is: the store just created it).
            if (LinkAt(directory, existing, directory, created, 0) == 0)
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
                    return IsNotSupported(errno) ? LinkResult.NotSupported : throw Failure("linkat", newName, errno);
            }
        }
    }

    /// <summary>Renames <paramref name="from"/> to <paramref name="to"/> within <paramref name="directory"/>; a link is renamed itself, never followed.</summary>
    /// <returns><see langword="false"/> if <paramref name="from"/> did not exist.</returns>
    public static bool TryRenameAt(SafeFileHandle directory, string from, string to)
    {
        var source = ToNative(from);
        var destination = ToNative(to);
        while (true)
        {
            if (RenameAt(directory, source, directory, destination) == 0)
            {
                return true;
            }

            var errno = Marshal.GetLastPInvokeError();
            switch (errno)
            {
                case EINTR:
                    continue;
                case ENOENT:
                    return false;
                default:
                    throw Failure("renameat", from, errno);
            }
        }
    }

    /// <summary>Removes the name <paramref name="name"/> (a file, or a link itself, never what it points at) from <paramref name="directory"/>.</summary>
    /// <returns><see langword="false"/> if it did not exist.</returns>
    public static bool TryUnlinkAt(SafeFileHandle directory, string name)
    {
        var native = ToNative(name);
        while (true)
        {
            if (UnlinkAt(directory, native, 0) == 0)
            {
                return true;
            }

            var errno = Marshal.GetLastPInvokeError();
            switch (errno)
            {
                case EINTR:
                    continue;
                case ENOENT:
                    return false;
                default:
                    throw Failure("unlinkat", name, errno);
            }
        }
    }

    /// <summary>Flushes the open directory <paramref name="directory"/> to disk, so that the names created in it survive a power loss.</summary>
    /// <exception cref="IOException">The flush failed.</exception>
    public static void SyncDirectory(SafeFileHandle directory, string nameForErrors)
    {
        if (FSync(directory) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno != EINVAL && !IsNotSupported(errno))
            {
                throw Failure("fsync", nameForErrors, errno);
            }
        }
    }

    /// <summary>
    /// A path through which .NET lists the open directory <paramref name="directory"/> itself (Linux's
    /// <c>/proc/self/fd/N</c>, a name of the open directory, not of whatever a path leads to now).
    /// Valid while the handle is open.
    /// </summary>
    public static string ListingPath(SafeFileHandle directory) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"/proc/self/fd/{directory.DangerousGetHandle()}");

    private static int OpenAt(SafeFileHandle directory, string name, int flags, int mode, out int errno)
    {
        var native = ToNative(name);
        while (true)
        {
            var fd = OpenAtNative(directory, native, flags, mode);
            errno = fd >= 0 ? 0 : Marshal.GetLastPInvokeError();
            if (errno != EINTR)
            {
                return fd;
            }
        }
    }

    /// <summary>What <paramref name="handle"/> is open on: a link itself, for an <c>O_PATH | O_NOFOLLOW</c> handle of one.</summary>
    private static EntryKind KindOf(SafeFileHandle handle, string nameForErrors)
    {
        var status = new byte[StatxSize];
        if (Statx(handle, [0], AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_TYPE, status) != 0)
        {
            throw Failure("statx", nameForErrors, Marshal.GetLastPInvokeError());
        }

        return KindOf(status);
    }

    private static EntryKind KindOf(byte[] status) =>
        (BinaryPrimitives.ReadUInt16LittleEndian(status.AsSpan(StatxModeOffset)) & S_IFMT) switch
        {
            S_IFDIR => EntryKind.Folder,
            S_IFLNK => EntryKind.Link,
            _ => EntryKind.File,
        };

    /// <summary>Whether <c>statx</c> works here (the C library has it, and neither the kernel nor a sandbox refuses it).</summary>
    private static bool StatxWorks()
    {
        try
        {
            using var root = OpenDirectory("/");
            return root is not null && Probe(root, ".") == EntryKind.Folder;
        }
        catch (Exception ex) when (ex is IOException or EntryPointNotFoundException or DllNotFoundException)
        {
            return false;
        }
    }

    private static (int Directory, int NoFollow) LinuxFlags() =>
        s_linuxFolderFlags ?? throw new PlatformNotSupportedException("Directory handles are used only on Linux.");

    /// <summary>O_DIRECTORY and O_NOFOLLOW, which differ between Linux architectures; <see langword="null"/> where they are not known here.</summary>
    private static (int Directory, int NoFollow)? LinuxFolderFlags()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        return RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 or Architecture.X86 or Architecture.S390x or Architecture.RiscV64 or Architecture.LoongArch64 => (0x10000, 0x20000),
            Architecture.Arm64 or Architecture.Arm or Architecture.Armv6 or Architecture.Ppc64le => (0x4000, 0x8000),
            _ => null,
        };
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
}
