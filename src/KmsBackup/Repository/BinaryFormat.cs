using System.Buffers.Binary;
using System.Text;

namespace KmsBackup.Repository;

/// <summary>A growable little-endian writer for the repository's binary records.</summary>
internal sealed class RecordWriter
{
    /// <summary>
    /// Below this size a buffer grows by doubling; past it, straight to the writer's ceiling (when it has one), so that
    /// a large record leaves at most this much outgrown buffer behind rather than a doubling series as large as itself.
    /// </summary>
    internal const int DoublingLimit = 1024 * 1024;

    private readonly bool _pinned;
    private readonly int _ceiling;
    private byte[] _buffer;
    private int _length;

    /// <summary>A writer whose buffer starts at <paramref name="capacity"/> bytes.</summary>
    /// <param name="capacity">The first buffer's size.</param>
    /// <param name="pinned">
    /// For records that hold key material or secret values (tree leaves, a download's payload): every buffer is pinned,
    /// so that a compacting garbage collection never leaves a copy of what was written at an old address, and each buffer
    /// the writer outgrows is zeroed before it is let go. <see cref="Clear"/> and <see cref="Wipe"/> then zero the only copy.
    /// </param>
    /// <param name="ceiling">
    /// The most the record is known to reach (0: unknown). A buffer that outgrows <see cref="DoublingLimit"/> is
    /// replaced by one of this size at once: large records (a tree leaf) then leave no series of outgrown large
    /// buffers for the collector to find late, which made a long upload's peak memory vary by the size of the record.
    /// </param>
    public RecordWriter(int capacity = 256, bool pinned = false, int ceiling = 0)
    {
        _pinned = pinned;
        _ceiling = ceiling;
        _buffer = Allocate(capacity);
    }

    public int Length => _length;

    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _length);

    /// <summary>The written bytes in place, valid until the next write, <see cref="Clear"/> or <see cref="Wipe"/>.</summary>
    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, _length);

    public byte[] ToArray() => _buffer.AsSpan(0, _length).ToArray();

    /// <summary>Zeroes what was written (the buffer may have held key material).</summary>
    public void Wipe()
    {
        Array.Clear(_buffer);
        _length = 0;
    }

    /// <summary>Zeroes only what was written and starts over, keeping the buffer: for a writer reused record after record.</summary>
    public void Clear()
    {
        Array.Clear(_buffer, 0, _length);
        _length = 0;
    }

    public void WriteByte(byte value) => Reserve(1)[0] = value;

    public void WriteInt32(int value) => BinaryPrimitives.WriteInt32LittleEndian(Reserve(4), value);

    public void WriteInt64(long value) => BinaryPrimitives.WriteInt64LittleEndian(Reserve(8), value);

    /// <summary>A big-endian 64-bit integer: for a format older than the repository's records (the HSM backup image).</summary>
    public void WriteInt64BigEndian(long value) => BinaryPrimitives.WriteInt64BigEndian(Reserve(8), value);

    public void WriteVarUInt(ulong value)
    {
        while (value >= 0x80)
        {
            WriteByte((byte)(value | 0x80));
            value >>= 7;
        }

        WriteByte((byte)value);
    }

    public void WriteBytes(ReadOnlySpan<byte> bytes)
    {
        WriteVarUInt((ulong)bytes.Length);
        bytes.CopyTo(Reserve(bytes.Length));
    }

    public void WriteRaw(ReadOnlySpan<byte> bytes) => bytes.CopyTo(Reserve(bytes.Length));

    /// <summary>Appends <paramref name="count"/> bytes for the caller to fill at once (before any other write), e.g. from a stream.</summary>
    public Memory<byte> Append(int count)
    {
        Reserve(count);
        return _buffer.AsMemory(_length - count, count);
    }

    public void WriteString(string? value)
    {
        if (value is null)
        {
            WriteVarUInt(0);
            return;
        }

        var count = Encoding.UTF8.GetByteCount(value);
        WriteVarUInt((ulong)count + 1);
        Encoding.UTF8.GetBytes(value, Reserve(count));
    }

    public void WriteInstant(DateTimeOffset value) => WriteInt64(value.UtcTicks);

    public void WriteOptionalInstant(DateTimeOffset? value)
    {
        WriteByte(value is null ? (byte)0 : (byte)1);
        if (value is { } v)
        {
            WriteInstant(v);
        }
    }

    private Span<byte> Reserve(int count)
    {
        if (_length + count > _buffer.Length)
        {
            var next = Allocate(NextCapacity(_buffer.Length, _length + count, _ceiling));
            _buffer.AsSpan(0, _length).CopyTo(next);
            Array.Clear(_buffer);
            _buffer = next;
        }

        var span = _buffer.AsSpan(_length, count);
        _length += count;
        return span;
    }

    /// <summary>
    /// The size of the buffer that replaces one of <paramref name="current"/> bytes when <paramref name="needed"/> are
    /// needed: double, or once past <see cref="DoublingLimit"/> the <paramref name="ceiling"/> (when known and enough).
    /// </summary>
    internal static int NextCapacity(int current, int needed, int ceiling)
    {
        var doubled = (int)Math.Min(Array.MaxLength, Math.Max((long)current * 2, needed));
        return ceiling > 0 && doubled > DoublingLimit ? Math.Max(needed, ceiling) : doubled;
    }

    private byte[] Allocate(int size) => _pinned ? GC.AllocateArray<byte>(size, pinned: true) : new byte[size];
}

