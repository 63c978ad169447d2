using System.Security.Cryptography;

namespace KmsBackup.Hsm.Pkcs11;

/// <summary>
/// The <see cref="HsmClusterGateway"/> over PKCS#11. An HSM is a token; a cluster is a set of tokens
/// with zone labels whose keys the gateway keeps in step. Keys are generated inside the primary token
/// and never leave a token in plaintext: they are copied to the other HSMs, and into backup images,
/// only wrapped (AES key wrap, RFC 3394, inside the token) under the backup key of the backup vault.
/// </summary>
/// <remarks>
/// <para><b>Backup domain.</b> The backup key is generated in the backup vault token. A token joins
/// the domain the first time the gateway uses it: the token makes a one-time RSA-2048 key pair
/// (session objects), the vault wraps the backup key under its public key (RSA-OAEP), and the token
/// unwraps it with the private key, which never leaves it. Whoever holds the vault's user PIN can do
/// the same with a key pair of their own: the vault's PIN guards every backup.</para>
/// <para><b>Images.</b> An image is each KMS key of the cluster's primary token wrapped under the
/// backup key, kept as a private data object in the vault. Restoring it unwraps the keys inside each
/// HSM of the new cluster.</para>
/// <para><b>State.</b> Whether a cluster is enabled and which instance it serves is a private data
/// object in its primary token; a cluster is in use when it serves an instance or holds keys.</para>
/// <para>Thread-safe: calls are serialised. The methods complete synchronously. Nothing this type
/// formats, throws or logs contains a PIN, key material or a wrapped key.</para>
/// </remarks>
public sealed class Pkcs11HsmClusterGateway : HsmClusterGateway, IDisposable
{
    private static readonly byte[] s_dataAad = "kmsbackup/hsm-key/v1"u8.ToArray();
    private readonly Pkcs11Module _module;
    private readonly TokenSessions _sessions;
    private readonly ClusterDirectory _clusters;
    private readonly BackupDomain _domain;
    private readonly ClusterKeys _keys;
    private readonly HsmImageVault _images;
    private bool _disposed;

    private Pkcs11HsmClusterGateway(Pkcs11Module module, Pkcs11TokenAccess vault, TimeProvider time, Dictionary<string, Pkcs11ClusterDefinition> clusters)
    {
        _module = module;
        _sessions = new TokenSessions(module, vault);
        _clusters = new ClusterDirectory(_sessions, clusters);
        _domain = new BackupDomain(_sessions);
        _keys = new ClusterKeys(_sessions, _clusters, _domain);
        _images = new HsmImageVault(_sessions, _clusters, _domain, time);
    }

    /// <summary>Loads the PKCS#11 library and opens the backup vault (creating its backup key when absent).</summary>
    /// <param name="options">The library, the backup vault and the clusters.</param>
    /// <returns>The gateway; dispose of it to release the library.</returns>
    /// <exception cref="ArgumentException">No backup vault, a cluster without HSMs, or two clusters of one ID.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.HsmLibraryNotFound"/>, <see cref="BackupErrorCode.HsmTokenNotFound"/>,
    /// <see cref="BackupErrorCode.HsmLoginFailed"/> or <see cref="BackupErrorCode.HsmOperationFailed"/>.</exception>
    public static Pkcs11HsmClusterGateway Open(Pkcs11HsmClusterGatewayOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var vault = options.BackupVault ?? throw new ArgumentException("A backup vault token is required.", nameof(options));
        ArgumentNullException.ThrowIfNull(options.TimeProvider, nameof(options));
        var clusters = new Dictionary<string, Pkcs11ClusterDefinition>(StringComparer.Ordinal);
        foreach (var cluster in options.Clusters)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(cluster.ClusterId, nameof(options));
            if (cluster.Hsms is null || cluster.Hsms.Count == 0)
            {
                throw new ArgumentException($"The cluster '{cluster.ClusterId}' has no HSM.", nameof(options));
            }

            if (!clusters.TryAdd(cluster.ClusterId, cluster))
            {
                throw new ArgumentException($"Two clusters are named '{cluster.ClusterId}'.", nameof(options));
            }
        }

