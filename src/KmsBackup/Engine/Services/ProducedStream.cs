using KmsBackup.Repository;

namespace KmsBackup;

/// <summary>
/// A read-only stream of what a producer writes, piece by piece, into one pinned buffer: the producer writes a piece
/// and yields; the stream hands the piece out, zeroes it, and asks for the next. So a payload of key material and secret
/// ciphertexts is encrypted as it is made, in memory bounded by its largest piece (a tree leaf), and no copy of it
/// outlives the stream: the buffer is zeroed piece by piece and when the stream is disposed.
/// </summary>
internal sealed class ProducedStream : Stream
{
    private readonly RecordWriter _buffer = new(64 * 1024, pinned: true);
    private readonly Func<RecordWriter, CancellationToken, IAsyncEnumerable<int>> _produce;
    private IAsyncEnumerator<int>? _pieces;
    private int _offset;
    private bool _done;

    /// <param name="produce">Writes the stream's content into the buffer it is given, yielding after each piece.</param>
    public ProducedStream(Func<RecordWriter, CancellationToken, IAsyncEnumerable<int>> produce)
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
        while (_offset == _buffer.Length)
        {
            if (_done)
            {
                return 0;
            }

            _buffer.Clear();
            _offset = 0;
            _pieces ??= _produce(_buffer, cancellationToken).GetAsyncEnumerator(cancellationToken);
            _done = !await _pieces.MoveNextAsync().ConfigureAwait(false);
        }

        var count = Math.Min(buffer.Length, _buffer.Length - _offset);
        _buffer.WrittenSpan.Slice(_offset, count).CopyTo(buffer.Span);
        _offset += count;
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

        _buffer.Wipe();
        base.Dispose(disposing);
    }
}
