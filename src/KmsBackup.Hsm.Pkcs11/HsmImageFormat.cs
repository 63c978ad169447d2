using System.Buffers.Binary;
using System.Text;

namespace KmsBackup.Hsm.Pkcs11;

/// <summary>An image as kept in the vault: a small header, then each key ID with its wrapped material.</summary>
internal static class HsmImageFormat
{
    private static readonly byte[] s_magic = "KBHI1"u8.ToArray();

    public static byte[] Write(HsmBackupImage image, IReadOnlyList<(string KeyId, byte[] Wrapped)> entries)
    {
        using var buffer = new MemoryStream();
        buffer.Write(s_magic);
        WriteString(buffer, image.ImageId);
        WriteString(buffer, image.ClusterId);
        buffer.WriteByte((byte)image.Type);
        WriteInt64(buffer, image.TakenAt.UtcTicks);
        WriteInt64(buffer, entries.Count);
        foreach (var (keyId, wrapped) in entries)
        {
            WriteString(buffer, keyId);
            WriteInt64(buffer, wrapped.Length);
            buffer.Write(wrapped);
        }

        return buffer.ToArray();
    }

    public static HsmBackupImage ReadHeader(byte[] blob) => Read(blob, withEntries: false).Image;

    public static (HsmBackupImage Image, List<(string KeyId, byte[] Wrapped)> Entries) Read(byte[] blob) => Read(blob, withEntries: true);

    private static (HsmBackupImage Image, List<(string KeyId, byte[] Wrapped)> Entries) Read(byte[] blob, bool withEntries)
    {
        try
        {
            var span = blob.AsSpan();
            if (!span.StartsWith(s_magic))
            {
                throw Damaged();
            }

            var at = s_magic.Length;
            var imageId = ReadString(span, ref at);
            var clusterId = ReadString(span, ref at);
            var type = (HsmBackupImageType)span[at++];
            var takenAt = new DateTimeOffset(ReadInt64(span, ref at), TimeSpan.Zero);
            var count = checked((int)ReadInt64(span, ref at));
            var entries = new List<(string, byte[])>();
            if (withEntries)
            {
                for (var i = 0; i < count; i++)
                {
                    var keyId = ReadString(span, ref at);
                    var length = checked((int)ReadInt64(span, ref at));
                    entries.Add((keyId, span.Slice(at, length).ToArray()));
                    at += length;
                }
            }

            return (new HsmBackupImage(imageId, clusterId, type, takenAt) { KeyCount = count }, entries);
        }
        catch (Exception e) when (e is ArgumentOutOfRangeException or IndexOutOfRangeException or OverflowException or DecoderFallbackException)
        {
            throw Damaged();
        }
    }

    private static BackupIntegrityException Damaged() => new(new Refusal(
        BackupErrorCode.IntegrityViolation, "HSM backup image", "An HSM backup image in the vault is damaged.", "Restore another image."));

    private static void WriteString(Stream s, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        WriteInt64(s, bytes.Length);
        s.Write(bytes);
    }

    private static void WriteInt64(Stream s, long value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(b, value);
        s.Write(b);
    }

    private static string ReadString(ReadOnlySpan<byte> span, ref int at)
    {
        var length = checked((int)ReadInt64(span, ref at));
        var value = Encoding.UTF8.GetString(span.Slice(at, length));
        at += length;
        return value;
    }

    private static long ReadInt64(ReadOnlySpan<byte> span, ref int at)
    {
        var value = BinaryPrimitives.ReadInt64BigEndian(span.Slice(at, 8));
        at += 8;
        return value;
    }
}
