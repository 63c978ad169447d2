using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace KmsBackup.Repository;

/// <summary>
/// The repository's keys and the sealing of its objects (docs/repository-format.md, "Keys").
/// </summary>
/// <remarks>
/// <para>
/// A repository has one or more <em>key generations</em>. Generation 1 is the random 64-byte master secret in
/// the config; each rotation adds a generation (<c>keys/&lt;generation&gt;</c>), also stored only wrapped by the
/// <see cref="RepositoryKeyProvider"/>. From each generation's secret HKDF-SHA-256 derives a 256-bit data root
/// key, which never seals anything itself: it only derives the keys that do.
/// </para>
/// <para>
/// A pack's objects are sealed under a pack key, HKDF(data root, a random 32-byte salt in the pack's header
/// and index), so that no key seals more than <see cref="MaximumObjectsPerPack"/> messages. Every other sealed
/// object (manifests, catalog entries, indexes, markers, pins, clock and journal records) has a key of its own,
/// HKDF(data root, a random 16-byte salt stored in front of it): each such key seals one message. Both use
/// AES-256-GCM with a random 12-byte nonce.
/// </para>
/// <para>
/// The content-addressing MAC key and the chunking salt come from generation 1 and never change: rotating
/// them would give every object a new ID. Rotation protects what is encrypted; object IDs are MACs of
/// plaintexts that hold random key material, and reveal nothing useful without that key.
/// </para>
/// </remarks>
internal sealed class RepositoryCrypto : IDisposable
{
    public const int MasterSecretSize = 64;
    public const int NonceSize = 12;
    public const int TagSize = 16;

    /// <summary>The bytes an object sealed into a pack adds to its plaintext: nonce and tag.</summary>
    public const int Overhead = NonceSize + TagSize;

    /// <summary>The size of the salt a pack key is derived with.</summary>
    public const int PackSaltSize = 32;

    private const int ObjectSaltSize = 16;
    private const int GenerationSize = 4;

    /// <summary>The bytes a standalone sealed object adds to its plaintext: generation, salt, nonce and tag.</summary>
    public const int StandaloneOverhead = GenerationSize + ObjectSaltSize + NonceSize + TagSize;

    /// <summary>The most objects one pack (so one pack key) seals: random nonces stay far from collisions (2^-65).</summary>
    public const int MaximumObjectsPerPack = 65_536;

    private readonly byte[] _macKey;
    private readonly byte[] _keyringKey;
    private readonly byte[] _namingKey;
    private readonly ulong _boundarySalt;
    private readonly object _gate = new();
    private Dictionary<uint, byte[]> _dataKeys = [];
    private Dictionary<uint, ulong> _sequences = [];

    public RepositoryCrypto(ReadOnlySpan<byte> masterSecret)
    {
        if (masterSecret.Length != MasterSecretSize)
        {
            throw RepositoryErrors.Integrity("master key", "it has the wrong length");
        }

        _macKey = GC.AllocateArray<byte>(32, pinned: true);
        _keyringKey = GC.AllocateArray<byte>(32, pinned: true);
        HKDF.DeriveKey(HashAlgorithmName.SHA256, masterSecret, _macKey, salt: [], info: "kmsbackup/repository/v1/mac"u8);
        HKDF.DeriveKey(HashAlgorithmName.SHA256, masterSecret, _keyringKey, salt: [], info: "kmsbackup/repository/v3/keyring"u8);
        _namingKey = GC.AllocateArray<byte>(32, pinned: true);
        HKDF.DeriveKey(HashAlgorithmName.SHA256, masterSecret, _namingKey, salt: [], info: "kmsbackup/repository/v1/automatic-backup-id"u8);

        Span<byte> salt = stackalloc byte[32];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, masterSecret, salt, salt: [], info: "kmsbackup/repository/v1/chunking"u8);
        _boundarySalt = BitConverter.ToUInt64(salt);
        CryptographicOperations.ZeroMemory(salt);