        var module = Pkcs11Module.Acquire(options.LibraryPath);
        try
        {
            var gateway = new Pkcs11HsmClusterGateway(module, vault, options.TimeProvider, clusters);
            gateway.Run(gateway._domain.EnsureVaultKey);
            return gateway;
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public override Task<HsmClusterInfo?> GetClusterAsync(string clusterId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(clusterId);
        return RunAsync(() => _clusters.Find(clusterId), cancellationToken);
    }

    /// <inheritdoc />
    public override IAsyncEnumerable<HsmClusterInfo> ListClustersAsync(string? region = null, CancellationToken cancellationToken = default)
    {
        var clusters = Run(() => _clusters.List(region));
        return AsAsync(clusters, cancellationToken);
    }

    /// <inheritdoc />
    public override Task<HsmClusterInfo> ConnectInstanceAsync(string clusterId, string instanceId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        return RunAsync(() => _clusters.Connect(clusterId, instanceId), cancellationToken);
    }

    /// <summary>
    /// Disables and resets a cluster, as technical support does before a cluster that was in use can
    /// take a restore: every KMS key and the cluster state are destroyed in each of its HSMs.
    /// </summary>
    /// <param name="clusterId">The cluster.</param>
    /// <param name="cancellationToken">Cancels the call before it changes anything.</param>
    /// <returns>The cluster as it is now: not enabled, not in use.</returns>
    public Task<HsmClusterInfo> ResetClusterAsync(string clusterId, CancellationToken cancellationToken = default) =>
        RunAsync(() => _clusters.Reset(clusterId), cancellationToken);

    /// <summary>
    /// Generates the material of a KMS key inside the cluster's primary HSM, with <c>CKA_ID</c> the key
    /// ID, and copies it, wrapped, to the cluster's other HSMs. The material is sensitive: no HSM ever
    /// returns it in plaintext.
    /// </summary>
    /// <param name="clusterId">The cluster.</param>
    /// <param name="keyId">The KMS key's ID.</param>
    /// <param name="cancellationToken">Cancels the call before it changes anything.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NameConflict"/>: the key exists; or an HSM error.</exception>
    public Task GenerateKeyAsync(string clusterId, string keyId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(keyId);
        return RunAsync(() =>
        {
            _keys.Generate(clusterId, keyId);
            return true;
        }, cancellationToken);
    }

    /// <summary>Encrypts with a key's material inside the cluster's primary HSM (AES-256-GCM, random 96-bit IV).</summary>
    /// <param name="clusterId">The cluster.</param>
    /// <param name="keyId">The key ID.</param>
    /// <param name="plaintext">The data.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>IV, ciphertext and tag.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.KeyMaterialMissing"/>: the cluster does not hold the key; or an HSM error.</exception>
    public Task<byte[]> EncryptAsync(string clusterId, string keyId, ReadOnlyMemory<byte> plaintext, CancellationToken cancellationToken = default) =>
        RunAsync(() => Seal(clusterId, keyId, plaintext.Span, s_dataAad), cancellationToken);

    /// <summary>Decrypts data sealed by <see cref="EncryptAsync"/> inside the cluster's primary HSM.</summary>
    /// <param name="clusterId">The cluster.</param>
    /// <param name="keyId">The key ID.</param>
    /// <param name="ciphertext">IV, ciphertext and tag.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The plaintext; clear it when done.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.KeyMaterialMissing"/>; <see cref="BackupErrorCode.IntegrityViolation"/>: wrong key or altered data; or an HSM error.</exception>
    public Task<SensitiveBytes> DecryptAsync(string clusterId, string keyId, ReadOnlyMemory<byte> ciphertext, CancellationToken cancellationToken = default) =>
        RunAsync(() => Open(clusterId, keyId, ciphertext.Span, s_dataAad) is { } plaintext ? SensitiveBytes.Own(plaintext) : throw NotDecryptable(keyId), cancellationToken);

    /// <summary>
    /// Takes a backup image of the cluster: every KMS key of its primary HSM, wrapped inside it under the
    /// backup key, stored in the backup vault. The HSM backup schedule calls this (type <c>Auto Create</c>).
    /// </summary>
    /// <param name="clusterId">The cluster.</param>
    /// <param name="type"><c>Auto Create</c> (the default) or manual.</param>
    /// <param name="cancellationToken">Cancels the call before it changes anything.</param>
    /// <returns>The image.</returns>
    public Task<HsmBackupImage> TakeBackupImageAsync(string clusterId, HsmBackupImageType type = HsmBackupImageType.AutoCreate, CancellationToken cancellationToken = default) =>
        RunAsync(() => _images.Take(clusterId, type), cancellationToken);

    /// <inheritdoc />
    public override Task<IReadOnlyList<HsmBackupImage>> ListBackupImagesAsync(string clusterId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(clusterId);
        return RunAsync<IReadOnlyList<HsmBackupImage>>(() => _images.List(clusterId), cancellationToken);
    }

    /// <inheritdoc />
    public override Task<HsmClusterInfo> RestoreImageAsync(string imageId, string targetClusterId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(imageId);
        return RunAsync(() => _images.Restore(imageId, targetClusterId), cancellationToken);
    }

    /// <inheritdoc />
    public override Task<bool> IsKeyMaterialPresentAsync(string clusterId, string keyId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(keyId);
        return RunAsync(() => _keys.IsPresent(clusterId, keyId), cancellationToken);
    }

    /// <summary>Releases the PKCS#11 library (the last user in the process finalises it).</summary>
    public void Dispose()
    {
        lock (_module.Gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
        }

        _module.Dispose();
    }

    /// <summary>The gateway in one line, without PINs.</summary>
    public override string ToString() => $"PKCS#11 HSM cluster gateway ({_clusters.Count} clusters, vault {_sessions.Vault})";

    // ---- for Pkcs11HardwareKeyOperations: the same operations, called synchronously ----

    /// <summary>The cluster connected to a hardware instance, under the caller's lock.</summary>
    internal string ClusterOf(string instanceId) => Run(() => _clusters.ClusterOf(instanceId));

    /// <summary>
    /// Generates a key as <see cref="GenerateKeyAsync"/> does, on the caller's thread: both run the same synchronous
    /// PKCS#11 calls under the module's gate; the task of <see cref="GenerateKeyAsync"/> is complete when it returns.
    /// </summary>
    internal void GenerateKey(string clusterId, string keyId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(keyId);
        Run(() => _keys.Generate(clusterId, keyId));
    }

    /// <summary>AES-256-GCM inside the primary HSM: a random 96-bit IV, the ciphertext and the 128-bit tag.</summary>
    internal byte[] Seal(string clusterId, string keyId, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData)
    {
        var data = plaintext.ToArray();
        var aad = associatedData.ToArray();
        try
        {
            return Run(() => _keys.Seal(clusterId, keyId, data, aad));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(data);
        }
    }

    /// <summary>Opens what <see cref="Seal"/> sealed; <see langword="null"/> when authentication fails.</summary>
    internal byte[]? Open(string clusterId, string keyId, ReadOnlySpan<byte> sealedData, ReadOnlySpan<byte> associatedData)
    {
        var data = sealedData.ToArray();
        var aad = associatedData.ToArray();
        return Run(() => _keys.Open(clusterId, keyId, data, aad));
    }

    // ---- helpers ----

    private static BackupException NotDecryptable(string keyId) => new(new Refusal(
        BackupErrorCode.IntegrityViolation, $"key '{keyId}'",
        $"The data cannot be decrypted with key '{keyId}': another key sealed it, or it was altered.",
        "Decrypt with the key that encrypted the data."));

    /// <summary>Runs under the module's gate: every PKCS#11 call of the process is serialised.</summary>
    private T Run<T>(Func<T> body)
    {
        lock (_module.Gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return body();
        }
    }

    private void Run(Action body) => Run(() =>
    {
        body();
        return true;
    });

    private Task<T> RunAsync<T>(Func<T> body, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<T>(cancellationToken);
        }

        try
        {
            return Task.FromResult(Run(body));
        }
        catch (Exception e)
        {
            return Task.FromException<T>(e);
        }
    }
}
