namespace KmsBackup.Domain;

/// <summary>Reads that fill a buffer: a stream may return fewer bytes than asked before its end, a segment may not.</summary>
internal static class StreamReads
{
    /// <summary>Reads until <paramref name="buffer"/> is full or the stream ends.</summary>
    /// <returns>The bytes read: the buffer's length, or fewer only at the end of the stream.</returns>
    public static async ValueTask<int> ReadFullAsync(Stream stream, Memory<byte> buffer, CancellationToken cancellationToken)
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

    /// <summary>Reads until <paramref name="buffer"/> is full or the stream ends.</summary>
    /// <returns>The bytes read: the buffer's length, or fewer only at the end of the stream.</returns>
    public static int ReadFull(Stream stream, Span<byte> buffer)
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