        AddGeneration(1, 1, masterSecret);
    }

    /// <summary>The ID of key generation 1, the config's master secret: known to every host that opened the repository.</summary>
    public const uint FirstGeneration = 1;

    /// <summary>A secret per-repository salt for content-defined chunk boundaries, so boundaries reveal nothing about names.</summary>
    public ulong BoundarySalt => _boundarySalt;

    /// <summary>
    /// The ID of the newest key generation this process knows (highest sequence; of two generations with one
    /// sequence, made by two hosts rotating at once, the higher ID): new objects are sealed under it.
    /// </summary>
    public uint CurrentGeneration
    {
        get
        {
            lock (_gate)
            {
                return _sequences.MaxBy(g => (g.Value, g.Key)).Key;
            }
        }
    }

    /// <summary>The sequence number of a known generation (1 for the first), what users see as the key generation; 0 if unknown.</summary>
    public ulong SequenceOf(uint generation)
    {
        lock (_gate)
        {
            return _sequences.GetValueOrDefault(generation);
        }
    }

    /// <summary>The highest sequence number of a known generation.</summary>
    public ulong HighestSequence
    {
        get
        {
            lock (_gate)
            {
                return _sequences.Values.Max();
            }
        }
    }

    /// <summary>
    /// Adds a key generation (its random ID, its sequence number and its secret, unwrapped by the key provider).
    /// Adding a known generation does nothing. A secret that gives the data key of a known generation is refused:
    /// a record that re-wraps an old secret as a new generation (which someone holding that old secret and write
    /// access to the store could plant) would turn a rotation, and the rekey after it, into a no-op.
    /// </summary>
    public void AddGeneration(uint generation, ulong sequence, ReadOnlySpan<byte> secret)
    {
        var dataKey = GC.AllocateArray<byte>(32, pinned: true);
        HKDF.DeriveKey(HashAlgorithmName.SHA256, secret, dataKey, salt: [], info: "kmsbackup/repository/v3/data"u8);
        lock (_gate)
        {
            if (_dataKeys.ContainsKey(generation))
            {
                CryptographicOperations.ZeroMemory(dataKey);
                return;
            }

            if (_dataKeys.FirstOrDefault(k => CryptographicOperations.FixedTimeEquals(k.Value, dataKey)) is { Value: not null } same)
            {
                CryptographicOperations.ZeroMemory(dataKey);
                throw RepositoryErrors.Integrity(
                    string.Create(CultureInfo.InvariantCulture, $"key generation {sequence}"),
                    string.Create(CultureInfo.InvariantCulture, $"its secret is that of generation {_sequences[same.Key]}, so it would protect nothing new (a record re-wrapping an old secret)"));
            }

            _dataKeys = new Dictionary<uint, byte[]>(_dataKeys) { [generation] = dataKey };
            _sequences = new Dictionary<uint, ulong>(_sequences) { [generation] = sequence };
        }
    }

    /// <summary>The MAC that authenticates a key generation's record, so only a holder of the repository's keys can add one.</summary>
    public byte[] KeyRecordMac(ReadOnlySpan<byte> record) => HMACSHA256.HashData(_keyringKey, record);

    /// <summary>
    /// The ID of the automatic backup of <paramref name="instanceId"/>: <c>bka-</c> and the first 8 bytes, in lower-case
    /// hex, of HMAC-SHA-256 under a key derived from generation 1 ("kmsbackup/repository/v1/automatic-backup-id") over
    /// the UTF-8 of the instance ID, a line feed and <paramref name="attempt"/> in decimal. Every host of the repository
    /// derives the same ID, so two hosts that learn of one enable at once race to create the same catalog entry, and
    /// create-if-absent lets one win. <paramref name="attempt"/> counts the instance's earlier automatic backups (a
    /// released one keeps its entry). Keyed, so the store's object names do not reveal instance IDs.
    /// </summary>
    public string AutomaticBackupIdOf(string instanceId, int attempt)
    {
        var message = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{instanceId}\n{attempt}"));
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(_namingKey, message, mac);
        return "bka-" + Convert.ToHexStringLower(mac[..8]);
    }

    public ObjectId IdOf(byte role, ReadOnlySpan<byte> plaintext)
    {
        using var hmac = CreateIdMac();
        return IdOf(hmac, role, plaintext);
    }

    /// <summary>A MAC under the repository's MAC key, for <see cref="IdOf(IncrementalHash, byte, ReadOnlySpan{byte})"/>; the caller disposes it.</summary>
    public IncrementalHash CreateIdMac() => IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _macKey);

    /// <summary>The ID of an object, computed with <paramref name="hmac"/> (from <see cref="CreateIdMac"/>), which is left ready for the next.</summary>
    public static ObjectId IdOf(IncrementalHash hmac, byte role, ReadOnlySpan<byte> plaintext)
    {
        hmac.AppendData([role]);
        hmac.AppendData(plaintext);
        Span<byte> mac = stackalloc byte[32];
        hmac.GetHashAndReset(mac);
        return ObjectId.Read(mac);
    }

    /// <summary>The key generation a standalone sealed object was sealed under, or <see langword="null"/> if it is too short to say.</summary>
    public static uint? GenerationOf(ReadOnlySpan<byte> sealedBytes) =>
        sealedBytes.Length < StandaloneOverhead ? null : BinaryPrimitives.ReadUInt32LittleEndian(sealedBytes);

    /// <summary>
    /// Seals a standalone object under a key of its own, derived from the current generation, or from
    /// <paramref name="generation"/>. The records of the maintenance protocol (prune markers, pins, store times) are
    /// sealed under <see cref="FirstGeneration"/>, which every host that opened the repository knows: every writer and
    /// every prune must read every one of them, whatever key records it could or could not open.
    /// </summary>
    public byte[] Seal(ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData, uint? generation = null)
    {
        var under = generation ?? CurrentGeneration;
        var sealedBytes = new byte[plaintext.Length + StandaloneOverhead];
        var span = sealedBytes.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, under);
        var salt = span.Slice(GenerationSize, ObjectSaltSize);
        RandomNumberGenerator.Fill(salt);
        using var aes = DeriveCipher(under, salt, "kmsbackup/repository/v3/object"u8, "object");
        var body = span[(GenerationSize + ObjectSaltSize)..];
        var nonce = body[..NonceSize];
        RandomNumberGenerator.Fill(nonce);
        aes.Encrypt(nonce, plaintext, body.Slice(NonceSize, plaintext.Length), body.Slice(NonceSize + plaintext.Length, TagSize), associatedData);
        return sealedBytes;
    }

    public byte[] Seal(ReadOnlySpan<byte> plaintext, string associatedData, uint? generation = null) => Seal(plaintext, Encoding.UTF8.GetBytes(associatedData), generation);

    /// <summary>Opens a standalone sealed object; throws a typed integrity error naming <paramref name="what"/> when it does not authenticate.</summary>
    /// <exception cref="BackupIntegrityException">It does not authenticate, or it was sealed under a generation this process does not know (yet): see <see cref="KeyGenerationMissingException"/>.</exception>
    public byte[] Open(ReadOnlySpan<byte> sealedBytes, ReadOnlySpan<byte> associatedData, string what)
    {
        if (GenerationOf(sealedBytes) is not { } generation)
        {
            throw RepositoryErrors.Integrity(what, "it is shorter than its key header, nonce and tag");
        }

        using var aes = DeriveCipher(generation, sealedBytes.Slice(GenerationSize, ObjectSaltSize), "kmsbackup/repository/v3/object"u8, what);
        var body = sealedBytes[(GenerationSize + ObjectSaltSize)..];

        // Pinned: a compacting GC would leave a copy of a movable array behind that the reader's wipe never reaches.
        var plaintext = GC.AllocateUninitializedArray<byte>(body.Length - NonceSize - TagSize, pinned: true);
        try
        {
            aes.Decrypt(body[..NonceSize], body.Slice(NonceSize, plaintext.Length), body.Slice(NonceSize + plaintext.Length, TagSize), plaintext, associatedData);
        }
        catch (AuthenticationTagMismatchException)
        {
            throw RepositoryErrors.Integrity(what, "its authentication tag does not match (it was changed, damaged, or moved from another name)");
        }

        return plaintext;
    }

    public byte[] Open(ReadOnlySpan<byte> sealedBytes, string associatedData, string what) => Open(sealedBytes, Encoding.UTF8.GetBytes(associatedData), what);

    /// <summary>A cipher for a new pack: the current generation and a fresh random salt.</summary>
    public PackCipher CreatePackCipher()
    {
        var generation = CurrentGeneration;
        var salt = RandomNumberGenerator.GetBytes(PackSaltSize);
        return new PackCipher(this, generation, salt, DeriveCipher(generation, salt, "kmsbackup/repository/v3/pack"u8, "new pack"));
    }

    /// <summary>The cipher of an existing pack, from the generation and salt its index and header record.</summary>
    /// <exception cref="BackupIntegrityException">The generation is not known to this process (yet): see <see cref="KeyGenerationMissingException"/>.</exception>
    public PackCipher OpenPackCipher(uint generation, ReadOnlySpan<byte> salt, string what) =>
        new(this, generation, salt.ToArray(), DeriveCipher(generation, salt, "kmsbackup/repository/v3/pack"u8, what));

    private AesGcm DeriveCipher(uint generation, ReadOnlySpan<byte> salt, ReadOnlySpan<byte> info, string what)
    {
        byte[]? root;
        lock (_gate)
        {
            _dataKeys.TryGetValue(generation, out root);
        }

        if (root is null)
        {
            throw KeyGenerationMissingException.Missing(generation, what);
        }

        Span<byte> key = stackalloc byte[32];
        try
        {
            HKDF.DeriveKey(HashAlgorithmName.SHA256, root, key, salt, info);
            return new AesGcm(key, TagSize);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_macKey);
        CryptographicOperations.ZeroMemory(_keyringKey);
        CryptographicOperations.ZeroMemory(_namingKey);
        lock (_gate)
        {
            foreach (var key in _dataKeys.Values)
            {
                CryptographicOperations.ZeroMemory(key);
            }
        }
    }
}

