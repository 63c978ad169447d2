namespace KmsBackup.Instances;

/// <summary>
/// What the embedded service asks of the HSM cluster behind a hardware instance: generate a key's
/// material there, and encrypt and decrypt with it there. With it
/// (<see cref="EmbeddedKeyManagementServiceOptions.HardwareKeys"/>) the embedded service's hardware
/// instances hold key metadata only, as always, yet their keys encrypt and decrypt and their secrets
/// can be stored; without it, hardware keys cannot be used for cryptography.
/// </summary>
/// <remarks>
/// Calls are synchronous on purpose: the embedded service makes them while it holds its own lock. The
/// material never reaches the embedded service: only ciphertexts and plaintexts cross.
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

/// <summary>
/// Ciphertexts of hardware keys in the embedded service's version-1 format (see
/// <see cref="EmbeddedCiphertext"/>): the same header naming the key and version, followed by what
/// the HSM returns (nonce, ciphertext, tag), with the same associated data (header, then context).
/// </summary>
internal static class HardwareCiphertext
{
    public static byte[] Encrypt(HardwareKeyOperations hsm, string instanceId, string keyId, string keyVersionId, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> context)
    {
        var header = EmbeddedCiphertext.Header(keyId, keyVersionId);
        var sealedData = hsm.Encrypt(instanceId, keyId, plaintext, [.. header, .. context]);
        return [.. header, .. sealedData];
    }

    public static byte[]? TryDecrypt(HardwareKeyOperations hsm, string instanceId, string keyId, ReadOnlySpan<byte> ciphertext, int headerLength, ReadOnlySpan<byte> context) =>
        hsm.Decrypt(instanceId, keyId, ciphertext[headerLength..], [.. ciphertext[..headerLength], .. context]);
}
