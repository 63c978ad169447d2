using System.Buffers.Binary;
using System.Security.Cryptography;

namespace KmsBackup;

/// <summary>
/// An append-only temporary file for what an upload cannot hold in memory: its items (key material and secret
/// ciphertexts among them) and the runs of its key-ID sort. Every page is sealed with AES-256-GCM under a key
/// made for this file alone and held only in this process, with the page's number as its nonce, so the disk
/// never sees plaintext, and a page changed, swapped or cut short on disk fails to open. The file is created
/// only for the current user and unlinked at once where the system allows (elsewhere, deleted on close): a
/// crash leaves at most bytes that no key opens any more.
/// </summary>
/// <remarks>
/// Appends go to the page in memory; a full page is sealed and written. Reads (<see cref="OpenCursor"/>) see every
/// byte appended so far, written pages from disk and the last page from memory. Not thread-safe.
/// </remarks>
internal sealed class SpillFile : IDisposable
{
    private const int TagSize = 16;

    private readonly FileStream _file;
    private readonly AesGcm _aes;
    private readonly int _pageSize;
    private readonly byte[] _page;
    private readonly byte[] _sealed;
    private readonly string _folder;
    private long _pagesWritten;
    private int _pageUsed;
    private bool _disposed;

    private SpillFile(FileStream file, int pageSize, string folder)
    {
        _file = file;
        _folder = folder;
        _pageSize = pageSize;
        _page = GC.AllocateArray<byte>(pageSize, pinned: true);
        _sealed = GC.AllocateUninitializedArray<byte>(pageSize + TagSize, pinned: true);
        Span<byte> key = stackalloc byte[32];
        RandomNumberGenerator.Fill(key);
        _aes = new AesGcm(key, TagSize);
        CryptographicOperations.ZeroMemory(key);
    }

    /// <summary>Bytes appended so far.</summary>
    public long Length => (_pagesWritten * _pageSize) + _pageUsed;

    /// <summary>
    /// Creates a spill file in <paramref name="folder"/>. A folder that does not exist, is not writable or is full is
    /// a <see cref="BackupException"/> (<see cref="BackupErrorCode.TemporaryFolderUnavailable"/>) naming it.
    /// </summary>
    public static SpillFile Create(string folder, int pageSize)
    {
        var path = Path.Combine(folder, $"kmsbackup-upload-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16))}.tmp");
        FileStream file;
        try
        {
            var options = new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.ReadWrite,
                Share = FileShare.None,
                BufferSize = 0,
                Options = OperatingSystem.IsWindows() ? FileOptions.DeleteOnClose : FileOptions.None,
            };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            file = new FileStream(path, options);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw Unavailable(folder, e);
        }

        if (!OperatingSystem.IsWindows())
        {
            // The open handle keeps the file; its name goes now, so that no crash can leave it behind by name.
            try
            {
                new System.IO.Abstractions.FileSystem().File.Delete(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                file.Dispose();
                throw Unavailable(folder, e);
            }
        }

        return new SpillFile(file, pageSize, folder);
    }

