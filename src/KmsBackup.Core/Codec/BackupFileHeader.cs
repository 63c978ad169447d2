using System.Buffers.Binary;
using System.Security.Cryptography;

namespace KmsBackup.Domain;

/// <summary>
/// The version 1 header of a backup file (<c>docs/backup-file-format.md</c>): signature, version, segment size,
/// salt, nonce prefix, key commitment and a checksum over all of them. It is the associated data of every
/// segment, so a change to any of its bytes fails the first segment even where the checksum does not catch it.
/// </summary>
internal static class BackupFileHeader
{
    /// <summary>The current (and only) format version: 1.</summary>
    public const byte FormatVersion = 1;

    /// <summary>The length of the version 1 header in bytes.</summary>
    public const int Size = 98;

    public const int SaltSize = 32;
    public const int NoncePrefixSize = 7;
    public const int CommitmentSize = 32;
    public const int ChecksumSize = 16;

    // Offsets (version 1).
    public const int VersionOffset = 6;
    public const int SegmentSizeOffset = 7;
    public const int SaltOffset = 11;
    public const int NoncePrefixOffset = SaltOffset + SaltSize;               // 43
    public const int CommitmentOffset = NoncePrefixOffset + NoncePrefixSize;  // 50
    public const int ChecksumOffset = CommitmentOffset + CommitmentSize;      // 82

    public static ReadOnlySpan<byte> Magic => "KMSBKF"u8;

    /// <summary>Writes a whole header into <paramref name="header"/> (<see cref="Size"/> bytes), its checksum last.</summary>
    public static void Write(Span<byte> header, int segmentSize, ReadOnlySpan<byte> salt, ReadOnlySpan<byte> noncePrefix, ReadOnlySpan<byte> commitment)
    {
        Magic.CopyTo(header);
        header[VersionOffset] = FormatVersion;
        BinaryPrimitives.WriteUInt32BigEndian(header[SegmentSizeOffset..], (uint)segmentSize);
        salt.CopyTo(header[SaltOffset..]);
        noncePrefix.CopyTo(header[NoncePrefixOffset..]);
        commitment.CopyTo(header[CommitmentOffset..]);
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(header[..ChecksumOffset], digest);
        digest[..ChecksumSize].CopyTo(header[ChecksumOffset..]);
    }

    /// <summary>
    /// Checks a header as read (the file's first <see cref="Size"/> bytes, or fewer where it ends) in the format's
    /// order: signature, emptiness, version, length, checksum, segment size. The key commitment is checked by the
    /// caller, which holds the key.
    /// </summary>
    /// <returns>The segment size the header declares.</returns>
    /// <exception cref="BackupFileException">The header is refused; nothing of the file may be read.</exception>
    public static int Read(ReadOnlySpan<byte> header)
    {
        var magicPart = header[..Math.Min(header.Length, Magic.Length)];
        if (!magicPart.SequenceEqual(Magic[..magicPart.Length]))
        {
            throw BackupFileRefusals.Header(BackupErrorCode.FileCorrupt, "The data does not start with the backup file signature 'KMSBKF': it is not a KmsBackup backup file, or its first bytes are damaged.", BackupFileRefusals.CorruptRemedy);
        }

        if (header.Length == 0)
        {
            throw BackupFileRefusals.Header(BackupErrorCode.FileTruncated, "The backup file is empty.", BackupFileRefusals.TruncatedRemedy);
        }

        if (header.Length > VersionOffset && header[VersionOffset] != FormatVersion)
        {
            throw BackupFileRefusals.Header(
                BackupErrorCode.UnsupportedFileVersion,
                $"The backup file has format version {header[VersionOffset]}; this SDK reads version {FormatVersion} only (or the version byte is damaged).",
                "Open the file with the SDK version that wrote it or a newer one; if this SDK wrote it, the file is damaged: download it again.");
        }

        if (header.Length < Size)
        {
            throw BackupFileRefusals.Header(BackupErrorCode.FileTruncated, $"The backup file ends inside its header ({header.Length} of {Size} bytes).", BackupFileRefusals.TruncatedRemedy);
        }

        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(header[..ChecksumOffset], digest);
        if (!CryptographicOperations.FixedTimeEquals(digest[..ChecksumSize], header.Slice(ChecksumOffset, ChecksumSize)))
        {
            throw BackupFileRefusals.Header(BackupErrorCode.FileCorrupt, "The backup file's header does not match its checksum: the header is damaged.", BackupFileRefusals.CorruptRemedy);
        }

        var segmentSize = BinaryPrimitives.ReadUInt32BigEndian(header[SegmentSizeOffset..]);
        if (segmentSize is < BackupFileCodec.MinimumSegmentSize or > BackupFileCodec.MaximumSegmentSize)
        {
            throw BackupFileRefusals.Header(
                BackupErrorCode.FileCorrupt,
                $"The backup file's header declares segments of {segmentSize} bytes, outside {BackupFileCodec.MinimumSegmentSize} to {BackupFileCodec.MaximumSegmentSize}: no SDK writes such a file.",
                BackupFileRefusals.CorruptRemedy);
        }

        return (int)segmentSize;
    }

    /// <summary>The salt of a header that passed <see cref="Read"/>.</summary>
    public static ReadOnlySpan<byte> Salt(ReadOnlySpan<byte> header) => header.Slice(SaltOffset, SaltSize);

    /// <summary>The nonce prefix of a header that passed <see cref="Read"/>.</summary>
    public static ReadOnlySpan<byte> NoncePrefix(ReadOnlySpan<byte> header) => header.Slice(NoncePrefixOffset, NoncePrefixSize);

    /// <summary>The key commitment of a header that passed <see cref="Read"/>.</summary>
    public static ReadOnlySpan<byte> Commitment(ReadOnlySpan<byte> header) => header.Slice(CommitmentOffset, CommitmentSize);
}
