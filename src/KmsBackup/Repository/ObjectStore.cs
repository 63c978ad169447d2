
namespace KmsBackup.Repository;

/// <summary>Roles of content-addressed objects; part of each object's MAC and associated data.</summary>
internal static class ObjectRole
{
    public const byte KeyLeaf = 1;
    public const byte SecretLeaf = 2;
    public const byte Branch = 3;
}

/// <summary>Where an object lives: a pack, an offset and a length (sealed bytes).</summary>
internal readonly record struct ObjectLocation(string PackId, int Offset, int Length, byte Role);

/// <summary>
/// The content-addressed objects of a repository, packed: new objects are sealed and gathered into pack
/// files of up to <see cref="PackTargetSize"/> bytes and <see cref="RepositoryCrypto.MaximumObjectsPerPack"/>
/// objects (<c>packs/xx/&lt;sha256&gt;</c>), each followed by an encrypted index object (<c>index/&lt;packId&gt;</c>)
/// listing what it holds. Each pack's objects are sealed under a key of its own, derived from the key generation
/// and the salt in the pack's header and its index. Packs are written before their index, and both before any
/// manifest that refers to them.
/// </summary>
internal sealed partial class ObjectStore
{
    public const int PackTargetSize = 8 * 1024 * 1024;
    public const string PackPrefix = "packs/";
    public const string IndexPrefix = "index/";
    private static readonly byte[] s_packMagic = "KBPACK02"u8.ToArray();

    /// <summary>A pack's header: magic, key generation (4 bytes, little-endian) and key salt.</summary>
    public static readonly int PackHeaderSize = s_packMagic.Length + 4 + RepositoryCrypto.PackSaltSize;

    private readonly BackupStore _store;
    private readonly RepositoryCrypto _crypto;
    private readonly object _gate = new();

    // Every pack whose index this process has read, with what it holds. An object normally lives in one
    // pack; a writer that rescued objects from a pack a prune had marked leaves a second copy, so an ID
    // has one primary location and, rarely, others.
    private readonly Dictionary<string, (ObjectId Id, ObjectLocation Location)[]> _packs = new(StringComparer.Ordinal);
    private readonly Dictionary<ObjectId, ObjectLocation> _index = [];
    private readonly Dictionary<ObjectId, List<ObjectLocation>> _copies = [];
    private readonly Dictionary<string, PackKeyInfo> _packKeys = new(StringComparer.Ordinal);
    private HashSet<string> _excludedPacks = new(StringComparer.Ordinal);

    public ObjectStore(BackupStore store, RepositoryCrypto crypto)
    {
        _store = store;
        _crypto = crypto;
    }

    public RepositoryCrypto Crypto => _crypto;

    /// <summary>
    /// Reads the repository's key records again (set by the repository): called once when an index or a pack is
    /// sealed under a key generation this process does not know, because another host rotated the key.
    /// </summary>
    public Func<CancellationToken, Task>? RefreshKeys { get; set; }

    /// <summary>The key generation each known pack is sealed under, for rekeying and verify.</summary>
    public Dictionary<string, uint> PackGenerations()
    {
        lock (_gate)
        {
            return _packKeys.ToDictionary(p => p.Key, p => p.Value.Generation, StringComparer.Ordinal);
        }
    }

    /// <summary>The objects a known pack holds, as its index lists them; empty if the pack is not known.</summary>
    public IReadOnlyList<(ObjectId Id, ObjectLocation Location)> EntriesOf(string packId)
    {
        lock (_gate)
        {
            return _packs.TryGetValue(packId, out var entries) ? entries : [];
        }
    }

    /// <summary>Every known pack holding <paramref name="id"/>.</summary>
    public List<string> PacksOf(ObjectId id)
    {
        lock (_gate)
        {
            return [.. LocationsOf(id).Select(l => l.PackId)];
        }
    }

    public BackupStore Store => _store;

    public static string PackKey(string packId) => $"{PackPrefix}{packId[..2]}/{packId}";

    public static string IndexKey(string packId) => $"{IndexPrefix}{packId}";

    /// <summary>Whether <paramref name="name"/> can be a pack ID: 64 lowercase hexadecimal digits (a SHA-256).</summary>
    public static bool IsPackId(string name) =>
        name.Length == 64 && name.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    /// <summary>A pack ID (or anything found where one should be) shortened for messages.</summary>
    public static string Short(string packId) => packId.Length > 12 ? packId[..12] : packId;

    /// <summary>
    /// Whether a new tree may refer to <paramref name="id"/> without writing it (a pack whose index this process has
    /// seen holds it, and no prune has marked that pack); if so, adds every such pack to <paramref name="packs"/>.
    /// </summary>
    public bool AddUsablePacks(ObjectId id, HashSet<string> packs)
    {
        lock (_gate)
        {
            var found = false;
            foreach (var location in LocationsOf(id))
            {
                if (!_excludedPacks.Contains(location.PackId))
                {
                    packs.Add(location.PackId);
                    found = true;
                }
            }

            return found;
        }
    }

