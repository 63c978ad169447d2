using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Unicode;
using KmsBackup.Repository;

namespace KmsBackup;

/// <summary>
/// Reads the fields of an uploaded file's payload (the repository's little-endian record encoding) from a
/// stream, through one buffer, so that a payload of any size is parsed without ever being held whole. Every
/// length is checked against a bound before anything is allocated for it, and every malformation is a
/// <see cref="BackupFileException"/> built by the caller's <c>malformed</c> function, never an exception of
/// the parser's own. The buffer is pinned and zeroed when let go (<see cref="SensitiveBufferPool"/>): it holds
/// key material and secret values as they pass.
/// </summary>
/// <remarks>
/// The end of the payload is known only when the stream ends: with a decrypting stream, that is when the final
/// segment authenticated. <see cref="ExpectEndAsync"/> waits for it, so a caller that reaches it has parsed a
/// whole, authenticated payload.
/// </remarks>
internal sealed class PayloadStreamReader : IDisposable
{
    private const int InitialBufferSize = 64 * 1024;

    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly Stream _stream;
    private readonly Func<string, BackupFileException> _malformed;
    private byte[] _buffer;
    private int _start;
    private int _end;

    public PayloadStreamReader(Stream stream, Func<string, BackupFileException> malformed)
    {
        _stream = stream;
        _malformed = malformed;
        _buffer = SensitiveBufferPool.Rent(InitialBufferSize);
    }

    private string _context = "the payload's header";
    private string? _itemNoun;
    private int _itemNumber;
    private string? _itemWhere;
    private RecordWriter? _item;

    /// <summary>
    /// What is being read, for messages: e.g. <c>key 3 ('orders') of the full backup</c>. An item's context is
    /// put together only when a message needs it, not once per item.
    /// </summary>
    public string Context
    {
        get
        {
            if (_itemNoun is null)
            {
                return _context;
            }

            var name = _item is { Length: > 0 } item ? $" ('{DayPayload.Shown(Encoding.UTF8.GetString(KmsBackup.Repository.ItemCodec.NameOf(item.WrittenSpan)))}')" : string.Empty;
            return string.Create(CultureInfo.InvariantCulture, $"{_itemNoun} {_itemNumber}{name} of the {_itemWhere}");
        }

        set
        {
            _context = value;
            _itemNoun = null;
        }
    }

    /// <summary>Says that item <paramref name="number"/> is being read; once <paramref name="item"/> holds its encoded name, messages name it.</summary>
    public void SetItem(string noun, int number, string where, RecordWriter? item)
    {
        _itemNoun = noun;
        _itemNumber = number;
        _itemWhere = where;
        _item = item;
    }

    /// <summary>How many payload bytes have been consumed.</summary>
    public long Consumed { get; private set; }

    public BackupFileException Malformed(string why) => _malformed(why);

    public ValueTask<byte> ReadByteAsync(CancellationToken cancellationToken)
    {
        if (_start < _end)
        {
            Consumed++;
            return ValueTask.FromResult(_buffer[_start++]);
        }

        return SlowAsync(cancellationToken);

        async ValueTask<byte> SlowAsync(CancellationToken token)
        {
            await FillAsync(1, token).ConfigureAwait(false);
            Consumed++;
            return _buffer[_start++];
        }
    }

    public async ValueTask<int> ReadInt32Async(CancellationToken cancellationToken)
    {
        await EnsureAsync(4, cancellationToken).ConfigureAwait(false);
        var value = BinaryPrimitives.ReadInt32LittleEndian(_buffer.AsSpan(_start, 4));
        Advance(4);
        return value;
    }

    public async ValueTask<long> ReadInt64Async(CancellationToken cancellationToken)
    {
        await EnsureAsync(8, cancellationToken).ConfigureAwait(false);
        var value = BinaryPrimitives.ReadInt64LittleEndian(_buffer.AsSpan(_start, 8));
        Advance(8);
        return value;
    }

