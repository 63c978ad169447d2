using System.Security.Cryptography;

namespace KmsBackup;

/// <summary>
/// The key wrap every built-in software key provider uses: AES-256-GCM under the provider's key-encryption key, laid
/// out as a 12-byte random nonce, the ciphertext (as long as the key) and the 16-byte tag, with associated data that
/// names what is wrapped (docs/repository-format.md).
/// </summary>
internal static class AesGcmKeyWrap
{
    /// <summary>Nonce and tag: what a wrapped key adds to the key.</summary>
    public const int Overhead = NonceSize + TagSize;

    private const int NonceSize = 12;
    private const int TagSize = 16;

    /// <summary>Wraps <paramref name="key"/> into <paramref name="into"/>, which is exactly <see cref="Overhead"/> bytes longer.</summary>
    public static void Seal(ReadOnlySpan<byte> keyEncryptionKey, ReadOnlySpan<byte> key, Span<byte> into, ReadOnlySpan<byte> associatedData)
    {
        RandomNumberGenerator.Fill(into[..NonceSize]);
        using var aes = new AesGcm(keyEncryptionKey, TagSize);
        aes.Encrypt(into[..NonceSize], key, into.Slice(NonceSize, key.Length), into[(NonceSize + key.Length)..], associatedData);
    }

    /// <summary>
    /// The key <paramref name="wrapped"/> holds, in a pinned array (clear it when done); <see langword="null"/> when it is
    /// too short or does not authenticate under <paramref name="keyEncryptionKey"/> and <paramref name="associatedData"/>.
    /// </summary>
    public static byte[]? Open(ReadOnlySpan<byte> keyEncryptionKey, ReadOnlySpan<byte> wrapped, ReadOnlySpan<byte> associatedData)
    {
        if (wrapped.Length < Overhead)
        {
            return null;
        }

        var key = GC.AllocateArray<byte>(wrapped.Length - Overhead, pinned: true);
        try
        {
            using var aes = new AesGcm(keyEncryptionKey, TagSize);
            aes.Decrypt(wrapped[..NonceSize], wrapped[NonceSize..^TagSize], wrapped[^TagSize..], key, associatedData);
            return key;
        }
        catch (AuthenticationTagMismatchException)
        {
            CryptographicOperations.ZeroMemory(key);
            return null;
        }
    }
}
