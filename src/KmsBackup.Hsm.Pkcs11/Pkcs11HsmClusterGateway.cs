using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using static KmsBackup.Hsm.Pkcs11.Pkcs11Objects;

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
    private readonly Pkcs11TokenAccess _vault;
    private readonly TimeProvider _time;
    private readonly Dictionary<string, Pkcs11ClusterDefinition> _clusters;
    private bool _disposed;

    private Pkcs11HsmClusterGateway(Pkcs11Module module, Pkcs11TokenAccess vault, TimeProvider time, Dictionary<string, Pkcs11ClusterDefinition> clusters)
    {
        _module = module;
        _vault = vault;
        _time = time;
        _clusters = clusters;
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
            gateway.Run(() =>
            {
                using var session = gateway.Session(vault);
                Guard(vault, "generate backup key", () =>
                {
                    if (FindVaultBackupKey(session) is null)
                    {
                        session.GenerateKey(session.Factories.MechanismFactory.Create(CKM.CKM_AES_KEY_GEN), BackupKeyTemplate(session, withLength: true));
                    }
                });
                return true;
            });
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
        return RunAsync(() => _clusters.TryGetValue(clusterId, out var cluster) ? Describe(cluster) : null, cancellationToken);
    }

    /// <inheritdoc />
    public override IAsyncEnumerable<HsmClusterInfo> ListClustersAsync(string? region = null, CancellationToken cancellationToken = default)
    {
        var clusters = Run(() => _clusters.Values
            .Where(c => region is null || string.Equals(c.Region, region, StringComparison.Ordinal))
            .OrderBy(c => c.ClusterId, StringComparer.Ordinal)
            .Select(Describe)
            .ToList());
        return AsAsync(clusters, cancellationToken);
    }

    /// <inheritdoc />
    public override Task<HsmClusterInfo> ConnectInstanceAsync(string clusterId, string instanceId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        return RunAsync(() =>
        {
            var cluster = Cluster(clusterId);
            var primary = cluster.Hsms[0].Token;
            using var session = Session(primary);
            var (_, connected) = ReadState(session, primary);
            if (connected is not null && !string.Equals(connected, instanceId, StringComparison.Ordinal))
            {
                throw new BackupException(new Refusal(
                    BackupErrorCode.ClusterInUse, $"cluster '{clusterId}'",
                    $"The HSM cluster '{clusterId}' already serves the instance '{connected}'.",
                    "Connect the instance to a cluster of its own."));
            }

            Guard(primary, "write cluster state", () => WriteData(session, ClusterStateLabel, Encoding.UTF8.GetBytes("enabled\n" + instanceId)));
            return Describe(cluster);
        }, cancellationToken);
    }

    /// <summary>
    /// Disables and resets a cluster, as technical support does before a cluster that was in use can
    /// take a restore: every KMS key and the cluster state are destroyed in each of its HSMs.
    /// </summary>
    /// <param name="clusterId">The cluster.</param>
    /// <param name="cancellationToken">Cancels the call before it changes anything.</param>
    /// <returns>The cluster as it is now: not enabled, not in use.</returns>
    public Task<HsmClusterInfo> ResetClusterAsync(string clusterId, CancellationToken cancellationToken = default) =>
        RunAsync(() =>
        {
            var cluster = Cluster(clusterId);
            foreach (var hsm in cluster.Hsms)
            {
                using var session = Session(hsm.Token);
                Guard(hsm.Token, "reset", () =>
                {
                    foreach (var (_, handle) in ListKeys(session))
                    {
                        session.DestroyObject(handle);
                    }

                    if (FindData(session, ClusterStateLabel) is { } state)
                    {
                        session.DestroyObject(state);
                    }
                });
            }

            return Describe(cluster);
        }, cancellationToken);

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
            var cluster = Cluster(clusterId);
            var primary = cluster.Hsms[0].Token;
            if (cluster.Hsms.Count > 1)
            {
                // The key is copied to the other HSMs wrapped under the backup key: every HSM needs its trusted copy.
                JoinBackupDomain(cluster.Hsms.Select(h => h.Token));
            }

            using var session = Session(primary);
            if (FindKey(session, keyId) is not null)
            {
                throw new BackupException(new Refusal(
                    BackupErrorCode.NameConflict, $"key '{keyId}'",
                    $"The HSM cluster '{clusterId}' already holds the material of key '{keyId}'.",
                    "Use another key ID."));
            }

            var handle = Guard(primary, "generate key", () => session.GenerateKey(session.Factories.MechanismFactory.Create(CKM.CKM_AES_KEY_GEN), KeyTemplate(session, keyId, withLength: true)));
            foreach (var other in cluster.Hsms.Skip(1))
            {
                CopyKey(session, primary, handle, keyId, other.Token);
            }

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

    /// <summary>The cluster connected to a hardware instance, under the caller's lock.</summary>
    internal string ClusterOf(string instanceId) => Run(() =>
        _clusters.Values.FirstOrDefault(c =>
        {
            var primary = c.Hsms[0].Token;
            using var session = Session(primary);
            return string.Equals(ReadState(session, primary).Instance, instanceId, StringComparison.Ordinal);
        })?.ClusterId ?? throw new BackupException(new Refusal(
            BackupErrorCode.NotFound, $"instance '{instanceId}'",
            $"The hardware instance '{instanceId}' is connected to no HSM cluster of this gateway.",
            "Connect the instance to its HSM cluster (Connect to HSM) first.")));

    internal void GenerateKey(string clusterId, string keyId) => GenerateKeyAsync(clusterId, keyId).GetAwaiter().GetResult();

    /// <summary>AES-256-GCM inside the primary HSM: a random 96-bit IV, the ciphertext and the 128-bit tag.</summary>
    internal byte[] Seal(string clusterId, string keyId, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData)
    {
        var data = plaintext.ToArray();
        var aad = associatedData.ToArray();
        try
        {
            return Run(() =>
            {
                var (session, token, key) = OpenKey(clusterId, keyId);
                using (session)
                {
                    var iv = RandomNumberGenerator.GetBytes(12);
                    var sealedData = Guard(token, "encrypt", () => session.Encrypt(AesGcm(session, iv, aad), key, data));
                    return (byte[])[.. iv, .. sealedData];
                }
            });
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
        return Run(() =>
        {
            var (session, token, key) = OpenKey(clusterId, keyId);
            using (session)
            {
                if (data.Length < 12 + 16)
                {
                    return null;
                }

                try
                {
                    return session.Decrypt(AesGcm(session, data[..12], aad), key, data[12..]);
                }
                catch (Pkcs11Exception e) when (e.RV is CKR.CKR_ENCRYPTED_DATA_INVALID or CKR.CKR_ENCRYPTED_DATA_LEN_RANGE or CKR.CKR_FUNCTION_FAILED or CKR.CKR_GENERAL_ERROR)
                {
                    // SoftHSM2 reports a GCM tag mismatch as CKR_GENERAL_ERROR.
                    return null;
                }
                catch (Pkcs11Exception e)
                {
                    throw Pkcs11Errors.Map(e, token.ToString(), "decrypt");
                }
            }
        });
    }

    /// <summary>
    /// Takes a backup image of the cluster: every KMS key of its primary HSM, wrapped inside it under the
    /// backup key, stored in the backup vault. The HSM backup schedule calls this (type <c>Auto Create</c>).
    /// </summary>
    /// <param name="clusterId">The cluster.</param>
    /// <param name="type"><c>Auto Create</c> (the default) or manual.</param>
    /// <param name="cancellationToken">Cancels the call before it changes anything.</param>
    /// <returns>The image.</returns>
    public Task<HsmBackupImage> TakeBackupImageAsync(string clusterId, HsmBackupImageType type = HsmBackupImageType.AutoCreate, CancellationToken cancellationToken = default) =>
        RunAsync(() =>
        {
            var cluster = Cluster(clusterId);
            var primary = cluster.Hsms[0].Token;
            JoinBackupDomain([primary]);
            using var session = Session(primary);
            var backupKey = BackupKeyIn(session, primary);
            var entries = new List<(string KeyId, byte[] Wrapped)>();
            try
            {
                foreach (var (keyId, handle) in ListKeys(session))
                {
                    entries.Add((keyId, Guard(primary, "wrap key", () => session.WrapKey(AesKeyWrap(session), backupKey, handle))));
                }

                var image = new HsmBackupImage($"img-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}", clusterId, type, _time.GetUtcNow()) { KeyCount = entries.Count };
                var blob = HsmImageFormat.Write(image, entries);
                try
                {
                    using var vault = Session(_vault);
                    Guard(_vault, "store image", () => WriteData(vault, ImageLabelPrefix + image.ImageId, blob));
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(blob);
                }

                return image;
            }
            finally
            {
                foreach (var (_, wrapped) in entries)
                {
                    CryptographicOperations.ZeroMemory(wrapped);
                }
            }
        }, cancellationToken);

    /// <inheritdoc />
    public override Task<IReadOnlyList<HsmBackupImage>> ListBackupImagesAsync(string clusterId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(clusterId);
        return RunAsync<IReadOnlyList<HsmBackupImage>>(() =>
        {
            // Images outlive their cluster's definition (the cluster may be gone): list them by source ID.
            using var vault = Session(_vault);
            return Guard(_vault, "list images", () => ListData(vault, ImageLabelPrefix)
                .Select(d => HsmImageFormat.ReadHeader(ReadValue(vault, d.Handle)))
                .Where(i => string.Equals(i.ClusterId, clusterId, StringComparison.Ordinal))
                .OrderBy(i => i.TakenAt)
                .ThenBy(i => i.ImageId, StringComparer.Ordinal)
                .ToList());
        }, cancellationToken);
    }

    /// <inheritdoc />
    public override Task<HsmClusterInfo> RestoreImageAsync(string imageId, string targetClusterId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(imageId);
        return RunAsync(() =>
        {
            var target = Cluster(targetClusterId);
            var info = Describe(target);
            if (info.IsInUse)
            {
                throw HardwareRules.CheckRestoreCluster(info, info.Region).First(r => r.Code == BackupErrorCode.ClusterInUse).ToException();
            }

            byte[] blob;
            using (var vault = Session(_vault))
            {
                var handle = FindData(vault, ImageLabelPrefix + imageId) ?? throw new BackupException(new Refusal(
                    BackupErrorCode.HsmImageNotFound, $"image '{imageId}'",
                    $"There is no HSM backup image '{imageId}' in the backup vault.",
                    "List the images of the original cluster and choose the most recent Auto Create one."));
                blob = ReadValue(vault, handle);
            }

            var (_, entries) = HsmImageFormat.Read(blob);
            CryptographicOperations.ZeroMemory(blob);
            try
            {
                JoinBackupDomain(target.Hsms.Select(h => h.Token));
                foreach (var hsm in target.Hsms)
                {
                    using var session = Session(hsm.Token);
                    var backupKey = BackupKeyIn(session, hsm.Token);
                    foreach (var (keyId, wrapped) in entries)
                    {
                        Guard(hsm.Token, "unwrap key", () => session.UnwrapKey(AesKeyWrap(session), backupKey, wrapped, KeyTemplate(session, keyId, withLength: false)));
                    }
                }
            }
            finally
            {
                foreach (var (_, wrapped) in entries)
                {
                    CryptographicOperations.ZeroMemory(wrapped);
                }
            }

            return Describe(target);
        }, cancellationToken);
    }

    /// <inheritdoc />
    public override Task<bool> IsKeyMaterialPresentAsync(string clusterId, string keyId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(keyId);
        return RunAsync(() => Cluster(clusterId).Hsms.All(hsm =>
        {
            using var session = Session(hsm.Token);
            return Guard(hsm.Token, "find key", () => session.FindAllObjects(
                [A(session, CKA.CKA_CLASS, CKO.CKO_SECRET_KEY), A(session, CKA.CKA_ID, IdOf(keyId))]).Count > 0);
        }), cancellationToken);
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
    public override string ToString() => $"PKCS#11 HSM cluster gateway ({_clusters.Count} clusters, vault {_vault})";

    // ---- helpers ----

    private Pkcs11ClusterDefinition Cluster(string clusterId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(clusterId);
        return _clusters.TryGetValue(clusterId, out var cluster) ? cluster : throw new BackupException(new Refusal(
            BackupErrorCode.NotFound, $"cluster '{clusterId}'",
            $"There is no HSM cluster '{clusterId}'.",
            "Add the cluster's definition to the gateway's options."));
    }

    private HsmClusterInfo Describe(Pkcs11ClusterDefinition cluster)
    {
        var primary = cluster.Hsms[0].Token;
        using var session = Session(primary);
        var (enabled, connected) = ReadState(session, primary);
        var holdsKeys = Guard(primary, "list keys", () => ListKeys(session).Count > 0);
        return new HsmClusterInfo
        {
            ClusterId = cluster.ClusterId,
            Region = cluster.Region,
            Mode = cluster.Mode,
            Hsms = cluster.Hsms.Select(h => new HsmInfo(h.HsmId, h.Zone)).ToList(),
            PrimaryHsmId = cluster.Hsms[0].HsmId,
            IsEnabled = enabled,
            IsInUse = connected is not null || holdsKeys,
            ConnectedInstanceId = connected,
            Backup = cluster.Backup,
            OwnerAccount = cluster.OwnerAccount,
        };
    }

    private static (bool Enabled, string? Instance) ReadState(ISession session, Pkcs11TokenAccess token) =>
        Guard(token, "read cluster state", () =>
        {
            if (FindData(session, ClusterStateLabel) is not { } handle)
            {
                return (false, (string?)null);
            }

            var lines = Encoding.UTF8.GetString(ReadValue(session, handle)).Split('\n');
            return (lines[0] == "enabled", lines.Length > 1 && lines[1].Length > 0 ? lines[1] : null);
        });

    private (ISession Session, Pkcs11TokenAccess Token, IObjectHandle Key) OpenKey(string clusterId, string keyId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(keyId);
        var primary = Cluster(clusterId).Hsms[0].Token;
        var session = Session(primary);
        var key = FindKey(session, keyId);
        if (key is null)
        {
            session.Dispose();
            throw new BackupException(new Refusal(
                BackupErrorCode.KeyMaterialMissing, $"key '{keyId}'",
                $"The HSM cluster '{clusterId}' does not hold the material of key '{keyId}'.",
                "Restore an HSM image that holds the key into the cluster."));
        }

        return (session, primary, key);
    }

    /// <summary>An HSM's trusted copy of the backup key; <see cref="JoinBackupDomain"/> made it.</summary>
    private static IObjectHandle BackupKeyIn(ISession session, Pkcs11TokenAccess token) =>
        Guard(token, "find backup key", () => FindMemberBackupKey(session)) ?? throw new BackupException(new Refusal(
            BackupErrorCode.HsmOperationFailed, token.ToString(),
            $"The HSM {token} holds no trusted backup key.",
            "Check that no one removed the backup key from the token; the gateway makes it again when the token next joins the backup domain."));

    /// <summary>
    /// Gives each token that has none its trusted copy of the backup key. Runs before any session of the operation
    /// holds handles: marking a key trusted may need the security officer, and switching a token's login (shared by
    /// every session of the process) from the user to the SO and back invalidates the handles of private objects.
    /// </summary>
    private void JoinBackupDomain(IEnumerable<Pkcs11TokenAccess> tokens)
    {
        foreach (var token in tokens)
        {
            using var session = Session(token);
            if (Guard(token, "find backup key", () => FindMemberBackupKey(session)) is not null)
            {
                continue;
            }

            if (token.SecurityOfficerPin is not { } soPin)
            {
                // Some tokens let the user create a trusted key; SoftHSM2, like most, lets only the SO.
                try
                {
                    Join(session, token, isPrivate: true);
                }
                catch (Pkcs11Exception e) when (e.RV is CKR.CKR_ATTRIBUTE_READ_ONLY or CKR.CKR_ATTRIBUTE_VALUE_INVALID or CKR.CKR_TEMPLATE_INCONSISTENT or CKR.CKR_USER_TYPE_INVALID)
                {
                    throw new BackupException(new Refusal(
                        BackupErrorCode.HsmOperationFailed, token.ToString(),
                        $"The HSM {token} lets only its security officer mark the backup key trusted ({e.RV}), and the gateway has no SO PIN for it; without a trusted backup key no key of the cluster can be copied to another HSM or into a backup image.",
                        "Give the gateway the token's SO PIN (new Pkcs11TokenAccess(label, userPin, soPin)); it is used once, when the token joins the backup domain."), e);
                }
                catch (Pkcs11Exception e)
                {
                    throw Pkcs11Errors.Map(e, token.ToString(), "join backup domain");
                }

                continue;
            }

            // The security officer creates the key, as a public object (the only kind an SO may create).
            Guard(token, "log out", () => session.Logout());
            try
            {
                try
                {
                    session.Login(CKU.CKU_SO, soPin);
                }
                catch (Pkcs11Exception e)
                {
                    throw e.RV is CKR.CKR_PIN_INCORRECT or CKR.CKR_PIN_INVALID or CKR.CKR_PIN_LEN_RANGE or CKR.CKR_PIN_LOCKED or CKR.CKR_PIN_EXPIRED
                        ? new BackupException(new Refusal(
                            BackupErrorCode.HsmLoginFailed, token.ToString(),
                            $"The HSM {token} refused the security officer's login ({e.RV}).",
                            "Check the SO PIN configured for the token."), e)
                        : Pkcs11Errors.Map(e, token.ToString(), "security officer login");
                }

                try
                {
                    Guard(token, "join backup domain", () => Join(session, token, isPrivate: false));
                }
                finally
                {
                    Guard(token, "log out", () => session.Logout());
                }
            }
            finally
            {
                // The user's login again, for the sessions the operation opens next.
                Guard(token, "login", () => session.Login(CKU.CKU_USER, token.UserPin));
            }
        }
    }

    /// <summary>
    /// Unwraps the backup key into the token as its trusted copy: a one-time RSA key pair is made inside the token, the
    /// vault wraps the backup key under its public half (RSA-OAEP), and the token unwraps it with the private half,
    /// which never leaves it.
    /// </summary>
    private void Join(ISession session, Pkcs11TokenAccess token, bool isPrivate)
    {
        // A session key pair: it goes when the caller closes the session, on every path.
        var (publicKey, privateKey) = Guard(token, "generate transport key", () =>
        {
            session.GenerateKeyPair(
                session.Factories.MechanismFactory.Create(CKM.CKM_RSA_PKCS_KEY_PAIR_GEN),
                [A(session, CKA.CKA_TOKEN, false), A(session, CKA.CKA_PRIVATE, false), A(session, CKA.CKA_WRAP, true), A(session, CKA.CKA_ENCRYPT, true), A(session, CKA.CKA_MODULUS_BITS, 2048UL), A(session, CKA.CKA_PUBLIC_EXPONENT, new byte[] { 1, 0, 1 })],
                [A(session, CKA.CKA_TOKEN, false), A(session, CKA.CKA_PRIVATE, isPrivate), A(session, CKA.CKA_SENSITIVE, true), A(session, CKA.CKA_EXTRACTABLE, false), A(session, CKA.CKA_UNWRAP, true), A(session, CKA.CKA_DECRYPT, true)],
                out var pub, out var priv);
            return (pub, priv);
        });
        var parts = Guard(token, "read transport key", () => session.GetAttributeValue(publicKey, [CKA.CKA_MODULUS, CKA.CKA_PUBLIC_EXPONENT]));
        byte[] wrapped;
        using (var vault = Session(_vault))
        {
            wrapped = Guard(_vault, "wrap backup key", () =>
            {
                var transport = vault.CreateObject(
                [
                    A(vault, CKA.CKA_CLASS, CKO.CKO_PUBLIC_KEY), A(vault, CKA.CKA_KEY_TYPE, CKK.CKK_RSA), A(vault, CKA.CKA_TOKEN, false),
                    A(vault, CKA.CKA_WRAP, true), A(vault, CKA.CKA_MODULUS, parts[0].GetValueAsByteArray()), A(vault, CKA.CKA_PUBLIC_EXPONENT, parts[1].GetValueAsByteArray()),
                ]);
                var vaultKey = FindVaultBackupKey(vault) ?? throw new BackupException(new Refusal(
                    BackupErrorCode.NotFound, _vault.ToString(), $"The backup vault {_vault} holds no backup key.", "Open the gateway on the vault the images were taken with."));
                return vault.WrapKey(RsaOaep(vault), transport, vaultKey);
            });
        }

        try
        {
            // Not guarded: the caller tells a token that will not let the user make a trusted key from other failures.
            session.UnwrapKey(RsaOaep(session), privateKey, wrapped, MemberBackupKeyTemplate(session, isPrivate));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(wrapped);
        }
    }

    private void CopyKey(ISession from, Pkcs11TokenAccess fromToken, IObjectHandle key, string keyId, Pkcs11TokenAccess to)
    {
        var wrapped = Guard(fromToken, "wrap key", () => from.WrapKey(AesKeyWrap(from), BackupKeyIn(from, fromToken), key));
        try
        {
            using var session = Session(to);
            var backupKey = BackupKeyIn(session, to);
            if (FindKey(session, keyId) is { } stale)
            {
                session.DestroyObject(stale);
            }

            Guard(to, "unwrap key", () => session.UnwrapKey(AesKeyWrap(session), backupKey, wrapped, KeyTemplate(session, keyId, withLength: false)));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(wrapped);
        }
    }

    private ISession Session(Pkcs11TokenAccess token)
    {
        try
        {
            return _module.OpenSession(token);
        }
        catch (Pkcs11Exception e)
        {
            throw Pkcs11Errors.Map(e, token.ToString(), "open session");
        }
    }

    private static T Guard<T>(Pkcs11TokenAccess token, string operation, Func<T> body)
    {
        try
        {
            return body();
        }
        catch (Pkcs11Exception e)
        {
            throw Pkcs11Errors.Map(e, token.ToString(), operation);
        }
    }

    private static void Guard(Pkcs11TokenAccess token, string operation, Action body) => Guard(token, operation, () =>
    {
        body();
        return true;
    });

    private static BackupException NotDecryptable(string keyId) => new(new Refusal(
        BackupErrorCode.IntegrityViolation, $"key '{keyId}'",
        $"The data cannot be decrypted with key '{keyId}': another key sealed it, or it was altered.",
        "Decrypt with the key that encrypted the data."));

    private T Run<T>(Func<T> body)
    {
        lock (_module.Gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return body();
        }
    }

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

/// <summary>An image as kept in the vault: a small header, then each key ID with its wrapped material.</summary>
internal static class HsmImageFormat
{
    private static readonly byte[] s_magic = "KBHI1"u8.ToArray();

    public static byte[] Write(HsmBackupImage image, IReadOnlyList<(string KeyId, byte[] Wrapped)> entries)
    {
        using var buffer = new MemoryStream();
        buffer.Write(s_magic);
        WriteString(buffer, image.ImageId);
        WriteString(buffer, image.ClusterId);
        buffer.WriteByte((byte)image.Type);
        WriteInt64(buffer, image.TakenAt.UtcTicks);
        WriteInt64(buffer, entries.Count);
        foreach (var (keyId, wrapped) in entries)
        {
            WriteString(buffer, keyId);
            WriteInt64(buffer, wrapped.Length);
            buffer.Write(wrapped);
        }

        return buffer.ToArray();
    }

    public static HsmBackupImage ReadHeader(byte[] blob) => Read(blob, withEntries: false).Image;

    public static (HsmBackupImage Image, List<(string KeyId, byte[] Wrapped)> Entries) Read(byte[] blob) => Read(blob, withEntries: true);

    private static (HsmBackupImage Image, List<(string KeyId, byte[] Wrapped)> Entries) Read(byte[] blob, bool withEntries)
    {
        try
        {
            var span = blob.AsSpan();
            if (!span.StartsWith(s_magic))
            {
                throw Damaged();
            }

            var at = s_magic.Length;
            var imageId = ReadString(span, ref at);
            var clusterId = ReadString(span, ref at);
            var type = (HsmBackupImageType)span[at++];
            var takenAt = new DateTimeOffset(ReadInt64(span, ref at), TimeSpan.Zero);
            var count = checked((int)ReadInt64(span, ref at));
            var entries = new List<(string, byte[])>();
            if (withEntries)
            {
                for (var i = 0; i < count; i++)
                {
                    var keyId = ReadString(span, ref at);
                    var length = checked((int)ReadInt64(span, ref at));
                    entries.Add((keyId, span.Slice(at, length).ToArray()));
                    at += length;
                }
            }

            return (new HsmBackupImage(imageId, clusterId, type, takenAt) { KeyCount = count }, entries);
        }
        catch (Exception e) when (e is ArgumentOutOfRangeException or IndexOutOfRangeException or OverflowException or DecoderFallbackException)
        {
            throw Damaged();
        }
    }

    private static BackupIntegrityException Damaged() => new(new Refusal(
        BackupErrorCode.IntegrityViolation, "HSM backup image", "An HSM backup image in the vault is damaged.", "Restore another image."));

    private static void WriteString(Stream s, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        WriteInt64(s, bytes.Length);
        s.Write(bytes);
    }

    private static void WriteInt64(Stream s, long value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(b, value);
        s.Write(b);
    }

    private static string ReadString(ReadOnlySpan<byte> span, ref int at)
    {
        var length = checked((int)ReadInt64(span, ref at));
        var value = Encoding.UTF8.GetString(span.Slice(at, length));
        at += length;
        return value;
    }

    private static long ReadInt64(ReadOnlySpan<byte> span, ref int at)
    {
        var value = BinaryPrimitives.ReadInt64BigEndian(span.Slice(at, 8));
        at += 8;
        return value;
    }
}