    /// <summary>An instant: int64 ticks since 0001-01-01 UTC, within <see cref="DateTimeOffset"/>'s range.</summary>
    public ValueTask<DateTimeOffset> ReadInstantAsync(string what, CancellationToken cancellationToken)
    {
        // Fast path: the field is buffered and valid (anything else takes the general path, which reports it).
        if (_end - _start >= 8)
        {
            var buffered = BinaryPrimitives.ReadInt64LittleEndian(_buffer.AsSpan(_start, 8));
            if (buffered >= DateTimeOffset.MinValue.UtcTicks && buffered <= DateTimeOffset.MaxValue.UtcTicks)
            {
                Advance(8);
                return ValueTask.FromResult(new DateTimeOffset(buffered, TimeSpan.Zero));
            }
        }

        return ReadInstantSlowAsync(what, cancellationToken);
    }

    private async ValueTask<DateTimeOffset> ReadInstantSlowAsync(string what, CancellationToken cancellationToken)
    {
        var ticks = await ReadInt64Async(cancellationToken).ConfigureAwait(false);
        if (ticks < DateTimeOffset.MinValue.UtcTicks || ticks > DateTimeOffset.MaxValue.UtcTicks)
        {
            throw Malformed($"{Context}: its {what} ({ticks} ticks) is not an instant");
        }

        return new DateTimeOffset(ticks, TimeSpan.Zero);
    }

    public ValueTask<ulong> ReadVarUIntAsync(CancellationToken cancellationToken)
    {
        if (TryPeekVarUInt(out var value, out var size))
        {
            Advance(size);
            return ValueTask.FromResult(value);
        }

        return ReadVarUIntSlowAsync(cancellationToken);
    }

