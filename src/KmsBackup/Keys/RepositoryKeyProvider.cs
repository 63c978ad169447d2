namespace KmsBackup;

/// <summary>
/// Guards the key that encrypts a repository's data at rest: the repository's own random keys are
/// stored only wrapped (encrypted) by the provider's key-encryption key, held in a key file or an HSM.
/// </summary>
public abstract class RepositoryKeyProvider
{
    /// <summary>For subclasses.</summary>
    protected RepositoryKeyProvider()
    {
    }

    /// <summary>Identifies the key-encryption key, so that a repository records which key wrapped it (never the key itself).</summary>
    public abstract string KeyId { get; }

    /// <summary>
    /// What kind of provider this is, as <c>kmsbackup keys list</c> shows it: by default the part of <see cref="KeyId"/>
    /// before its first colon (<c>keyfile</c>, <c>pkcs11</c>, <c>passphrase</c>, <c>recovery</c>).
    /// </summary>
    public virtual string Kind => KeyId.IndexOf(':', StringComparison.Ordinal) is var colon and > 0 ? KeyId[..colon] : KeyId;

    /// <summary>
    /// Whether this provider may be able to unwrap what the provider named <paramref name="keyId"/> wrapped: by default
    /// only when it is that provider. A provider whose key ID cannot be known before it reads its record (a passphrase
    /// provider, whose salt is in the record) accepts every record of its kind, and opening tries each.
    /// </summary>
    /// <param name="keyId">The key ID a repository recorded for one of its providers.</param>
    /// <returns>Whether opening should try that provider's record with this provider.</returns>
    public virtual bool Accepts(string keyId) => string.Equals(keyId, KeyId, StringComparison.Ordinal);

    /// <summary>Encrypts <paramref name="key"/> under the key-encryption key.</summary>
    /// <param name="key">The key to wrap.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The wrapped key, safe to store.</returns>
    public abstract Task<byte[]> WrapAsync(ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default);

    /// <summary>Decrypts a key wrapped by <see cref="WrapAsync"/>.</summary>
    /// <param name="wrappedKey">The wrapped key.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The key; clear it when done.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.IntegrityViolation"/>: wrong key-encryption key or a damaged wrapped key.</exception>
    public abstract Task<SensitiveBytes> UnwrapAsync(ReadOnlyMemory<byte> wrappedKey, CancellationToken cancellationToken = default);
}
