using System.Security.Cryptography;
using System.Text;

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
/// files of up to <see cref="PackTargetSize"/> bytes (<c>packs/xx/&lt;sha256&gt;</c>), each followed by an
/// encrypted index object (<c>index/&lt;packId&gt;</c>) listing what it holds. Packs are written before
/// their index, and both before any manifest that refers to them.
/// </summary>
internal sealed class ObjectStore
{
    public const int PackTargetSize = 8 * 1024 * 1024;
    public const string PackPrefix = "packs/";
    public const string IndexPrefix = "index/";
    private static readonly byte[] s_packMagic = "KBPACK01"u8.ToArray();

    private readonly BackupStore _store;
    private readonly RepositoryCrypto _crypto;
    private readonly object _gate = new();
    private Dictionary<ObjectId, ObjectLocation> _index = [];
    private HashSet<string> _excludedPacks = new(StringComparer.Ordinal);

    public ObjectStore(BackupStore store, RepositoryCrypto crypto)
    {
        _store = store;
        _crypto = crypto;
    }

    public RepositoryCrypto Crypto => _crypto;

    public BackupStore Store => _store;

    public static string PackKey(string packId) => $"{PackPrefix}{packId[..2]}/{packId}";

    public static string IndexKey(string packId) => $"{IndexPrefix}{packId}";

    /// <summary>Whether a new tree may refer to <paramref name="id"/> without writing it: it is stored, and not in a pack a prune is about to delete.</summary>
    public bool Contains(ObjectId id)
    {
        lock (_gate)
        {
            return _index.TryGetValue(id, out var location) && !_excludedPacks.Contains(location.PackId);
        }
    }

    /// <summary>Packs that a pending prune may delete: new trees do not reuse their objects.</summary>
    public void ExcludePacks(IEnumerable<string> packIds)
    {
        lock (_gate)
        {
            _excludedPacks = new HashSet<string>(packIds, StringComparer.Ordinal);
        }
    }

    /// <summary>Whether any of <paramref name="ids"/> lives in one of <paramref name="packIds"/>.</summary>
    public bool AnyIn(IEnumerable<ObjectId> ids, IReadOnlySet<string> packIds)
    {
        lock (_gate)
        {
            return ids.Any(id => _index.TryGetValue(id, out var location) && packIds.Contains(location.PackId));
        }
    }

    public bool TryGetLocation(ObjectId id, out ObjectLocation location)
    {
        lock (_gate)
        {
            return _index.TryGetValue(id, out location);
        }
    }

    public IReadOnlyDictionary<ObjectId, ObjectLocation> Snapshot()
    {
        lock (_gate)
        {
            return new Dictionary<ObjectId, ObjectLocation>(_index);
        }
    }

    /// <summary>Loads every index object. Damaged ones throw, naming the index.</summary>
    public async Task LoadIndexAsync(CancellationToken cancellationToken)
    {
        var index = new Dictionary<ObjectId, ObjectLocation>();
        await foreach (var entry in _store.ListAsync(IndexPrefix, cancellationToken).ConfigureAwait(false))
        {
            var packId = entry.Key[IndexPrefix.Length..];
            var bytes = await _store.TryReadAsync(entry.Key, cancellationToken).ConfigureAwait(false);
            if (bytes is null)
            {
                continue; // deleted meanwhile by a prune
            }

            foreach (var (id, location) in DecodeIndex(packId, bytes))
            {
                index.TryAdd(id, location);
            }
        }

        lock (_gate)
        {
            _index = index;
        }
    }

    public IEnumerable<(ObjectId Id, ObjectLocation Location)> DecodeIndex(string packId, byte[] sealedIndex)
    {
        var plain = _crypto.Open(sealedIndex, "index:" + packId, $"index of pack {packId[..12]}");
        var reader = new RecordReader(plain, $"index of pack {packId[..12]}");
        var count = reader.ReadCount(10_000_000);
        var result = new List<(ObjectId, ObjectLocation)>(count);
        for (var i = 0; i < count; i++)
        {
            var id = ObjectId.Read(reader.ReadRaw(ObjectId.Size));
            var role = reader.ReadByte();
            var offset = reader.ReadInt32();
            var length = reader.ReadInt32();
            if (offset < s_packMagic.Length || length < RepositoryCrypto.Overhead)
            {
                throw reader.Malformed("an entry is out of range");
            }

            result.Add((id, new ObjectLocation(packId, offset, length, role)));
        }

        reader.ExpectEnd();
        return result;
    }

    public PackWriter CreateWriter() => new(this);

    /// <summary>Reads and opens objects, reading each pack once.</summary>
    public async Task<Dictionary<ObjectId, byte[]>> ReadObjectsAsync(IReadOnlyCollection<ObjectId> ids, CancellationToken cancellationToken)
    {
        // Another process may have written packs since the index was loaded: reload once before calling an object missing.
        if (ids.Any(id => !TryGetLocation(id, out _)))
        {
            await LoadIndexAsync(cancellationToken).ConfigureAwait(false);
        }

        var byPack = new Dictionary<string, List<(ObjectId Id, ObjectLocation Location)>>(StringComparer.Ordinal);
        foreach (var id in ids)
        {
            if (!TryGetLocation(id, out var location))
            {
                throw RepositoryErrors.Integrity($"object {id.Short}", "a manifest refers to it, but no pack holds it");
            }

            if (!byPack.TryGetValue(location.PackId, out var list))
            {
                byPack[location.PackId] = list = [];
            }

            list.Add((id, location));
        }

        var result = new Dictionary<ObjectId, byte[]>(ids.Count);
        foreach (var (packId, entries) in byPack)
        {
            var pack = await ReadPackAsync(packId, cancellationToken).ConfigureAwait(false);
            foreach (var (id, location) in entries)
            {
                if ((long)location.Offset + location.Length > pack.Length)
                {
                    throw RepositoryErrors.Integrity($"object {id.Short}", $"pack {packId[..12]} is shorter than its index says");
                }

                result[id] = _crypto.OpenObject(pack.AsSpan(location.Offset, location.Length), id, location.Role);
            }
        }

        return result;
    }

