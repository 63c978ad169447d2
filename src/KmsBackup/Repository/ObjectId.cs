using System.Buffers.Binary;
using System.Globalization;

namespace KmsBackup.Repository;

/// <summary>The ID of a repository object: HMAC-SHA-256 of its plaintext under the repository's MAC key (never a plain hash of a secret).</summary>
internal readonly record struct ObjectId(ulong A, ulong B, ulong C, ulong D)
{
    public const int Size = 32;

    public static ObjectId Read(ReadOnlySpan<byte> bytes) => new(
        BinaryPrimitives.ReadUInt64BigEndian(bytes),
        BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]),
        BinaryPrimitives.ReadUInt64BigEndian(bytes[16..]),
        BinaryPrimitives.ReadUInt64BigEndian(bytes[24..]));

    public static ObjectId Parse(string hex)
    {
        if (hex.Length != 64)
        {
            throw new FormatException("An object ID has 64 hex digits.");
        }

        return Read(Convert.FromHexString(hex));
    }

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, A);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], B);
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], C);
        BinaryPrimitives.WriteUInt64BigEndian(destination[24..], D);
    }

    public byte[] ToBytes()
    {
        var bytes = new byte[Size];
        Write(bytes);
        return bytes;
    }

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{A:x16}{B:x16}{C:x16}{D:x16}");

    /// <summary>The first 12 hex digits, enough to name an object in a message.</summary>
    public string Short => ToString()[..12];
}
