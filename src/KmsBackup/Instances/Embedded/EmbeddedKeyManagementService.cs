using System.Collections.Immutable;
using System.IO.Abstractions;
using System.Security.Cryptography;

namespace KmsBackup.Instances;

/// <summary>
/// A real, file-backed software key management service: several instances (software, and hardware
/// ones that hold key metadata only), each with keys (AES-256, rotation, encrypt and decrypt) and
/// secrets (values encrypted under a key), quotas, region-wide unique names, and a change feed. It is
/// the default source and restore target of KmsBackup.Sdk's samples and tests, and serves the
/// <see cref="InstanceGateway"/> port.
/// </summary>
/// <remarks>
/// <para><b>Files.</b> Under the root folder: <c>service.key</c>, the master key file (32 random bytes
/// behind a 5-byte header; created with mode 0600 on Unix, in a folder created with mode 0700);
/// <c>service.lock</c>, held open exclusively while the service is open, so that a second service
/// (in this or another process) on the same folder is refused with
/// <see cref="BackupErrorCode.LeaseHeld"/>; and <c>instances/&lt;id&gt;.state</c>, one file per instance.</para>
/// <para><b>Encryption at rest.</b> The service is the key management service itself, so its state
/// holds key material. Each state file is therefore encrypted and authenticated with AES-256-GCM
/// under the master key (random nonce per write; the instance ID is bound as associated data), so
/// that neither key material nor secret ciphertexts nor names can be read from the state files, and
/// an altered file is refused rather than misread. This protects the files from casual reading and
/// from copies of the folder without the key file; whoever can read the master key file can read the
/// state. Put the master key elsewhere with <see cref="EmbeddedKeyManagementServiceOptions.MasterKeyPath"/>.
/// On Windows no file mode is set: protect the folder with its ACL.</para>
/// <para><b>Crash safety.</b> Every change builds the instance's next state, writes it to a
/// temporary file, flushes it to disk and renames it over the state file; only then does the change
/// become visible. A crash leaves the old or the new state, never a mix; leftover temporary files are
/// removed when the service is opened. (The folder itself is not flushed after the rename, so a power
/// loss right after a change may undo that change; it never corrupts a state file.)</para>
/// <para><b>Change feed.</b> Each instance keeps a log of its last
/// <see cref="EmbeddedKeyManagementServiceOptions.ChangeLogCapacity"/> item changes, numbered in
/// sequence, persisted with its state. A cursor names the log (a random epoch made when the instance
/// is created) and a sequence number. <see cref="ReadChangesAsync"/> returns each item changed since
/// the cursor once, as it is now, and the names of items that existed at the cursor and are gone; an
/// item added and removed since the cursor is not reported. A cursor older than the kept log, from
/// another instance, ahead of the log, or malformed, reads as expired.</para>
/// <para><b>Ciphertexts.</b> Data and secret versions are encrypted with AES-256-GCM under the key's
/// current version; the ciphertext names the key ID and key version ID, so an old version still
/// decrypts after a rotation, and a secret restored with its key into another instance decrypts
/// there. Secret versions bind the secret's name and version ID as associated data.</para>
/// <para><b>Accounts.</b> Creating a key or secret names the creator, which must be the instance's
/// owner or a consumer it is shared with; other calls act for the service's operator and do not
/// check accounts. Restore (<see cref="CreateKeyAsync"/>, <see cref="CreateSecretAsync"/>) keeps the
/// creator as backed up; who may restore where (rule R2) is the engine's decision.</para>
/// <para><b>Cost.</b> Every change rewrites the instance's state file: writes cost in proportion to
/// the instance's size, which suits samples and tests, not instances of millions of items.</para>
/// <para>Thread-safe: one lock serializes all calls. The methods complete synchronously (the work is
/// local file I/O). Nothing this type formats, throws or logs contains key material or secret values.
/// Dispose of the service to release the folder and zero the master key and key material it holds.</para>
/// </remarks>
public sealed class EmbeddedKeyManagementService : InstanceGateway, IDisposable
{
    /// <summary>The spec of every key the service creates: a 256-bit AES key.</summary>
    public const string KeySpec = "Aliyun_AES_256";

    private const int MaterialSize = 32;
    private const int MaximumNameLength = 256;

