
namespace KmsBackup.DevelopmentKms;

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
