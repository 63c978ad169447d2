using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace KmsBackup.Hsm.Pkcs11;

/// <summary>
/// Sessions on the tokens of one gateway, the backup vault among them. Callers hold the module's gate
/// (<see cref="Pkcs11Module.Gate"/>), as every call of the gateway does.
/// </summary>
/// <param name="module">The loaded PKCS#11 library.</param>
/// <param name="vault">The backup vault token.</param>
internal sealed class TokenSessions(Pkcs11Module module, Pkcs11TokenAccess vault)
{
    /// <summary>The backup vault: it keeps the backup key's extractable copy and the backup images.</summary>
    public Pkcs11TokenAccess Vault { get; } = vault;

    /// <summary>A read-write session on the token, its user logged in; a failure is a typed error naming the token.</summary>
    public ISession Open(Pkcs11TokenAccess token)
    {
        try
        {
            return module.OpenSession(token);
        }
        catch (Pkcs11Exception e)
        {
            throw Pkcs11Errors.Map(e, token.ToString(), "open session");
        }
    }

    /// <summary>A session on the backup vault.</summary>
    public ISession OpenVault() => Open(Vault);
}
