using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace KmsBackup.Repository;
// Pins and prune markers: what writers rely on, and what a prune has marked for deletion.
internal sealed partial class BackupRepository
{
    // --- prune markers ---

    /// <summary>
    /// Reads the pending prune markers: packs a prune has marked for deletion, and when. A marker that does
    /// not open is set apart: no prune can act on it either, so its packs stay (verify names it).
    /// </summary>
    public async Task<PruneMarkers> ReadPruneMarkersAsync(CancellationToken cancellationToken)
    {
        var markers = new List<PruneMarker>();
        var unreadable = new List<(string Key, string Problem)>();
        await foreach (var entry in _store.ListAsync(PruneMarkerPrefix, cancellationToken).ConfigureAwait(false))
        {
            var bytes = await _store.TryReadAsync(entry.Key, cancellationToken).ConfigureAwait(false);
            if (bytes is null)
            {
                continue;
            }

            try
            {
                var plain = await Objects.WithKeysAsync(() => _crypto.Open(bytes, entry.Key, $"prune marker '{entry.Key}'"), cancellationToken).ConfigureAwait(false);
                var r = new RecordReader(plain, $"prune marker '{entry.Key}'");
                var markedAt = r.ReadInstant();
                var count = r.ReadCount(10_000_000);
                var packs = new HashSet<string>(StringComparer.Ordinal);
                var points = new HashSet<string>(StringComparer.Ordinal);
                for (var i = 0; i < count; i++)
                {
                    // A marker names packs by ID and abandoned recovery points by key; only keys have slashes.
                    var marked = r.ReadRequiredString();
                    (marked.StartsWith(PointKey.AreaPrefix, StringComparison.Ordinal) ? points : packs).Add(marked);
                }

                r.ExpectEnd();
                markers.Add(new PruneMarker(entry.Key, markedAt, packs, points));
            }
            catch (BackupIntegrityException e)
            {
                unreadable.Add((entry.Key, e.Message));
            }
        }

        return new PruneMarkers(markers, unreadable);
    }

    /// <summary>How long a writer's pin protects its packs from deletion; a pin older than this is a crashed writer's, and prune removes it.</summary>
    public static readonly TimeSpan PinLifetime = TimeSpan.FromHours(24);

    /// <summary>The prefix of pins: packs a writer relies on until its recovery point is committed.</summary>
    public const string PinPrefix = "pins/";

    private async Task<string> WritePinAsync(HashSet<string> packs, CancellationToken cancellationToken)
    {
        var now = ClockPolicy.Time.GetUtcNow();
        var key = string.Create(CultureInfo.InvariantCulture, $"{PinPrefix}{now.UtcTicks:D20}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}");
        var w = new RecordWriter();
        w.WriteInstant(now);
        w.WriteVarUInt((ulong)packs.Count);
        foreach (var pack in packs.Order(StringComparer.Ordinal))
        {
            w.WriteString(pack);
        }

        await _store.TryCreateAsync(key, _crypto.Seal(w.WrittenSpan, Encoding.UTF8.GetBytes(key), RepositoryCrypto.FirstGeneration), cancellationToken).ConfigureAwait(false);
        return key;
    }

    /// <summary>
    /// Reads the pins: the packs writers rely on now. Pins older than <see cref="PinLifetime"/> (by the time in
    /// their name) are returned apart, to be deleted. A pin that does not open and has not lapsed makes the
    /// result <see langword="null"/>: what it protects is unknown, so nothing may be deleted.
    /// </summary>
    public async Task<(HashSet<string> Pinned, List<string> Lapsed)?> ReadPinsAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var pinned = new HashSet<string>(StringComparer.Ordinal);
        var lapsed = new List<string>();
        await foreach (var entry in _store.ListAsync(PinPrefix, cancellationToken).ConfigureAwait(false))
        {
            var name = entry.Key[PinPrefix.Length..];
            if (name.Length > 20 && long.TryParse(name.AsSpan(0, 20), NumberStyles.None, CultureInfo.InvariantCulture, out var ticks) &&
                ticks <= DateTimeOffset.MaxValue.UtcTicks && now - new DateTimeOffset(ticks, TimeSpan.Zero) > PinLifetime)
            {
                lapsed.Add(entry.Key);
                continue;
            }

            var bytes = await _store.TryReadAsync(entry.Key, cancellationToken).ConfigureAwait(false);
            if (bytes is null)
            {
                continue; // its writer committed and removed it meanwhile
            }

            try
            {
                var r = new RecordReader(await Objects.WithKeysAsync(() => _crypto.Open(bytes, entry.Key, $"pin '{entry.Key}'"), cancellationToken).ConfigureAwait(false), $"pin '{entry.Key}'");
                r.ReadInstant();
                for (var count = r.ReadCount(10_000_000); count > 0; count--)
                {
                    pinned.Add(r.ReadRequiredString());
                }

                r.ExpectEnd();
            }
            catch (BackupIntegrityException)
            {
                return null;
            }
        }

        return (pinned, lapsed);
    }

    /// <summary>Writes a prune marker naming <paramref name="packs"/> (by ID) and abandoned recovery points (by store key).</summary>
    public async Task WritePruneMarkerAsync(DateTimeOffset now, IReadOnlyCollection<string> packs, IReadOnlyCollection<string> points, CancellationToken cancellationToken)
    {
        var key = string.Create(CultureInfo.InvariantCulture, $"{PruneMarkerPrefix}{now.UtcTicks:D20}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}");
        var w = new RecordWriter();
        w.WriteInstant(now);
        w.WriteVarUInt((ulong)(packs.Count + points.Count));
        foreach (var marked in packs.Concat(points))
        {
            w.WriteString(marked);
        }

        await _store.TryCreateAsync(key, _crypto.Seal(w.WrittenSpan, Encoding.UTF8.GetBytes(key), RepositoryCrypto.FirstGeneration), cancellationToken).ConfigureAwait(false);
    }
}
