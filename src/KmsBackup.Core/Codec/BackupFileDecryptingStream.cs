using System.Buffers;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;

namespace KmsBackup.Domain;

/// <summary>
/// The plaintext of a backup file as a read-only stream (<see cref="BackupFileCodec.CreateDecryptingStream(Stream, ReadOnlyMemory{byte}, bool)"/>):
/// the header is read at the first read, then one segment at a time as the reader drains the previous one.
/// </summary>
internal sealed class BackupFileDecryptingStream : Stream
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

    private BackupFileDecryptingStream(Stream encrypted, ReadOnlySpan<byte> dataKey, bool leaveOpen, long maximumSegmentCount)
    {
        _encrypted = encrypted;
        _leaveOpen = leaveOpen;
        _maximumSegmentCount = maximumSegmentCount;
        _dataKey = GC.AllocateUninitializedArray<byte>(dataKey.Length, pinned: true);
        dataKey.CopyTo(_dataKey);
    }

    /// <summary>Opens a decrypting stream; a segment limit below <see cref="BackupFileCodec.MaximumSegmentCount"/> serves tests of the counter's hard stop.</summary>
    /// <exception cref="BackupException">The data key is not 32 bytes (<see cref="BackupErrorCode.InvalidDataKey"/>).</exception>
    public static BackupFileDecryptingStream Create(Stream encrypted, ReadOnlyMemory<byte> dataKey, bool leaveOpen, long maximumSegmentCount)
    {
        ArgumentNullException.ThrowIfNull(encrypted);
        BackupFileRefusals.ValidateDataKey(dataKey.Length);
        return new BackupFileDecryptingStream(encrypted, dataKey.Span, leaveOpen, maximumSegmentCount);
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
                var header = new byte[BackupFileHeader.Size];
                OpenHeader(header.AsSpan(0, StreamReads.ReadFull(_encrypted, header)));
            }

            while (_start == _end && !_final)
            {
                OpenNext(StreamReads.ReadFull(_encrypted, _segment.AsSpan(0, _fullSegment)));
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
                var header = new byte[BackupFileHeader.Size];
                OpenHeader(header.AsSpan(0, await StreamReads.ReadFullAsync(_encrypted, header, cancellationToken).ConfigureAwait(false)));
            }

            while (_start == _end && !_final)
            {
                OpenNext(await StreamReads.ReadFullAsync(_encrypted, _segment.AsMemory(0, _fullSegment), cancellationToken).ConfigureAwait(false));
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
            _cipher = SegmentCipher.ForReading(header, _dataKey);
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

        _fullSegment = _cipher.SegmentSize + SegmentCipher.TagSize;
        _plain = SensitiveBufferPool.Rent(_cipher.SegmentSize);
        _segment = ArrayPool<byte>.Shared.Rent(_fullSegment);
    }

    private void OpenNext(int read)
    {
        try
        {
            _final = BackupFileReader.OpenSegment(_cipher!, _index, _segment.AsSpan(0, read), _fullSegment, _maximumSegmentCount, _plain);
        }
        catch (BackupException e)
        {
            _refusal = ExceptionDispatchInfo.Capture(e);
            throw;
        }

        _index++;
        _start = 0;
        _end = read - SegmentCipher.TagSize;
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
}