/// <summary>A reader for <see cref="RecordWriter"/>'s format that turns any malformation into a typed integrity error.</summary>
internal ref struct RecordReader
{
    private readonly ReadOnlySpan<byte> _data;
    private readonly string _what;
    private int _position;

    public RecordReader(ReadOnlySpan<byte> data, string what)
    {
        _data = data;
        _what = what;
        _position = 0;
    }

    public readonly bool AtEnd => _position == _data.Length;

    /// <summary>How many bytes have been read.</summary>
    public readonly int Position => _position;

    public byte ReadByte() => Take(1)[0];

    public int ReadInt32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

    public long ReadInt64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

    /// <summary>A big-endian 64-bit integer, as <see cref="RecordWriter.WriteInt64BigEndian"/> wrote it.</summary>
    public long ReadInt64BigEndian() => BinaryPrimitives.ReadInt64BigEndian(Take(8));

    public ulong ReadVarUInt()
    {
        ulong result = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            var b = ReadByte();
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return result;
            }
        }

        throw Malformed("a variable-length number is too long");
    }

    public int ReadCount(int maximum = int.MaxValue)
    {
        var value = ReadVarUInt();
        if (value > (ulong)maximum || value > (ulong)(_data.Length - _position + 1) * 8)
        {
            throw Malformed("a count is out of range");
        }

        return (int)value;
    }

    public ReadOnlySpan<byte> ReadBytes() => Take(ReadCount());

    public ReadOnlySpan<byte> ReadRaw(int count) => Take(count);

    public string? ReadString()
    {
        var tagged = ReadVarUInt();
        if (tagged == 0)
        {
            return null;
        }

        if (tagged - 1 > (ulong)(_data.Length - _position))
        {
            throw Malformed("a string runs past the end");
        }

        try
        {
            return new UTF8Encoding(false, true).GetString(Take((int)(tagged - 1)));
        }
        catch (DecoderFallbackException)
        {
            throw Malformed("a string is not valid UTF-8");
        }
    }

    public string ReadRequiredString() => ReadString() ?? throw Malformed("a required string is missing");

    public DateTimeOffset ReadInstant()
    {
        var ticks = ReadInt64();
        if (ticks < DateTimeOffset.MinValue.UtcTicks || ticks > DateTimeOffset.MaxValue.UtcTicks)
        {
            throw Malformed("an instant is out of range");
        }

        return new DateTimeOffset(ticks, TimeSpan.Zero);
    }

    public DateTimeOffset? ReadOptionalInstant() => ReadByte() switch
    {
        0 => null,
        1 => ReadInstant(),
        _ => throw Malformed("an optional instant has a bad tag"),
    };

    public readonly void ExpectEnd()
    {
        if (!AtEnd)
        {
            throw Malformed("trailing bytes follow the record");
        }
    }

    public readonly BackupException Malformed(string why) => RepositoryErrors.Integrity(_what, $"it is malformed: {why}");

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count < 0 || count > _data.Length - _position)
        {
            throw Malformed("it ends early");
        }

        var span = _data.Slice(_position, count);
        _position += count;
        return span;
    }
}