    private async ValueTask<ulong> ReadVarUIntSlowAsync(CancellationToken cancellationToken)
    {
        ulong result = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            var b = await ReadByteAsync(cancellationToken).ConfigureAwait(false);
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return result;
            }
        }

        throw Malformed($"{Context}: a variable-length number runs past 64 bits");
    }

    /// <summary>A count, refused above <paramref name="maximum"/> before anything is allocated for it.</summary>
    public ValueTask<int> ReadCountAsync(int maximum, string what, CancellationToken cancellationToken)
    {
        if (TryPeekVarUInt(out var count, out var size) && count <= (ulong)maximum)
        {
            Advance(size);
            return ValueTask.FromResult((int)count);
        }

        return ReadCountSlowAsync(maximum, what, cancellationToken);
    }

    private async ValueTask<int> ReadCountSlowAsync(int maximum, string what, CancellationToken cancellationToken)
    {
        var count = await ReadVarUIntAsync(cancellationToken).ConfigureAwait(false);
        if (count > (ulong)maximum)
        {
            throw Malformed($"{Context}: it declares {count} {what}, more than the {maximum:N0} a download writes");
        }

        return (int)count;
    }

    /// <summary>
    /// A string (varuint UTF-8 length + 1, 0 for none): at most <paramref name="maximumBytes"/> bytes of valid UTF-8;
    /// with <paramref name="required"/>, present and not blank.
    /// </summary>
    public async ValueTask<string?> ReadStringAsync(string what, int maximumBytes, bool required, CancellationToken cancellationToken)
    {
        var tagged = await ReadVarUIntAsync(cancellationToken).ConfigureAwait(false);
        if (tagged == 0)
        {
            return required ? throw Malformed($"{Context}: its {what} is missing") : null;
        }

        if (tagged - 1 > (ulong)maximumBytes)
        {
            throw Malformed($"{Context}: its {what} declares {tagged - 1} bytes, more than the {maximumBytes:N0} allowed");
        }

        var length = (int)(tagged - 1);
        await EnsureAsync(length, cancellationToken).ConfigureAwait(false);
        string value;
        try
        {
            value = s_strictUtf8.GetString(_buffer, _start, length);
        }
        catch (DecoderFallbackException)
        {
            throw Malformed($"{Context}: its {what} is not valid UTF-8");
        }

        Advance(length);
        if (required && string.IsNullOrWhiteSpace(value))
        {
            throw Malformed($"{Context}: its {what} is blank");
        }

        return value;
    }

    /// <summary>
    /// A string, as <see cref="ReadStringAsync"/> checks it, appended to <paramref name="into"/> in the same encoding
    /// without being decoded: a valid UTF-8 string encodes back to the same bytes.
    /// </summary>
    public ValueTask CopyStringAsync(string what, int maximumBytes, bool required, RecordWriter into, CancellationToken cancellationToken)
    {
        // Fast path: a valid string whose bytes are all buffered is copied without an async step; anything else (a
        // string that is missing, too long, not valid UTF-8, blank or not yet buffered) takes the general path, which
        // reads it from the same position and reports it as it always did.
        if (TryPeekVarUInt(out var tagged, out var size))
        {
            if (tagged == 0 && !required)
            {
                Advance(size);
                into.WriteVarUInt(0);
                return ValueTask.CompletedTask;
            }

            if (tagged != 0 && tagged - 1 <= (ulong)maximumBytes && _end - _start - size >= (int)(tagged - 1))
            {
                var bytes = _buffer.AsSpan(_start + size, (int)(tagged - 1));
                if (Utf8.IsValid(bytes) && !(required && IsBlank(bytes)))
                {
                    into.WriteVarUInt(tagged);
                    into.WriteRaw(bytes);
                    Advance(size + bytes.Length);
                    return ValueTask.CompletedTask;
                }
            }
        }

        return CopyStringSlowAsync(what, maximumBytes, required, into, cancellationToken);
    }

    private async ValueTask CopyStringSlowAsync(string what, int maximumBytes, bool required, RecordWriter into, CancellationToken cancellationToken)
    {
        var tagged = await ReadVarUIntAsync(cancellationToken).ConfigureAwait(false);
        if (tagged == 0)
        {
            if (required)
            {
                throw Malformed($"{Context}: its {what} is missing");
            }

            into.WriteVarUInt(0);
            return;
        }

        if (tagged - 1 > (ulong)maximumBytes)
        {
            throw Malformed($"{Context}: its {what} declares {tagged - 1} bytes, more than the {maximumBytes:N0} allowed");
        }

        var length = (int)(tagged - 1);
        await EnsureAsync(length, cancellationToken).ConfigureAwait(false);
        var bytes = _buffer.AsSpan(_start, length);
        if (!Utf8.IsValid(bytes))
        {
            throw Malformed($"{Context}: its {what} is not valid UTF-8");
        }

        if (required && IsBlank(bytes))
        {
            throw Malformed($"{Context}: its {what} is blank");
        }

        into.WriteVarUInt(tagged);
        into.WriteRaw(bytes);
        Advance(length);
    }

    /// <summary>
    /// A byte string (varuint length, then the bytes) of 1 to <paramref name="maximumBytes"/> bytes, appended to
    /// <paramref name="into"/> as it is read (key material or secret ciphertext: it never lands in an array of its
    /// own). The declared length is checked before anything is reserved for it.
    /// </summary>
    public ValueTask ReadValueAsync(string what, int maximumBytes, RecordWriter into, CancellationToken cancellationToken)
    {
        // Fast path: a value of a valid length whose bytes are all buffered, copied straight into the item.
        if (TryPeekVarUInt(out var declared, out var size) && declared != 0 && declared <= (ulong)maximumBytes && _end - _start - size >= (int)declared)
        {
            into.WriteVarUInt(declared);
            _buffer.AsSpan(_start + size, (int)declared).CopyTo(into.Append((int)declared).Span);
            Advance(size + (int)declared);
            return ValueTask.CompletedTask;
        }

        return ReadValueSlowAsync(what, maximumBytes, into, cancellationToken);
    }

    private async ValueTask ReadValueSlowAsync(string what, int maximumBytes, RecordWriter into, CancellationToken cancellationToken)
    {
        var declared = await ReadVarUIntAsync(cancellationToken).ConfigureAwait(false);
        if (declared == 0 || declared > (ulong)maximumBytes)
        {
            throw Malformed($"{Context}: its {what} declares {declared} bytes; a value holds 1 to {maximumBytes:N0}");
        }

        into.WriteVarUInt(declared);
        var value = into.Append((int)declared);
        var buffered = Math.Min(value.Length, _end - _start);
        _buffer.AsSpan(_start, buffered).CopyTo(value.Span);
        Advance(buffered);
        for (var filled = buffered; filled < value.Length;)
        {
            var read = await _stream.ReadAsync(value[filled..], cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw EndsEarly();
            }

            filled += read;
            Consumed += read;
        }
    }

    /// <summary>
    /// Checks that nothing follows: the buffer is drained and the stream ends. The stream's end is what says
    /// (for a decrypting stream) that the whole file authenticated.
    /// </summary>
    public async ValueTask ExpectEndAsync(CancellationToken cancellationToken)
    {
        if (_start == _end)
        {
            _start = _end = 0;
            _end = await _stream.ReadAsync(_buffer, cancellationToken).ConfigureAwait(false);
        }

        if (_end > _start)
        {
            throw Malformed($"bytes follow the end of the day's data at byte {Consumed}");
        }
    }

    public void Dispose()
    {
        if (_buffer.Length > 0)
        {
            SensitiveBufferPool.Return(_buffer);
        }

        _buffer = [];
        _start = _end = 0;
    }

    /// <summary>Whether valid UTF-8 holds only white space (<see cref="string.IsNullOrWhiteSpace"/> without the string).</summary>
    private static bool IsBlank(ReadOnlySpan<byte> utf8)
    {
        while (!utf8.IsEmpty)
        {
            Rune.DecodeFromUtf8(utf8, out var rune, out var consumed);
            if (!Rune.IsWhiteSpace(rune))
            {
                return false;
            }

            utf8 = utf8[consumed..];
        }

        return true;
    }

    /// <summary>
    /// A variable-length number wholly in the buffer, not consumed: its value and how many bytes it takes. False when
    /// it is not wholly buffered, or runs past 64 bits (the general path reads and reports it).
    /// </summary>
    private bool TryPeekVarUInt(out ulong value, out int size)
    {
        var buffered = _buffer.AsSpan(_start, Math.Min(_end - _start, 10));
        ulong result = 0;
        for (var i = 0; i < buffered.Length; i++)
        {
            var b = buffered[i];
            result |= (ulong)(b & 0x7F) << (7 * i);
            if (b < 0x80)
            {
                value = result;
                size = i + 1;
                return true;
            }
        }

        value = 0;
        size = 0;
        return false;
    }

    private void Advance(int count)
    {
        _start += count;
        Consumed += count;
    }

    private ValueTask EnsureAsync(int count, CancellationToken cancellationToken) =>
        _end - _start >= count ? ValueTask.CompletedTask : FillAsync(count, cancellationToken);

    /// <summary>Reads until <paramref name="count"/> bytes are buffered (the callers bound it), or refuses a payload that ends first.</summary>
    private async ValueTask FillAsync(int count, CancellationToken cancellationToken)
    {
        var buffered = _end - _start;
        if (count > _buffer.Length)
        {
            var larger = SensitiveBufferPool.Rent(count);
            _buffer.AsSpan(_start, buffered).CopyTo(larger);
            SensitiveBufferPool.Return(_buffer);
            _buffer = larger;
        }
        else if (_start > 0)
        {
            _buffer.AsSpan(_start, buffered).CopyTo(_buffer);
            _buffer.AsSpan(buffered, _start).Clear();
        }

        _start = 0;
        _end = buffered;
        while (_end < count)
        {
            var read = await _stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw EndsEarly();
            }

            _end += read;
        }
    }

    private BackupFileException EndsEarly() => Malformed($"it ends inside {Context}, at byte {Consumed}");
}
