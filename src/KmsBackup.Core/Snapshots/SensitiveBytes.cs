using System.Security.Cryptography;

namespace KmsBackup;

/// <summary>
/// Bytes that must never be shown: key material, secret values and ciphertexts of secrets. Its
/// <see cref="ToString"/> says only how many bytes it holds, equality is constant-time, and
/// <see cref="Clear"/> zeroes the buffer once the holder is done with it.
/// </summary>
/// <remarks>
/// The bytes live in a pinned array (on the pinned object heap), which the garbage collector never moves: a
/// compacting collection would otherwise leave a copy behind at the old address, which no <see cref="Clear"/>
/// reaches. So <see cref="Clear"/> zeroes the only copy there is.
/// </remarks>
public sealed class SensitiveBytes : IEquatable<SensitiveBytes>
{
    private readonly byte[] _bytes;

    private SensitiveBytes(byte[] bytes) => _bytes = bytes;

    /// <summary>The number of bytes.</summary>
    public int Length => _bytes.Length;

    /// <summary>The bytes. Do not log, format or keep them longer than needed.</summary>
    public ReadOnlySpan<byte> Span => _bytes;

    /// <summary>Copies <paramref name="bytes"/> into a pinned buffer; the caller remains responsible for clearing its own copy.</summary>
    /// <param name="bytes">The sensitive bytes.</param>
    public static SensitiveBytes Copy(ReadOnlySpan<byte> bytes)
    {
        var pinned = GC.AllocateUninitializedArray<byte>(bytes.Length, pinned: true);
        bytes.CopyTo(pinned);
        return new SensitiveBytes(pinned);
    }

    /// <summary>
    /// Takes the bytes of <paramref name="bytes"/>: they are moved into a pinned buffer and the array is zeroed, so
    /// that the caller's array (which the garbage collector may move and copy) holds nothing afterwards.
    /// </summary>
    /// <param name="bytes">The sensitive bytes; zeros when the call returns.</param>
    public static SensitiveBytes Own(byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        var taken = Copy(bytes);
        CryptographicOperations.ZeroMemory(bytes);
        return taken;
    }

    /// <summary>Zeroes the bytes. The value reads as zeros afterwards.</summary>
    public void Clear() => CryptographicOperations.ZeroMemory(_bytes);

    /// <summary>Never the bytes: only their count, e.g. <c>[sensitive, 32 bytes]</c>.</summary>
    public override string ToString() => $"[sensitive, {_bytes.Length} bytes]";

    /// <summary>Constant-time comparison of the bytes.</summary>
    /// <param name="other">Other bytes.</param>
    public bool Equals(SensitiveBytes? other) =>
        other is not null && _bytes.Length == other._bytes.Length && CryptographicOperations.FixedTimeEquals(_bytes, other._bytes);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as SensitiveBytes);

    /// <summary>The length only, so that hashing leaks nothing of the bytes.</summary>
    public override int GetHashCode() => _bytes.Length;
}
