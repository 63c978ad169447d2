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
}