    public async Task<byte[]> ReadPackAsync(string packId, CancellationToken cancellationToken)
    {
        var key = PackKey(packId);
        var pack = await _store.TryReadAsync(key, cancellationToken).ConfigureAwait(false);
        if (pack is null)
        {
            throw RepositoryErrors.Integrity($"pack {packId[..12]}", "it is missing from the store");
        }

        if (pack.Length < s_packMagic.Length || !pack.AsSpan(0, s_packMagic.Length).SequenceEqual(s_packMagic))
        {
            throw RepositoryErrors.Integrity($"pack {packId[..12]}", "its header is not a pack header");
        }

        return pack;
    }

    /// <summary>Whether <paramref name="pack"/>'s SHA-256 is its ID.</summary>
    public static bool PackMatchesId(byte[] pack, string packId) =>
        string.Equals(Convert.ToHexStringLower(SHA256.HashData(pack)), packId, StringComparison.Ordinal);

    internal void Publish(IEnumerable<(ObjectId Id, ObjectLocation Location)> entries)
    {
        lock (_gate)
        {
            foreach (var (id, location) in entries)
            {
                _index.TryAdd(id, location);
            }
        }
    }

    internal void Forget(IReadOnlySet<string> packIds)
    {
        lock (_gate)
        {
            foreach (var id in _index.Where(e => packIds.Contains(e.Value.PackId)).Select(e => e.Key).ToList())
            {
                _index.Remove(id);
            }
        }
    }

    internal byte[] EncodeIndex(string packId, IReadOnlyList<(ObjectId Id, ObjectLocation Location)> entries)
    {
        var writer = new RecordWriter(16 + (entries.Count * 48));
        writer.WriteVarUInt((ulong)entries.Count);
        Span<byte> idBytes = stackalloc byte[ObjectId.Size];
        foreach (var (id, location) in entries)
        {
            id.Write(idBytes);
            writer.WriteRaw(idBytes);
            writer.WriteByte(location.Role);
            writer.WriteInt32(location.Offset);
            writer.WriteInt32(location.Length);
        }

        return _crypto.Seal(writer.WrittenSpan, Encoding.UTF8.GetBytes("index:" + packId));
    }

    internal static ReadOnlySpan<byte> PackMagic => s_packMagic;
}

/// <summary>Gathers new objects into packs and writes each pack, then its index, to the store.</summary>
internal sealed class PackWriter : IDisposable
{
    private readonly ObjectStore _objects;
    private readonly MemoryStream _pack = new();
    private readonly List<(ObjectId Id, int Offset, int Length, byte Role)> _pending = [];
    private readonly HashSet<ObjectId> _pendingIds = [];

    public PackWriter(ObjectStore objects)
    {
        _objects = objects;
        _pack.Write(ObjectStore.PackMagic);
    }

    /// <summary>Bytes written to the store by this writer (packs and indexes).</summary>
    public long BytesWritten { get; private set; }

    /// <summary>Objects added (new to the repository).</summary>
    public int ObjectsWritten { get; private set; }

    /// <summary>Objects the new trees refer to that were already stored (deduplicated).</summary>
    public HashSet<ObjectId> ReusedIds { get; } = [];

    /// <summary>Adds an object unless the repository (or this writer) has it already; returns its ID.</summary>
    public async Task<ObjectId> AddAsync(byte role, ReadOnlyMemory<byte> plaintext, CancellationToken cancellationToken)
    {
        var id = _objects.Crypto.IdOf(role, plaintext.Span);
        if (_pendingIds.Contains(id))
        {
            return id;
        }

        if (_objects.Contains(id))
        {
            ReusedIds.Add(id);
            return id;
        }

        var sealedBytes = _objects.Crypto.SealObject(plaintext.Span, id, role);
        _pending.Add((id, (int)_pack.Length, sealedBytes.Length, role));
        _pendingIds.Add(id);
        _pack.Write(sealedBytes);
        ObjectsWritten++;
        if (_pack.Length >= ObjectStore.PackTargetSize)
        {
            await FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        return id;
    }

    public void Dispose() => _pack.Dispose();

    /// <summary>Writes what is gathered: the pack, then its index; then makes its objects known.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        if (_pending.Count == 0)
        {
            return;
        }

        var pack = _pack.ToArray();
        var packId = Convert.ToHexStringLower(SHA256.HashData(pack));
        var entries = _pending.Select(p => (p.Id, new ObjectLocation(packId, p.Offset, p.Length, p.Role))).ToList();
        var index = _objects.EncodeIndex(packId, entries);

        await _objects.Store.TryCreateAsync(ObjectStore.PackKey(packId), pack, cancellationToken).ConfigureAwait(false);
        await _objects.Store.TryCreateAsync(ObjectStore.IndexKey(packId), index, cancellationToken).ConfigureAwait(false);
        BytesWritten += pack.Length + index.Length;
        _objects.Publish(entries);

        _pending.Clear();
        _pendingIds.Clear();
        _pack.SetLength(0);
        _pack.Write(ObjectStore.PackMagic);
    }
}
