using System.Security.Cryptography;

namespace KmsBackup;

/// <summary>
/// Encrypts, decrypts and verifies downloaded backup files (rule F3): a versioned streaming AEAD format
/// of AES-256-GCM segments under a per-file key derived with HKDF-SHA-256 from a 256-bit data key and a
/// random salt, with a key commitment in the authenticated header. The byte layout, derivations, limits
/// and test vectors are in <c>docs/backup-file-format.md</c>.
/// </summary>
/// <remarks>
/// <para>Memory is bounded for any file size: each call of the stream API holds one plaintext and one ciphertext
/// segment (by default 64 KiB each) and allocates nothing per segment.</para>
/// <para>For data already in memory, <see cref="Encrypt(ReadOnlySpan{byte}, Span{byte}, ReadOnlySpan{byte}, int)"/>,
/// <see cref="Decrypt(ReadOnlySpan{byte}, Span{byte}, ReadOnlySpan{byte})"/> and <see cref="Verify(ReadOnlySpan{byte}, ReadOnlySpan{byte})"/>
/// write the same format straight between the caller's buffers (sized with <see cref="GetEncryptedLength"/> and
/// <see cref="GetMaximumPlaintextLength"/>), without the copy into and out of the segment buffers that a
/// <see cref="Stream"/> needs; they too allocate nothing per segment.</para>
/// <para><see cref="DecryptAsync"/> writes plaintext segment by segment as each one authenticates and
/// throws at the first bad segment, so a caller must treat what it wrote as untrusted until the call
/// completes: write into a temporary buffer or file and use it only after success (rule F2: nothing is
/// imported unless the whole file authenticated), or call <see cref="VerifyAsync"/> first.</para>
/// <para>Every refusal is a <see cref="BackupFileException"/> with a stable <see cref="BackupException.Code"/>;
/// errors of the streams themselves (<see cref="IOException"/>) and cancellation pass through unchanged.
/// Messages never hold key bytes.</para>
/// </remarks>
public static class BackupFileCodec
{
    /// <summary>The length of a data encryption key: 32 bytes (AES-256).</summary>
    public const int DataKeySize = 32;

    /// <summary>The default segment size: 65,536 plaintext bytes per segment.</summary>
    public const int DefaultSegmentSize = 64 * 1024;

    /// <summary>The smallest segment size a file may declare: 16 bytes (small sizes serve test vectors and tests).</summary>
    public const int MinimumSegmentSize = 16;

    /// <summary>The largest segment size a file may declare: 16 MiB, so that opening any file needs bounded memory.</summary>
    public const int MaximumSegmentSize = 16 * 1024 * 1024;

    /// <summary>The most segments a file may hold: 2^32 − 1, so that the 32-bit segment index in the nonce never wraps.</summary>
    public const long MaximumSegmentCount = uint.MaxValue;

    /// <summary>Creates a fresh random 256-bit data encryption key for one backup file.</summary>
    /// <returns>32 bytes from <see cref="RandomNumberGenerator"/>, in a pinned array (which the garbage collector never
    /// moves, so no copy of it is left behind). The caller owns them and should zero them
    /// (<see cref="CryptographicOperations.ZeroMemory"/>) when done.</returns>
    public static byte[] GenerateDataKey()
    {
        var key = GC.AllocateUninitializedArray<byte>(DataKeySize, pinned: true);
        RandomNumberGenerator.Fill(key);
        return key;
    }

    /// <summary>Encrypts a plaintext stream into a backup file with the default segment size.</summary>
    /// <param name="plaintext">The backup data, read to its end.</param>
    /// <param name="destination">Where the backup file is written; it is not flushed or closed.</param>
    /// <param name="dataKey">The 32-byte data encryption key (see <see cref="GenerateDataKey"/>).</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The number of bytes written to <paramref name="destination"/>.</returns>
    /// <exception cref="BackupException">The data key is not 32 bytes (<see cref="BackupErrorCode.InvalidDataKey"/>) or the
    /// plaintext needs more than <see cref="MaximumSegmentCount"/> segments (<see cref="BackupErrorCode.FileTooLarge"/>).</exception>
    public static Task<long> EncryptAsync(Stream plaintext, Stream destination, ReadOnlyMemory<byte> dataKey, CancellationToken cancellationToken) =>
        EncryptAsync(plaintext, destination, dataKey, DefaultSegmentSize, cancellationToken);

