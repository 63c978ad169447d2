using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace KmsBackup.Repository;

/// <summary>How far a host's clock may stray from the latest time the store has seen.</summary>
/// <param name="Time">The host's clock.</param>
/// <param name="MaximumLead">A clock further ahead than this holds every deletion until an operator confirms it.</param>
/// <param name="MaximumLag">A clock further behind than this may not commit.</param>
internal sealed record StoreClockPolicy(TimeProvider Time, TimeSpan MaximumLead, TimeSpan MaximumLag)
{
    /// <summary>A new store time is recorded at most this often, so that busy hosts do not write one per commit.</summary>
    public static readonly TimeSpan RecordEvery = TimeSpan.FromMinutes(1);
}

/// <summary>
/// The latest time any writer has seen, kept in the store as small sealed records
/// <c>clock/&lt;ticks:D20&gt;-&lt;random&gt;</c> (create-if-absent, so two hosts never overwrite each other). The
/// newest record that opens is the store's time. Only writers that trust their clock add records; reads
/// add none.
/// </summary>
internal sealed class StoreClock(BackupStore store, RepositoryCrypto crypto, ObjectStore objects)
{
    public const string Prefix = "clock/";
    private const int Kept = 3;

    /// <summary>The store's time, or <see langword="null"/> when no writer has recorded one yet.</summary>
    public async Task<DateTimeOffset?> ReadAsync(CancellationToken cancellationToken)
    {
        foreach (var (key, ticks) in (await ListAsync(cancellationToken).ConfigureAwait(false)).OrderByDescending(r => r.Ticks))
        {
            var bytes = await store.TryReadAsync(key, cancellationToken).ConfigureAwait(false);
            if (bytes is null)
            {
                continue;
            }

            try
            {
                var r = new RecordReader(await objects.WithKeysAsync(() => crypto.Open(bytes, key, $"store time '{key}'"), cancellationToken).ConfigureAwait(false), $"store time '{key}'");
                var at = r.ReadInstant();
                r.ExpectEnd();
                if (at.UtcTicks == ticks)
                {
                    return at;
                }
            }
            catch (BackupIntegrityException)
            {
                // A damaged or planted record is no time at all: the next older one is.
            }
        }

        return null;
    }

    /// <summary>
    /// Records <paramref name="now"/> as a time the store has seen, and removes older records beyond the
    /// newest few. With <paramref name="discardLater"/>, also removes every record later than
    /// <paramref name="now"/>: an operator has confirmed that this clock, not the store's time, is right.
    /// </summary>
    public async Task RecordAsync(DateTimeOffset now, bool discardLater, CancellationToken cancellationToken)
    {
        var key = string.Create(CultureInfo.InvariantCulture, $"{Prefix}{now.UtcTicks:D20}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}");
        var w = new RecordWriter();
        w.WriteInstant(now);
        await store.TryCreateAsync(key, crypto.Seal(w.WrittenSpan, Encoding.UTF8.GetBytes(key), RepositoryCrypto.FirstGeneration), cancellationToken).ConfigureAwait(false);

        var records = await ListAsync(cancellationToken).ConfigureAwait(false);
        var stale = records.Where(r => discardLater && r.Ticks > now.UtcTicks)
            .Concat(records.Where(r => r.Ticks <= now.UtcTicks).OrderByDescending(r => r.Ticks).Skip(Kept));
        foreach (var (staleKey, _) in stale)
        {
            await store.DeleteAsync(staleKey, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<List<(string Key, long Ticks)>> ListAsync(CancellationToken cancellationToken)
    {
        var records = new List<(string, long)>();
        await foreach (var entry in store.ListAsync(Prefix, cancellationToken).ConfigureAwait(false))
        {
            var name = entry.Key[Prefix.Length..];
            var dash = name.IndexOf('-', StringComparison.Ordinal);
            if (dash == 20 && long.TryParse(name.AsSpan(0, 20), NumberStyles.None, CultureInfo.InvariantCulture, out var ticks) &&
                ticks <= DateTimeOffset.MaxValue.UtcTicks)
            {
                records.Add((entry.Key, ticks));
            }
        }

        return records;
    }
}
