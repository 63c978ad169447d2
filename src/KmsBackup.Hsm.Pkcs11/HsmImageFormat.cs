using System.Text;
using KmsBackup.Repository;

namespace KmsBackup.Hsm.Pkcs11;

/// <summary>
/// An image as kept in the vault: the magic <c>KBHI1</c>, the image ID, the source cluster ID, the type (one byte),
/// the time taken (UTC ticks) and the key count, then each key ID with its wrapped material. Numbers and byte
/// lengths are big-endian 64-bit integers, and strings UTF-8 after their byte length: a layout of its own, older
/// than the repository's records, written and read with the engine's <see cref="RecordWriter"/> and
/// <see cref="RecordReader"/> so that the images already in vaults stay readable.
/// </summary>
internal static class HsmImageFormat
{
    private static readonly byte[] s_magic = "KBHI1"u8.ToArray();

    public static byte[] Write(HsmBackupImage image, IReadOnlyList<(string KeyId, byte[] Wrapped)> entries)
    {
        // The image holds wrapped key material: the buffer is pinned and wiped once copied out.
        var writer = new RecordWriter(pinned: true);
        try
        {
            writer.WriteRaw(s_magic);
            WriteString(writer, image.ImageId);
            WriteString(writer, image.ClusterId);
            writer.WriteByte((byte)image.Type);
            writer.WriteInt64BigEndian(image.TakenAt.UtcTicks);
            writer.WriteInt64BigEndian(entries.Count);
            foreach (var (keyId, wrapped) in entries)
            {
                WriteString(writer, keyId);
                WriteBytes(writer, wrapped);
            }

            return writer.ToArray();
        }
        finally
        {
            writer.Wipe();
        }
    }

    public static HsmBackupImage ReadHeader(byte[] blob) => Read(blob, withEntries: false).Image;

    public static (HsmBackupImage Image, List<(string KeyId, byte[] Wrapped)> Entries) Read(byte[] blob) => Read(blob, withEntries: true);

    private static (HsmBackupImage Image, List<(string KeyId, byte[] Wrapped)> Entries) Read(byte[] blob, bool withEntries)
    {
        try
        {
            // The reader reports a malformation as the repository's; the caller is told of a damaged image instead.
            var reader = new RecordReader(blob, "HSM backup image");
            if (!reader.ReadRaw(s_magic.Length).SequenceEqual(s_magic))
            {
                throw Damaged();
            }

            var imageId = ReadString(ref reader);
            var clusterId = ReadString(ref reader);
            var type = (HsmBackupImageType)reader.ReadByte();
            var takenAt = new DateTimeOffset(reader.ReadInt64BigEndian(), TimeSpan.Zero);
            var count = checked((int)reader.ReadInt64BigEndian());
            var entries = new List<(string, byte[])>();
            if (withEntries)
            {
                for (var i = 0; i < count; i++)
                {
                    var keyId = ReadString(ref reader);
                    entries.Add((keyId, ReadBytes(ref reader).ToArray()));
                }
            }

            return (new HsmBackupImage(imageId, clusterId, type, takenAt) { KeyCount = count }, entries);
        }
        catch (Exception e) when (e is BackupIntegrityException or ArgumentOutOfRangeException or OverflowException)
        {
            throw Damaged();
        }
    }

    private static BackupIntegrityException Damaged() => new(new Refusal(
        BackupErrorCode.IntegrityViolation, "HSM backup image", "An HSM backup image in the vault is damaged.", "Restore another image."));

    private static void WriteString(RecordWriter writer, string value) => WriteBytes(writer, Encoding.UTF8.GetBytes(value));

    private static void WriteBytes(RecordWriter writer, ReadOnlySpan<byte> bytes)
    {
        writer.WriteInt64BigEndian(bytes.Length);
        writer.WriteRaw(bytes);
    }

    private static string ReadString(ref RecordReader reader) => Encoding.UTF8.GetString(ReadBytes(ref reader));

    private static ReadOnlySpan<byte> ReadBytes(ref RecordReader reader) => reader.ReadRaw(checked((int)reader.ReadInt64BigEndian()));
}
