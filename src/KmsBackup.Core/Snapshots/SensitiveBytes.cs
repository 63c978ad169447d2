using System.Security.Cryptography;

namespace KmsBackup;

/// <summary>
/// Bytes that must never be shown: key material, secret values and ciphertexts of secrets. Its
/// <see cref="ToString"/> says only how many bytes it holds, equality is constant-time, and
/// <see cref="Clear"/> zeroes the buffer once the holder is done with it.
/// </summary>
public sealed class SensitiveBytes : IEquatable<SensitiveBytes>
{
    private readonly byte[] _bytes;

    private SensitiveBytes(byte[] bytes) => _bytes = bytes;

    /// <summary>The number of bytes.</summary>
    public int Length => _bytes.Length;

    /// <summary>The bytes. Do not log, format or keep them longer than needed.</summary>
    public ReadOnlySpan<byte> Span => _bytes;

    /// <summary>Copies <paramref name="bytes"/>; the caller remains responsible for clearing its own copy.</summary>
    /// <param name="bytes">The sensitive bytes.</param>
    public static SensitiveBytes Copy(ReadOnlySpan<byte> bytes) => new(bytes.ToArray());

    /// <summary>Takes ownership of <paramref name="bytes"/> without copying; the caller must not use the array afterwards.</summary>
    /// <param name="bytes">The sensitive bytes.</param>
    public static SensitiveBytes Own(byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        return new SensitiveBytes(bytes);
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
