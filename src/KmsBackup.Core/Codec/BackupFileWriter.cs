using System.Buffers;

namespace KmsBackup.Domain;

/// <summary>
/// Writes backup files: the header, then the plaintext in AES-256-GCM segments, the last one always shorter than
/// a full segment (possibly empty), so that a reader tells it from its length alone. The salt and nonce prefix are
/// arguments so that test vectors can fix them; <see cref="BackupFileCodec"/> draws them at random for real files.
/// </summary>
internal static class BackupFileWriter
{
    /// <summary>
    /// The length of the file that a plaintext of <paramref name="plaintextLength"/> bytes makes: the header, the
    /// plaintext, and one tag per segment (see <see cref="BackupFileCodec.GetEncryptedLength"/>).
    /// </summary>
    public static long GetEncryptedLength(long plaintextLength, int segmentSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(plaintextLength);
        BackupFileRefusals.ValidateSegmentSize(segmentSize);
        var segments = (plaintextLength / segmentSize) + 1;
        if (segments > BackupFileCodec.MaximumSegmentCount)
        {
            throw BackupFileRefusals.TooManySegments(BackupFileCodec.MaximumSegmentCount, segmentSize);
        }

        return BackupFileHeader.Size + plaintextLength + (segments * SegmentCipher.TagSize);
    }

    /// <summary>Encrypts a stream with a given salt and nonce prefix, and a lower segment limit for tests of the counter's hard stop.</summary>
    public static async Task<long> EncryptAsync(
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
        BackupFileRefusals.ValidateSegmentSize(segmentSize);
        ArgumentOutOfRangeException.ThrowIfNotEqual(salt.Length, BackupFileHeader.SaltSize);
        ArgumentOutOfRangeException.ThrowIfNotEqual(noncePrefix.Length, BackupFileHeader.NoncePrefixSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(maximumSegmentCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maximumSegmentCount, BackupFileCodec.MaximumSegmentCount);
        BackupFileRefusals.ValidateDataKey(dataKey.Length);

        var header = new byte[BackupFileHeader.Size];
        var cipher = SegmentCipher.ForWriting(header, dataKey.Span, segmentSize, salt.Span, noncePrefix.Span);
        var plainBuffer = SensitiveBufferPool.Rent(segmentSize);
        var cipherBuffer = ArrayPool<byte>.Shared.Rent(segmentSize + SegmentCipher.TagSize);
        try
        {
            await destination.WriteAsync(header, cancellationToken).ConfigureAwait(false);
            long written = BackupFileHeader.Size;
            for (uint index = 0; ; index++)
            {
                var read = await StreamReads.ReadFullAsync(plaintext, plainBuffer.AsMemory(0, segmentSize), cancellationToken).ConfigureAwait(false);

                // The final segment always holds fewer than segmentSize bytes (possibly none), so a reader
                // tells it from its length alone, without reading ahead.
                var final = read < segmentSize;
                if (!final && index >= maximumSegmentCount - 1)
                {
                    throw BackupFileRefusals.TooManySegments(maximumSegmentCount, segmentSize);
                }

                cipher.Seal(index, final, plainBuffer.AsSpan(0, read), cipherBuffer.AsSpan(0, read + SegmentCipher.TagSize));
                await destination.WriteAsync(cipherBuffer.AsMemory(0, read + SegmentCipher.TagSize), cancellationToken).ConfigureAwait(false);
                written += read + SegmentCipher.TagSize;
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

    /// <summary>Encrypts in memory with a given salt and nonce prefix, each segment sealed straight from the plaintext into the destination.</summary>
    public static int Encrypt(ReadOnlySpan<byte> plaintext, Span<byte> destination, ReadOnlySpan<byte> dataKey, int segmentSize, ReadOnlySpan<byte> salt, ReadOnlySpan<byte> noncePrefix)
    {
        BackupFileRefusals.ValidateSegmentSize(segmentSize);
        ArgumentOutOfRangeException.ThrowIfNotEqual(salt.Length, BackupFileHeader.SaltSize);
        ArgumentOutOfRangeException.ThrowIfNotEqual(noncePrefix.Length, BackupFileHeader.NoncePrefixSize);
        BackupFileRefusals.ValidateDataKey(dataKey.Length);

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

        using var cipher = SegmentCipher.ForWriting(destination[..BackupFileHeader.Size], dataKey, segmentSize, salt, noncePrefix);
        var output = destination[BackupFileHeader.Size..];
        for (uint index = 0; ; index++)
        {
            var plain = plaintext[..Math.Min(segmentSize, plaintext.Length)];
            var final = plain.Length < segmentSize;
            cipher.Seal(index, final, plain, output[..(plain.Length + SegmentCipher.TagSize)]);
            plaintext = plaintext[plain.Length..];
            output = output[(plain.Length + SegmentCipher.TagSize)..];
            if (final)
            {
                return (int)length;
            }
        }
    }
}
