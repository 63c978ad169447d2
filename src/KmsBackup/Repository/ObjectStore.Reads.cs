using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;

namespace KmsBackup.Repository;

// Reads: objects by ID from their packs, whole packs, and opening a pack under its key.
internal sealed partial class ObjectStore
{
    /// <summary>
    /// Reads and opens objects, reading each pack once. Another process may have written packs since the
    /// index was read, or a prune may have deleted a pack that held a copy: the index is refreshed once
    /// before an object is called missing. The plaintexts are pinned arrays; a caller that read leaves
    /// zeroes them when done.
    /// </summary>
    public async Task<Dictionary<ObjectId, byte[]>> ReadObjectsAsync(IReadOnlyCollection<ObjectId> ids, CancellationToken cancellationToken)
    {
        var opened = new OpenedArrays(ids.Count);
        await ReadObjectsAsync(ids, opened, cancellationToken).ConfigureAwait(false);
        return opened.Objects;
    }

    /// <summary>
    /// Reads and opens objects as <see cref="ReadObjectsAsync(IReadOnlyCollection{ObjectId}, CancellationToken)"/> does,
    /// into <paramref name="buffer"/> (cleared first) instead of an array each: a walk that reads many leaves reuses one
    /// pinned buffer, which it clears (zeroes) once it is done with them.
    /// </summary>
    public Task ReadObjectsAsync(IReadOnlyCollection<ObjectId> ids, PlaintextBuffer buffer, CancellationToken cancellationToken)
    {
        buffer.Clear();
        return ReadObjectsAsync(ids, (OpenedObjects)buffer, cancellationToken);
    }

