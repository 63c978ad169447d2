using System.Security.Cryptography;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using static KmsBackup.Hsm.Pkcs11.Pkcs11Errors;
using static KmsBackup.Hsm.Pkcs11.Pkcs11Objects;

namespace KmsBackup.Hsm.Pkcs11;

/// <summary>
/// The KMS keys of a cluster: generated inside its primary HSM (<c>CKA_ID</c> the key ID) and copied, wrapped, to
/// its other HSMs; used for AES-256-GCM inside the primary; present when every HSM holds them. Their material is
/// sensitive: no HSM ever returns it in plaintext. Callers hold the module's gate.
/// </summary>
/// <param name="sessions">The gateway's tokens.</param>
/// <param name="clusters">The gateway's clusters.</param>
/// <param name="domain">The backup domain, under whose key the keys are copied.</param>
internal sealed class ClusterKeys(TokenSessions sessions, ClusterDirectory clusters, BackupDomain domain)
{
    /// <summary>Generates the key in the cluster's primary HSM and copies it to the others.</summary>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NameConflict"/>: the key exists; or an HSM error.</exception>
    public void Generate(string clusterId, string keyId)
    {
        var cluster = clusters.Get(clusterId);
        var primary = cluster.Hsms[0].Token;
        if (cluster.Hsms.Count > 1)
        {
            // The key is copied to the other HSMs wrapped under the backup key: every HSM needs its trusted copy.
            domain.Join(cluster.Hsms.Select(h => h.Token));
        }

        using var session = sessions.Open(primary);
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
            domain.CopyKey(session, primary, handle, keyId, other.Token);
        }
    }

    /// <summary>AES-256-GCM inside the primary HSM: a random 96-bit IV, the ciphertext and the 128-bit tag.</summary>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.KeyMaterialMissing"/>: the cluster does not hold the key; or an HSM error.</exception>
    public byte[] Seal(string clusterId, string keyId, byte[] plaintext, byte[] associatedData)
    {
        var (session, token, key) = OpenKey(clusterId, keyId);
        using (session)
        {
            var iv = RandomNumberGenerator.GetBytes(12);
            var sealedData = Guard(token, "encrypt", () => session.Encrypt(AesGcm(session, iv, associatedData), key, plaintext));
            return [.. iv, .. sealedData];
        }
    }

    /// <summary>Opens what <see cref="Seal"/> sealed; <see langword="null"/> when authentication fails.</summary>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.KeyMaterialMissing"/>: the cluster does not hold the key; or an HSM error.</exception>
    public byte[]? Open(string clusterId, string keyId, byte[] sealedData, byte[] associatedData)
    {
        var (session, token, key) = OpenKey(clusterId, keyId);
        using (session)
        {
            if (sealedData.Length < 12 + 16)
            {
                return null;
            }

            try
            {
                return session.Decrypt(AesGcm(session, sealedData[..12], associatedData), key, sealedData[12..]);
            }
            catch (Pkcs11Exception e) when (e.RV is CKR.CKR_ENCRYPTED_DATA_INVALID or CKR.CKR_ENCRYPTED_DATA_LEN_RANGE or CKR.CKR_FUNCTION_FAILED or CKR.CKR_GENERAL_ERROR)
            {
                // SoftHSM2 reports a GCM tag mismatch as CKR_GENERAL_ERROR.
                return null;
            }
            catch (Pkcs11Exception e)
            {
                throw Map(e, token.ToString(), "decrypt");
            }
        }
    }

    /// <summary>Whether every HSM of the cluster holds the key (by <c>CKA_ID</c>).</summary>
    public bool IsPresent(string clusterId, string keyId) => clusters.Get(clusterId).Hsms.All(hsm =>
    {
        using var session = sessions.Open(hsm.Token);
        return Guard(hsm.Token, "find key", () => session.FindAllObjects(
            [A(session, CKA.CKA_CLASS, CKO.CKO_SECRET_KEY), A(session, CKA.CKA_ID, IdOf(keyId))]).Count > 0);
    });

    /// <summary>A session on the cluster's primary HSM and the key in it; the caller disposes of the session.</summary>
    private (ISession Session, Pkcs11TokenAccess Token, IObjectHandle Key) OpenKey(string clusterId, string keyId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(keyId);
        var primary = clusters.Get(clusterId).Hsms[0].Token;
        var session = sessions.Open(primary);
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
}
