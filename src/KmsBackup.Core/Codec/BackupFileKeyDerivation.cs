using System.Security.Cryptography;

namespace KmsBackup.Domain;

/// <summary>
/// The keys of one backup file, derived with HKDF-SHA-256 from its 256-bit data key and the header's random salt:
/// the AES-256-GCM key of its segments, and the key commitment the header carries, so that a wrong data key is
/// told from a damaged file before any segment is opened and no second key can open the file to other plaintext.
/// </summary>
internal static class BackupFileKeyDerivation
{
    public static ReadOnlySpan<byte> SegmentKeyInfo => "KmsBackup backup file v1 segment key"u8;

    public static ReadOnlySpan<byte> CommitmentInfo => "KmsBackup backup file v1 key commitment"u8;

    /// <summary>Derives the segment key (<see cref="BackupFileCodec.DataKeySize"/> bytes) and the key commitment (<see cref="BackupFileHeader.CommitmentSize"/> bytes).</summary>
    public static void Derive(ReadOnlySpan<byte> dataKey, ReadOnlySpan<byte> salt, Span<byte> segmentKey, Span<byte> commitment)
    {
        HKDF.DeriveKey(HashAlgorithmName.SHA256, dataKey, segmentKey, salt, SegmentKeyInfo);
        HKDF.DeriveKey(HashAlgorithmName.SHA256, dataKey, commitment, salt, CommitmentInfo);
    }
}
