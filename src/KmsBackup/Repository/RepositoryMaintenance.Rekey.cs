using System.Security.Cryptography;

namespace KmsBackup.Repository;
// Rekey: objects of packs under older key generations copied under the current one, and the old packs marked.
internal static partial class RepositoryMaintenance
{
    /// <summary>
    /// Rewrites the objects of packs sealed under an older key generation into new packs under the current one,
    /// then marks the old packs: a prune at least the grace period later deletes each old pack whose live objects
    /// all have a copy in an unmarked pack (docs/repository-format.md, "Key rotation and rekey"). Packs a marker
    /// already names are left to the prunes. Safe to interrupt at any point and to run again: what was copied is
    /// only garbage until its old pack is marked.
    /// </summary>
    /// <param name="repository">The repository.</param>
    /// <param name="now">The time recorded in the marker.</param>
    /// <param name="maximumPacks">How many old packs to rewrite in this call at most.</param>
    /// <param name="cancellationToken">Cancels the rekey.</param>
    public static async Task<RekeyResult> RekeyAsync(BackupRepository repository, DateTimeOffset now, int maximumPacks, CancellationToken cancellationToken)
    {
        var objects = repository.Objects;
        await repository.RefreshKeysAsync(cancellationToken).ConfigureAwait(false);
        var markers = await repository.ReadPruneMarkersAsync(cancellationToken).ConfigureAwait(false);
        await objects.RefreshIndexAsync(cancellationToken).ConfigureAwait(false);
        var current = objects.Crypto.CurrentGeneration;
        var marked = markers.MarkedPacks.ToHashSet(StringComparer.Ordinal);
        var generations = objects.PackGenerations();
        var old = generations
            .Where(p => p.Value != current && !marked.Contains(p.Key))
            .Select(p => p.Key).Order(StringComparer.Ordinal).ToList();

        // Hosts rekeying at once start at different packs, so they seldom copy the same one.
        var start = old.Count == 0 ? 0 : RandomNumberGenerator.GetInt32(old.Count);
        old = [.. old.Skip(start), .. old.Take(start)];

        // An object that already has a copy under the current generation in a pack no marker names (a rekey that died
        // before its marker, or another host's) is not copied again: its old pack is only marked.
        bool HasCurrentCopy(ObjectId id, string from) => objects.PacksOf(id).Any(p =>
            !string.Equals(p, from, StringComparison.Ordinal) && !marked.Contains(p) && generations.GetValueOrDefault(p) == current);

        var rewritten = new List<string>();
        var damaged = 0;
        var objectsCopied = 0;
        using var writer = new PackWriter(objects) { WriteCopies = true };
        foreach (var packId in old)
        {
            if (rewritten.Count >= maximumPacks)
            {
                break;
            }

            var entries = objects.EntriesOf(packId);
            try
            {
                objectsCopied += await CopyObjectsAsync(objects, writer, packId, [.. entries.Where(e => !HasCurrentCopy(e.Id, packId))], cancellationToken).ConfigureAwait(false);
                rewritten.Add(packId);
            }
            catch (BackupIntegrityException)
            {
                damaged++; // deleted meanwhile by a prune, or damaged: verify names it; the other packs go on
            }
        }

        // Copies first, then the marker: until the marker exists the copies are merely extra, and the next rekey marks
        // the old pack without copying it again.
        await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        if (rewritten.Count > 0)
        {
            await repository.WritePruneMarkerAsync(now, rewritten, [], cancellationToken).ConfigureAwait(false);
        }

        return new RekeyResult(current, rewritten.Count, objectsCopied, writer.BytesWritten, old.Count - rewritten.Count - damaged, damaged);
    }
}
