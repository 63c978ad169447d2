using System.Security.Cryptography;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using static KmsBackup.Hsm.Pkcs11.Pkcs11Errors;
using static KmsBackup.Hsm.Pkcs11.Pkcs11Objects;

namespace KmsBackup.Hsm.Pkcs11;

/// <summary>
/// The backup domain: the backup key, generated in the backup vault, and each HSM's trusted copy of it, which
/// the HSM gets when it joins. A KMS key leaves an HSM only wrapped under that key (AES key wrap, RFC 3394,
/// inside the token): to another HSM of its cluster, or into a backup image. Callers hold the module's gate.
/// </summary>
/// <param name="sessions">The gateway's tokens.</param>
internal sealed class BackupDomain(TokenSessions sessions)
{
    /// <summary>Generates the vault's copy of the backup key when the vault has none.</summary>
    public void EnsureVaultKey()
    {
        using var session = sessions.OpenVault();
        Guard(sessions.Vault, "generate backup key", () =>
        {
            if (FindVaultBackupKey(session) is null)
            {
                session.GenerateKey(session.Factories.MechanismFactory.Create(CKM.CKM_AES_KEY_GEN), BackupKeyTemplate(session, withLength: true));
            }
        });
    }

    /// <summary>An HSM's trusted copy of the backup key; <see cref="Join"/> made it.</summary>
    public static IObjectHandle KeyIn(ISession session, Pkcs11TokenAccess token) =>
        Guard(token, "find backup key", () => FindMemberBackupKey(session)) ?? throw new BackupException(new Refusal(
            BackupErrorCode.HsmOperationFailed, token.ToString(),
            $"The HSM {token} holds no trusted backup key.",
            "Check that no one removed the backup key from the token; the gateway makes it again when the token next joins the backup domain."));

    /// <summary>
    /// Gives each token that has none its trusted copy of the backup key. Runs before any session of the operation
    /// holds handles: marking a key trusted may need the security officer, and switching a token's login (shared by
    /// every session of the process) from the user to the SO and back invalidates the handles of private objects.
    /// </summary>
    public void Join(IEnumerable<Pkcs11TokenAccess> tokens)
    {
        foreach (var token in tokens)
        {
            using var session = sessions.Open(token);
            if (Guard(token, "find backup key", () => FindMemberBackupKey(session)) is not null)
            {
                continue;
            }

            if (token.SecurityOfficerPin is not { } soPin)
            {
                // Some tokens let the user create a trusted key; SoftHSM2, like most, lets only the SO.
                try
                {
                    ReceiveKey(session, token, isPrivate: true);
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
                    throw Map(e, token.ToString(), "join backup domain");
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
                        : Map(e, token.ToString(), "security officer login");
                }

                try
                {
                    Guard(token, "join backup domain", () => ReceiveKey(session, token, isPrivate: false));
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
    /// Copies a KMS key from one HSM to another: wrapped under the backup key inside the first, unwrapped inside the
    /// second (replacing a stale copy there). Both HSMs have joined the domain.
    /// </summary>
    public void CopyKey(ISession from, Pkcs11TokenAccess fromToken, IObjectHandle key, string keyId, Pkcs11TokenAccess to)
    {
        var wrapped = Guard(fromToken, "wrap key", () => from.WrapKey(AesKeyWrap(from), KeyIn(from, fromToken), key));
        try
        {
            using var session = sessions.Open(to);
            var backupKey = KeyIn(session, to);
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

    /// <summary>
    /// Unwraps the backup key into the token as its trusted copy: a one-time RSA key pair is made inside the token, the
    /// vault wraps the backup key under its public half (RSA-OAEP), and the token unwraps it with the private half,
    /// which never leaves it.
    /// </summary>
    private void ReceiveKey(ISession session, Pkcs11TokenAccess token, bool isPrivate)
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
        var vaultToken = sessions.Vault;
        byte[] wrapped;
        using (var vault = sessions.OpenVault())
        {
            wrapped = Guard(vaultToken, "wrap backup key", () =>
            {
                var transport = vault.CreateObject(
                [
                    A(vault, CKA.CKA_CLASS, CKO.CKO_PUBLIC_KEY), A(vault, CKA.CKA_KEY_TYPE, CKK.CKK_RSA), A(vault, CKA.CKA_TOKEN, false),
                    A(vault, CKA.CKA_WRAP, true), A(vault, CKA.CKA_MODULUS, parts[0].GetValueAsByteArray()), A(vault, CKA.CKA_PUBLIC_EXPONENT, parts[1].GetValueAsByteArray()),
                ]);
                var vaultKey = FindVaultBackupKey(vault) ?? throw new BackupException(new Refusal(
                    BackupErrorCode.NotFound, vaultToken.ToString(), $"The backup vault {vaultToken} holds no backup key.", "Open the gateway on the vault the images were taken with."));
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
}
