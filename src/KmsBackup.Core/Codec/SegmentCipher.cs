using System.Buffers.Binary;
using System.Security.Cryptography;

namespace KmsBackup.Domain;

/// <summary>
/// The per-file AES-256-GCM state: one <see cref="AesGcm"/> reused for every segment, the header as
/// associated data of every segment, and one nonce buffer. Nothing is allocated per segment.
/// </summary>
internal sealed class SegmentCipher : IDisposable
{
    /// <summary>The length of the authentication tag that ends every segment: 16 bytes.</summary>
    public const int TagSize = 16;

    private const int NonceSize = 12;

    private readonly AesGcm _aes;
    private readonly byte[] _header;
    private readonly byte[] _nonce = new byte[NonceSize];

    private SegmentCipher(ReadOnlySpan<byte> key, byte[] header, ReadOnlySpan<byte> noncePrefix, int segmentSize)
    {
        _aes = new AesGcm(key, tagSizeInBytes: TagSize);
        _header = header;
        noncePrefix.CopyTo(_nonce);
        SegmentSize = segmentSize;
    }

    public int SegmentSize { get; }

    /// <summary>Writes the header of a new file into <paramref name="header"/> and returns the cipher of its segments.</summary>
    public static SegmentCipher ForWriting(Span<byte> header, ReadOnlySpan<byte> dataKey, int segmentSize, ReadOnlySpan<byte> salt, ReadOnlySpan<byte> noncePrefix)
    {
        Span<byte> key = stackalloc byte[BackupFileCodec.DataKeySize];
        Span<byte> commitment = stackalloc byte[BackupFileHeader.CommitmentSize];
        try
        {
            BackupFileKeyDerivation.Derive(dataKey, salt, key, commitment);
            BackupFileHeader.Write(header, segmentSize, salt, noncePrefix, commitment);
            return new SegmentCipher(key, header.ToArray(), noncePrefix, segmentSize);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>
    /// Checks a file's header (<see cref="BackupFileHeader.Read"/>), then that <paramref name="dataKey"/> is the key it
    /// was written under (the key commitment), and returns the cipher of its segments.
    /// </summary>
    /// <exception cref="BackupFileException">The header is refused, or the data key is not the file's.</exception>
    public static SegmentCipher ForReading(ReadOnlySpan<byte> header, ReadOnlySpan<byte> dataKey)
    {
        var segmentSize = BackupFileHeader.Read(header);
        Span<byte> key = stackalloc byte[BackupFileCodec.DataKeySize];
        Span<byte> commitment = stackalloc byte[BackupFileHeader.CommitmentSize];
        try
        {
            BackupFileKeyDerivation.Derive(dataKey, BackupFileHeader.Salt(header), key, commitment);
            if (!CryptographicOperations.FixedTimeEquals(commitment, BackupFileHeader.Commitment(header)))
            {
                throw BackupFileRefusals.WrongKey();
            }

            return new SegmentCipher(key, header[..BackupFileHeader.Size].ToArray(), BackupFileHeader.NoncePrefix(header), segmentSize);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
            CryptographicOperations.ZeroMemory(commitment);
        }
    }

    /// <summary>Encrypts one segment into <paramref name="output"/>: ciphertext, then the 16-byte tag.</summary>
    public void Seal(uint index, bool final, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        SetNonce(index, final);
        _aes.Encrypt(_nonce, plaintext, output[..plaintext.Length], output.Slice(plaintext.Length, TagSize), _header);
    }

    /// <summary>Decrypts one segment (ciphertext, then tag); false when it does not authenticate.</summary>
    public bool TryOpen(uint index, bool final, ReadOnlySpan<byte> segment, Span<byte> plaintext)
    {
        SetNonce(index, final);
        try
        {
            _aes.Decrypt(_nonce, segment[..^TagSize], segment[^TagSize..], plaintext, _header);
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }
    }

    public void Dispose() => _aes.Dispose();

    private void SetNonce(uint index, bool final)
    {
        BinaryPrimitives.WriteUInt32BigEndian(_nonce.AsSpan(BackupFileHeader.NoncePrefixSize), index);
        _nonce[NonceSize - 1] = final ? (byte)1 : (byte)0;
    }
}
