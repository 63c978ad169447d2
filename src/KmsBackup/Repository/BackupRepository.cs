using System.Globalization;
using System.Security.Cryptography;

namespace KmsBackup.Repository;

/// <summary>
/// The repository a backup engine writes into a <see cref="BackupStore"/>: a config holding the wrapped
/// master secret, packs of encrypted content-addressed objects with their indexes, a manifest per
/// recovery point, and a catalog of backup states. See docs/repository-format.md.
/// </summary>
internal sealed partial class BackupRepository : IDisposable
{
    public const string ConfigKey = "config";
    public const string PruneMarkerPrefix = "prune/";
    private static readonly byte[] s_configMagic = "KBREPO01"u8.ToArray();

    /// <summary>
    /// The repository format this SDK writes and reads. Version 3 seals every object under keys derived per
    /// pack and per object from rotatable key generations; version 2 sealed each recovery point to its date as
    /// well as its backup and sequence. Versions 1 and 2 were pre-releases and are refused.
    /// </summary>
    public const int FormatVersion = 4;

    /// <summary>The prefix of key generation records (<c>keys/&lt;sequence:D20&gt;-&lt;ID:x8&gt;</c>): the repository's keys after the first (<see cref="RotateKeyAsync"/>).</summary>
    public const string KeysPrefix = "keys/";

    private static readonly byte[] s_keyRecordMagic = "KBKEYG01"u8.ToArray();

    /// <summary>How many times a writer rewrites objects a concurrent prune put at risk before it gives up.</summary>
    private const int RescueAttempts = 5;

    private readonly BackupStore _store;
    private readonly RepositoryCrypto _crypto;
    private readonly StoreClock _storeClock;
    private readonly RepositoryKeyProvider _keys;
    private readonly SemaphoreSlim _keysGate = new(1, 1);

    /// <summary>The key provider this process opened the repository with (its key ID, never a key).</summary>
    public string KeyProviderId => _keys.KeyId;

    private BackupRepository(BackupStore store, RepositoryCrypto crypto, string repositoryId, StoreClockPolicy clockPolicy, RepositoryKeyProvider keys)
    {
        _store = store;
        _crypto = crypto;
        _keys = keys;
        RepositoryId = repositoryId;
        Objects = new ObjectStore(store, crypto);
        Objects.RefreshKeys = async token => await RefreshKeysAsync(token).ConfigureAwait(false);
        ClockPolicy = clockPolicy;
        _storeClock = new StoreClock(store, crypto, Objects);
    }

    public StoreClockPolicy ClockPolicy { get; }

    public string RepositoryId { get; }

    public ObjectStore Objects { get; }

    public BackupStore Store => _store;

    public RepositoryCrypto Crypto => _crypto;

    /// <summary>Opens the repository in <paramref name="store"/>, creating it first if the store is empty.</summary>
    public static async Task<BackupRepository> OpenOrInitializeAsync(BackupStore store, RepositoryKeyProvider keys, StoreClockPolicy clockPolicy, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(keys);
        var config = await store.TryReadAsync(ConfigKey, cancellationToken).ConfigureAwait(false);
        if (config is null)
        {
            // Pinned: held across awaits, and a compacting GC would leave copies of a movable array behind.
            var master = GC.AllocateArray<byte>(RepositoryCrypto.MasterSecretSize, pinned: true);
            RandomNumberGenerator.Fill(master);
            try
            {
                var wrapped = await keys.WrapAsync(master, cancellationToken).ConfigureAwait(false);
                var w = new RecordWriter();
                w.WriteRaw(s_configMagic);
                w.WriteVarUInt(FormatVersion);
                w.WriteString(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)));
                w.WriteString(keys.KeyId);
                w.WriteBytes(wrapped);
                await store.TryCreateAsync(ConfigKey, w.ToArray(), cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(master);
            }

            // Whoever won the race to create the config, everyone opens the one stored.
            config = await store.TryReadAsync(ConfigKey, cancellationToken).ConfigureAwait(false)
                ?? throw RepositoryErrors.Integrity("config", "it vanished right after it was created");
        }

