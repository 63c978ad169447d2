using System.Globalization;
using System.Security.Cryptography;
using System.Text;

using KmsBackup.Storage;

namespace KmsBackup;

// The lease protocol, written once over the four primitives (create-if-absent, read, list, delete), so that
// every store has the same leases. A lease is a series of immutable, numbered generation records under
// leases/<flat name>/<generation:D20>; the highest number is the lease's state (holder, random token, expiry,
// released or not). Every change (acquire, take over, renew, release) reads generation n and creates n + 1 if
// absent: since only one writer can create n + 1, that is a compare-and-swap on "the state is still n". The
// writer then lists the generations and wins only if n + 1 is the highest: old generations are deleted (all
// but the last two), and a writer that stalled between reading n and creating n + 1 may re-create a number
// that was deleted meanwhile. Why that check is enough: a generation is deleted only by the winner of a
// generation at least two higher, so the highest generation ever created is never deleted, and a consistent
// listing shows it to every writer that lists after it was created.
public abstract partial class BackupStore
{
    /// <summary>The first key segment of the lease records; no object has a key there.</summary>
    internal const string LeaseArea = "leases";

    private const string LeaseAreaPrefix = LeaseArea + "/";
    private const int GenerationDigits = 20;
    private const int MaxFlatLeaseNameLength = 200;
    private const int MaxLeaseAttempts = 16;

    /// <summary>
    /// Takes the lease <paramref name="leaseName"/> for <paramref name="duration"/>, so that its holder is
    /// the only writer of what the lease guards (one backup). An expired lease can be taken over.
    /// </summary>
    /// <remarks>
    /// The lease is kept as records under <c>leases/</c>, which are never objects (see the class remarks). A lease
    /// that expired (its holder stopped renewing it, crashed or was killed) is taken over by the first writer that
    /// asks for it; of writers racing for it, exactly one wins and the others get
    /// <see cref="BackupErrorCode.LeaseHeld"/>, naming the winner. Override this only to forward it, in a store that
    /// decorates another one.
    /// </remarks>
    /// <param name="leaseName">What the lease guards, a key-like name such as <c>backups/b-1</c>.</param>
    /// <param name="holder">Who takes it, as it should be named to a second writer (host and process, say).</param>
    /// <param name="duration">How long the lease lasts unless renewed; from 1 second to 1 hour.</param>
    /// <param name="cancellationToken">Cancels the attempt.</param>
    /// <returns>The lease; dispose it to release it.</returns>
    /// <exception cref="ArgumentException"><paramref name="leaseName"/> breaks the key rules, or <paramref name="holder"/> is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="duration"/> is shorter than 1 second or longer than 1 hour.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.LeaseHeld"/>: another holder has it (the error names it and when it
    /// expires). <see cref="BackupErrorCode.StoreUnavailable"/>: the store failed, or the lease's records were altered (the error names the
    /// lease).</exception>
    public virtual async Task<StoreLease> AcquireLeaseAsync(string leaseName, string holder, TimeSpan duration, CancellationToken cancellationToken = default)
    {
        ValidateKey(leaseName);
        ArgumentException.ThrowIfNullOrWhiteSpace(holder);
        ValidateLeaseDuration(duration);
        cancellationToken.ThrowIfCancellationRequested();
        var token = RandomNumberGenerator.GetHexString(32, lowercase: true);
        try
        {
            for (var attempt = 0; attempt < MaxLeaseAttempts; attempt++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var head = await ReadLeaseHeadAsync(leaseName, cancellationToken).ConfigureAwait(false);
                var now = _time.GetUtcNow();
                if (head is not null && !head.IsFreeAt(now))
                {
                    throw head.HeldException();
                }

                var record = new StoreLeaseRecord(leaseName, (head?.Generation ?? 0) + 1, holder, token, now + duration, Released: false);
                if (await TryAdvanceLeaseAsync(record, cancellationToken).ConfigureAwait(false))
                {
                    return new RecordStoreLease(record, (r, c) => RenewLeaseAsync(r, duration, c), EnsureLeaseHeldAsync, ReleaseLeaseAsync);
                }

                // Another writer created that generation first (or a higher one exists): read the new state and judge again.
            }

            throw new Refusal(
                BackupErrorCode.StoreUnavailable,
                StoreLeaseRecord.Item(leaseName),
                $"The lease '{leaseName}' changed hands {MaxLeaseAttempts} times while this writer tried to acquire it.",
                "Retry; if it keeps happening, fewer writers should compete for one lease.")
                .ToException();
        }
        catch (BackupException ex) when (IsStoreFailure(ex, leaseName))
        {
            throw LeaseUnavailable(leaseName, "acquire", ex);
        }
    }