/// <summary>Seals and opens the objects of one pack under its own key.</summary>
internal sealed class PackCipher : IDisposable
{
    private readonly RepositoryCrypto _crypto;
    private readonly AesGcm _aes;
    private IncrementalHash? _idMac;

    internal PackCipher(RepositoryCrypto crypto, uint generation, byte[] salt, AesGcm aes)
    {
        _crypto = crypto;
        Generation = generation;
        Salt = salt;
        _aes = aes;
    }

    public uint Generation { get; }

    public byte[] Salt { get; }

    /// <summary>Seals an object into <paramref name="destination"/>, exactly <c>plaintext.Length + Overhead</c> bytes.</summary>
    public void SealObject(ReadOnlySpan<byte> plaintext, ObjectId id, byte role, Span<byte> destination)
    {
        Span<byte> ad = stackalloc byte[ObjectId.Size + 1];
        id.Write(ad);
        ad[ObjectId.Size] = role;
        var nonce = destination[..RepositoryCrypto.NonceSize];
        RandomNumberGenerator.Fill(nonce);
        _aes.Encrypt(
            nonce, plaintext, destination.Slice(RepositoryCrypto.NonceSize, plaintext.Length),
            destination.Slice(RepositoryCrypto.NonceSize + plaintext.Length, RepositoryCrypto.TagSize), ad);
    }

