using System.Buffers;
using System.Security.Cryptography;

namespace KmsBackup.Domain;

/// <summary>
/// Reads backup files: the header and key commitment first, then the segments in order, each written out only
/// after it authenticated. The segment limit is an argument so that tests can reach the counter's hard stop;
/// <see cref="BackupFileCodec"/> passes <see cref="BackupFileCodec.MaximumSegmentCount"/>.
/// </summary>
internal static class BackupFileReader
{
    /// <summary>
    /// An upper bound of the plaintext a file of <paramref name="encryptedLength"/> bytes holds, whatever its segment
    /// size: the file length less the header and one tag, never negative.
    /// </summary>
    public static long GetMaximumPlaintextLength(long encryptedLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(encryptedLength);
        return Math.Max(0, encryptedLength - BackupFileHeader.Size - SegmentCipher.TagSize);
    }

    /// <summary>
    /// Decrypts into <paramref name="destination"/> (or, with <paramref name="verifyOnly"/>, only authenticates) a file
    /// held in memory, segment by segment in the order and with the checks of <see cref="OpenAsync"/>.
    /// </summary>
    public static int Open(ReadOnlySpan<byte> encrypted, Span<byte> destination, ReadOnlySpan<byte> dataKey, long maximumSegmentCount, bool verifyOnly)
    {
        BackupFileRefusals.ValidateDataKey(dataKey.Length);
        using var cipher = SegmentCipher.ForReading(encrypted[..Math.Min(encrypted.Length, BackupFileHeader.Size)], dataKey);
        var segmentSize = cipher.SegmentSize;
        var fullSegment = segmentSize + SegmentCipher.TagSize;
        var body = encrypted[BackupFileHeader.Size..];

        // What the loop below writes before it returns or stops at a truncated end: the whole segments, and the
        // final one when the file ends in at least a tag's worth of it.
        var required = ((long)(body.Length / fullSegment) * segmentSize) + Math.Max(0, (body.Length % fullSegment) - SegmentCipher.TagSize);
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
                if (segment.Length < SegmentCipher.TagSize)
                {
                    throw BackupFileRefusals.Truncated(index, segment.Length);
                }

                var final = segment.Length < fullSegment;
                if (!final && index >= maximumSegmentCount - 1)
                {
                    throw BackupFileRefusals.TooManySegmentsInFile(index, maximumSegmentCount);
                }

                var plain = output[..(segment.Length - SegmentCipher.TagSize)];
                if (!cipher.TryOpen(index, final, segment, plain))
                {
                    throw BackupFileRefusals.SegmentFailed(index, final, segment.Length);
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

    /// <summary>Decrypts a stream into <paramref name="destination"/>, or, without a destination, verifies it.</summary>
    public static async Task<long> OpenAsync(Stream encrypted, Stream? destination, ReadOnlyMemory<byte> dataKey, long maximumSegmentCount, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(encrypted);
        BackupFileRefusals.ValidateDataKey(dataKey.Length);

        var header = new byte[BackupFileHeader.Size];
        var headerRead = await StreamReads.ReadFullAsync(encrypted, header, cancellationToken).ConfigureAwait(false);
        var cipher = SegmentCipher.ForReading(header.AsSpan(0, headerRead), dataKey.Span);
        var segmentSize = cipher.SegmentSize;
        var fullSegment = segmentSize + SegmentCipher.TagSize;
        var plainBuffer = SensitiveBufferPool.Rent(segmentSize);
        var cipherBuffer = ArrayPool<byte>.Shared.Rent(fullSegment);
        try
        {
            long plaintextLength = 0;
            for (uint index = 0; ; index++)
            {
                var read = await StreamReads.ReadFullAsync(encrypted, cipherBuffer.AsMemory(0, fullSegment), cancellationToken).ConfigureAwait(false);
                var final = OpenSegment(cipher, index, cipherBuffer.AsSpan(0, read), fullSegment, maximumSegmentCount, plainBuffer);
                if (destination is not null)
                {
                    await destination.WriteAsync(plainBuffer.AsMemory(0, read - SegmentCipher.TagSize), cancellationToken).ConfigureAwait(false);
                }

                plaintextLength += read - SegmentCipher.TagSize;
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
    public static bool OpenSegment(SegmentCipher cipher, uint index, ReadOnlySpan<byte> segment, int fullSegment, long maximumSegmentCount, Span<byte> plainBuffer)
    {
        if (segment.Length < SegmentCipher.TagSize)
        {
            throw BackupFileRefusals.Truncated(index, segment.Length);
        }

        var final = segment.Length < fullSegment;
        if (!final && index >= maximumSegmentCount - 1)
        {
            throw BackupFileRefusals.TooManySegmentsInFile(index, maximumSegmentCount);
        }

        var plain = plainBuffer[..(segment.Length - SegmentCipher.TagSize)];
        if (!cipher.TryOpen(index, final, segment, plain))
        {
            CryptographicOperations.ZeroMemory(plain);
            throw BackupFileRefusals.SegmentFailed(index, final, segment.Length);
        }

        return final;
    }
}
