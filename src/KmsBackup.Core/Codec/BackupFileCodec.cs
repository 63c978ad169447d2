using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.ExceptionServices;
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

    /// <summary>The current (and only) format version: 1.</summary>
    public const byte FormatVersion = 1;

    /// <summary>The length of the version 1 header in bytes.</summary>
    public const int HeaderSize = 98;

    /// <summary>The length of the authentication tag that ends every segment: 16 bytes.</summary>
    public const int TagSize = 16;

    /// <summary>The most segments a file may hold: 2^32 − 1, so that the 32-bit segment index in the nonce never wraps.</summary>
    public const long MaximumSegmentCount = uint.MaxValue;

    internal const int SaltSize = 32;
    internal const int NoncePrefixSize = 7;
    internal const int CommitmentSize = 32;
    internal const int ChecksumSize = 16;
    internal const int NonceSize = 12;

    // Header offsets (version 1).
    internal const int VersionOffset = 6;
    internal const int SegmentSizeOffset = 7;
    internal const int SaltOffset = 11;
    internal const int NoncePrefixOffset = SaltOffset + SaltSize;               // 43
    internal const int CommitmentOffset = NoncePrefixOffset + NoncePrefixSize;  // 50
    internal const int ChecksumOffset = CommitmentOffset + CommitmentSize;      // 82

    internal static ReadOnlySpan<byte> Magic => "KMSBKF"u8;

    internal static ReadOnlySpan<byte> SegmentKeyInfo => "KmsBackup backup file v1 segment key"u8;

    internal static ReadOnlySpan<byte> CommitmentInfo => "KmsBackup backup file v1 key commitment"u8;

    private const string FileItem = "backup file";
    private const string WrongKeyRemedy = "Use the data key that was returned when this file was downloaded; a key of another download does not open it.";
    private const string CorruptRemedy = "The file was damaged or altered after it was downloaded: download the backup again, or use an intact copy. Nothing of this file may be imported.";
    private const string TruncatedRemedy = "The file was cut short (an interrupted download or copy): download or copy it again in full.";

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
        var salt = RandomNumberGenerator.GetBytes(SaltSize);
        var noncePrefix = RandomNumberGenerator.GetBytes(NoncePrefixSize);
        return EncryptAsync(plaintext, destination, dataKey, segmentSize, salt, noncePrefix, MaximumSegmentCount, cancellationToken);
    }

    /// <summary>Encrypts with a given salt and nonce prefix: for test vectors only, never for real files.</summary>
    internal static async Task<long> EncryptAsync(
        Stream plaintext,
        Stream destination,
        ReadOnlyMemory<byte> dataKey,
        int segmentSize,
        ReadOnlyMemory<byte> salt,
        ReadOnlyMemory<byte> noncePrefix,
        long maximumSegmentCount,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        ArgumentNullException.ThrowIfNull(destination);
        ValidateSegmentSize(segmentSize);
        ArgumentOutOfRangeException.ThrowIfNotEqual(salt.Length, SaltSize);
        ArgumentOutOfRangeException.ThrowIfNotEqual(noncePrefix.Length, NoncePrefixSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(maximumSegmentCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maximumSegmentCount, MaximumSegmentCount);
        ValidateDataKey(dataKey.Length);

        var header = new byte[HeaderSize];
        var cipher = CreateForWriting(header, dataKey.Span, segmentSize, salt.Span, noncePrefix.Span);
        var plainBuffer = SensitiveBufferPool.Rent(segmentSize);
        var cipherBuffer = ArrayPool<byte>.Shared.Rent(segmentSize + TagSize);
        try
        {
            await destination.WriteAsync(header, cancellationToken).ConfigureAwait(false);
            long written = HeaderSize;
            for (uint index = 0; ; index++)
            {
                var read = await ReadFullAsync(plaintext, plainBuffer.AsMemory(0, segmentSize), cancellationToken).ConfigureAwait(false);

                // The final segment always holds fewer than segmentSize bytes (possibly none), so a reader
                // tells it from its length alone, without reading ahead.
                var final = read < segmentSize;
                if (!final && index >= maximumSegmentCount - 1)
                {
                    throw TooManySegments(maximumSegmentCount, segmentSize);
                }

                cipher.Seal(index, final, plainBuffer.AsSpan(0, read), cipherBuffer.AsSpan(0, read + TagSize));
                await destination.WriteAsync(cipherBuffer.AsMemory(0, read + TagSize), cancellationToken).ConfigureAwait(false);
                written += read + TagSize;
                if (final)
                {
                    return written;
                }
            }
        }
        finally
        {
            cipher.Dispose();
            SensitiveBufferPool.Return(plainBuffer);
            ArrayPool<byte>.Shared.Return(cipherBuffer);
        }
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
        return OpenAsync(encrypted, destination, dataKey, MaximumSegmentCount, cancellationToken);
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
        OpenAsync(encrypted, null, dataKey, MaximumSegmentCount, cancellationToken);

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
        CreateDecryptingStream(encrypted, dataKey, leaveOpen, MaximumSegmentCount);

    /// <summary>Opens a decrypting stream with a lower segment limit: for tests of the counter's hard stop.</summary>
    internal static Stream CreateDecryptingStream(Stream encrypted, ReadOnlyMemory<byte> dataKey, bool leaveOpen, long maximumSegmentCount)
    {
        ArgumentNullException.ThrowIfNull(encrypted);
        ValidateDataKey(dataKey.Length);
        return new DecryptingStream(encrypted, dataKey.Span, leaveOpen, maximumSegmentCount);
    }

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
    public static long GetEncryptedLength(long plaintextLength, int segmentSize = DefaultSegmentSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(plaintextLength);
        ValidateSegmentSize(segmentSize);
        var segments = (plaintextLength / segmentSize) + 1;
        if (segments > MaximumSegmentCount)
        {
            throw TooManySegments(MaximumSegmentCount, segmentSize);
        }

        return HeaderSize + plaintextLength + (segments * TagSize);
    }

    /// <summary>
    /// An upper bound of the plaintext a backup file of <paramref name="encryptedLength"/> bytes holds, whatever its
    /// segment size: the file length less the header and one tag (never negative). A destination of this length
    /// always suffices for <see cref="Decrypt(ReadOnlySpan{byte}, Span{byte}, ReadOnlySpan{byte})"/>, which returns the exact length.
    /// </summary>
    /// <param name="encryptedLength">The backup file's length in bytes, zero or more.</param>
    /// <returns>The most plaintext bytes the file can hold.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="encryptedLength"/> is negative.</exception>
    public static long GetMaximumPlaintextLength(long encryptedLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(encryptedLength);
        return Math.Max(0, encryptedLength - HeaderSize - TagSize);
    }

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
        Span<byte> salt = stackalloc byte[SaltSize];
        Span<byte> noncePrefix = stackalloc byte[NoncePrefixSize];
        RandomNumberGenerator.Fill(salt);
        RandomNumberGenerator.Fill(noncePrefix);
        return Encrypt(plaintext, destination, dataKey, segmentSize, salt, noncePrefix);
    }

    /// <summary>Encrypts in memory with a given salt and nonce prefix: for test vectors only, never for real files.</summary>
    internal static int Encrypt(ReadOnlySpan<byte> plaintext, Span<byte> destination, ReadOnlySpan<byte> dataKey, int segmentSize, ReadOnlySpan<byte> salt, ReadOnlySpan<byte> noncePrefix)
    {
        ValidateSegmentSize(segmentSize);
        ArgumentOutOfRangeException.ThrowIfNotEqual(salt.Length, SaltSize);
        ArgumentOutOfRangeException.ThrowIfNotEqual(noncePrefix.Length, NoncePrefixSize);
        ValidateDataKey(dataKey.Length);

        // A span holds under 2^31 bytes, so at 16-byte segments or more it never needs 2^32 - 1 segments.
        var length = GetEncryptedLength(plaintext.Length, segmentSize);
        if (destination.Length < length)
        {
            throw new ArgumentException($"The destination holds {destination.Length} bytes; the backup file of {plaintext.Length} plaintext bytes in segments of {segmentSize} needs {length} (see GetEncryptedLength).", nameof(destination));
        }

        if (plaintext.Overlaps(destination))
        {
            throw new ArgumentException("The destination overlaps the plaintext; encrypt into a separate buffer.", nameof(destination));
        }

        using var cipher = CreateForWriting(destination[..HeaderSize], dataKey, segmentSize, salt, noncePrefix);
        var output = destination[HeaderSize..];
        for (uint index = 0; ; index++)
        {
            var plain = plaintext[..Math.Min(segmentSize, plaintext.Length)];
            var final = plain.Length < segmentSize;
            cipher.Seal(index, final, plain, output[..(plain.Length + TagSize)]);
            plaintext = plaintext[plain.Length..];
            output = output[(plain.Length + TagSize)..];
            if (final)
            {
                return (int)length;
            }
        }
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
        Open(encrypted, destination, dataKey, MaximumSegmentCount, verifyOnly: false);

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
        Open(encrypted, [], dataKey, MaximumSegmentCount, verifyOnly: true);

    /// <summary>
    /// Decrypts into <paramref name="destination"/> (or, with <paramref name="verifyOnly"/>, only authenticates) a file
    /// held in memory, segment by segment in the order and with the checks of <see cref="OpenAsync"/>; a lower segment
    /// limit serves tests of the counter's hard stop.
    /// </summary>
    internal static int Open(ReadOnlySpan<byte> encrypted, Span<byte> destination, ReadOnlySpan<byte> dataKey, long maximumSegmentCount, bool verifyOnly)
    {
        ValidateDataKey(dataKey.Length);
        using var cipher = CreateForReading(encrypted[..Math.Min(encrypted.Length, HeaderSize)], dataKey);
        var segmentSize = cipher.SegmentSize;
        var fullSegment = segmentSize + TagSize;
        var body = encrypted[HeaderSize..];

        // What the loop below writes before it returns or stops at a truncated end: the whole segments, and the
        // final one when the file ends in at least a tag's worth of it.
        var required = ((long)(body.Length / fullSegment) * segmentSize) + Math.Max(0, (body.Length % fullSegment) - TagSize);
        byte[]? scratch = null;
        if (verifyOnly)
        {
            scratch = SensitiveBufferPool.Rent(segmentSize);
            destination = scratch.AsSpan(0, segmentSize);
        }
        else
        {
            if (destination.Length < required)
            {
                throw new ArgumentException($"The destination holds {destination.Length} bytes; the backup file holds {required} plaintext bytes (see GetMaximumPlaintextLength).", nameof(destination));
            }

            if (encrypted.Overlaps(destination))
            {
                throw new ArgumentException("The destination overlaps the backup file; decrypt into a separate buffer.", nameof(destination));
            }
        }

        var written = 0;
        var succeeded = false;
        var output = destination;
        try
        {
            for (uint index = 0; ; index++)
            {
                var segment = body[..Math.Min(fullSegment, body.Length)];
                if (segment.Length < TagSize)
                {
                    throw Truncated(index, segment.Length);
                }

                var final = segment.Length < fullSegment;
                if (!final && index >= maximumSegmentCount - 1)
                {
                    throw TooManySegmentsInFile(index, maximumSegmentCount);
                }

                var plain = output[..(segment.Length - TagSize)];
                if (!cipher.TryOpen(index, final, segment, plain))
                {
                    throw SegmentFailed(index, final, segment.Length);
                }

                body = body[segment.Length..];
                written += plain.Length;
                if (!verifyOnly)
                {
                    output = output[plain.Length..];
                }

                if (final)
                {
                    succeeded = true;
                    return written;
                }
            }
        }
        finally
        {
            if (verifyOnly)
            {
                SensitiveBufferPool.Return(scratch!);
            }
            else if (!succeeded)
            {
                // A refusal leaves no plaintext behind: neither the segments that authenticated nor the one that did not.
                CryptographicOperations.ZeroMemory(destination[..(int)required]);
            }
        }
    }

    /// <summary>Decrypts (or, without a destination, verifies) with a lower segment limit: for tests of the counter's hard stop.</summary>
    internal static async Task<long> OpenAsync(Stream encrypted, Stream? destination, ReadOnlyMemory<byte> dataKey, long maximumSegmentCount, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(encrypted);
        ValidateDataKey(dataKey.Length);

        var header = new byte[HeaderSize];
        var headerRead = await ReadFullAsync(encrypted, header, cancellationToken).ConfigureAwait(false);
        var cipher = CreateForReading(header.AsSpan(0, headerRead), dataKey.Span);
        var segmentSize = cipher.SegmentSize;
        var fullSegment = segmentSize + TagSize;
        var plainBuffer = SensitiveBufferPool.Rent(segmentSize);
        var cipherBuffer = ArrayPool<byte>.Shared.Rent(fullSegment);
        try
        {
            long plaintextLength = 0;
            for (uint index = 0; ; index++)
            {
                var read = await ReadFullAsync(encrypted, cipherBuffer.AsMemory(0, fullSegment), cancellationToken).ConfigureAwait(false);
                var final = OpenSegment(cipher, index, cipherBuffer.AsSpan(0, read), fullSegment, maximumSegmentCount, plainBuffer);
                if (destination is not null)
                {
                    await destination.WriteAsync(plainBuffer.AsMemory(0, read - TagSize), cancellationToken).ConfigureAwait(false);
                }

                plaintextLength += read - TagSize;
                if (final)
                {
                    return plaintextLength;
                }
            }
        }
        finally
        {
            cipher.Dispose();
            SensitiveBufferPool.Return(plainBuffer);
            ArrayPool<byte>.Shared.Return(cipherBuffer);
        }
    }

    /// <summary>
    /// Checks and decrypts segment <paramref name="index"/>, as read (the file's next <paramref name="fullSegment"/> bytes
    /// or fewer where it ends), into <paramref name="plainBuffer"/>; returns whether it is the final segment. Every
    /// streaming reader goes through here, so that they all refuse the same files with the same errors.
    /// </summary>
    private static bool OpenSegment(SegmentCipher cipher, uint index, ReadOnlySpan<byte> segment, int fullSegment, long maximumSegmentCount, Span<byte> plainBuffer)
    {
        if (segment.Length < TagSize)
        {
            throw Truncated(index, segment.Length);
        }

        var final = segment.Length < fullSegment;
        if (!final && index >= maximumSegmentCount - 1)
        {
            throw TooManySegmentsInFile(index, maximumSegmentCount);
        }

        var plain = plainBuffer[..(segment.Length - TagSize)];
        if (!cipher.TryOpen(index, final, segment, plain))
        {
            CryptographicOperations.ZeroMemory(plain);
            throw SegmentFailed(index, final, segment.Length);
        }

        return final;
    }

    private static SegmentCipher CreateForWriting(Span<byte> header, ReadOnlySpan<byte> dataKey, int segmentSize, ReadOnlySpan<byte> salt, ReadOnlySpan<byte> noncePrefix)
    {
        Magic.CopyTo(header);
        header[VersionOffset] = FormatVersion;
        BinaryPrimitives.WriteUInt32BigEndian(header[SegmentSizeOffset..], (uint)segmentSize);
        salt.CopyTo(header[SaltOffset..]);
        noncePrefix.CopyTo(header[NoncePrefixOffset..]);

        Span<byte> key = stackalloc byte[DataKeySize];
        try
        {
            Derive(dataKey, salt, key, header.Slice(CommitmentOffset, CommitmentSize));
            Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
            SHA256.HashData(header[..ChecksumOffset], digest);
            digest[..ChecksumSize].CopyTo(header[ChecksumOffset..]);
            return new SegmentCipher(key, header.ToArray(), noncePrefix, segmentSize);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    private static SegmentCipher CreateForReading(ReadOnlySpan<byte> header, ReadOnlySpan<byte> dataKey)
    {
        var magicPart = header[..Math.Min(header.Length, Magic.Length)];
        if (!magicPart.SequenceEqual(Magic[..magicPart.Length]))
        {
            throw HeaderRefusal(BackupErrorCode.FileCorrupt, "The data does not start with the backup file signature 'KMSBKF': it is not a KmsBackup backup file, or its first bytes are damaged.", CorruptRemedy);
        }

        if (header.Length == 0)
        {
            throw HeaderRefusal(BackupErrorCode.FileTruncated, "The backup file is empty.", TruncatedRemedy);
        }

        if (header.Length > VersionOffset && header[VersionOffset] != FormatVersion)
        {
            throw HeaderRefusal(
                BackupErrorCode.UnsupportedFileVersion,
                $"The backup file has format version {header[VersionOffset]}; this SDK reads version {FormatVersion} only (or the version byte is damaged).",
                "Open the file with the SDK version that wrote it or a newer one; if this SDK wrote it, the file is damaged: download it again.");
        }

        if (header.Length < HeaderSize)
        {
            throw HeaderRefusal(BackupErrorCode.FileTruncated, $"The backup file ends inside its header ({header.Length} of {HeaderSize} bytes).", TruncatedRemedy);
        }

        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(header[..ChecksumOffset], digest);
        if (!CryptographicOperations.FixedTimeEquals(digest[..ChecksumSize], header.Slice(ChecksumOffset, ChecksumSize)))
        {
            throw HeaderRefusal(BackupErrorCode.FileCorrupt, "The backup file's header does not match its checksum: the header is damaged.", CorruptRemedy);
        }

        var segmentSize = BinaryPrimitives.ReadUInt32BigEndian(header[SegmentSizeOffset..]);
        if (segmentSize is < MinimumSegmentSize or > MaximumSegmentSize)
        {
            throw HeaderRefusal(
                BackupErrorCode.FileCorrupt,
                $"The backup file's header declares segments of {segmentSize} bytes, outside {MinimumSegmentSize} to {MaximumSegmentSize}: no SDK writes such a file.",
                CorruptRemedy);
        }

        Span<byte> key = stackalloc byte[DataKeySize];
        Span<byte> commitment = stackalloc byte[CommitmentSize];
        try
        {
            Derive(dataKey, header.Slice(SaltOffset, SaltSize), key, commitment);
            if (!CryptographicOperations.FixedTimeEquals(commitment, header.Slice(CommitmentOffset, CommitmentSize)))
            {
                throw HeaderRefusal(
                    BackupErrorCode.WrongFileKey,
                    "The data key does not open this backup file: it is not the key the file was encrypted under (the key commitment in the file's header does not match).",
                    WrongKeyRemedy);
            }

            return new SegmentCipher(key, header[..HeaderSize].ToArray(), header.Slice(NoncePrefixOffset, NoncePrefixSize), (int)segmentSize);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
            CryptographicOperations.ZeroMemory(commitment);
        }
    }

    private static void Derive(ReadOnlySpan<byte> dataKey, ReadOnlySpan<byte> salt, Span<byte> segmentKey, Span<byte> commitment)
    {
        HKDF.DeriveKey(HashAlgorithmName.SHA256, dataKey, segmentKey, salt, SegmentKeyInfo);
        HKDF.DeriveKey(HashAlgorithmName.SHA256, dataKey, commitment, salt, CommitmentInfo);
    }

    private static void ValidateSegmentSize(int segmentSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(segmentSize, MinimumSegmentSize);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(segmentSize, MaximumSegmentSize);
    }

    private static BackupException TooManySegments(long maximumSegmentCount, int segmentSize) =>
        new(new Refusal(
            BackupErrorCode.FileTooLarge,
            FileItem,
            $"The plaintext needs more than {maximumSegmentCount} segments of {segmentSize} bytes, more than a backup file can number without its segment counter wrapping.",
            "Encrypt with a larger segment size, or split the backup data into several files."));

    private static BackupFileException TooManySegmentsInFile(uint index, long maximumSegmentCount) =>
        new(
            new Refusal(
                BackupErrorCode.FileTooLarge,
                $"segment {index} of the backup file",
                $"The backup file holds more than {maximumSegmentCount} segments, more than the format can number without its segment counter wrapping: it is not a file this SDK wrote.",
                CorruptRemedy),
            index,
            null);

    private static void ValidateDataKey(int dataKeyLength)
    {
        if (dataKeyLength != DataKeySize)
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.InvalidDataKey,
                "data key",
                $"The data key is {dataKeyLength} bytes long; backup files use {DataKeySize}-byte (256-bit) data keys.",
                "Pass the whole 32-byte data key that was returned when the file was downloaded (decode it from its text form first if it was stored as text)."));
        }
    }

    private static BackupFileException HeaderRefusal(BackupErrorCode code, string message, string remedy) =>
        new(new Refusal(code, "header of the backup file", message, remedy), null, null);

    private static BackupFileException Truncated(uint index, int read)
    {
        var message = read == 0
            ? index == 0
                ? "The backup file ends after its header, without any segment."
                : $"The backup file ends after segment {index - 1} without its final segment: it was cut short at a segment boundary."
            : $"The backup file ends {read} bytes into segment {index}, fewer than the {TagSize}-byte authentication tag: it was cut short.";
        return new BackupFileException(new Refusal(BackupErrorCode.FileTruncated, $"segment {index} of the backup file", message, TruncatedRemedy), index, null);
    }

    private static BackupFileException SegmentFailed(uint index, bool final, int read)
    {
        var message = final
            ? $"Segment {index} of the backup file ({read} bytes, read as the final segment because the file ends there) failed authentication: the file was damaged, altered, reordered or cut short, or bytes were appended after its end."
            : $"Segment {index} of the backup file failed authentication: it was damaged, altered, moved, duplicated or taken from another file, or bytes were appended after the file's end.";
        return new BackupFileException(new Refusal(BackupErrorCode.FileCorrupt, $"segment {index} of the backup file", message, CorruptRemedy), index, null);
    }

    private static async ValueTask<int> ReadFullAsync(Stream stream, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var read = await stream.ReadAsync(buffer[total..], cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                break;
            }

            total += read;
        }

        return total;
    }

    /// <summary>
    /// The plaintext of a backup file as a read-only stream (<see cref="CreateDecryptingStream(Stream, ReadOnlyMemory{byte}, bool)"/>):
    /// the header is read at the first read, then one segment at a time as the reader drains the previous one.
    /// </summary>
    private sealed class DecryptingStream : Stream
    {
        private readonly Stream _encrypted;
        private readonly bool _leaveOpen;
        private readonly long _maximumSegmentCount;
        private byte[]? _dataKey;
        private SegmentCipher? _cipher;
        private byte[]? _plain;
        private byte[]? _segment;
        private int _fullSegment;
        private int _start;
        private int _end;
        private uint _index;
        private bool _final;
        private bool _disposed;
        private ExceptionDispatchInfo? _refusal;

        public DecryptingStream(Stream encrypted, ReadOnlySpan<byte> dataKey, bool leaveOpen, long maximumSegmentCount)
        {
            _encrypted = encrypted;
            _leaveOpen = leaveOpen;
            _maximumSegmentCount = maximumSegmentCount;
            _dataKey = GC.AllocateUninitializedArray<byte>(dataKey.Length, pinned: true);
            dataKey.CopyTo(_dataKey);
        }

        public override bool CanRead => !_disposed;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException("A decrypting stream has no length until it has been read to its end.");

        public override long Position
        {
            get => throw new NotSupportedException("A decrypting stream cannot seek.");
            set => throw new NotSupportedException("A decrypting stream cannot seek.");
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (buffer.IsEmpty || !EnsureReadable())
            {
                return 0;
            }

            if (_start == _end)
            {
                if (_cipher is null)
                {
                    var header = new byte[HeaderSize];
                    OpenHeader(header.AsSpan(0, ReadFull(_encrypted, header)));
                }

                while (_start == _end && !_final)
                {
                    OpenNext(ReadFull(_encrypted, _segment.AsSpan(0, _fullSegment)));
                }
            }

            return Take(buffer);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (buffer.IsEmpty || !EnsureReadable())
            {
                return 0;
            }

            if (_start == _end)
            {
                if (_cipher is null)
                {
                    var header = new byte[HeaderSize];
                    OpenHeader(header.AsSpan(0, await ReadFullAsync(_encrypted, header, cancellationToken).ConfigureAwait(false)));
                }

                while (_start == _end && !_final)
                {
                    OpenNext(await ReadFullAsync(_encrypted, _segment.AsMemory(0, _fullSegment), cancellationToken).ConfigureAwait(false));
                }
            }

            return Take(buffer.Span);
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("A decrypting stream cannot seek.");

        public override void SetLength(long value) => throw new NotSupportedException("A decrypting stream is read-only.");

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("A decrypting stream is read-only.");

        protected override void Dispose(bool disposing)
        {
            if (disposing && !_disposed)
            {
                _disposed = true;
                Release();
                if (!_leaveOpen)
                {
                    _encrypted.Dispose();
                }
            }

            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            if (!_disposed)
            {
                _disposed = true;
                Release();
                if (!_leaveOpen)
                {
                    await _encrypted.DisposeAsync().ConfigureAwait(false);
                }
            }

            await base.DisposeAsync().ConfigureAwait(false);
        }

        /// <summary>Whether there may be more to read; rethrows an earlier refusal, so that a refused file never reads as one that ended.</summary>
        private bool EnsureReadable()
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _refusal?.Throw();
            return _start < _end || !_final;
        }

        private void OpenHeader(ReadOnlySpan<byte> header)
        {
            try
            {
                _cipher = CreateForReading(header, _dataKey);
            }
            catch (BackupException e)
            {
                _refusal = ExceptionDispatchInfo.Capture(e);
                throw;
            }
            finally
            {
                CryptographicOperations.ZeroMemory(_dataKey);
                _dataKey = null;
            }

            _fullSegment = _cipher.SegmentSize + TagSize;
            _plain = SensitiveBufferPool.Rent(_cipher.SegmentSize);
            _segment = ArrayPool<byte>.Shared.Rent(_fullSegment);
        }

        private void OpenNext(int read)
        {
            try
            {
                _final = OpenSegment(_cipher!, _index, _segment.AsSpan(0, read), _fullSegment, _maximumSegmentCount, _plain);
            }
            catch (BackupException e)
            {
                _refusal = ExceptionDispatchInfo.Capture(e);
                throw;
            }

            _index++;
            _start = 0;
            _end = read - TagSize;
        }

        private int Take(Span<byte> buffer)
        {
            var count = Math.Min(buffer.Length, _end - _start);
            _plain.AsSpan(_start, count).CopyTo(buffer);
            _start += count;
            return count;
        }

        private void Release()
        {
            _cipher?.Dispose();
            if (_dataKey is not null)
            {
                CryptographicOperations.ZeroMemory(_dataKey);
            }

            if (_plain is not null)
            {
                SensitiveBufferPool.Return(_plain);
                _plain = null;
            }

            if (_segment is not null)
            {
                ArrayPool<byte>.Shared.Return(_segment);
                _segment = null;
            }
        }

        private static int ReadFull(Stream stream, Span<byte> buffer)
        {
            var total = 0;
            while (total < buffer.Length)
            {
                var read = stream.Read(buffer[total..]);
                if (read == 0)
                {
                    break;
                }

                total += read;
            }

            return total;
        }
    }

    /// <summary>
    /// The per-file AES-256-GCM state: one <see cref="AesGcm"/> reused for every segment, the header as
    /// associated data of every segment, and one nonce buffer. Nothing is allocated per segment.
    /// </summary>
    private sealed class SegmentCipher : IDisposable
    {
        private readonly AesGcm _aes;
        private readonly byte[] _header;
        private readonly byte[] _nonce = new byte[NonceSize];

        public SegmentCipher(ReadOnlySpan<byte> key, byte[] header, ReadOnlySpan<byte> noncePrefix, int segmentSize)
        {
            _aes = new AesGcm(key, tagSizeInBytes: TagSize);
            _header = header;
            noncePrefix.CopyTo(_nonce);
            SegmentSize = segmentSize;
        }

        public int SegmentSize { get; }

        /// <summary>Encrypts one segment into <paramref name="output"/>: ciphertext, then the 16-byte tag.</summary>
        public void Seal(uint index, bool final, ReadOnlySpan<byte> plaintext, Span<byte> output)
        {
            SetNonce(index, final);
            _aes.Encrypt(_nonce, plaintext, output[..plaintext.Length], output.Slice(plaintext.Length, TagSize), _header);
        }

        /// <summary>Decrypts one segment (ciphertext, then tag); false when it does not authenticate.</summary>
        public bool TryOpen(uint index, bool final, ReadOnlySpan<byte> segment, Span<byte> plaintext)
        {
            SetNonce(index, final);
            try
            {
                _aes.Decrypt(_nonce, segment[..^TagSize], segment[^TagSize..], plaintext, _header);
                return true;
            }
            catch (AuthenticationTagMismatchException)
            {
                return false;
            }
        }

        public void Dispose() => _aes.Dispose();

        private void SetNonce(uint index, bool final)
        {
            BinaryPrimitives.WriteUInt32BigEndian(_nonce.AsSpan(NoncePrefixSize), index);
            _nonce[NonceSize - 1] = final ? (byte)1 : (byte)0;
        }
    }
}