    /// <summary>Encrypts a plaintext stream into a backup file with a chosen segment size.</summary>
    /// <param name="plaintext">The backup data, read to its end.</param>
    /// <param name="destination">Where the backup file is written; it is not flushed or closed.</param>
    /// <param name="dataKey">The 32-byte data encryption key (see <see cref="GenerateDataKey"/>).</param>
    /// <param name="segmentSize">Plaintext bytes per segment, from <see cref="MinimumSegmentSize"/> to <see cref="MaximumSegmentSize"/> inclusive.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The number of bytes written to <paramref name="destination"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="segmentSize"/> is out of range.</exception>
    /// <exception cref="BackupException">The data key is not 32 bytes (<see cref="BackupErrorCode.InvalidDataKey"/>) or the
    /// plaintext needs more than <see cref="MaximumSegmentCount"/> segments (<see cref="BackupErrorCode.FileTooLarge"/>).</exception>
    public static Task<long> EncryptAsync(Stream plaintext, Stream destination, ReadOnlyMemory<byte> dataKey, int segmentSize = DefaultSegmentSize, CancellationToken cancellationToken = default)
    {
        var salt = RandomNumberGenerator.GetBytes(BackupFileHeader.SaltSize);
        var noncePrefix = RandomNumberGenerator.GetBytes(BackupFileHeader.NoncePrefixSize);
        return BackupFileWriter.EncryptAsync(plaintext, destination, dataKey, segmentSize, salt, noncePrefix, MaximumSegmentCount, cancellationToken);
    }

    /// <summary>
    /// Decrypts a backup file, writing its plaintext to <paramref name="destination"/> segment by segment,
    /// each only after it authenticated.
    /// </summary>
    /// <remarks>
    /// The call throws at the first segment that fails, after the segments before it were written: the
    /// output is trustworthy only once the call completes. Decrypt into a temporary buffer or file and
    /// import it only after success (rule F2), or call <see cref="VerifyAsync"/> first.
    /// </remarks>
    /// <param name="encrypted">The backup file, read to its end. The final segment is the one the file ends in, so bytes
    /// appended after it make that segment fail authentication (<see cref="BackupErrorCode.FileCorrupt"/>).</param>
    /// <param name="destination">Where the plaintext is written; it is not flushed or closed.</param>
    /// <param name="dataKey">The 32-byte data key returned when the file was downloaded.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The number of plaintext bytes written.</returns>
    /// <exception cref="BackupFileException">The file was refused: <see cref="BackupErrorCode.WrongFileKey"/>,
    /// <see cref="BackupErrorCode.FileCorrupt"/>, <see cref="BackupErrorCode.FileTruncated"/>,
    /// <see cref="BackupErrorCode.UnsupportedFileVersion"/> or
    /// <see cref="BackupErrorCode.FileTooLarge"/>.</exception>
    /// <exception cref="BackupException">The data key is not 32 bytes (<see cref="BackupErrorCode.InvalidDataKey"/>).</exception>
    public static Task<long> DecryptAsync(Stream encrypted, Stream destination, ReadOnlyMemory<byte> dataKey, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        return BackupFileReader.OpenAsync(encrypted, destination, dataKey, MaximumSegmentCount, cancellationToken);
    }

    /// <summary>
    /// Authenticates a whole backup file with its data key without writing any plaintext (rule F4):
    /// the same checks as <see cref="DecryptAsync"/>, in the same bounded memory.
    /// </summary>
    /// <param name="encrypted">The backup file, read to its end.</param>
    /// <param name="dataKey">The 32-byte data key returned when the file was downloaded.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The number of plaintext bytes the file holds.</returns>
    /// <exception cref="BackupFileException">The file was refused, as by <see cref="DecryptAsync"/>.</exception>
    /// <exception cref="BackupException">The data key is not 32 bytes (<see cref="BackupErrorCode.InvalidDataKey"/>).</exception>
    public static Task<long> VerifyAsync(Stream encrypted, ReadOnlyMemory<byte> dataKey, CancellationToken cancellationToken = default) =>
        BackupFileReader.OpenAsync(encrypted, null, dataKey, MaximumSegmentCount, cancellationToken);

