namespace KmsBackup;

/// <summary>
/// The port through which a key management service keeps the keys of its hardware instances in an HSM: it has a
/// key's material generated in the HSM cluster the instance is connected to, and encrypts and decrypts with it
/// there. An HSM adapter implements it (<c>Pkcs11HardwareKeyOperations</c>, over PKCS#11); the embedded
/// development service takes one
/// (<c>EmbeddedKeyManagementServiceOptions.HardwareKeys</c>). With it, the service's hardware instances still hold
/// key metadata only, yet their keys encrypt and decrypt and their secrets can be stored; without it, hardware keys
/// cannot be used for cryptography.
/// </summary>
/// <remarks>
/// Calls are synchronous on purpose: the embedded service makes them while it holds its own lock, and PKCS#11,
/// the interface beneath the HSM adapter, is a synchronous C interface, so an asynchronous port would only wrap
/// blocking calls. Each call is one short HSM operation (generate, encrypt or decrypt a small value). The
/// material never reaches the service: only ciphertexts and plaintexts cross.
/// </remarks>
public abstract class HardwareKeyOperations
{
    /// <summary>For subclasses.</summary>
    protected HardwareKeyOperations()
    {
    }

    /// <summary>Generates the material of key <paramref name="keyId"/> in the HSM cluster of the hardware instance.</summary>
    /// <param name="instanceId">The hardware instance.</param>
    /// <param name="keyId">The key's ID.</param>
    /// <exception cref="BackupException">The instance is connected to no cluster, or the HSM failed.</exception>
    public abstract void GenerateKey(string instanceId, string keyId);

    /// <summary>Encrypts with AES-256-GCM under the key's material in the HSM.</summary>
    /// <param name="instanceId">The hardware instance.</param>
    /// <param name="keyId">The key's ID.</param>
    /// <param name="plaintext">The data.</param>
    /// <param name="associatedData">Authenticated, not encrypted.</param>
    /// <returns>A 12-byte nonce, the ciphertext, and the 16-byte tag.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.KeyMaterialMissing"/>: the cluster lacks the key; or the HSM failed.</exception>
    public abstract byte[] Encrypt(string instanceId, string keyId, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData);

    /// <summary>Decrypts what <see cref="Encrypt"/> sealed.</summary>
    /// <param name="instanceId">The hardware instance.</param>
    /// <param name="keyId">The key's ID.</param>
    /// <param name="sealedData">Nonce, ciphertext and tag.</param>
    /// <param name="associatedData">The associated data it was sealed with.</param>
    /// <returns>The plaintext, or <see langword="null"/> when authentication fails.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.KeyMaterialMissing"/>: the cluster lacks the key; or the HSM failed.</exception>
    public abstract byte[]? Decrypt(string instanceId, string keyId, ReadOnlySpan<byte> sealedData, ReadOnlySpan<byte> associatedData);
}