    private readonly TimeProvider _time;
    private readonly EmbeddedStateFiles _files;
    private readonly int _logCapacity;
    private readonly HardwareKeyOperations? _hardwareKeys;
    private readonly Lock _gate = new();
    private ImmutableSortedDictionary<string, InstanceState> _instances;
    private bool _disposed;

    /// <summary>Opens the service in <paramref name="rootPath"/>, creating the folder and its master key if new, with default options.</summary>
    /// <param name="fileSystem">The file system.</param>
    /// <param name="rootPath">The service's folder.</param>
    /// <param name="timeProvider">The clock for creation and rotation times.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.LeaseHeld"/>: another service has the folder open;
    /// <see cref="BackupErrorCode.IntegrityViolation"/>: the master key file or a state file cannot be read.</exception>
    public EmbeddedKeyManagementService(IFileSystem fileSystem, string rootPath, TimeProvider timeProvider)
        : this(fileSystem, rootPath, timeProvider, new EmbeddedKeyManagementServiceOptions())
    {
    }

    /// <summary>Opens the service in <paramref name="rootPath"/>, creating the folder and its master key if new.</summary>
    /// <param name="fileSystem">The file system.</param>
    /// <param name="rootPath">The service's folder.</param>
    /// <param name="timeProvider">The clock for creation and rotation times.</param>
    /// <param name="options">The options.</param>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="EmbeddedKeyManagementServiceOptions.ChangeLogCapacity"/> is less than 1.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.LeaseHeld"/>: another service has the folder open;
    /// <see cref="BackupErrorCode.IntegrityViolation"/>: the master key file or a state file cannot be read.</exception>
    public EmbeddedKeyManagementService(IFileSystem fileSystem, string rootPath, TimeProvider timeProvider, EmbeddedKeyManagementServiceOptions options)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        ArgumentException.ThrowIfNullOrWhiteSpace(rootPath);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ChangeLogCapacity, 1, nameof(options));
        _time = timeProvider;
        _logCapacity = options.ChangeLogCapacity;
        _hardwareKeys = options.HardwareKeys;
        var root = fileSystem.Path.GetFullPath(rootPath);
        var keyPath = options.MasterKeyPath is null
            ? fileSystem.Path.Combine(root, EmbeddedStateFiles.MasterKeyFileName)
            : fileSystem.Path.GetFullPath(options.MasterKeyPath);
        _files = new EmbeddedStateFiles(fileSystem, root, keyPath);
        try
        {
            var instances = ImmutableSortedDictionary.CreateBuilder<string, InstanceState>(StringComparer.Ordinal);
            foreach (var state in _files.LoadAll())
            {
                instances.Add(state.Id, state);
            }

            _instances = instances.ToImmutable();
        }
        catch
        {
            _files.Dispose();
            throw;
        }
    }

    /// <summary>The service's folder, as a full path.</summary>
    public string RootPath => _files.RootPath;

    /// <summary>Always <see langword="true"/>: every instance keeps a change log.</summary>
    public override bool SupportsChangeFeed => true;

    // ---- Instances -------------------------------------------------------------------------

    /// <summary>Creates an instance.</summary>
    /// <param name="spec">The instance's ID, kind, region, owner, sharing, quotas, creation time, state and image version.</param>
    /// <param name="cancellationToken">Cancels the call before it changes anything.</param>
    /// <returns>The new instance.</returns>
    /// <exception cref="ArgumentException">The ID is not a valid instance ID, the region or owner is empty, a quota is negative, or the kind is not defined.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NameConflict"/>: an instance with that ID (ignoring case) exists;
    /// <see cref="BackupErrorCode.StoreUnavailable"/>: its state could not be written (nothing was created).</exception>
    public Task<InstanceDescription> CreateInstanceAsync(EmbeddedInstanceSpec spec, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Id is null || !EmbeddedStateFiles.IsValidInstanceId(spec.Id))
        {
            throw new ArgumentException("An instance ID is 1 to 128 ASCII letters, digits, '-', '_' or '.', starting with a letter or digit.", nameof(spec));
        }

        ArgumentException.ThrowIfNullOrWhiteSpace(spec.Region, nameof(spec));
        ArgumentException.ThrowIfNullOrWhiteSpace(spec.OwnerAccount, nameof(spec));
        ArgumentOutOfRangeException.ThrowIfNegative(spec.KeyQuota, nameof(spec));
        ArgumentOutOfRangeException.ThrowIfNegative(spec.SecretQuota, nameof(spec));
        if (!Enum.IsDefined(spec.Kind))
        {
            throw new ArgumentOutOfRangeException(nameof(spec), spec.Kind, "Not a defined instance kind.");
        }

        var sharedWith = (spec.SharedWith ?? []).Distinct(StringComparer.Ordinal).ToImmutableArray();
        if (sharedWith.Any(string.IsNullOrWhiteSpace))
        {
            throw new ArgumentException("A consumer account is empty.", nameof(spec));
        }

        return Run(() =>
        {
            // Unique ignoring case too: the state file is named after the ID, and some file systems ignore case.
            if (_instances.Keys.Any(id => string.Equals(id, spec.Id, StringComparison.OrdinalIgnoreCase)))
            {
                throw EmbeddedRefusals.InstanceExists(spec.Id);
            }

            var state = new InstanceState
            {
                Id = spec.Id,
                Kind = spec.Kind,
                Region = spec.Region,
                OwnerAccount = spec.OwnerAccount,
                SharedWith = sharedWith,
                KeyQuota = spec.KeyQuota,
                SecretQuota = spec.SecretQuota,
                CreatedAt = spec.CreatedAt ?? _time.GetUtcNow(),
                IsEnabled = spec.IsEnabled,
                ImageVersion = spec.ImageVersion,
                Epoch = RandomNumberGenerator.GetHexString(16, lowercase: true),
            };
            Commit(state);
            return state.Describe();
        }, cancellationToken);
    }

    /// <summary>Enables or disables an instance. A disabled instance keeps its keys and secrets but serves no requests and takes no restore.</summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="enabled">Whether the instance is to be enabled.</param>
    /// <param name="cancellationToken">Cancels the call before it changes anything.</param>
    /// <returns>The instance as it is now.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such instance;
    /// <see cref="BackupErrorCode.InstanceNotEnabled"/>: the instance was released;
    /// <see cref="BackupErrorCode.StoreUnavailable"/>: the change could not be written (nothing changed).</exception>
    public Task<InstanceDescription> SetInstanceEnabledAsync(string instanceId, bool enabled, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        return Run(() =>
        {
            var state = Get(instanceId);
            if (state.IsReleased)
            {
                throw EmbeddedRefusals.InstanceNotUsable(state);
            }

            if (state.IsEnabled != enabled)
            {
                state = state with { IsEnabled = enabled };
                Commit(state);
            }

            return state.Describe();
        }, cancellationToken);
    }

    /// <summary>
    /// Releases an instance: it serves no requests any more and its keys and secrets no longer hold
    /// their names in the region. Its last state stays readable (<see cref="ReadSnapshotAsync"/>) so that
    /// its backup can be inspected. Releasing it again changes nothing.
    /// </summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="cancellationToken">Cancels the call before it changes anything.</param>
    /// <returns>The instance, with <see cref="InstanceDescription.ReleasedAt"/> set.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such instance;
    /// <see cref="BackupErrorCode.StoreUnavailable"/>: the change could not be written (nothing changed).</exception>
    public Task<InstanceDescription> ReleaseInstanceAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        return Run(() =>
        {
            var state = Get(instanceId);
            if (!state.IsReleased)
            {
                state = state with { IsEnabled = false, ReleasedAt = _time.GetUtcNow() };
                Commit(state);
            }

            return state.Describe();
        }, cancellationToken);
    }

    /// <summary>Upgrades an instance: raises its quotas and, optionally, its image version (the seed's remedy for insufficient quota).</summary>
    /// <param name="instanceId">The instance ID.</param>
    /// <param name="keyQuota">The new key quota, at least the current one.</param>
    /// <param name="secretQuota">The new secret quota, at least the current one.</param>
    /// <param name="imageVersion">The new image version, at least the current one; <see langword="null"/> to keep it.</param>
    /// <param name="cancellationToken">Cancels the call before it changes anything.</param>
    /// <returns>The instance as it is now.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such instance;
    /// <see cref="BackupErrorCode.InstanceNotEnabled"/>: the instance was released;
    /// <see cref="BackupErrorCode.OperationNotSupported"/>: a quota or the image version would go down;
    /// <see cref="BackupErrorCode.StoreUnavailable"/>: the change could not be written (nothing changed).</exception>
    public Task<InstanceDescription> UpgradeInstanceAsync(string instanceId, int keyQuota, int secretQuota, Version? imageVersion = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        return Run(() =>
        {
            var state = Get(instanceId);
            if (state.IsReleased)
            {
                throw EmbeddedRefusals.InstanceNotUsable(state);
            }

            if (keyQuota < state.KeyQuota)
            {
                throw EmbeddedRefusals.Downgrade(instanceId, "key quota");
            }

            if (secretQuota < state.SecretQuota)
            {
                throw EmbeddedRefusals.Downgrade(instanceId, "secret quota");
            }

            if (imageVersion is not null && state.ImageVersion is not null && imageVersion < state.ImageVersion)
            {
                throw EmbeddedRefusals.Downgrade(instanceId, "image version");
            }

            var next = state with { KeyQuota = keyQuota, SecretQuota = secretQuota, ImageVersion = imageVersion ?? state.ImageVersion };
            if (next != state)
            {
                Commit(next);
            }

            return next.Describe();
        }, cancellationToken);
    }

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

    // ---- InstanceGateway -------------------------------------------------------------------

    /// <inheritdoc />
    public override Task<InstanceDescription?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        return Run(() => _instances.TryGetValue(instanceId, out var state) ? state.Describe() : null, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>The instances as they are when the call is made, ordered by ID; released instances included.</remarks>
    public override IAsyncEnumerable<InstanceDescription> ListInstancesAsync(string? region = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        List<InstanceDescription> instances;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            instances = [.. _instances.Values.Where(s => region is null || s.Region == region).Select(s => s.Describe())];
        }

        return instances.ToAsyncEnumerable();
    }

    /// <inheritdoc />
    /// <remarks>Keys and secrets are copies: the caller may clear their material and ciphertexts. A released or disabled instance can be read too.</remarks>
    public override Task<SnapshotRead> ReadSnapshotAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        return Run(() =>
        {
            var state = Get(instanceId);
            var snapshot = InstanceSnapshot.Create(
                new SnapshotSource(state.Id, state.Kind, state.Region, state.OwnerAccount),
                _time.GetUtcNow(),
                state.Keys.Values.Select(k => CopyOf(k.Record)),
                state.Secrets.Values.Select(s => CopyOf(s.Record)));
            return new SnapshotRead(snapshot, state.Cursor);
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Returns each key and secret changed since the cursor once, as it is now (a copy), and the names
    /// of those that existed at the cursor and are gone. An expired result returns the given cursor
    /// unchanged; read a snapshot for a fresh one.
    /// </remarks>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such instance.</exception>
    public override Task<InstanceChanges> ReadChangesAsync(string instanceId, string cursor, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(cursor);
        return Run(() =>
        {
            var state = Get(instanceId);
            var now = _time.GetUtcNow();
            var changed = TryParseCursor(state, cursor, out var sequence) ? state.ChangedSince(sequence) : null;
            if (changed is null)
            {
                return new InstanceChanges { ReadAt = now, Cursor = cursor, CursorExpired = true };
            }

            List<KeyRecord> keys = [];
            List<SecretRecord> secrets = [];
            List<string> deletedKeys = [];
            List<string> deletedSecrets = [];
            foreach (var (type, name, existedAtCursor) in changed)
            {
                if (type == ItemType.Key)
                {
                    if (state.Keys.TryGetValue(name, out var key))
                    {
                        keys.Add(CopyOf(key.Record));
                    }
                    else if (existedAtCursor)
                    {
                        deletedKeys.Add(name);
                    }
                }
                else if (state.Secrets.TryGetValue(name, out var secret))
                {
                    secrets.Add(CopyOf(secret.Record));
                }
                else if (existedAtCursor)
                {
                    deletedSecrets.Add(name);
                }
            }

            return new InstanceChanges
            {
                ReadAt = now,
                Cursor = state.Cursor,
                UpsertedKeys = [.. keys.OrderBy(k => k.Name, ItemNameComparer.Instance)],
                UpsertedSecrets = [.. secrets.OrderBy(s => s.Name, ItemNameComparer.Instance)],
                DeletedKeys = [.. deletedKeys.Order(ItemNameComparer.Instance)],
                DeletedSecrets = [.. deletedSecrets.Order(ItemNameComparer.Instance)],
            };
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>Released instances hold no names. The result is ordered by name, then instance ID.</remarks>
    public override Task<IReadOnlyList<NameInUse>> FindNamesInUseAsync(string region, ItemType type, IReadOnlyCollection<string> names, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(region);
        ArgumentNullException.ThrowIfNull(names);
        return Run<IReadOnlyList<NameInUse>>(() =>
        {
            var wanted = names.Distinct(StringComparer.Ordinal).ToList();
            return [.. _instances.Values
                .Where(s => s.Region == region && !s.IsReleased)
                .SelectMany(s => wanted.Where(n => s.Holds(type, n)).Select(n => new NameInUse(type, n, s.Id) { RestoredByOperation = s.RestoredBy(type, n), OwnerAccount = s.OwnerAccount }))
                .OrderBy(n => n.Name, ItemNameComparer.Instance)
                .ThenBy(n => n.InstanceId, StringComparer.Ordinal)];
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>Looks the IDs up directly; released instances hold no keys.</remarks>
    public override Task<IReadOnlySet<string>> FindKeyIdsAsync(string instanceId, IReadOnlyCollection<string> keyIds, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(keyIds);
        return Run<IReadOnlySet<string>>(() =>
        {
            var state = Get(instanceId);
            return state.IsReleased ? new HashSet<string>() : keyIds.Where(state.KeyNamesById.ContainsKey).ToHashSet(StringComparer.Ordinal);
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// The key is kept exactly (ID, name, spec, creator, times, description, versions and material),
    /// as a copy. A software instance takes only keys with material in every version, a hardware one
    /// only keys without (<see cref="BackupErrorCode.InstanceKindMismatch"/>). The target must be enabled
    /// (<see cref="BackupErrorCode.InstanceNotEnabled"/>), and no key of the instance may have the same ID.
    /// </remarks>
    public override Task<bool> CreateKeyAsync(string instanceId, KeyRecord key, string operationId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentException.ThrowIfNullOrWhiteSpace(operationId);
        return Run(() =>
        {
            var state = Get(instanceId);
            if (state.Keys.TryGetValue(key.Name, out var existing) && existing.RestoredBy == operationId)
            {
                return false;
            }

            RequireUsable(state);
            RequireNameFree(state, ItemType.Key, key.Name);
            if (state.KeyNamesById.TryGetValue(key.Id, out var sameId))
            {
                throw EmbeddedRefusals.KeyIdConflict(key.Id, key.Name, sameId, state.Id);
            }

            var hardware = state.Kind == InstanceKind.Hardware;
            if (hardware ? key.HasMaterial : key.Versions.Any(v => v.Material is null))
            {
                throw EmbeddedRefusals.KindMismatch(key, state);
            }

            RequireQuota(state, ItemType.Key, key.Name);
            Commit(state.WithKey(new StoredKey(CopyOf(key), operationId), _logCapacity));
            return true;
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// The secret is kept exactly (name, key ID, creator, times, description, versions and their
    /// ciphertexts), as a copy; its ciphertexts are not checked, only that the instance holds a key with
    /// the secret's <see cref="SecretRecord.EncryptionKeyId"/>. The target must be enabled.
    /// </remarks>
    public override Task<bool> CreateSecretAsync(string instanceId, SecretRecord secret, string operationId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(secret);
        ArgumentException.ThrowIfNullOrWhiteSpace(operationId);
        return Run(() =>
        {
            var state = Get(instanceId);
            if (state.Secrets.TryGetValue(secret.Name, out var existing) && existing.RestoredBy == operationId)
            {
                return false;
            }

            RequireUsable(state);
            RequireNameFree(state, ItemType.Secret, secret.Name);
            if (!state.KeyNamesById.ContainsKey(secret.EncryptionKeyId))
            {
                throw EmbeddedRefusals.EncryptionKeyMissing(secret.Name, secret.EncryptionKeyId, state.Id);
            }

            RequireQuota(state, ItemType.Secret, secret.Name);
            Commit(state.WithSecret(new StoredSecret(CopyOf(secret), operationId), _logCapacity));
            return true;
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Deletes the item only if <paramref name="operationId"/> created it and nothing changed it since
    /// (a rotation, new value or description change makes it the user's). Works on a disabled instance too.
    /// </remarks>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.NotFound"/>: no such instance;
    /// <see cref="BackupErrorCode.StoreUnavailable"/>: the deletion could not be written (nothing changed).</exception>
    public override Task<bool> DeleteRestoredItemAsync(string instanceId, ItemType type, string name, string operationId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instanceId);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(operationId);
        return Run(() =>
        {
            var state = Get(instanceId);
            if (type == ItemType.Key)
            {
                if (!state.Keys.TryGetValue(name, out var key) || key.RestoredBy != operationId)
                {
                    return false;
                }

                Commit(state.WithoutKey(name, _logCapacity));
                SensitiveValues.Clear(key.Record);
                return true;
            }

            if (!state.Secrets.TryGetValue(name, out var secret) || secret.RestoredBy != operationId)
            {
                return false;
            }

            Commit(state.WithoutSecret(name, _logCapacity));
            return true;
        }, cancellationToken);
    }

    /// <summary>Closes the service: releases the folder and zeroes the master key and the key material held in memory.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            foreach (var state in _instances.Values)
            {
                foreach (var key in state.Keys.Values)
                {
                    SensitiveValues.Clear(key.Record);
                }
            }

            _instances = _instances.Clear();
            _files.Dispose();
        }
    }

    /// <summary>The service in one line, without any key or secret.</summary>
    public override string ToString() => $"embedded key management service ({_instances.Count} instances)";

    // ---- Helpers ---------------------------------------------------------------------------

    internal static KeyRecord CopyOf(KeyRecord key) =>
        new(key.Id, key.Name, key.Spec, key.CreatorAccount, key.CreatedAt,
            key.Versions.Select(v => v with { Material = v.Material is null ? null : SensitiveBytes.Copy(v.Material.Span) }))
        {
            Description = key.Description,
        };

    internal static SecretRecord CopyOf(SecretRecord secret) =>
        new(secret.Name, secret.EncryptionKeyId, secret.CreatorAccount, secret.CreatedAt,
            secret.Versions.Select(v => v with { Ciphertext = SensitiveBytes.Copy(v.Ciphertext.Span) }))
        {
            Description = secret.Description,
        };

    private static void ValidateName(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (name.Length > MaximumNameLength || name.Any(char.IsControl))
        {
            throw new ArgumentException($"A name is at most {MaximumNameLength} characters, without control characters.", nameof(name));
        }
    }

    private static bool TryParseCursor(InstanceState state, string cursor, out long sequence)
    {
        sequence = 0;
        var dot = cursor.LastIndexOf('.');
        return dot > 0 &&
               cursor.AsSpan(0, dot).SequenceEqual(state.Epoch) &&
               long.TryParse(cursor.AsSpan(dot + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out sequence);
    }

    private static KeyVersion NewKeyVersion(InstanceState state, DateTimeOffset now, IEnumerable<KeyVersion>? existing = null)
    {
        string id;
        do
        {
            id = Guid.NewGuid().ToString("D");
        }
        while (existing?.Any(v => v.VersionId == id) == true);

        return new KeyVersion(id, now, state.Kind == InstanceKind.Hardware ? null : SensitiveBytes.Own(RandomNumberGenerator.GetBytes(MaterialSize)));
    }

    private static string NextSecretVersionId(SecretRecord secret)
    {
        for (var n = secret.Versions.Length + 1; ; n++)
        {
            var id = $"v{n}";
            if (!secret.Versions.Any(v => v.VersionId == id))
            {
                return id;
            }
        }
    }

    private static StoredKey FindKey(InstanceState state, string name) =>
        state.Keys.TryGetValue(name, out var key) ? key : throw EmbeddedRefusals.ItemNotFound(ItemType.Key, name, state.Id);

    private static StoredSecret FindSecret(InstanceState state, string name) =>
        state.Secrets.TryGetValue(name, out var secret) ? secret : throw EmbeddedRefusals.ItemNotFound(ItemType.Secret, name, state.Id);

    private static void RequireUsable(InstanceState state)
    {
        if (!state.IsUsable)
        {
            throw EmbeddedRefusals.InstanceNotUsable(state);
        }
    }

    private static void RequireMayCreate(InstanceState state, string account)
    {
        if (!state.MayCreate(account))
        {
            throw EmbeddedRefusals.AccessDenied(account, state);
        }
    }

    private static void RequireQuota(InstanceState state, ItemType type, string name)
    {
        var full = type == ItemType.Key ? state.Keys.Count >= state.KeyQuota : state.Secrets.Count >= state.SecretQuota;
        if (full)
        {
            throw EmbeddedRefusals.InsufficientQuota(state, type, name);
        }
    }

    private byte[] EncryptWith(InstanceState state, KeyRecord key, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> context)
    {
        var version = key.CurrentVersion;
        if (version.Material is null)
        {
            return state.Kind == InstanceKind.Hardware && _hardwareKeys is { } hsm
                ? HardwareCiphertext.Encrypt(hsm, state.Id, key.Id, version.VersionId, plaintext, context)
                : throw EmbeddedRefusals.HardwareKeyMaterial(key.Name, state.Id);
        }

        try
        {
            return EmbeddedCiphertext.Encrypt(key.Id, version.VersionId, version.Material.Span, plaintext, context);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            throw EmbeddedRefusals.UnusableMaterial(key.Name, state.Id);
        }
    }

    private SensitiveBytes DecryptWith(InstanceState state, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> context, string what)
    {
        if (!EmbeddedCiphertext.TryReadHeader(ciphertext, out var keyId, out var keyVersionId, out var headerLength))
        {
            throw EmbeddedRefusals.CiphertextInvalid(what, state.Id);
        }

        var key = state.FindKeyById(keyId)?.Record ?? throw EmbeddedRefusals.CiphertextKeyMissing(keyId, keyVersionId, state.Id);
        var version = key.Versions.FirstOrDefault(v => v.VersionId == keyVersionId) ?? throw EmbeddedRefusals.CiphertextKeyMissing(keyId, keyVersionId, state.Id);
        if (version.Material is null)
        {
            var sealedPlaintext = state.Kind == InstanceKind.Hardware && _hardwareKeys is { } hsm
                ? HardwareCiphertext.TryDecrypt(hsm, state.Id, key.Id, ciphertext, headerLength, context)
                : throw EmbeddedRefusals.HardwareKeyMaterial(key.Name, state.Id);
            return sealedPlaintext is null ? throw EmbeddedRefusals.CiphertextInvalid(what, state.Id) : SensitiveBytes.Own(sealedPlaintext);
        }

        byte[]? plaintext;
        try
        {
            plaintext = EmbeddedCiphertext.TryDecrypt(ciphertext, headerLength, version.Material.Span, context);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            throw EmbeddedRefusals.UnusableMaterial(key.Name, state.Id);
        }

        return plaintext is null ? throw EmbeddedRefusals.CiphertextInvalid(what, state.Id) : SensitiveBytes.Own(plaintext);
    }

    private InstanceState Get(string instanceId) =>
        _instances.TryGetValue(instanceId, out var state) ? state : throw EmbeddedRefusals.InstanceNotFound(instanceId);

    private void RequireNameFree(InstanceState target, ItemType type, string name)
    {
        if (target.Holds(type, name))
        {
            throw EmbeddedRefusals.NameConflict(type, name, target, target.Id);
        }

        foreach (var other in _instances.Values)
        {
            if (other.Id != target.Id && other.Region == target.Region && !other.IsReleased && other.Holds(type, name))
            {
                throw EmbeddedRefusals.NameConflict(type, name, other, target.Id);
            }
        }
    }

    // Writes first, then publishes: a failed write leaves the instance as it was.
    private void Commit(InstanceState next)
    {
        _files.Save(next);
        _instances = _instances.SetItem(next.Id, next);
    }

    private void CommitOrClear(InstanceState next, KeyVersion newVersion)
    {
        try
        {
            Commit(next);
        }
        catch
        {
            newVersion.Material?.Clear();
            throw;
        }
    }

    // Every call runs under the lock and completes synchronously; refusals come back as faulted tasks.
    private Task<T> Run<T>(Func<T> body, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<T>(cancellationToken);
        }

        try
        {
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                return Task.FromResult(body());
            }
        }
        catch (Exception e)
        {
            return Task.FromException<T>(e);
        }
    }
}