    public void Append(ReadOnlySpan<byte> bytes)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (!bytes.IsEmpty)
        {
            var n = Math.Min(bytes.Length, _pageSize - _pageUsed);
            bytes[..n].CopyTo(_page.AsSpan(_pageUsed));
            _pageUsed += n;
            bytes = bytes[n..];
            if (_pageUsed == _pageSize)
            {
                WritePage();
            }
        }
    }

    public void AppendVarUInt(ulong value)
    {
        Span<byte> bytes = stackalloc byte[10];
        var n = 0;
        while (value >= 0x80)
        {
            bytes[n++] = (byte)(value | 0x80);
            value >>= 7;
        }

        bytes[n++] = (byte)value;
        Append(bytes[..n]);
    }

    /// <summary>A reader from <paramref name="position"/>, with a page buffer of its own.</summary>
    public Cursor OpenCursor(long position) => new(this, position);

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        CryptographicOperations.ZeroMemory(_page);
        _aes.Dispose();
        _file.Dispose();
    }

    private static BackupException Unavailable(string folder, Exception e) => new(new Refusal(
        BackupErrorCode.TemporaryFolderUnavailable, $"temporary folder '{folder}'",
        $"The upload could not write its temporary file in '{folder}' ({e.GetType().Name}: {e.Message}). Nothing was imported.",
        "Give the upload a folder it can write with room for about the file's size (BackupClientOptions.UploadTemporaryFolder), then retry."), e);

    private void WritePage()
    {
        Span<byte> nonce = stackalloc byte[12];
        BinaryPrimitives.WriteInt64LittleEndian(nonce, _pagesWritten);
        _aes.Encrypt(nonce, _page, _sealed.AsSpan(0, _pageSize), _sealed.AsSpan(_pageSize, TagSize));
        try
        {
            RandomAccess.Write(_file.SafeFileHandle, _sealed, _pagesWritten * (_pageSize + TagSize));
        }
        catch (IOException e)
        {
            throw Unavailable(_folder, e);
        }

        CryptographicOperations.ZeroMemory(_page);
        _pagesWritten++;
        _pageUsed = 0;
    }

    /// <summary>Reads one page into <paramref name="into"/>: from disk if written, else the page in memory.</summary>
    private void ReadPage(long page, Span<byte> into)
    {
        if (page == _pagesWritten)
        {
            _page.AsSpan(0, _pageUsed).CopyTo(into);
            return;
        }

        var read = 0;
        var offset = page * (_pageSize + TagSize);
        while (read < _sealed.Length)
        {
            var n = RandomAccess.Read(_file.SafeFileHandle, _sealed.AsSpan(read), offset + read);
            if (n == 0)
            {
                throw Damaged(page);
            }

            read += n;
        }

        Span<byte> nonce = stackalloc byte[12];
        BinaryPrimitives.WriteInt64LittleEndian(nonce, page);
        try
        {
            _aes.Decrypt(nonce, _sealed.AsSpan(0, _pageSize), _sealed.AsSpan(_pageSize, TagSize), into[.._pageSize]);
        }
        catch (AuthenticationTagMismatchException)
        {
            throw Damaged(page);
        }
    }

    private BackupException Damaged(long page) => new(new Refusal(
        BackupErrorCode.TemporaryFolderUnavailable, $"temporary folder '{_folder}'",
        $"Page {page} of the upload's temporary file in '{_folder}' did not read back as it was written: the file was changed or cut short while the upload ran. Nothing was imported.",
        "Check the folder's disk, and that nothing else writes to it; then retry."));

    /// <summary>A forward reader over a spill file, from a position; it may be moved anywhere with <see cref="Seek"/>.</summary>
    internal sealed class Cursor : IDisposable
    {
        private readonly SpillFile _file;
        private readonly byte[] _page;
        private long _loadedPage = -1;
        private int _loadedLength;

        public Cursor(SpillFile file, long position)
        {
            _file = file;
            _page = GC.AllocateUninitializedArray<byte>(file._pageSize, pinned: true);
            Position = position;
        }

        public long Position { get; private set; }

        public void Seek(long position) => Position = position;

        public byte ReadByte()
        {
            Span<byte> b = stackalloc byte[1];
            Read(b);
            return b[0];
        }

        public ulong ReadVarUInt()
        {
            ulong value = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                var b = ReadByte();
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80)
                {
                    return value;
                }
            }

            throw new InvalidOperationException("A spill file holds a variable-length integer longer than 64 bits: its own writer is broken.");
        }

        /// <summary>Fills <paramref name="into"/> from the current position, which moves past what was read.</summary>
        public void Read(Span<byte> into)
        {
            if (Position + into.Length > _file.Length)
            {
                throw new InvalidOperationException("A read past the end of a spill file: its own writer is broken.");
            }

            while (!into.IsEmpty)
            {
                var page = Position / _file._pageSize;
                var offset = (int)(Position % _file._pageSize);
                if (page != _loadedPage || offset >= _loadedLength || (_loadedLength < _file._pageSize && offset + into.Length > _loadedLength))
                {
                    _file.ReadPage(page, _page);
                    _loadedPage = page;
                    _loadedLength = page == _file._pagesWritten ? _file._pageUsed : _file._pageSize;
                }

                var n = Math.Min(into.Length, _loadedLength - offset);
                _page.AsSpan(offset, n).CopyTo(into);
                into = into[n..];
                Position += n;
            }
        }

        public void Dispose() => CryptographicOperations.ZeroMemory(_page);
    }
}