    /// <summary>
    /// Opens a backup file for reading its plaintext as a stream, one segment at a time: the same checks, in the
    /// same order, with the same typed errors as <see cref="DecryptAsync"/>, in the same bounded memory (one
    /// plaintext and one ciphertext segment). For a reader that parses as it decrypts, such as an import that must
    /// not hold a whole file.
    /// </summary>
    /// <remarks>
    /// <para>Every byte a read returns belongs to a segment that authenticated, but a later segment may still be
    /// refused: only the end of the stream (a read that returns 0) means the whole file authenticated. A reader
    /// must act on nothing it read before that (rule F2). A refusal is thrown by the read that reaches the bad
    /// segment, and again by any later read.</para>
    /// <para>The stream reads <paramref name="encrypted"/> forward only and cannot seek or write. Disposing it
    /// zeroes its plaintext buffer and disposes <paramref name="encrypted"/> unless <paramref name="leaveOpen"/>.</para>
    /// </remarks>
    /// <param name="encrypted">The backup file, read to its end.</param>
    /// <param name="dataKey">The 32-byte data key returned when the file was downloaded; copied, and the copy zeroed once the header is read.</param>
    /// <param name="leaveOpen">Whether <paramref name="encrypted"/> stays open when the stream is disposed.</param>
    /// <returns>A read-only stream of the plaintext.</returns>
    /// <exception cref="BackupException">The data key is not 32 bytes (<see cref="BackupErrorCode.InvalidDataKey"/>).</exception>
    public static Stream CreateDecryptingStream(Stream encrypted, ReadOnlyMemory<byte> dataKey, bool leaveOpen = false) =>
        BackupFileDecryptingStream.Create(encrypted, dataKey, leaveOpen, MaximumSegmentCount);

    /// <summary>
    /// The length of the backup file that <see cref="Encrypt(ReadOnlySpan{byte}, Span{byte}, ReadOnlySpan{byte}, int)"/>
    /// (or <see cref="EncryptAsync(Stream, Stream, ReadOnlyMemory{byte}, int, CancellationToken)"/>) makes of a plaintext
    /// of <paramref name="plaintextLength"/> bytes: the header, the plaintext, and one tag per segment, the empty final
    /// segment of a plaintext whose length is a multiple of <paramref name="segmentSize"/> included.
    /// </summary>
    /// <param name="plaintextLength">The plaintext length in bytes, zero or more.</param>
    /// <param name="segmentSize">Plaintext bytes per segment, from <see cref="MinimumSegmentSize"/> to <see cref="MaximumSegmentSize"/> inclusive.</param>
    /// <returns>The file length in bytes.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="plaintextLength"/> is negative or <paramref name="segmentSize"/> is out of range.</exception>
    /// <exception cref="BackupException">The plaintext needs more than <see cref="MaximumSegmentCount"/> segments (<see cref="BackupErrorCode.FileTooLarge"/>).</exception>
    public static long GetEncryptedLength(long plaintextLength, int segmentSize = DefaultSegmentSize) =>
        BackupFileWriter.GetEncryptedLength(plaintextLength, segmentSize);

    /// <summary>
    /// An upper bound of the plaintext a backup file of <paramref name="encryptedLength"/> bytes holds, whatever its
    /// segment size: the file length less the header and one tag (never negative). A destination of this length
    /// always suffices for <see cref="Decrypt(ReadOnlySpan{byte}, Span{byte}, ReadOnlySpan{byte})"/>, which returns the exact length.
    /// </summary>
    /// <param name="encryptedLength">The backup file's length in bytes, zero or more.</param>
    /// <returns>The most plaintext bytes the file can hold.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="encryptedLength"/> is negative.</exception>
    public static long GetMaximumPlaintextLength(long encryptedLength) =>
        BackupFileReader.GetMaximumPlaintextLength(encryptedLength);

