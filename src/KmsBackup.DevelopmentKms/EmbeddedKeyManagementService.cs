using System.Collections.Immutable;
using System.IO.Abstractions;
using System.Security.Cryptography;

namespace KmsBackup.DevelopmentKms;

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
public sealed partial class EmbeddedKeyManagementService : InstanceGateway, IDisposable
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
}
