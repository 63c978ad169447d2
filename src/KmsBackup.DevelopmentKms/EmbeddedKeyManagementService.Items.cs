using System.Security.Cryptography;

namespace KmsBackup.DevelopmentKms;

// The embedded service's keys and secrets, as a key management service's own API offers them.
public sealed partial class EmbeddedKeyManagementService
{
    // ---- Keys ------------------------------------------------------------------------------

    /// <summary>
    /// Creates a key: for a software instance with 256 random bits of AES key material, for a hardware
    /// instance with its metadata only (the material would be in the HSM cluster).
    /// </summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="name">The key's name, unique among the keys of the instance's region.</param>
    /// <param name="creatorAccount">The account that creates it: the instance's owner or a consumer it is shared with.</param>
    /// <param name="description">A description, or <see langword="null"/>.</param>
    /// <param name="cancellationToken">Cancels the call before it changes anything.</param>
    /// <returns>The new key (a copy: clearing its material does not touch the service's).</returns>
    /// <exception cref="ArgumentException">The name is empty, longer than 256 characters or holds control characters.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>, <see cref="BackupErrorCode.InstanceNotEnabled"/>,
    /// <see cref="BackupErrorCode.AccessDenied"/>, <see cref="BackupErrorCode.NameConflict"/>, <see cref="BackupErrorCode.InsufficientQuota"/>
    /// or <see cref="BackupErrorCode.StoreUnavailable"/>; nothing is created then.</exception>
    public Task<KeyRecord> GenerateKeyAsync(string instanceId, string name, string creatorAccount, string? description = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ValidateName(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(creatorAccount);
        return Run(() =>
        {
            var state = Get(instanceId);
            RequireUsable(state);
            RequireMayCreate(state, creatorAccount);
            RequireNameFree(state, ItemType.Key, name);
            RequireQuota(state, ItemType.Key, name);
            var now = _time.GetUtcNow();
            string id;
            do
            {
                id = "key-" + RandomNumberGenerator.GetHexString(32, lowercase: true);
            }
            while (state.KeyNamesById.ContainsKey(id));

            if (state.Kind == InstanceKind.Hardware)
            {
                // The material is made in the instance's HSM cluster; the service keeps the metadata only.
                _hardwareKeys?.GenerateKey(state.Id, id);
            }

            var key = new KeyRecord(id, name, KeySpec, creatorAccount, now, [NewKeyVersion(state, now)]) { Description = description };
            CommitOrClear(state.WithKey(new StoredKey(key, null), _logCapacity), key.Versions[0]);
            return CopyOf(key);
        }, cancellationToken);
    }

    /// <summary>Rotates a key: adds a version (with new material in a software instance) that encrypts from now on; older versions still decrypt.</summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="name">The key's name.</param>
    /// <param name="cancellationToken">Cancels the call before it changes anything.</param>
    /// <returns>The key with its new version (a copy).</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>, <see cref="BackupErrorCode.InstanceNotEnabled"/>
    /// or <see cref="BackupErrorCode.StoreUnavailable"/>; nothing changes then.</exception>
    public Task<KeyRecord> RotateKeyAsync(string instanceId, string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(name);
        return Run(() =>
        {
            var state = Get(instanceId);
            RequireUsable(state);
            var old = FindKey(state, name).Record;
            var version = NewKeyVersion(state, _time.GetUtcNow(), old.Versions);
            var key = new KeyRecord(old.Id, old.Name, old.Spec, old.CreatorAccount, old.CreatedAt, [.. old.Versions, version]) { Description = old.Description };
            CommitOrClear(state.WithKey(new StoredKey(key, null), _logCapacity), version);
            return CopyOf(key);
        }, cancellationToken);
    }

    /// <summary>
    /// Deletes a key and its material. Secrets it encrypts stay, but cannot be read until the key is
    /// restored (from a backup) into the instance.
    /// </summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="name">The key's name.</param>
    /// <param name="cancellationToken">Cancels the call before it changes anything.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>, <see cref="BackupErrorCode.InstanceNotEnabled"/>
    /// or <see cref="BackupErrorCode.StoreUnavailable"/>; nothing changes then.</exception>
    public Task DeleteKeyAsync(string instanceId, string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(name);
        return Run(() =>
        {
            var state = Get(instanceId);
            RequireUsable(state);
            var key = FindKey(state, name);
            Commit(state.WithoutKey(name, _logCapacity));
            SensitiveValues.Clear(key.Record);
            return true;
        }, cancellationToken);
    }

    /// <summary>Reads a key, material included.</summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="name">The key's name.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A copy of the key, or <see langword="null"/> when the instance has no key of that name.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such instance.</exception>
    public Task<KeyRecord?> GetKeyAsync(string instanceId, string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(name);
        return Run(() => Get(instanceId).Keys.TryGetValue(name, out var key) ? CopyOf(key.Record) : null, cancellationToken);
    }

    /// <summary>Encrypts data with the current version of a key (AES-256-GCM; the ciphertext names the key and version).</summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="keyName">The key's name.</param>
    /// <param name="plaintext">The data.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The ciphertext, for <see cref="DecryptAsync"/> in any instance that holds the key.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>, <see cref="BackupErrorCode.InstanceNotEnabled"/>,
    /// or <see cref="BackupErrorCode.OperationNotSupported"/> (a hardware key, whose material is in the HSM cluster).</exception>
    public Task<byte[]> EncryptAsync(string instanceId, string keyName, ReadOnlyMemory<byte> plaintext, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(keyName);
        return Run(() =>
        {
            var state = Get(instanceId);
            RequireUsable(state);
            return EncryptWith(state, FindKey(state, keyName).Record, plaintext.Span, EmbeddedCiphertext.DataContext);
        }, cancellationToken);
    }

    /// <summary>Decrypts data that <see cref="EncryptAsync"/> encrypted, with the key version the ciphertext names.</summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="ciphertext">The ciphertext.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The data; clear it when done.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>, <see cref="BackupErrorCode.InstanceNotEnabled"/>,
    /// <see cref="BackupErrorCode.EncryptionKeyMissing"/> (the key or version is not in the instance),
    /// <see cref="BackupErrorCode.IntegrityViolation"/> (altered or foreign ciphertext) or <see cref="BackupErrorCode.OperationNotSupported"/>.</exception>
    public Task<SensitiveBytes> DecryptAsync(string instanceId, ReadOnlyMemory<byte> ciphertext, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        return Run(() =>
        {
            var state = Get(instanceId);
            RequireUsable(state);
            return DecryptWith(state, ciphertext.Span, EmbeddedCiphertext.DataContext, "the data");
        }, cancellationToken);
    }

    // ---- Secrets ---------------------------------------------------------------------------

    /// <summary>Creates a secret whose first version is <paramref name="value"/>, encrypted under the current version of a key of the same instance. Only the ciphertext is kept.</summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="name">The secret's name, unique among the secrets of the instance's region.</param>
    /// <param name="encryptionKeyName">The name of the key, in the same instance, that encrypts the secret's values.</param>
    /// <param name="value">The secret value.</param>
    /// <param name="creatorAccount">The account that creates it: the instance's owner or a consumer it is shared with.</param>
    /// <param name="description">A description, or <see langword="null"/>.</param>
    /// <param name="cancellationToken">Cancels the call before it changes anything.</param>
    /// <returns>The new secret (its version holds the ciphertext, never the value).</returns>
    /// <exception cref="ArgumentException">The name is empty, longer than 256 characters or holds control characters.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/> (instance or key), <see cref="BackupErrorCode.InstanceNotEnabled"/>,
    /// <see cref="BackupErrorCode.AccessDenied"/>, <see cref="BackupErrorCode.NameConflict"/>, <see cref="BackupErrorCode.InsufficientQuota"/>,
    /// <see cref="BackupErrorCode.OperationNotSupported"/> (a hardware instance) or <see cref="BackupErrorCode.StoreUnavailable"/>; nothing is created then.</exception>
    public Task<SecretRecord> StoreSecretAsync(string instanceId, string name, string encryptionKeyName, ReadOnlyMemory<byte> value, string creatorAccount, string? description = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ValidateName(name);
        ArgumentNullException.ThrowIfNull(encryptionKeyName);
        ArgumentException.ThrowIfNullOrWhiteSpace(creatorAccount);
        return Run(() =>
        {
            var state = Get(instanceId);
            RequireUsable(state);
            RequireMayCreate(state, creatorAccount);
            if (state.Kind == InstanceKind.Hardware && _hardwareKeys is null)
            {
                throw EmbeddedRefusals.HardwareSecretNotSupported(name, state.Id);
            }

            RequireNameFree(state, ItemType.Secret, name);
            RequireQuota(state, ItemType.Secret, name);
            var key = FindKey(state, encryptionKeyName).Record;
            var now = _time.GetUtcNow();
            const string versionId = "v1";
            var ciphertext = EncryptWith(state, key, value.Span, EmbeddedCiphertext.SecretContext(name, versionId));
            var secret = new SecretRecord(name, key.Id, creatorAccount, now, [new SecretVersion(versionId, now, SensitiveBytes.Own(ciphertext))]) { Description = description };
            Commit(state.WithSecret(new StoredSecret(secret, null), _logCapacity));
            return CopyOf(secret);
        }, cancellationToken);
    }

    /// <summary>Puts a new value into a secret (a rotation): a new version, encrypted under the current version of the secret's key.</summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="name">The secret's name.</param>
    /// <param name="value">The new value.</param>
    /// <param name="cancellationToken">Cancels the call before it changes anything.</param>
    /// <returns>The secret with its new version.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>, <see cref="BackupErrorCode.InstanceNotEnabled"/>,
    /// <see cref="BackupErrorCode.EncryptionKeyMissing"/> (its key was deleted), <see cref="BackupErrorCode.OperationNotSupported"/>
    /// or <see cref="BackupErrorCode.StoreUnavailable"/>; nothing changes then.</exception>
    public Task<SecretRecord> PutSecretValueAsync(string instanceId, string name, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(name);
        return Run(() =>
        {
            var state = Get(instanceId);
            RequireUsable(state);
            var old = FindSecret(state, name).Record;
            var key = state.FindKeyById(old.EncryptionKeyId)?.Record ?? throw EmbeddedRefusals.EncryptionKeyMissing(name, old.EncryptionKeyId, state.Id);
            var versionId = NextSecretVersionId(old);
            var ciphertext = EncryptWith(state, key, value.Span, EmbeddedCiphertext.SecretContext(name, versionId));
            var secret = new SecretRecord(old.Name, old.EncryptionKeyId, old.CreatorAccount, old.CreatedAt,
                [.. old.Versions, new SecretVersion(versionId, _time.GetUtcNow(), SensitiveBytes.Own(ciphertext))]) { Description = old.Description };
            Commit(state.WithSecret(new StoredSecret(secret, null), _logCapacity));
            return CopyOf(secret);
        }, cancellationToken);
    }

    /// <summary>Reads (decrypts) a secret's value: the current version's, or the given version's.</summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="name">The secret's name.</param>
    /// <param name="versionId">A version ID, or <see langword="null"/> for the current version.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The value; clear it when done.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/> (instance, secret or version), <see cref="BackupErrorCode.InstanceNotEnabled"/>,
    /// <see cref="BackupErrorCode.EncryptionKeyMissing"/> (the key or its version is not in the instance),
    /// <see cref="BackupErrorCode.IntegrityViolation"/> or <see cref="BackupErrorCode.OperationNotSupported"/>.</exception>
    public Task<SensitiveBytes> GetSecretValueAsync(string instanceId, string name, string? versionId = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(name);
        return Run(() =>
        {
            var state = Get(instanceId);
            RequireUsable(state);
            var secret = FindSecret(state, name).Record;
            var version = versionId is null
                ? secret.CurrentVersion
                : secret.Versions.FirstOrDefault(v => v.VersionId == versionId) ?? throw EmbeddedRefusals.SecretVersionNotFound(name, versionId, state.Id);
            if (state.FindKeyById(secret.EncryptionKeyId) is null)
            {
                throw EmbeddedRefusals.EncryptionKeyMissing(name, secret.EncryptionKeyId, state.Id);
            }

            return DecryptWith(state, version.Ciphertext.Span, EmbeddedCiphertext.SecretContext(name, version.VersionId), $"secret '{name}' version '{version.VersionId}'");
        }, cancellationToken);
    }

    /// <summary>Deletes a secret and all its versions.</summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="name">The secret's name.</param>
    /// <param name="cancellationToken">Cancels the call before it changes anything.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>, <see cref="BackupErrorCode.InstanceNotEnabled"/>
    /// or <see cref="BackupErrorCode.StoreUnavailable"/>; nothing changes then.</exception>
    public Task DeleteSecretAsync(string instanceId, string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(name);
        return Run(() =>
        {
            var state = Get(instanceId);
            RequireUsable(state);
            FindSecret(state, name);
            Commit(state.WithoutSecret(name, _logCapacity));
            return true;
        }, cancellationToken);
    }

    /// <summary>Reads a secret's record: metadata and versions as ciphertext.</summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="name">The secret's name.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A copy of the secret, or <see langword="null"/> when the instance has no secret of that name.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such instance.</exception>
    public Task<SecretRecord?> GetSecretAsync(string instanceId, string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(name);
        return Run(() => Get(instanceId).Secrets.TryGetValue(name, out var secret) ? CopyOf(secret.Record) : null, cancellationToken);
    }

    /// <summary>Changes the description (metadata) of a key or secret. Setting the description it has changes nothing.</summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="type">Key or secret.</param>
    /// <param name="name">The item's name.</param>
    /// <param name="description">The new description, or <see langword="null"/> for none.</param>
    /// <param name="cancellationToken">Cancels the call before it changes anything.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>, <see cref="BackupErrorCode.InstanceNotEnabled"/>
    /// or <see cref="BackupErrorCode.StoreUnavailable"/>; nothing changes then.</exception>
    public Task SetDescriptionAsync(string instanceId, ItemType type, string name, string? description, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(name);
        return Run(() =>
        {
            var state = Get(instanceId);
            RequireUsable(state);
            if (type == ItemType.Key)
            {
                var key = FindKey(state, name).Record;
                if (key.Description != description)
                {
                    Commit(state.WithKey(new StoredKey(key with { Description = description }, null), _logCapacity));
                }
            }
            else
            {
                var secret = FindSecret(state, name).Record;
                if (secret.Description != description)
                {
                    Commit(state.WithSecret(new StoredSecret(secret with { Description = description }, null), _logCapacity));
                }
            }

            return true;
        }, cancellationToken);
    }
}
