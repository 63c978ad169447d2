using System.Security.Cryptography;

namespace KmsBackup.Repository;
// Repack: a prune copies the live objects of partly used packs into new packs, then marks the old ones.
internal static partial class RepositoryMaintenance
{
    /// <summary>
    /// Copies the live objects of partly used packs into new packs, under the current key generation, the packs with the
    /// largest unused fraction first, until the unused bytes left in the usable packs are under <paramref name="threshold"/>
    /// of their bytes (docs/repository-format.md, "How a prune deletes", repack). The caller
    /// marks the packs returned, after this has flushed the copies: until then the copies are merely extra. A pack
    /// counts an object as used only if it is that object's <em>home</em>: the first, in ordinal order, of the usable
    /// packs holding a copy, so a duplicate copy counts as unused and a pack whose objects all live elsewhere as well
    /// is marked without copying anything. A pack that cannot be read or opened is left whole (verify names it).
    /// </summary>
    /// <param name="objects">The repository's objects, with the index the live set was computed against.</param>
    /// <param name="live">Every object a recovery point refers to.</param>
    /// <param name="usable">The live packs (holding a live object) that exist, have a readable index and that no marker names.</param>
    /// <param name="keep">Usable packs not to repack (pinned by a writer).</param>
    /// <param name="threshold">The fraction of the usable packs' bytes that may stay unused; 1 or more turns repacking off.</param>
    /// <param name="cancellationToken">Cancels the copying; what was copied stays as extra copies.</param>
    public static async Task<RepackResult> RepackAsync(
        ObjectStore objects, IReadOnlySet<ObjectId> live, IReadOnlySet<string> usable, IReadOnlySet<string> keep, double threshold, CancellationToken cancellationToken)
    {
        if (threshold >= 1)
        {
            return new RepackResult([], 0);
        }

        string? HomeOf(ObjectId id)
        {
            string? home = null;
            foreach (var pack in objects.PacksOf(id))
            {
                if (usable.Contains(pack) && (home is null || string.CompareOrdinal(pack, home) < 0))
                {
                    home = pack;
                }
            }

            return home;
        }

        // Repack the packs with the largest unused fraction first, until the unused bytes left are under the threshold of
        // all bytes: each byte copied then frees as much as it can, and the bound holds for the packs as a whole.
        var packs = new List<(string Pack, long Total, long Unused, List<(ObjectId Id, ObjectLocation Location)> Homed)>();
        long allBytes = 0, allUnused = 0;
        foreach (var pack in usable)
        {
            var entries = objects.EntriesOf(pack);
            var total = entries.Sum(e => (long)e.Location.Length);
            var homed = entries.Where(e => live.Contains(e.Id) && string.Equals(HomeOf(e.Id), pack, StringComparison.Ordinal)).ToList();
            var unused = total - homed.Sum(e => (long)e.Location.Length);
            allBytes += total;
            allUnused += unused;
            if (total > 0 && unused > 0 && !keep.Contains(pack))
            {
                packs.Add((pack, total, unused, homed));
            }
        }

        var candidates = new List<(string Pack, List<(ObjectId Id, ObjectLocation Location)> Homed)>();
        foreach (var (pack, total, unused, homed) in packs.OrderByDescending(p => (double)p.Unused / p.Total).ThenBy(p => p.Pack, StringComparer.Ordinal))
        {
            if (allUnused == 0 || allUnused < threshold * allBytes)
            {
                break;
            }

            candidates.Add((pack, homed));
            allBytes -= unused; // its used bytes move to a new pack; its unused ones go
            allUnused -= unused;
        }

        var repacked = new List<string>();
        using var writer = new PackWriter(objects) { WriteCopies = true };
        foreach (var (pack, homed) in candidates)
        {
            try
            {
                await CopyObjectsAsync(objects, writer, pack, homed, cancellationToken).ConfigureAwait(false);
                repacked.Add(pack);
            }
            catch (BackupIntegrityException)
            {
                // Deleted meanwhile, or damaged: left as it is (verify names it); the other packs go on.
            }
        }

        await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        return new RepackResult(repacked, writer.BytesWritten);
    }

    /// <summary>
    /// Opens <paramref name="entries"/> of one pack and adds each to <paramref name="writer"/> (same ID and role). Every
    /// object is opened before any is added, so a pack with one damaged object is left whole, not half copied; every
    /// opened plaintext and the pack's bytes are zeroed after.
    /// </summary>
    /// <returns>How many objects were copied.</returns>
    /// <exception cref="BackupIntegrityException">The pack is gone or an object in it does not open.</exception>
    private static async Task<int> CopyObjectsAsync(
        ObjectStore objects, PackWriter writer, string packId, List<(ObjectId Id, ObjectLocation Location)> entries, CancellationToken cancellationToken)
    {
        if (entries.Count == 0)
        {
            return 0;
        }

        var pack = await objects.ReadPackAsync(packId, cancellationToken).ConfigureAwait(false);
        var opened = new List<(byte Role, byte[] Plain)>(entries.Count);
        try
        {
            using var cipher = await objects.OpenPackAsync(packId, pack, cancellationToken).ConfigureAwait(false);
            foreach (var (id, location) in entries)
            {
                opened.Add((location.Role, cipher.OpenObject(pack, id, location)));
            }

            foreach (var (role, plain) in opened)
            {
                await writer.AddAsync(role, plain, cancellationToken).ConfigureAwait(false);
            }

            return opened.Count;
        }
        finally
        {
            foreach (var (_, plain) in opened)
            {
                CryptographicOperations.ZeroMemory(plain);
            }

            CryptographicOperations.ZeroMemory(pack);
        }
    }
}

/// <summary>What a prune's repacking did.</summary>
/// <param name="Repacked">Packs whose live objects were copied (or all had copies elsewhere): the caller marks them.</param>
/// <param name="BytesWritten">Bytes of new packs and indexes written.</param>
internal readonly record struct RepackResult(IReadOnlyList<string> Repacked, long BytesWritten);
