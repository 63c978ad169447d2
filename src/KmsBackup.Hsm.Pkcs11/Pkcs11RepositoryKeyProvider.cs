using System.Security.Cryptography;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using static KmsBackup.Hsm.Pkcs11.Pkcs11Objects;

namespace KmsBackup.Hsm.Pkcs11;

/// <summary>
/// A <see cref="RepositoryKeyProvider"/> whose key-encryption key is an AES-256 key inside a PKCS#11
/// token, generated there, sensitive and not extractable: the repository's keys are wrapped and
/// unwrapped by AES-GCM inside the HSM, and the key-encryption key never leaves it. Losing the token
/// (or its PIN) loses the repository.
/// </summary>
public sealed class Pkcs11RepositoryKeyProvider : RepositoryKeyProvider, IDisposable
{
    /// <summary>The label the key-encryption key has unless another is given.</summary>
    public const string DefaultKeyLabel = "kmsbackup:repository-kek";

    private static readonly byte[] s_associatedData = "kmsbackup/repository-key/pkcs11/v1"u8.ToArray();
    private readonly Pkcs11Module _module;
    private readonly Pkcs11TokenAccess _token;
    private readonly string _keyLabel;
    private bool _disposed;

    private Pkcs11RepositoryKeyProvider(Pkcs11Module module, Pkcs11TokenAccess token, string keyLabel, string keyId)
    {
        _module = module;
        _token = token;
        _keyLabel = keyLabel;
        KeyId = keyId;
    }

    /// <summary>Names the token and the key's random <c>CKA_ID</c>, never the key.</summary>
    public override string KeyId { get; }

    /// <summary>Opens the key-encryption key labelled <paramref name="keyLabel"/> in the token, generating it there when absent.</summary>
    /// <param name="libraryPath">The PKCS#11 library, e.g. <see cref="Pkcs11HsmClusterGatewayOptions.DefaultLibraryPath"/>.</param>
    /// <param name="token">The token and its user PIN.</param>
    /// <param name="keyLabel">The key's label; default <see cref="DefaultKeyLabel"/>.</param>
    /// <returns>The provider; dispose of it to release the library.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.HsmLibraryNotFound"/>, <see cref="BackupErrorCode.HsmTokenNotFound"/>,
    /// <see cref="BackupErrorCode.HsmLoginFailed"/> or <see cref="BackupErrorCode.HsmOperationFailed"/>.</exception>
    public static Pkcs11RepositoryKeyProvider Open(string libraryPath, Pkcs11TokenAccess token, string keyLabel = DefaultKeyLabel)
    {
        ArgumentNullException.ThrowIfNull(token);
        ArgumentException.ThrowIfNullOrWhiteSpace(keyLabel);
        var module = Pkcs11Module.Acquire(libraryPath);
        try
        {
            lock (module.Gate)
            {
                using var session = module.OpenSession(token);
                var id = Guarded(token, "open key", () =>
                {
                    var key = FindSecretKey(session, keyLabel) ?? session.GenerateKey(session.Factories.MechanismFactory.Create(CKM.CKM_AES_KEY_GEN),
                    [
                        A(session, CKA.CKA_CLASS, CKO.CKO_SECRET_KEY), A(session, CKA.CKA_KEY_TYPE, CKK.CKK_AES), A(session, CKA.CKA_VALUE_LEN, 32UL),
                        A(session, CKA.CKA_TOKEN, true), A(session, CKA.CKA_PRIVATE, true), A(session, CKA.CKA_SENSITIVE, true), A(session, CKA.CKA_EXTRACTABLE, false),
                        A(session, CKA.CKA_ENCRYPT, true), A(session, CKA.CKA_DECRYPT, true), A(session, CKA.CKA_LABEL, keyLabel),
                        A(session, CKA.CKA_ID, RandomNumberGenerator.GetBytes(8)),
                    ]);
                    return session.GetAttributeValue(key, [CKA.CKA_ID])[0].GetValueAsByteArray() ?? [];
                });
                return new Pkcs11RepositoryKeyProvider(module, token, keyLabel, $"pkcs11:{token.TokenLabel}:{Convert.ToHexStringLower(id)}");
            }
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public override Task<byte[]> WrapAsync(ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var plain = key.ToArray();
        try
        {
            return Task.FromResult(WithKey("wrap", (session, kek) =>
            {
                var iv = RandomNumberGenerator.GetBytes(12);
                return (byte[])[.. iv, .. session.Encrypt(AesGcm(session, iv, s_associatedData), kek, plain)];
            }));
        }
        catch (Exception e)
        {
            return Task.FromException<byte[]>(e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    /// <inheritdoc />
    public override Task<SensitiveBytes> UnwrapAsync(ReadOnlyMemory<byte> wrappedKey, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            if (wrappedKey.Length < 12 + 16)
            {
                throw Unwrappable();
            }

            var data = wrappedKey.ToArray();
            return Task.FromResult(WithKey("unwrap", (session, kek) =>
            {
                try
                {
                    return SensitiveBytes.Own(session.Decrypt(AesGcm(session, data[..12], s_associatedData), kek, data[12..]));
                }
                catch (Pkcs11Exception e) when (e.RV is CKR.CKR_ENCRYPTED_DATA_INVALID or CKR.CKR_ENCRYPTED_DATA_LEN_RANGE or CKR.CKR_FUNCTION_FAILED or CKR.CKR_GENERAL_ERROR)
                {
                    throw Unwrappable();
                }
            }));
        }
        catch (Exception e)
        {
            return Task.FromException<SensitiveBytes>(e);
        }
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

    /// <summary>The provider in one line: its key ID, never a PIN or key.</summary>
    public override string ToString() => $"PKCS#11 repository key provider ({KeyId})";

    private T WithKey<T>(string operation, Func<ISession, IObjectHandle, T> body)
    {
        lock (_module.Gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            using var session = _module.OpenSession(_token);
            return Guarded(_token, operation, () =>
            {
                var kek = FindSecretKey(session, _keyLabel) ?? throw new BackupException(new Refusal(
                    BackupErrorCode.NotFound, _token.ToString(),
                    $"The {_token} no longer holds the repository key-encryption key '{_keyLabel}'.",
                    "Use the token the repository was created with."));
                return body(session, kek);
            });
        }
    }

    private static T Guarded<T>(Pkcs11TokenAccess token, string operation, Func<T> body)
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

    private BackupIntegrityException Unwrappable() => new(new Refusal(
        BackupErrorCode.IntegrityViolation, "repository key",
        $"The repository key cannot be unwrapped with the key '{KeyId}': wrong token or key, or a damaged config.",
        "Use the token and key the repository was created with."));
}