    /// <summary>Opens the object at <paramref name="location"/> of this pack, whose bytes are <paramref name="pack"/>, checking that it lies within them.</summary>
    public byte[] OpenObject(byte[] pack, ObjectId id, ObjectLocation location)
    {
        if ((long)location.Offset + location.Length > pack.Length)
        {
            throw RepositoryErrors.Integrity($"object {id.Short}", $"pack {ObjectStore.Short(location.PackId)} is shorter than its index says");
        }

        return OpenObject(pack.AsSpan(location.Offset, location.Length), id, location.Role);
    }

    /// <summary>Opens an object of this pack and checks that its plaintext MAC is its ID.</summary>
    public byte[] OpenObject(ReadOnlySpan<byte> sealedBytes, ObjectId id, byte role)
    {
        // Pinned: an object's plaintext may be a tree leaf (key material, secret ciphertexts), and a compacting GC would
        // leave a copy of a movable array behind that the reader's wipe never reaches.
        var plaintext = GC.AllocateUninitializedArray<byte>(Math.Max(0, sealedBytes.Length - RepositoryCrypto.Overhead), pinned: true);
        OpenObject(sealedBytes, id, role, plaintext);
        return plaintext;
    }

    /// <summary>
    /// Opens an object of this pack into the start of <paramref name="destination"/> and checks that its plaintext MAC is
    /// its ID; returns the plaintext's length. On failure, what was written to <paramref name="destination"/> is zeroed.
    /// </summary>
    public int OpenObject(ReadOnlySpan<byte> sealedBytes, ObjectId id, byte role, Span<byte> destination)
    {
        if (sealedBytes.Length < RepositoryCrypto.Overhead)
        {
            throw RepositoryErrors.Integrity($"object {id.Short}", "it is shorter than its nonce and tag");
        }

        Span<byte> ad = stackalloc byte[ObjectId.Size + 1];
        id.Write(ad);
        ad[ObjectId.Size] = role;

        var plaintext = destination[..(sealedBytes.Length - RepositoryCrypto.Overhead)];
        try
        {
            _aes.Decrypt(
                sealedBytes[..RepositoryCrypto.NonceSize], sealedBytes.Slice(RepositoryCrypto.NonceSize, plaintext.Length),
                sealedBytes.Slice(RepositoryCrypto.NonceSize + plaintext.Length, RepositoryCrypto.TagSize), plaintext, ad);
        }
        catch (AuthenticationTagMismatchException)
        {
            throw RepositoryErrors.Integrity($"object {id.Short}", "its authentication tag does not match (it was changed or damaged)");
        }

        // One keyed MAC for all the objects opened through this cipher: keying a MAC per object cost as much as the MAC.
        _idMac ??= _crypto.CreateIdMac();
        if (RepositoryCrypto.IdOf(_idMac, role, plaintext) != id)
        {
            CryptographicOperations.ZeroMemory(plaintext);
            throw RepositoryErrors.Integrity($"object {id.Short}", "its content does not match its ID");
        }

        return plaintext.Length;
    }

    public void Dispose()
    {
        _aes.Dispose();
        _idMac?.Dispose();
    }
}

/// <summary>
/// The cause of an integrity error about an object sealed under a key generation this process does not know:
/// another host may have rotated the repository key since this one read its keys, so the repository reads its
/// keys again and retries once (<see cref="Missing"/> makes the error).
/// </summary>
internal sealed class KeyGenerationMissingException(uint generation) : Exception($"key generation {generation} is not known")
{
    public static BackupIntegrityException Missing(uint generation, string what) => new(new Refusal(
        BackupErrorCode.IntegrityViolation, what,
        string.Create(CultureInfo.InvariantCulture, $"The repository's {what} is sealed under the key generation with ID {generation:x8}, which is not among the repository's readable keys (keys/): its key record is missing or damaged. No data from it was used."),
        "Run verify to see which key records are damaged; restore the keys/ area of the store from a copy."), new KeyGenerationMissingException(generation));

    /// <summary>Whether <paramref name="e"/> is about a generation this process does not know.</summary>
    public static bool Is(Exception e) => e is BackupIntegrityException { InnerException: KeyGenerationMissingException };
}
