namespace KmsBackup;

// Several key providers per repository (docs/repository-format.md, "Key providers"): list, add, remove.
public partial class BackupClient
{
    /// <summary>
    /// Lists the repository's key providers: each one's kind, key ID and when it was added, never key material. A
    /// repository that never had a provider added lists the one it was created with (with no date). Changes nothing.
    /// </summary>
    /// <param name="cancellationToken">Cancels the listing.</param>
    /// <returns>The providers, oldest first.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    public virtual Task<IReadOnlyList<RepositoryKeyProviderInfo>> ListKeyProvidersAsync(CancellationToken cancellationToken = default) =>
        _maintenance.ListKeyProvidersAsync(cancellationToken);

    /// <summary>
    /// Adds a key provider: the repository's keyring secret is wrapped under <paramref name="provider"/> into a record of
    /// its own, after which the repository opens with it alone. No data object is re-encrypted or rewritten. The first
    /// provider added to a repository created before key providers existed moves it to the keyring first (the provider it
    /// was opened with stays registered); see docs/repository-format.md, "Key providers".
    /// </summary>
    /// <param name="provider">The provider to add: a <see cref="KeyFileRepositoryKeyProvider"/>, a PKCS#11 provider, a
    /// <see cref="PassphraseRepositoryKeyProvider"/> or a <see cref="RecoveryKeyRepositoryKeyProvider"/>.</param>
    /// <param name="cancellationToken">Cancels the call; a record is stored whole or not at all.</param>
    /// <returns>The provider as <see cref="ListKeyProvidersAsync"/> lists it.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="provider"/> is <see langword="null"/>.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.KeyProviderAlreadyRegistered"/>: it is registered already.
    /// <see cref="BackupErrorCode.KeyProviderNotRegistered"/>: this client's own provider was removed by another host.</exception>
    public virtual Task<RepositoryKeyProviderInfo> AddKeyProviderAsync(RepositoryKeyProvider provider, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(provider);
        return _maintenance.AddKeyProviderAsync(provider, cancellationToken);
    }

    /// <summary>
    /// Removes the key provider <paramref name="keyId"/>: its record is deleted, and the repository no longer opens with it.
    /// The last provider is never removed, also when two hosts remove the last two at once (a store lease orders them).
    /// </summary>
    /// <remarks>
    /// Removing is not revoking: a copy of the store taken before, or the config of a repository created before key
    /// providers existed (wrapped by its first provider), still opens with the removed key. To shut out a key that leaked,
    /// start a new repository and copy into it.
    /// </remarks>
    /// <param name="keyId">The provider's key ID, as <see cref="ListKeyProvidersAsync"/> lists it.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="ArgumentException"><paramref name="keyId"/> is empty.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.LastKeyProvider"/>: it is the last provider.
    /// <see cref="BackupErrorCode.NotFound"/>: no provider has that key ID.
    /// <see cref="BackupErrorCode.LeaseHeld"/>: another host is removing a provider right now; try again.</exception>
    public virtual Task RemoveKeyProviderAsync(string keyId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(keyId);
        return _maintenance.RemoveKeyProviderAsync(keyId, cancellationToken);
    }
}

/// <summary>One of a repository's key providers, as <see cref="BackupClient.ListKeyProvidersAsync"/> lists it: never key material.</summary>
/// <param name="Kind">The provider's kind: <c>keyfile</c>, <c>pkcs11</c>, <c>passphrase</c>, <c>recovery</c> (<see cref="RepositoryKeyProvider.Kind"/>).</param>
/// <param name="KeyId">The provider's key ID (<see cref="RepositoryKeyProvider.KeyId"/>): what <see cref="BackupClient.RemoveKeyProviderAsync"/> takes.</param>
/// <param name="AddedAt">When it was added; <see langword="null"/> for the provider a repository was created with before key providers existed.</param>
public sealed record RepositoryKeyProviderInfo(string Kind, string KeyId, DateTimeOffset? AddedAt);