    private async Task ReadObjectsAsync(IReadOnlyCollection<ObjectId> ids, OpenedObjects opened, CancellationToken cancellationToken)
    {
        if (ids.Any(id => !TryGetLocation(id, out _)))
        {
            await RefreshIndexAsync(cancellationToken).ConfigureAwait(false);
        }

        try
        {
            await ReadLocatedAsync(ids, opened, cancellationToken).ConfigureAwait(false);
        }
        catch (PackMissingException)
        {
            await RefreshIndexAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await ReadLocatedAsync(ids, opened, cancellationToken).ConfigureAwait(false);
            }
            catch (PackMissingException e)
            {
                throw e.ToIntegrityException();
            }
        }
    }

    private async Task ReadLocatedAsync(IReadOnlyCollection<ObjectId> ids, OpenedObjects opened, CancellationToken cancellationToken)
    {
        var byPack = new Dictionary<string, List<(ObjectId Id, ObjectLocation Location)>>(StringComparer.Ordinal);
        var plaintextBytes = 0L;
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
            plaintextBytes += Math.Max(0, location.Length - RepositoryCrypto.Overhead);
        }

        try
        {
            opened.Reserve(plaintextBytes);
            foreach (var (packId, entries) in byPack)
            {
                entries.Sort(static (a, b) => a.Location.Offset.CompareTo(b.Location.Offset));
                var ranges = await ReadRangesAsync(packId, entries, cancellationToken).ConfigureAwait(false);
                try
                {
                    using var cipher = await OpenPackAsync(packId, ranges[0].Bytes, cancellationToken).ConfigureAwait(false);
                    var next = 0;
                    foreach (var (id, location) in entries)
                    {
                        while (location.Offset >= ranges[next].Start + ranges[next].Bytes.Length && next < ranges.Count - 1)
                        {
                            next++;
                        }

                        var range = ranges[next];
                        var start = location.Offset - range.Start;
                        if (start < 0 || (long)start + location.Length > range.Bytes.Length)
                        {
                            throw RepositoryErrors.Integrity($"object {id.Short}", $"pack {Short(packId)} is shorter than its index says");
                        }

                        opened.Open(cipher, range.Bytes.Span.Slice(start, location.Length), id, location.Role);
                    }
                }
                finally
                {
                    ReturnRanges(ranges);
                }
            }
        }
        catch
        {
            // The objects opened so far may be leaves: the caller, which would wipe them, never gets them.
            opened.Discard();
            throw;
        }
    }

    /// <summary>Where <see cref="ReadLocatedAsync"/> opens objects to.</summary>
    internal abstract class OpenedObjects
    {
        /// <summary>Makes room for this many bytes of plaintext, the sum of the objects about to be opened.</summary>
        public abstract void Reserve(long plaintextBytes);

        /// <summary>Opens an object (see <see cref="PackCipher.OpenObject(ReadOnlySpan{byte}, ObjectId, byte, Span{byte})"/>) and keeps its plaintext.</summary>
        public abstract void Open(PackCipher cipher, ReadOnlySpan<byte> sealedBytes, ObjectId id, byte role);

        /// <summary>Zeroes and forgets every plaintext opened so far.</summary>
        public abstract void Discard();
    }

    /// <summary>Each object in a pinned array of its own.</summary>
    private sealed class OpenedArrays(int count) : OpenedObjects
    {
        public Dictionary<ObjectId, byte[]> Objects { get; } = new(count);

        public override void Reserve(long plaintextBytes)
        {
        }

        public override void Open(PackCipher cipher, ReadOnlySpan<byte> sealedBytes, ObjectId id, byte role) =>
            Objects[id] = cipher.OpenObject(sealedBytes, id, role);

        public override void Discard()
        {
            foreach (var plaintext in Objects.Values)
            {
                CryptographicOperations.ZeroMemory(plaintext);
            }

            Objects.Clear();
        }
    }

    /// <summary>
    /// Ranges of a pack that are read together: one less than this apart are read as one, since a request costs more
    /// than reading this many bytes more.
    /// </summary>
    internal const int RangeMergeGap = 256 * 1024;

    /// <summary>
    /// Reads the parts of pack <paramref name="packId"/> that hold its header and <paramref name="entries"/> (sorted by
    /// offset) with ranged reads, so that a few small objects do not cost their whole pack: the header and each object,
    /// those less than <see cref="RangeMergeGap"/> apart in one read. The first range starts at the header.
    /// </summary>
    private async Task<List<(int Start, Memory<byte> Bytes, byte[]? Rented)>> ReadRangesAsync(string packId, List<(ObjectId Id, ObjectLocation Location)> entries, CancellationToken cancellationToken)
    {
        var planned = new List<(int Start, int End)> { (0, PackHeaderSize) };
        foreach (var (_, location) in entries)
        {
            var end = location.Offset + location.Length;
            var last = planned[^1];
            // Near objects are read together, up to the pooled size: a merged range past it would need an array of its
            // own, and a walk at 1,000,000 items made one of 1-3 MiB per batch of leaves, large-object garbage that
            // the collector let pile up in proportion to the heap (a download peaked 80-110 MiB above its baseline
            // where 100,000 items took 19). Only an object larger than the pooled size alone gets its own array.
            if (location.Offset - last.End < RangeMergeGap && Math.Max(last.End, end) - last.Start <= PooledRangeLimit)
            {
                planned[^1] = (last.Start, Math.Max(last.End, end));
            }
            else
            {
                planned.Add((location.Offset, end));
            }
        }

        // Into buffers from the shared pool: a walk reads a range of a few hundred KB per batch of leaves, and a new array
        // for each went to the large object heap, whose churn cost a download as much as its decryption. The ranges are
        // sealed bytes (nothing to wipe). A larger range (a whole tree read at once) gets an array of its own, so that the
        // pool does not keep pack-sized arrays.
        var ranges = new List<(int Start, Memory<byte> Bytes, byte[]? Rented)>(planned.Count);
        try
        {
            foreach (var (start, end) in planned)
            {
                var rented = end - start <= PooledRangeLimit ? ArrayPool<byte>.Shared.Rent(end - start) : null;
                ranges.Add((start, Memory<byte>.Empty, rented));
                var buffer = rented ?? GC.AllocateUninitializedArray<byte>(end - start);

                // A pack deleted between two ranges (a prune's repack) is missing as a whole: the caller refreshes the index.
                var read = await _store.TryReadRangeIntoAsync(PackKey(packId), start, buffer.AsMemory(0, end - start), cancellationToken).ConfigureAwait(false)
                    ?? throw new PackMissingException(packId);
                ranges[^1] = (start, buffer.AsMemory(0, read), rented);
            }
        }
        catch
        {
            ReturnRanges(ranges);
            throw;
        }

        return ranges;
    }

    /// <summary>The largest range read into a pooled buffer.</summary>
    internal const int PooledRangeLimit = 1024 * 1024;

    private static void ReturnRanges(List<(int Start, Memory<byte> Bytes, byte[]? Rented)> ranges)
    {
        foreach (var (_, _, rented) in ranges)
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }

        ranges.Clear();
    }

    public async Task<byte[]> ReadPackAsync(string packId, CancellationToken cancellationToken)
    {
        var pack = await _store.TryReadAsync(PackKey(packId), cancellationToken).ConfigureAwait(false)
            ?? throw new PackMissingException(packId).ToIntegrityException();
        CheckPackHeader(pack, packId);
        return pack;
    }

    /// <summary>
    /// Reads pack <paramref name="packId"/>, which the store listed as <paramref name="listedLength"/> bytes, into
    /// <paramref name="buffer"/> (grown when too small) and checks its header: a reader of every pack (verify) reuses one
    /// buffer instead of a new pack-sized array per pack, which went to the large object heap and stayed there until a
    /// full collection. A pack longer than listed (a store should never say so) is read whole.
    /// </summary>
    public async Task<ReadOnlyMemory<byte>> ReadPackAsync(string packId, long listedLength, PackBuffer buffer, CancellationToken cancellationToken)
    {
        // One byte more than listed, to see whether the pack ends where the listing says.
        var wanted = (int)Math.Clamp(listedLength + 1, 1, Array.MaxLength);
        var destination = buffer.Take(wanted);
        var read = await _store.TryReadRangeIntoAsync(PackKey(packId), 0, destination, cancellationToken).ConfigureAwait(false)
            ?? throw new PackMissingException(packId).ToIntegrityException();
        if (read == wanted)
        {
            return await ReadPackAsync(packId, cancellationToken).ConfigureAwait(false);
        }

        var pack = destination[..read];
        CheckPackHeader(pack.Span, packId);
        return pack;
    }

    /// <summary>A buffer that <see cref="ReadPackAsync(string, long, PackBuffer, CancellationToken)"/> reads pack after pack into (sealed bytes: nothing to wipe).</summary>
    internal sealed class PackBuffer
    {
        private byte[] _bytes = [];

        /// <summary>The first <paramref name="length"/> bytes of the buffer, grown first if it is shorter.</summary>
        public Memory<byte> Take(int length)
        {
            if (_bytes.Length < length)
            {
                // With room to spare: packs end just past the target size by up to an object, and growing by each few
                // bytes would leave a pack-sized array behind each time.
                _bytes = GC.AllocateUninitializedArray<byte>((int)Math.Min(Array.MaxLength, length + (length / 8L)));
            }

            return _bytes.AsMemory(0, length);
        }
    }

    /// <summary>
    /// Checks a pack's header against its index (the key generation and salt must be the ones the authenticated
    /// index records) and returns the cipher of its objects.
    /// </summary>
    public Task<PackCipher> OpenPackAsync(string packId, ReadOnlyMemory<byte> pack, CancellationToken cancellationToken)
    {
        PackKeyInfo? known;
        lock (_gate)
        {
            known = _packKeys.GetValueOrDefault(packId);
        }

        return OpenPackAsync(packId, pack, known, cancellationToken);
    }

    /// <summary>Checks a pack's header against <paramref name="known"/>, what its index records, and returns the cipher of its objects.</summary>
    public async Task<PackCipher> OpenPackAsync(string packId, ReadOnlyMemory<byte> pack, PackKeyInfo? known, CancellationToken cancellationToken)
    {
        CheckPackHeader(pack.Span, packId);
        var generation = BinaryPrimitives.ReadUInt32LittleEndian(pack.Span.Slice(s_packMagic.Length, 4));
        if (known is null || known.Generation != generation || !pack.Span.Slice(s_packMagic.Length + 4, RepositoryCrypto.PackSaltSize).SequenceEqual(known.Salt))
        {
            throw RepositoryErrors.Integrity($"pack {Short(packId)}", known is null ? "no readable index describes it" : "its key header differs from its index");
        }

        var what = $"pack {Short(packId)}";
        return await WithKeysAsync(() => _crypto.OpenPackCipher(known.Generation, known.Salt, what), cancellationToken).ConfigureAwait(false);
    }

    private static void CheckPackHeader(ReadOnlySpan<byte> pack, string packId)
    {
        if (pack.Length < PackHeaderSize || !pack[..s_packMagic.Length].SequenceEqual(s_packMagic))
        {
            throw RepositoryErrors.Integrity($"pack {Short(packId)}", "its header is not a pack header");
        }
    }

    /// <summary>Whether <paramref name="pack"/>'s SHA-256 is its ID.</summary>
    public static bool PackMatchesId(ReadOnlySpan<byte> pack, string packId) =>
        string.Equals(Convert.ToHexStringLower(SHA256.HashData(pack)), packId, StringComparison.Ordinal);
}
