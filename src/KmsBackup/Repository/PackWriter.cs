using System.Buffers.Binary;
using System.Security.Cryptography;

namespace KmsBackup.Repository;
/// <summary>The key a pack's objects are sealed under: its key generation and salt (not secret).</summary>
internal sealed record PackKeyInfo(uint Generation, byte[] Salt);

/// <summary>Gathers new objects into packs and writes each pack, then its index, to the store.</summary>
internal sealed class PackWriter : IDisposable
{
    private readonly ObjectStore _objects;
    /// <summary>The size a pack's buffer jumps to once it outgrows the doubling limit: the target and the pack's header.</summary>
    private const int PackBufferCeiling = ObjectStore.PackTargetSize + 64;

    private readonly MemoryStream _pack = new();
    private readonly List<(ObjectId Id, int Offset, int Length, byte Role)> _pending = [];
    private readonly HashSet<ObjectId> _pendingIds = [];
    private PackCipher? _cipher;
    private IncrementalHash? _idMac;

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
        // One keyed MAC for every object this writer adds: keying a MAC per object cost as much as the MAC of a leaf.
        _idMac ??= _objects.Crypto.CreateIdMac();
        var id = RepositoryCrypto.IdOf(_idMac, role, plaintext.Span);
        if (_pendingIds.Contains(id))
        {
            return id;
        }

        if (!WriteCopies && _objects.AddUsablePacks(id, ReferencedPacks))
        {
            return id;
        }

        var length = plaintext.Length + RepositoryCrypto.Overhead;
        if (_cipher is not null && _pending.Count > 0 && _pack.Length + length > ObjectStore.PackTargetSize)
        {
            // The object would take the pack past its target: the pack goes first, so that a pack (and the buffer it is
            // gathered in) holds at most the target, or one object larger than it alone.
            await FlushAsync(cancellationToken).ConfigureAwait(false);
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
        if (offset + length > _pack.Capacity)
        {
            // Doubling while small, then the target's size at once: a large pack leaves no series of outgrown buffers.
            _pack.Capacity = RecordWriter.NextCapacity(_pack.Capacity, offset + length, PackBufferCeiling);
        }

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
        _idMac?.Dispose();
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
