using System.Security.Cryptography;
using System.Text;

namespace KmsBackup.Repository;

/// <summary>
/// The repository's keys and the sealing of its objects. A random 64-byte master secret (stored only
/// wrapped by the <see cref="RepositoryKeyProvider"/>) yields, by HKDF-SHA-256, a 256-bit encryption key
/// and a 256-bit MAC key. Objects are sealed with AES-256-GCM: 12-byte random nonce ‖ ciphertext ‖ 16-byte
/// tag, with associated data that binds each object to its ID and role.
/// </summary>
internal sealed class RepositoryCrypto : IDisposable
{
    public const int MasterSecretSize = 64;
    public const int NonceSize = 12;
    public const int TagSize = 16;
    public const int Overhead = NonceSize + TagSize;

    private readonly AesGcm _aes;
    private readonly byte[] _macKey;
    private readonly ulong _boundarySalt;

    public RepositoryCrypto(ReadOnlySpan<byte> masterSecret)
    {
        if (masterSecret.Length != MasterSecretSize)
        {
            throw RepositoryErrors.Integrity("master key", "it has the wrong length");
        }

        Span<byte> encryptionKey = stackalloc byte[32];
        _macKey = new byte[32];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, masterSecret, encryptionKey, salt: [], info: "kmsbackup/repository/v1/encrypt"u8);
        HKDF.DeriveKey(HashAlgorithmName.SHA256, masterSecret, _macKey, salt: [], info: "kmsbackup/repository/v1/mac"u8);
        _aes = new AesGcm(encryptionKey, TagSize);
        CryptographicOperations.ZeroMemory(encryptionKey);

        Span<byte> salt = stackalloc byte[32];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, masterSecret, salt, salt: [], info: "kmsbackup/repository/v1/chunking"u8);
        _boundarySalt = BitConverter.ToUInt64(salt);
        CryptographicOperations.ZeroMemory(salt);
    }

    /// <summary>A secret per-repository salt for content-defined chunk boundaries, so boundaries reveal nothing about names.</summary>
    public ulong BoundarySalt => _boundarySalt;

    public ObjectId IdOf(byte role, ReadOnlySpan<byte> plaintext)
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _macKey);
        hmac.AppendData([role]);
        hmac.AppendData(plaintext);
        Span<byte> mac = stackalloc byte[32];
        hmac.GetHashAndReset(mac);
        return ObjectId.Read(mac);
    }

    /// <summary>Seals <paramref name="plaintext"/> into <paramref name="destination"/> (length + <see cref="Overhead"/>).</summary>
    public void Seal(ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData, Span<byte> destination)
    {
        var nonce = destination[..NonceSize];
        RandomNumberGenerator.Fill(nonce);
        _aes.Encrypt(nonce, plaintext, destination.Slice(NonceSize, plaintext.Length), destination.Slice(NonceSize + plaintext.Length, TagSize), associatedData);
    }

    public byte[] Seal(ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData)
    {
        var sealedBytes = new byte[plaintext.Length + Overhead];
        Seal(plaintext, associatedData, sealedBytes);
        return sealedBytes;
    }

    public byte[] Seal(ReadOnlySpan<byte> plaintext, string associatedData) => Seal(plaintext, Encoding.UTF8.GetBytes(associatedData));

    /// <summary>Opens a sealed object; throws a typed integrity error naming <paramref name="what"/> when it does not authenticate.</summary>
    public byte[] Open(ReadOnlySpan<byte> sealedBytes, ReadOnlySpan<byte> associatedData, string what)
    {
        if (sealedBytes.Length < Overhead)
        {
            throw RepositoryErrors.Integrity(what, "it is shorter than its nonce and tag");
        }

        // Pinned: an object's plaintext may be a tree leaf (key material, secret ciphertexts), and a compacting GC would
        // leave a copy of a movable array behind that the reader's wipe never reaches.
        var plaintext = GC.AllocateUninitializedArray<byte>(sealedBytes.Length - Overhead, pinned: true);
        try
        {
            _aes.Decrypt(
                sealedBytes[..NonceSize], sealedBytes.Slice(NonceSize, plaintext.Length),
                sealedBytes.Slice(NonceSize + plaintext.Length, TagSize), plaintext, associatedData);
        }
        catch (AuthenticationTagMismatchException)
        {
            throw RepositoryErrors.Integrity(what, "its authentication tag does not match (it was changed or damaged)");
        }

        return plaintext;
    }

    public byte[] Open(ReadOnlySpan<byte> sealedBytes, string associatedData, string what) => Open(sealedBytes, Encoding.UTF8.GetBytes(associatedData), what);

    /// <summary>Opens a content-addressed object and checks that its plaintext MAC is its ID.</summary>
    public byte[] OpenObject(ReadOnlySpan<byte> sealedBytes, ObjectId id, byte role)
    {
        Span<byte> ad = stackalloc byte[ObjectId.Size + 1];
        id.Write(ad);
        ad[ObjectId.Size] = role;
        var what = $"object {id.Short}";
        var plaintext = Open(sealedBytes, ad, what);
        if (IdOf(role, plaintext) != id)
        {
            CryptographicOperations.ZeroMemory(plaintext);
            throw RepositoryErrors.Integrity(what, "its content does not match its ID");
        }

        return plaintext;
    }

    public byte[] SealObject(ReadOnlySpan<byte> plaintext, ObjectId id, byte role)
    {
        var sealedBytes = new byte[plaintext.Length + Overhead];
        SealObject(plaintext, id, role, sealedBytes);
        return sealedBytes;
    }

    /// <summary>Seals an object into <paramref name="destination"/>, exactly <c>plaintext.Length + Overhead</c> bytes.</summary>
    public void SealObject(ReadOnlySpan<byte> plaintext, ObjectId id, byte role, Span<byte> destination)
    {
        Span<byte> ad = stackalloc byte[ObjectId.Size + 1];
        id.Write(ad);
        ad[ObjectId.Size] = role;
        Seal(plaintext, ad, destination);
    }

    public void Dispose()
    {
        _aes.Dispose();
        CryptographicOperations.ZeroMemory(_macKey);
    }
}
