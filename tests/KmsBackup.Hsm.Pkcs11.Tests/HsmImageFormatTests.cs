namespace KmsBackup.Hsm.Pkcs11.Tests;

/// <summary>
/// The byte layout of an HSM backup image as the backup vault keeps it. Images already in vaults must stay
/// readable, so the layout is pinned here byte for byte (a golden vector), whatever writes and reads it.
/// </summary>
public class HsmImageFormatTests
{
    private static readonly HsmBackupImage s_image = new("img-01", "cls-1", HsmBackupImageType.AutoCreate, new DateTimeOffset(2026, 5, 1, 9, 0, 0, TimeSpan.Zero)) { KeyCount = 2 };

    private static readonly (string KeyId, byte[] Wrapped)[] s_entries = [("k1", [0xA0, 0xA1, 0xA2]), ("k2", [0xB0])];

    // Lengths, counts and the time are big-endian 64-bit integers; strings are UTF-8 after their byte length.
    private static readonly byte[] s_golden = Convert.FromHexString(string.Concat(
        "4B42484931",                                                    // "KBHI1"
        "0000000000000006", "696D672D3031",                              // image ID "img-01"
        "0000000000000005", "636C732D31",                                // cluster ID "cls-1"
        "01",                                                            // type: Auto Create
        "08DEA7600671A800",                                              // taken at 2026-05-01T09:00:00Z, in UTC ticks
        "0000000000000002",                                              // two keys
        "0000000000000002", "6B31", "0000000000000003", "A0A1A2",        // "k1" and its wrapped material
        "0000000000000002", "6B32", "0000000000000001", "B0"));          // "k2" and its wrapped material

    [Fact]
    public void An_image_is_written_byte_for_byte_as_the_golden_vector()
    {
        Assert.Equal(Convert.ToHexString(s_golden), Convert.ToHexString(HsmImageFormat.Write(s_image, s_entries)));
    }

    [Fact]
    public void The_golden_vector_reads_back_as_the_image_and_its_keys()
    {
        var (image, entries) = HsmImageFormat.Read(s_golden);
        Assert.Equal(s_image, image);
        Assert.Equal(2, image.KeyCount);
        Assert.Equal(["k1", "k2"], entries.Select(e => e.KeyId));
        Assert.Equal([0xA0, 0xA1, 0xA2], entries[0].Wrapped);
        Assert.Equal([0xB0], entries[1].Wrapped);
        Assert.Equal(s_image, HsmImageFormat.ReadHeader(s_golden));
    }

    [Fact]
    public void A_cut_short_or_foreign_image_is_an_integrity_violation()
    {
        for (var length = 0; length < s_golden.Length; length++)
        {
            var e = Assert.Throws<BackupIntegrityException>(() => HsmImageFormat.Read(s_golden[..length]));
            Assert.Equal(BackupErrorCode.IntegrityViolation, e.Code);
            Assert.Equal("HSM backup image", e.Refusal.Item);
            Assert.Equal("An HSM backup image in the vault is damaged.", e.Refusal.Message);
        }

        var foreign = s_golden.ToArray();
        foreign[0] = (byte)'X';
        Assert.Equal(BackupErrorCode.IntegrityViolation, Assert.Throws<BackupIntegrityException>(() => HsmImageFormat.ReadHeader(foreign)).Code);
    }

    [Fact]
    public void A_time_or_a_length_out_of_range_is_an_integrity_violation()
    {
        const int TakenAt = 5 + 8 + 6 + 8 + 5 + 1; // after the magic, the two IDs and the type
        var badTime = s_golden.ToArray();
        badTime.AsSpan(TakenAt, 8).Fill(0x7F);
        Assert.Equal(BackupErrorCode.IntegrityViolation, Assert.Throws<BackupIntegrityException>(() => HsmImageFormat.ReadHeader(badTime)).Code);

        var hugeLength = s_golden.ToArray();
        hugeLength[5 + 3] = 1; // the image ID's length: 2^32 + 6 bytes
        Assert.Equal(BackupErrorCode.IntegrityViolation, Assert.Throws<BackupIntegrityException>(() => HsmImageFormat.ReadHeader(hugeLength)).Code);

        const int WrappedLength = TakenAt + 8 + 8 + 8 + 2;
        var negativeLength = s_golden.ToArray();
        negativeLength.AsSpan(WrappedLength, 8).Fill(0xFF); // the length of "k1"'s wrapped material: -1
        Assert.Equal(BackupErrorCode.IntegrityViolation, Assert.Throws<BackupIntegrityException>(() => HsmImageFormat.Read(negativeLength)).Code);
    }
}
