namespace KmsBackup.Hsm.Pkcs11;

/// <summary>
/// The <see cref="HardwareKeyOperations"/> port over a <see cref="Pkcs11HsmClusterGateway"/>: a
/// hardware instance's keys are generated, and encrypt and decrypt, inside the HSM cluster the instance
/// is connected to (<see cref="HsmClusterGateway.ConnectInstanceAsync"/>). Give it to the embedded
/// service as <c>EmbeddedKeyManagementServiceOptions.HardwareKeys</c>.
/// </summary>
/// <param name="gateway">The gateway of the clusters; it must outlive this object.</param>
public sealed class Pkcs11HardwareKeyOperations(Pkcs11HsmClusterGateway gateway) : HardwareKeyOperations
{
    private readonly Pkcs11HsmClusterGateway _gateway = gateway ?? throw new ArgumentNullException(nameof(gateway));

    /// <inheritdoc />
    public override void GenerateKey(string instanceId, string keyId) => _gateway.GenerateKey(_gateway.ClusterOf(instanceId), keyId);

    /// <inheritdoc />
    public override byte[] Encrypt(string instanceId, string keyId, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData) =>
        _gateway.Seal(_gateway.ClusterOf(instanceId), keyId, plaintext, associatedData);

    /// <inheritdoc />
    public override byte[]? Decrypt(string instanceId, string keyId, ReadOnlySpan<byte> sealedData, ReadOnlySpan<byte> associatedData) =>
        _gateway.Open(_gateway.ClusterOf(instanceId), keyId, sealedData, associatedData);
}