        var (repositoryId, keyId, wrappedMaster) = DecodeConfig(config);

        // A repository with a keyring (keys/keyring) opens with any of its registered providers; one without, with the
        // provider its config was wrapped by (docs/repository-format.md, "Key providers").
        var keyringRecord = await store.TryReadAsync(KeyringKey, cancellationToken).ConfigureAwait(false);
        byte[]? keyring = null;
        byte[]? providerRecord = null;
        string providerKeyId;
        SensitiveBytes masterSecret;
        if (keyringRecord is null)
        {
            if (!string.Equals(keyId, keys.KeyId, StringComparison.Ordinal))
            {
                throw NotRegistered(keys.KeyId, [keyId]);
            }

            masterSecret = await keys.UnwrapAsync(wrappedMaster, cancellationToken).ConfigureAwait(false);
            providerKeyId = keyId;
        }
        else
        {
            (keyring, var record) = await UnwrapKeyringAsync(store, repositoryId, keys, cancellationToken).ConfigureAwait(false);
            try
            {
                masterSecret = OpenKeyringRecord(keyringRecord, keyring, repositoryId);
            }
            catch
            {
                CryptographicOperations.ZeroMemory(keyring);
                throw;
            }

            providerRecord = record.Bytes;
            providerKeyId = record.KeyId;
        }

        RepositoryCrypto? crypto = null;
        try
        {
            crypto = new RepositoryCrypto(masterSecret.Span);
            if (keyringRecord is not null && (!Authenticates(crypto, keyringRecord) || !Authenticates(crypto, providerRecord!)))
            {
                throw RepositoryErrors.Integrity(
                    $"key provider record of '{providerKeyId}'",
                    "it, or the keyring record, does not authenticate under this repository's keys (it was changed, damaged, or planted); nothing was written");
            }

            var repository = new BackupRepository(store, crypto, repositoryId, clockPolicy, keys) { _keyring = keyring, _providerKeyId = providerKeyId };
            keyring = null;
            crypto = null;
            try
            {
                await repository.RefreshKeysAsync(cancellationToken).ConfigureAwait(false);
                await repository.Objects.RefreshIndexAsync(cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                repository.Dispose();
                throw;
            }

            return repository;
        }
        finally
        {
            masterSecret.Clear();
            crypto?.Dispose();
            if (keyring is not null)
            {
                CryptographicOperations.ZeroMemory(keyring);
            }
        }
    }

    private static (string RepositoryId, string KeyId, byte[] WrappedMaster) DecodeConfig(byte[] config)
    {
        var r = new RecordReader(config, "config");
        if (!r.ReadRaw(s_configMagic.Length).SequenceEqual(s_configMagic))
        {
            throw r.Malformed("it is not a KmsBackup repository config");
        }

        if (r.ReadVarUInt() is var version && version != FormatVersion)
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.IntegrityViolation, "config",
                string.Create(CultureInfo.InvariantCulture, $"The repository is in format version {version}; this SDK reads version {FormatVersion} only{(version < FormatVersion ? " (versions 1 to 3 were written by pre-releases)" : string.Empty)}."),
                version < FormatVersion
                    ? "Create a new repository in an empty store and back up again; copy data out of the old one with the SDK version that wrote it."
                    : "Use a newer version of the SDK."));
        }

        var repositoryId = r.ReadRequiredString();
        var keyId = r.ReadRequiredString();
        var wrapped = r.ReadBytes().ToArray();
        r.ExpectEnd();
        return (repositoryId, keyId, wrapped);
    }

    public void Dispose()
    {
        _crypto.Dispose();
        if (_keyring is not null)
        {
            CryptographicOperations.ZeroMemory(_keyring);
        }

        _keysGate.Dispose();
    }
}
