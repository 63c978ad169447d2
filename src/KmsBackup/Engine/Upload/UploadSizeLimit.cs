namespace KmsBackup;

/// <summary>
/// Passes an uploaded file through, refusing it with <see cref="BackupErrorCode.FileTooLarge"/> as soon as more
/// than the allowed bytes have been read: the limit holds for streams that do not know their length.
/// </summary>
internal sealed class UploadSizeLimit(Stream inner, long maximum, Func<BackupFileException> tooLarge) : Stream
{
    private long _read;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => _read;
        set => throw new NotSupportedException();
    }

    /// <summary>Refuses at once a file whose stream knows it is longer than the limit.</summary>
    public static void CheckDeclaredLength(Stream file, long maximum, Func<BackupFileException> tooLarge)
    {
        long remaining;
        try
        {
            if (!file.CanSeek)
            {
                return;
            }

            remaining = file.Length - file.Position;
        }
        catch (NotSupportedException)
        {
            return;
        }

        if (remaining > maximum)
        {
            throw tooLarge();
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

    public override int Read(Span<byte> buffer) => Count(inner.Read(buffer));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Count(await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    private int Count(int read)
    {
        _read += read;
        return _read > maximum ? throw tooLarge() : read;
    }
}
