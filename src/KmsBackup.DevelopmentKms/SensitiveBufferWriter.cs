using System.Buffers;
using System.Security.Cryptography;

namespace KmsBackup.DevelopmentKms;

/// <summary>
/// A growable buffer for bytes that hold key material (a serialized instance state): its buffers are pinned, so
/// that the garbage collector never leaves a copy behind, and every buffer it lets go of when growing, and the
/// last one on <see cref="Dispose"/>, is zeroed first.
/// </summary>
internal sealed class SensitiveBufferWriter : IBufferWriter<byte>, IDisposable
{
    private byte[] _buffer;
    private int _written;

    public SensitiveBufferWriter(int initialCapacity = 16 * 1024) => _buffer = GC.AllocateArray<byte>(Math.Max(initialCapacity, 256), pinned: true);

    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _written);

    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, _buffer.Length - _written);
        _written += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsMemory(_written);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsSpan(_written);
    }

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_buffer);
        _written = 0;
    }

    private void Ensure(int sizeHint)
    {
        var needed = Math.Max(sizeHint, 1);
        if (_buffer.Length - _written >= needed)
        {
            return;
        }

        var next = GC.AllocateArray<byte>(Math.Max(_buffer.Length * 2, _written + needed), pinned: true);
        _buffer.AsSpan(0, _written).CopyTo(next);
        CryptographicOperations.ZeroMemory(_buffer);
        _buffer = next;
    }
}