    /// <summary>Renews the lease <paramref name="mine"/> (any generation of it), as generation n + 1 with a new expiry.</summary>
    private async Task<StoreLeaseRecord> RenewLeaseAsync(StoreLeaseRecord mine, TimeSpan duration, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            var head = await ReadLeaseHeadAsync(mine.LeaseName, cancellationToken).ConfigureAwait(false);
            var now = _time.GetUtcNow();

            // Expired but not taken over: renewing takes it back, since no one else can hold it.
            if (head is null || head.Token != mine.Token || head.Released)
            {
                throw StoreLeaseRecord.LostException(mine, head, now);
            }

            var renewed = head with { Generation = head.Generation + 1, ExpiresAt = now + duration };
            if (await TryAdvanceLeaseAsync(renewed, cancellationToken).ConfigureAwait(false))
            {
                return renewed;
            }

            throw StoreLeaseRecord.LostException(mine, await ReadLeaseHeadAsync(mine.LeaseName, cancellationToken).ConfigureAwait(false), now);
        }
        catch (BackupException ex) when (IsStoreFailure(ex, mine.LeaseName))
        {
            throw LeaseUnavailable(mine.LeaseName, "renew", ex);
        }
    }

    /// <summary>Checks that <paramref name="mine"/> is still the lease's state and has not expired.</summary>
    private async Task EnsureLeaseHeldAsync(StoreLeaseRecord mine, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            var head = await ReadLeaseHeadAsync(mine.LeaseName, cancellationToken).ConfigureAwait(false);
            var now = _time.GetUtcNow();
            if (head is null || head.Token != mine.Token || head.IsFreeAt(now))
            {
                throw StoreLeaseRecord.LostException(mine, head, now);
            }
        }
        catch (BackupException ex) when (IsStoreFailure(ex, mine.LeaseName))
        {
            throw LeaseUnavailable(mine.LeaseName, "check", ex);
        }
    }

    /// <summary>Releases <paramref name="mine"/> if it is still the lease's state; otherwise does nothing.</summary>
    private async Task ReleaseLeaseAsync(StoreLeaseRecord mine)
    {
        try
        {
            var head = await ReadLeaseHeadAsync(mine.LeaseName, CancellationToken.None).ConfigureAwait(false);
            if (head is null || head.Token != mine.Token || head.Released)
            {
                return;
            }

            var released = head with { Generation = head.Generation + 1, ExpiresAt = _time.GetUtcNow(), Released = true };
            _ = await TryAdvanceLeaseAsync(released, CancellationToken.None).ConfigureAwait(false);
        }
        catch (BackupException ex) when (IsStoreFailure(ex, mine.LeaseName))
        {
            throw LeaseUnavailable(mine.LeaseName, "release", ex);
        }
    }

    /// <summary>
    /// Creates generation <paramref name="record"/>.Generation if absent (the compare-and-swap), then checks that
    /// it is the highest, and deletes the generations older than its predecessor.
    /// </summary>
    /// <returns>Whether <paramref name="record"/> is now the lease's state.</returns>
    private async Task<bool> TryAdvanceLeaseAsync(StoreLeaseRecord record, CancellationToken cancellationToken)
    {
        var prefix = LeaseRecordPrefix(record.LeaseName);
        if (!await TryCreateCoreAsync(prefix + GenerationName(record.Generation), record.ToJson(), cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        // From here on the generation exists: it is judged to the end even if the caller gives up, so that a
        // cancelled acquisition never leaves a lease that no one knows it holds.
        var generations = await ListLeaseGenerationsAsync(prefix, CancellationToken.None).ConfigureAwait(false);

        // A higher generation means this one was a re-creation of a number deleted below (this writer stalled
        // between reading its predecessor and creating it): the higher one is the state, not this one.
        if (generations.Count == 0 || generations.Max() != record.Generation)
        {
            return false;
        }

        foreach (var old in generations.Where(g => g < record.Generation - 1))
        {
            try
            {
                _ = await DeleteCoreAsync(prefix + GenerationName(old), CancellationToken.None).ConfigureAwait(false);
            }
            catch (BackupException ex) when (ex.Code == BackupErrorCode.StoreUnavailable)
            {
                // Collecting is tidying: the next change of the lease deletes what is left.
            }
        }

        return true;
    }

    /// <summary>Reads the highest generation of a lease, or <see langword="null"/> if it was never taken.</summary>
    private async Task<StoreLeaseRecord?> ReadLeaseHeadAsync(string leaseName, CancellationToken cancellationToken)
    {
        var prefix = LeaseRecordPrefix(leaseName);
        for (var attempt = 0; ; attempt++)
        {
            var generations = await ListLeaseGenerationsAsync(prefix, cancellationToken).ConfigureAwait(false);
            if (generations.Count == 0)
            {
                return null;
            }

            var generation = generations.Max();
            var key = prefix + GenerationName(generation);
            var bytes = await TryReadCoreAsync(key, cancellationToken).ConfigureAwait(false);
            if (bytes is null)
            {
                if (attempt < MaxLeaseAttempts)
                {
                    continue; // deleted after a newer generation appeared: list again
                }

                throw new Refusal(
                    BackupErrorCode.StoreUnavailable,
                    StoreLeaseRecord.Item(leaseName),
                    $"The newest record of the lease '{leaseName}' disappeared {MaxLeaseAttempts + 1} times while it was read.",
                    "Retry; if it keeps happening, fewer writers should compete for one lease.")
                    .ToException();
            }

            var record = StoreLeaseRecord.TryParse(bytes);
            if (record is null || record.Generation != generation || record.LeaseName != leaseName)
            {
                throw new Refusal(
                    BackupErrorCode.StoreUnavailable,
                    StoreLeaseRecord.Item(leaseName),
                    $"The store's lease record '{key}' is not a record of the lease '{leaseName}' (generation {generation}).",
                    $"The store was altered by hand or by another program. Stop every writer of this store, delete the lease's records (every key under '{prefix}'; in a file-system store, the folder 'objects/{prefix.TrimEnd('/')}'), and restart them.")
                    .ToException();
            }

            return record;
        }
    }

    /// <summary>The generation numbers under <paramref name="prefix"/>; other names there are not records and are ignored.</summary>
    private async Task<List<long>> ListLeaseGenerationsAsync(string prefix, CancellationToken cancellationToken)
    {
        var generations = new List<long>();
        await foreach (var entry in ListCoreAsync(prefix, cancellationToken).ConfigureAwait(false))
        {
            var name = entry.Key.AsSpan(prefix.Length);
            if (name.Length == GenerationDigits && long.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var generation))
            {
                generations.Add(generation);
            }
        }

        return generations;
    }

    private static string GenerationName(long generation) =>
        generation.ToString("D" + GenerationDigits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    /// <summary>
    /// Where a lease's records live: <c>leases/</c>, the lease's name as one key segment, and <c>/</c>. The name is
    /// written with each '/' as "__" and each '_' as "_-" (so <c>backups/b-1</c> is <c>backups__b-1</c>, and no two
    /// names meet), or, past 200 characters, as "_h" and the SHA-256 of the name in hex (no written name starts "_h").
    /// </summary>
    internal static string LeaseRecordPrefix(string leaseName)
    {
        var flat = new StringBuilder(leaseName.Length + 8);
        foreach (var c in leaseName)
        {
            _ = c switch
            {
                '/' => flat.Append("__"),
                '_' => flat.Append("_-"),
                _ => flat.Append(c),
            };
        }

        var segment = flat.Length <= MaxFlatLeaseNameLength
            ? flat.ToString()
            : "_h" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(leaseName)));
        return LeaseAreaPrefix + segment + "/";
    }

    /// <summary>Whether <paramref name="ex"/> is a primitive failing (to be named as the lease's), not a refusal of the protocol's own.</summary>
    private static bool IsStoreFailure(BackupException ex, string leaseName) =>
        ex.Code == BackupErrorCode.StoreUnavailable && ex.Item != StoreLeaseRecord.Item(leaseName);

    /// <summary>A primitive's failure, named as the lease's: the item is the lease, the cause the primitive's own.</summary>
    private static BackupException LeaseUnavailable(string leaseName, string action, BackupException failure) =>
        new(
            new Refusal(
                BackupErrorCode.StoreUnavailable,
                StoreLeaseRecord.Item(leaseName),
                $"Could not {action} the lease '{leaseName}': {failure.Refusal.Message}",
                failure.Remedy),
            failure.InnerException ?? failure);
}