    /// <summary>
    /// Encrypts a plaintext held in memory into a backup file written to <paramref name="destination"/>: the same
    /// format, bytes and checks as <see cref="EncryptAsync(Stream, Stream, ReadOnlyMemory{byte}, int, CancellationToken)"/>,
    /// without the two copies a stream implies (each segment is sealed straight from the plaintext into the destination).
    /// </summary>
    /// <param name="plaintext">The backup data.</param>
    /// <param name="destination">Where the backup file is written; at least <see cref="GetEncryptedLength"/> bytes, not
    /// overlapping <paramref name="plaintext"/>. Bytes after the file are left as they were.</param>
    /// <param name="dataKey">The 32-byte data encryption key (see <see cref="GenerateDataKey"/>).</param>
    /// <param name="segmentSize">Plaintext bytes per segment, from <see cref="MinimumSegmentSize"/> to <see cref="MaximumSegmentSize"/> inclusive.</param>
    /// <returns>The number of bytes written to <paramref name="destination"/>, <see cref="GetEncryptedLength"/> of the plaintext's length.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="segmentSize"/> is out of range.</exception>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is too short or overlaps <paramref name="plaintext"/>.</exception>
    /// <exception cref="BackupException">The data key is not 32 bytes (<see cref="BackupErrorCode.InvalidDataKey"/>).</exception>
    public static int Encrypt(ReadOnlySpan<byte> plaintext, Span<byte> destination, ReadOnlySpan<byte> dataKey, int segmentSize = DefaultSegmentSize)
    {
        Span<byte> salt = stackalloc byte[BackupFileHeader.SaltSize];
        Span<byte> noncePrefix = stackalloc byte[BackupFileHeader.NoncePrefixSize];
        RandomNumberGenerator.Fill(salt);
        RandomNumberGenerator.Fill(noncePrefix);
        return BackupFileWriter.Encrypt(plaintext, destination, dataKey, segmentSize, salt, noncePrefix);
    }

    /// <summary>
    /// Decrypts a backup file held in memory into <paramref name="destination"/>: the same checks, in the same order,
    /// with the same typed errors as <see cref="DecryptAsync"/>, without the two copies a stream implies.
    /// </summary>
    /// <remarks>
    /// Unlike <see cref="DecryptAsync"/>, a refused file leaves no plaintext behind: every byte of
    /// <paramref name="destination"/> the call may have written is zeroed before the error is thrown, so the
    /// destination holds either the whole authenticated plaintext or nothing of it (rule F2).
    /// </remarks>
    /// <param name="encrypted">The whole backup file. The final segment is the one the file ends in, so bytes
    /// after it make that segment fail authentication (<see cref="BackupErrorCode.FileCorrupt"/>).</param>
    /// <param name="destination">Where the plaintext is written, not overlapping <paramref name="encrypted"/>;
    /// <see cref="GetMaximumPlaintextLength"/> of the file's length always suffices.</param>
    /// <param name="dataKey">The 32-byte data key returned when the file was downloaded.</param>
    /// <returns>The number of plaintext bytes written.</returns>
    /// <exception cref="BackupFileException">The file was refused: <see cref="BackupErrorCode.WrongFileKey"/>,
    /// <see cref="BackupErrorCode.FileCorrupt"/>, <see cref="BackupErrorCode.FileTruncated"/>,
    /// <see cref="BackupErrorCode.UnsupportedFileVersion"/> or
    /// <see cref="BackupErrorCode.FileTooLarge"/>.</exception>
    /// <exception cref="BackupException">The data key is not 32 bytes (<see cref="BackupErrorCode.InvalidDataKey"/>).</exception>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than the plaintext the file holds, or
    /// overlaps <paramref name="encrypted"/>.</exception>
    public static int Decrypt(ReadOnlySpan<byte> encrypted, Span<byte> destination, ReadOnlySpan<byte> dataKey) =>
        BackupFileReader.Open(encrypted, destination, dataKey, MaximumSegmentCount, verifyOnly: false);

    /// <summary>
    /// Authenticates a whole backup file held in memory with its data key without writing any plaintext (rule F4):
    /// the same checks and typed errors as <see cref="VerifyAsync"/>, in one segment of scratch memory.
    /// </summary>
    /// <param name="encrypted">The whole backup file.</param>
    /// <param name="dataKey">The 32-byte data key returned when the file was downloaded.</param>
    /// <returns>The number of plaintext bytes the file holds.</returns>
    /// <exception cref="BackupFileException">The file was refused, as by <see cref="Decrypt(ReadOnlySpan{byte}, Span{byte}, ReadOnlySpan{byte})"/>.</exception>
    /// <exception cref="BackupException">The data key is not 32 bytes (<see cref="BackupErrorCode.InvalidDataKey"/>).</exception>
    public static int Verify(ReadOnlySpan<byte> encrypted, ReadOnlySpan<byte> dataKey) =>
        BackupFileReader.Open(encrypted, [], dataKey, MaximumSegmentCount, verifyOnly: true);
}
