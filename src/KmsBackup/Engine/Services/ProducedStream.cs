using KmsBackup.Repository;

namespace KmsBackup;

/// <summary>
/// A read-only stream of what a producer makes, piece by piece: the producer writes small records into one pinned
/// buffer and yields a piece (possibly empty) that follows them; the stream hands out what the buffer holds, zeroes it,
/// then hands out the piece in place (a tree leaf, which its owner zeroes), and asks for the next. So a payload of key
/// material and secret ciphertexts is encrypted as it is made, in memory bounded by the producer's largest piece, and
/// each leaf is copied once, into the encryptor's segment, instead of through the buffer as well. No copy of it
/// outlives the stream: the buffer is zeroed as it goes and when the stream is disposed.
/// </summary>
internal sealed class ProducedStream : Stream
{
    private readonly RecordWriter _buffer = new(64 * 1024, pinned: true);
    private readonly Func<RecordWriter, CancellationToken, IAsyncEnumerable<ReadOnlyMemory<byte>>> _produce;
    private IAsyncEnumerator<ReadOnlyMemory<byte>>? _pieces;
    private int _offset;
    private ReadOnlyMemory<byte> _piece;
    private bool _done;

    /// <param name="produce">
    /// Makes the stream's content: writes records into the buffer it is given and yields pieces; each piece comes after
    /// what was written before it, and must stay valid until the producer is asked for the next.
    /// </param>
    public ProducedStream(Func<RecordWriter, CancellationToken, IAsyncEnumerable<ReadOnlyMemory<byte>>> produce)
    {
        _produce = produce;
    }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (_offset == _buffer.Length && _piece.IsEmpty)
        {
            if (_done)
            {
                return 0;
            }

            _buffer.Clear();
            _offset = 0;
            _pieces ??= _produce(_buffer, cancellationToken).GetAsyncEnumerator(cancellationToken);
            _done = !await _pieces.MoveNextAsync().ConfigureAwait(false);
            _piece = _done ? ReadOnlyMemory<byte>.Empty : _pieces.Current;
        }

        // What the producer wrote into the buffer comes first, then the piece it yielded after it.
        int count;
        if (_offset < _buffer.Length)
        {
            count = Math.Min(buffer.Length, _buffer.Length - _offset);
            _buffer.WrittenSpan.Slice(_offset, count).CopyTo(buffer.Span);
            _offset += count;
        }
        else
        {
            count = Math.Min(buffer.Length, _piece.Length);
            _piece.Span[..count].CopyTo(buffer.Span);
            _piece = _piece[count..];
        }

        return count;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) =>
        throw new NotSupportedException("Read the produced stream asynchronously: its producer reads the store.");

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override async ValueTask DisposeAsync()
    {
        if (_pieces is not null)
        {
            // Runs the producer's finally blocks: the leaves it holds are zeroed.
            await _pieces.DisposeAsync().ConfigureAwait(false);
            _pieces = null;
        }

        _piece = ReadOnlyMemory<byte>.Empty;
        _buffer.Wipe();
        await base.DisposeAsync().ConfigureAwait(false);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && _pieces is not null)
        {
            _pieces.DisposeAsync().AsTask().GetAwaiter().GetResult();
            _pieces = null;
        }

        _piece = ReadOnlyMemory<byte>.Empty;
        _buffer.Wipe();
        base.Dispose(disposing);
    }
}
