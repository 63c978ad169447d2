using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace KmsBackup.DevelopmentKms;

/// <summary>
/// The ciphertext format of the embedded service (version 1), for data encrypted with a key and for
/// secret versions. It names the key ID and key version ID that encrypt it, so that any instance that
/// holds that key (the original one, or another one it was restored into) can decrypt it, and an
/// older key version still decrypts after a rotation.
/// </summary>
/// <remarks>
/// <code>
/// offset  size  field
/// 0       1     format version, 0x01
/// 1       2     key ID length k (big-endian), then k bytes: the key ID in UTF-8
/// 3+k     2     key version ID length v (big-endian), then v bytes: the version ID in UTF-8
/// ...     12    nonce (random)
/// ...     n     AES-256-GCM encryption of the plaintext
/// ...     16    GCM tag
/// </code>
/// The associated data is the header (format version through version ID) followed by a context:
/// <c>"data"</c> for <c>Encrypt</c>, or <c>"secret"</c> with the length-prefixed secret name and
/// secret version ID for a secret version, so that a secret version's ciphertext cannot pass for
/// another secret's or for plain data. No instance ID is bound, which is what lets a restored secret
/// decrypt in another instance.
/// </remarks>
internal static class EmbeddedCiphertext
{
    public const byte FormatVersion = 1;
    public const int NonceSize = 12;
    public const int TagSize = 16;

    public static ReadOnlySpan<byte> DataContext => "data"u8;

    /// <summary>The context of one secret version: "secret", then the name and version ID, each length-prefixed.</summary>
    public static byte[] SecretContext(string secretName, string secretVersionId)
    {
        var name = Encoding.UTF8.GetBytes(secretName);
        var version = Encoding.UTF8.GetBytes(secretVersionId);
        var context = new byte[6 + 4 + name.Length + 4 + version.Length];
        "secret"u8.CopyTo(context);
        var at = 6;
        BinaryPrimitives.WriteInt32BigEndian(context.AsSpan(at), name.Length);
        name.CopyTo(context, at + 4);
        at += 4 + name.Length;
        BinaryPrimitives.WriteInt32BigEndian(context.AsSpan(at), version.Length);
        version.CopyTo(context, at + 4);
        return context;
    }

    /// <summary>Encrypts <paramref name="plaintext"/> under one version of a key.</summary>
    /// <exception cref="CryptographicException">The material is not a valid AES key.</exception>
    public static byte[] Encrypt(string keyId, string keyVersionId, ReadOnlySpan<byte> material, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> context)
    {
        var header = Header(keyId, keyVersionId);
        var headerLength = header.Length;
        var output = new byte[headerLength + NonceSize + plaintext.Length + TagSize];
        var span = output.AsSpan();
        header.CopyTo(span);

        var nonce = span.Slice(headerLength, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        var associated = Associated(span[..headerLength], context);
        using var aes = new AesGcm(material, TagSize);
        aes.Encrypt(nonce, plaintext, span.Slice(headerLength + NonceSize, plaintext.Length), span[^TagSize..], associated);
        return output;
    }

    /// <summary>
    /// The header naming the key and its version: format version, then the key ID and the version ID, each a
    /// big-endian 16-bit length and UTF-8 bytes. Hardware ciphertexts (the HSM's output) carry the same header.
    /// </summary>
    /// <exception cref="CryptographicException">An ID is longer than a 16-bit length can say.</exception>
    public static byte[] Header(string keyId, string keyVersionId)
    {
        var keyIdBytes = Encoding.UTF8.GetBytes(keyId);
        var versionBytes = Encoding.UTF8.GetBytes(keyVersionId);
        if (keyIdBytes.Length > ushort.MaxValue || versionBytes.Length > ushort.MaxValue)
        {
            throw new CryptographicException("The key ID or key version ID is too long for the ciphertext header.");
        }

        var header = new byte[1 + 2 + keyIdBytes.Length + 2 + versionBytes.Length];
        header[0] = FormatVersion;
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(1), (ushort)keyIdBytes.Length);
        keyIdBytes.CopyTo(header.AsSpan(3));
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(3 + keyIdBytes.Length), (ushort)versionBytes.Length);
        versionBytes.CopyTo(header.AsSpan(5 + keyIdBytes.Length));
        return header;
    }

    /// <summary>Reads the key ID and key version ID a ciphertext names; false when it is not a well-formed version-1 ciphertext.</summary>
    public static bool TryReadHeader(ReadOnlySpan<byte> ciphertext, out string keyId, out string keyVersionId, out int headerLength)
    {
        keyId = keyVersionId = string.Empty;
        headerLength = 0;
        if (ciphertext.Length < 1 + 2 || ciphertext[0] != FormatVersion)
        {
            return false;
        }

        int keyLength = BinaryPrimitives.ReadUInt16BigEndian(ciphertext[1..]);
        if (keyLength == 0 || ciphertext.Length < 3 + keyLength + 2)
        {
            return false;
        }

        int versionLength = BinaryPrimitives.ReadUInt16BigEndian(ciphertext[(3 + keyLength)..]);
        var length = 3 + keyLength + 2 + versionLength;
        if (versionLength == 0 || ciphertext.Length < length + NonceSize + TagSize)
        {
            return false;
        }

        try
        {
            var strict = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
            keyId = strict.GetString(ciphertext.Slice(3, keyLength));
            keyVersionId = strict.GetString(ciphertext.Slice(5 + keyLength, versionLength));
        }
        catch (DecoderFallbackException)
        {
            return false;
        }

        headerLength = length;
        return true;
    }

    /// <summary>
    /// Decrypts a ciphertext whose header <see cref="TryReadHeader"/> has read, with the material of the
    /// key version it names. Returns <see langword="null"/> when authentication fails (wrong key, wrong
    /// context, or altered bytes).
    /// </summary>
    /// <exception cref="CryptographicException">The material is not a valid AES key.</exception>
    public static byte[]? TryDecrypt(ReadOnlySpan<byte> ciphertext, int headerLength, ReadOnlySpan<byte> material, ReadOnlySpan<byte> context)
    {
        var nonce = ciphertext.Slice(headerLength, NonceSize);
        var body = ciphertext[(headerLength + NonceSize)..^TagSize];
        var tag = ciphertext[^TagSize..];
        var plaintext = GC.AllocateUninitializedArray<byte>(body.Length, pinned: true); // a secret value: never moved, so never copied by the GC
        var associated = Associated(ciphertext[..headerLength], context);
        using var aes = new AesGcm(material, TagSize);
        try
        {
            aes.Decrypt(nonce, body, tag, plaintext, associated);
            return plaintext;
        }
        catch (AuthenticationTagMismatchException)
        {
            CryptographicOperations.ZeroMemory(plaintext);
            return null;
        }
    }

    private static byte[] Associated(ReadOnlySpan<byte> header, ReadOnlySpan<byte> context)
    {
        var associated = new byte[header.Length + context.Length];
        header.CopyTo(associated);
        context.CopyTo(associated.AsSpan(header.Length));
        return associated;
    }
}