    /// <summary>Whether a new tree may rely on the objects of <paramref name="packId"/>: its index is known here and no prune has marked it.</summary>
    public bool IsUsablePack(string packId)
    {
        lock (_gate)
        {
            return _packs.ContainsKey(packId) && !_excludedPacks.Contains(packId);
        }
    }

    /// <summary>Packs that a pending prune may delete: new trees do not rely on their objects.</summary>
    public void ExcludePacks(IEnumerable<string> packIds)
    {
        lock (_gate)
        {
            _excludedPacks = new HashSet<string>(packIds, StringComparer.Ordinal);
        }
    }

    /// <summary>Where <paramref name="id"/> is read from: preferably a pack no prune has marked.</summary>
    public bool TryGetLocation(ObjectId id, out ObjectLocation location)
    {
        lock (_gate)
        {
            foreach (var candidate in LocationsOf(id))
            {
                if (!_excludedPacks.Contains(candidate.PackId))
                {
                    location = candidate;
                    return true;
                }
            }

            return _index.TryGetValue(id, out location);
        }
    }

    /// <summary>Every pack known to hold at least one of <paramref name="ids"/>: a pack is live if any copy of a live object is in it.</summary>
    public HashSet<string> PacksHolding(IEnumerable<ObjectId> ids)
    {
        var packs = new HashSet<string>(StringComparer.Ordinal);
        lock (_gate)
        {
            foreach (var id in ids)
            {
                foreach (var location in LocationsOf(id))
                {
                    packs.Add(location.PackId);
                }
            }
        }

        return packs;
    }

    /// <summary>
    /// Runs <paramref name="open"/>; if what it opens is sealed under a key generation this process does not know,
    /// reads the key records again (another host may have rotated the key) and runs it once more.
    /// </summary>
    public async Task<T> WithKeysAsync<T>(Func<T> open, CancellationToken cancellationToken)
    {
        try
        {
            return open();
        }
        catch (BackupIntegrityException e) when (KeyGenerationMissingException.Is(e) && RefreshKeys is not null)
        {
            await RefreshKeys(cancellationToken).ConfigureAwait(false);
            return open();
        }
    }

    public PackWriter CreateWriter() => new(this);

    internal void Publish(string packId, PackKeyInfo keyInfo, IEnumerable<(ObjectId Id, ObjectLocation Location)> entries)
    {
        lock (_gate)
        {
            AddPack(packId, keyInfo, [.. entries]);
        }
    }

    internal void Forget(IEnumerable<string> packIds)
    {
        lock (_gate)
        {
            foreach (var packId in packIds)
            {
                DropPack(packId);
            }
        }
    }

    private IEnumerable<ObjectLocation> LocationsOf(ObjectId id)
    {
        if (_index.TryGetValue(id, out var primary))
        {
            yield return primary;
            if (_copies.TryGetValue(id, out var copies))
            {
                foreach (var copy in copies)
                {
                    yield return copy;
                }
            }
        }
    }

    private void AddPack(string packId, PackKeyInfo keyInfo, (ObjectId Id, ObjectLocation Location)[] entries)
    {
        if (!_packs.TryAdd(packId, entries))
        {
            return;
        }

        _packKeys[packId] = keyInfo;

        foreach (var (id, location) in entries)
        {
            if (!_index.TryAdd(id, location))
            {
                if (!_copies.TryGetValue(id, out var copies))
                {
                    _copies[id] = copies = [];
                }

                copies.Add(location);
            }
        }
    }

    private void DropPack(string packId)
    {
        if (!_packs.Remove(packId, out var entries))
        {
            return;
        }

        _packKeys.Remove(packId);

        foreach (var (id, _) in entries)
        {
            _copies.TryGetValue(id, out var copies);
            copies?.RemoveAll(l => string.Equals(l.PackId, packId, StringComparison.Ordinal));
            if (_index.TryGetValue(id, out var primary) && string.Equals(primary.PackId, packId, StringComparison.Ordinal))
            {
                if (copies is { Count: > 0 })
                {
                    _index[id] = copies[^1];
                    copies.RemoveAt(copies.Count - 1);
                }
                else
                {
                    _index.Remove(id);
                }
            }

            if (copies is { Count: 0 })
            {
                _copies.Remove(id);
            }
        }
    }

    /// <summary>A pack the index names is gone from the store (a prune deleted it, or it was lost).</summary>
    private sealed class PackMissingException(string packId) : Exception($"pack {Short(packId)} is missing")
    {
        public BackupIntegrityException ToIntegrityException() => RepositoryErrors.Integrity($"pack {Short(packId)}", "it is missing from the store");
    }

    internal static ReadOnlySpan<byte> PackMagic => s_packMagic;
}
