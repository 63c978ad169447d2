using System.Buffers.Binary;
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
/// files of up to <see cref="PackTargetSize"/> bytes and <see cref="RepositoryCrypto.MaximumObjectsPerPack"/>
/// objects (<c>packs/xx/&lt;sha256&gt;</c>), each followed by an encrypted index object (<c>index/&lt;packId&gt;</c>)
/// listing what it holds. Each pack's objects are sealed under a key of its own, derived from the key generation
/// and the salt in the pack's header and its index. Packs are written before their index, and both before any
/// manifest that refers to them.
/// </summary>
internal sealed class ObjectStore
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
    /// Brings the in-memory index in line with the store: reads the index of each pack this process has not
    /// seen, and forgets each pack whose index is gone (a prune deletes a pack's index before the pack). A
    /// damaged index, or a name under <c>index/</c> that is not a pack ID, is skipped: its pack's objects are
    /// simply unknown here (verify names them), and the repository still opens.
    /// </summary>
    /// <returns>The names under <c>index/</c> that could not be used, each with why.</returns>
    public async Task<IReadOnlyList<(string Key, string Problem)>> RefreshIndexAsync(CancellationToken cancellationToken)
    {
        var listed = new HashSet<string>(StringComparer.Ordinal);
        var unusable = new List<(string, string)>();
        await foreach (var entry in _store.ListAsync(IndexPrefix, cancellationToken).ConfigureAwait(false))
        {
            var packId = entry.Key[IndexPrefix.Length..];
            if (!IsPackId(packId))
            {
                unusable.Add((entry.Key, $"the name '{packId}' under index/ is not a pack ID"));
                continue;
            }

            listed.Add(packId);
        }

        List<string> unseen;
        lock (_gate)
        {
            foreach (var gone in _packs.Keys.Where(p => !listed.Contains(p)).ToList())
            {
                DropPack(gone);
            }

            unseen = [.. listed.Where(p => !_packs.ContainsKey(p))];
        }

        foreach (var packId in unseen)
        {
            var bytes = await _store.TryReadAsync(IndexKey(packId), cancellationToken).ConfigureAwait(false);
            if (bytes is null)
            {
                continue; // deleted meanwhile by a prune
            }

            try
            {
                var (keyInfo, entries) = await WithKeysAsync(() => DecodeIndex(packId, bytes), cancellationToken).ConfigureAwait(false);
                lock (_gate)
                {
                    AddPack(packId, keyInfo, [.. entries]);
                }
            }
            catch (BackupIntegrityException e)
            {
                unusable.Add((IndexKey(packId), e.Message));
            }
        }

        return unusable;
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

    public (PackKeyInfo Key, List<(ObjectId Id, ObjectLocation Location)> Entries) DecodeIndex(string packId, byte[] sealedIndex)
    {
        var name = $"index of pack {Short(packId)}";
        var plain = _crypto.Open(sealedIndex, "index:" + packId, name);
        var reader = new RecordReader(plain, name);
        var generation = reader.ReadVarUInt();
        if (generation is 0 or > uint.MaxValue)
        {
            throw reader.Malformed("its key generation is out of range");
        }

        var keyInfo = new PackKeyInfo((uint)generation, reader.ReadRaw(RepositoryCrypto.PackSaltSize).ToArray());
        var count = reader.ReadCount(RepositoryCrypto.MaximumObjectsPerPack);
        var result = new List<(ObjectId, ObjectLocation)>(count);
        for (var i = 0; i < count; i++)
        {
            var id = ObjectId.Read(reader.ReadRaw(ObjectId.Size));
            var role = reader.ReadByte();
            var offset = reader.ReadInt32();
            var length = reader.ReadInt32();
            if (offset < PackHeaderSize || length < RepositoryCrypto.Overhead)
            {
                throw reader.Malformed("an entry is out of range");
            }

            result.Add((id, new ObjectLocation(packId, offset, length, role)));
        }

        reader.ExpectEnd();
        return (keyInfo, result);
    }

    public PackWriter CreateWriter() => new(this);

    /// <summary>
    /// Reads and opens objects, reading each pack once. Another process may have written packs since the
    /// index was read, or a prune may have deleted a pack that held a copy: the index is refreshed once
    /// before an object is called missing. The plaintexts are pinned arrays; a caller that read leaves
    /// zeroes them when done.
    /// </summary>
    public async Task<Dictionary<ObjectId, byte[]>> ReadObjectsAsync(IReadOnlyCollection<ObjectId> ids, CancellationToken cancellationToken)
    {
        if (ids.Any(id => !TryGetLocation(id, out _)))
        {
            await RefreshIndexAsync(cancellationToken).ConfigureAwait(false);
        }

        try
        {
            return await ReadLocatedAsync(ids, cancellationToken).ConfigureAwait(false);
        }
        catch (PackMissingException)
        {
            await RefreshIndexAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                return await ReadLocatedAsync(ids, cancellationToken).ConfigureAwait(false);
            }
            catch (PackMissingException e)
            {
                throw e.ToIntegrityException();
            }
        }
    }

    private async Task<Dictionary<ObjectId, byte[]>> ReadLocatedAsync(IReadOnlyCollection<ObjectId> ids, CancellationToken cancellationToken)
    {
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
        try
        {
            foreach (var (packId, entries) in byPack)
            {
                var pack = await _store.TryReadAsync(PackKey(packId), cancellationToken).ConfigureAwait(false)
                    ?? throw new PackMissingException(packId);
                using var cipher = await OpenPackAsync(packId, pack, cancellationToken).ConfigureAwait(false);
                foreach (var (id, location) in entries)
                {
                    result[id] = cipher.OpenObject(pack, id, location);
                }
            }
        }
        catch
        {
            // The objects opened so far may be leaves: the caller, which would wipe them, never gets them.
            foreach (var plaintext in result.Values)
            {
                CryptographicOperations.ZeroMemory(plaintext);
            }

            throw;
        }

        return result;
    }

    public async Task<byte[]> ReadPackAsync(string packId, CancellationToken cancellationToken)
    {
        var pack = await _store.TryReadAsync(PackKey(packId), cancellationToken).ConfigureAwait(false)
            ?? throw new PackMissingException(packId).ToIntegrityException();
        CheckPackHeader(pack, packId);
        return pack;
    }

    /// <summary>
    /// Checks a pack's header against its index (the key generation and salt must be the ones the authenticated
    /// index records) and returns the cipher of its objects.
    /// </summary>
    public Task<PackCipher> OpenPackAsync(string packId, byte[] pack, CancellationToken cancellationToken)
    {
        PackKeyInfo? known;
        lock (_gate)
        {
            known = _packKeys.GetValueOrDefault(packId);
        }

        return OpenPackAsync(packId, pack, known, cancellationToken);
    }

    /// <summary>Checks a pack's header against <paramref name="known"/>, what its index records, and returns the cipher of its objects.</summary>
    public async Task<PackCipher> OpenPackAsync(string packId, byte[] pack, PackKeyInfo? known, CancellationToken cancellationToken)
    {
        CheckPackHeader(pack, packId);
        var generation = BinaryPrimitives.ReadUInt32LittleEndian(pack.AsSpan(s_packMagic.Length, 4));
        var salt = pack.AsSpan(s_packMagic.Length + 4, RepositoryCrypto.PackSaltSize);
        if (known is null || known.Generation != generation || !salt.SequenceEqual(known.Salt))
        {
            throw RepositoryErrors.Integrity($"pack {Short(packId)}", known is null ? "no readable index describes it" : "its key header differs from its index");
        }

        var what = $"pack {Short(packId)}";
        return await WithKeysAsync(() => _crypto.OpenPackCipher(known.Generation, known.Salt, what), cancellationToken).ConfigureAwait(false);
    }

    private static void CheckPackHeader(byte[] pack, string packId)
    {
        if (pack.Length < PackHeaderSize || !pack.AsSpan(0, s_packMagic.Length).SequenceEqual(s_packMagic))
        {
            throw RepositoryErrors.Integrity($"pack {Short(packId)}", "its header is not a pack header");
        }
    }

    /// <summary>Whether <paramref name="pack"/>'s SHA-256 is its ID.</summary>
    public static bool PackMatchesId(byte[] pack, string packId) =>
        string.Equals(Convert.ToHexStringLower(SHA256.HashData(pack)), packId, StringComparison.Ordinal);

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

    internal byte[] EncodeIndex(string packId, PackKeyInfo keyInfo, IReadOnlyList<(ObjectId Id, ObjectLocation Location)> entries)
    {
        var writer = new RecordWriter(48 + (entries.Count * 48));
        writer.WriteVarUInt(keyInfo.Generation);
        writer.WriteRaw(keyInfo.Salt);
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

/// <summary>The key a pack's objects are sealed under: its key generation and salt (not secret).</summary>
internal sealed record PackKeyInfo(uint Generation, byte[] Salt);

/// <summary>Gathers new objects into packs and writes each pack, then its index, to the store.</summary>
internal sealed class PackWriter : IDisposable
{
    private readonly ObjectStore _objects;
    private readonly MemoryStream _pack = new();
    private readonly List<(ObjectId Id, int Offset, int Length, byte Role)> _pending = [];
    private readonly HashSet<ObjectId> _pendingIds = [];
    private PackCipher? _cipher;

    public PackWriter(ObjectStore objects)
    {
        _objects = objects;
    }

    /// <summary>
    /// Whether objects the repository already holds are written again (a rekey copies them under the current key
    /// generation); normally they are referred to, not written.
    /// </summary>
    public bool WriteCopies { get; init; }

    /// <summary>Bytes written to the store by this writer (packs and indexes).</summary>
    public long BytesWritten { get; private set; }

    /// <summary>Objects added (new to the repository).</summary>
    public int ObjectsWritten { get; private set; }

    /// <summary>
    /// Every pack the trees written through this writer rely on: the packs this writer wrote, and for each object
    /// already stored that a tree refers to, the packs holding it that no prune had marked when it was referred to.
    /// A set of packs, not of objects, so that it is bounded by the repository's packs however large the trees are.
    /// </summary>
    public HashSet<string> ReferencedPacks { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Adds an object unless the repository (or this writer) has it already; returns its ID. The plaintext is read
    /// before the first await, so a caller may reuse its buffer once the call returns.
    /// </summary>
    public async Task<ObjectId> AddAsync(byte role, ReadOnlyMemory<byte> plaintext, CancellationToken cancellationToken)
    {
        var id = _objects.Crypto.IdOf(role, plaintext.Span);
        if (_pendingIds.Contains(id))
        {
            return id;
        }

        if (!WriteCopies && _objects.AddUsablePacks(id, ReferencedPacks))
        {
            return id;
        }

        if (_cipher is null)
        {
            // A new pack: its own key, from the current key generation and a fresh salt, recorded in its header.
            _cipher = _objects.Crypto.CreatePackCipher();
            _pack.SetLength(0);
            _pack.Write(ObjectStore.PackMagic);
            Span<byte> generation = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(generation, _cipher.Generation);
            _pack.Write(generation);
            _pack.Write(_cipher.Salt);
        }

        // Sealed straight into the pack: an array per object would be as large as the object (a whole tree leaf),
        // and garbage at once.
        var offset = (int)_pack.Length;
        var length = plaintext.Length + RepositoryCrypto.Overhead;
        _pack.SetLength(offset + length);
        _cipher.SealObject(plaintext.Span, id, role, _pack.GetBuffer().AsSpan(offset, length));
        _pack.Position = offset + length;
        _pending.Add((id, offset, length, role));
        _pendingIds.Add(id);
        ObjectsWritten++;
        if (_pack.Length >= ObjectStore.PackTargetSize || _pending.Count >= RepositoryCrypto.MaximumObjectsPerPack)
        {
            await FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        return id;
    }

    public void Dispose()
    {
        _cipher?.Dispose();
        _pack.Dispose();
    }

    /// <summary>Writes what is gathered: the pack, then its index; then makes its objects known.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        if (_pending.Count == 0 || _cipher is null)
        {
            return;
        }

        // The pack is written from the writer's own buffer, which is reused for the next pack: stores read the
        // content only until their create completes.
        var pack = _pack.GetBuffer().AsMemory(0, (int)_pack.Length);
        var packId = Convert.ToHexStringLower(SHA256.HashData(pack.Span));
        var entries = _pending.Select(p => (p.Id, new ObjectLocation(packId, p.Offset, p.Length, p.Role))).ToList();
        var keyInfo = new PackKeyInfo(_cipher.Generation, _cipher.Salt);
        var index = _objects.EncodeIndex(packId, keyInfo, entries);

        await _objects.Store.TryCreateAsync(ObjectStore.PackKey(packId), pack, cancellationToken).ConfigureAwait(false);
        await _objects.Store.TryCreateAsync(ObjectStore.IndexKey(packId), index, cancellationToken).ConfigureAwait(false);
        BytesWritten += pack.Length + index.Length;
        _objects.Publish(packId, keyInfo, entries);
        ReferencedPacks.Add(packId);

        _pending.Clear();
        _pendingIds.Clear();
        _pack.SetLength(0);
        _cipher.Dispose();
        _cipher = null; // the next pack gets a key of its own
    }
}
