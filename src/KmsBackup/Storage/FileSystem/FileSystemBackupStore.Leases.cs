using System.Globalization;
using System.Security.Cryptography;
using System.Text;

using EntryKind = KmsBackup.Storage.PosixFileOperations.EntryKind;

namespace KmsBackup.Storage;

// Leases: a folder per lease under leases/, holding numbered, immutable generation files
// (00000000000000000007.lease). The highest generation is the lease's state. Every change writes
// generation n + 1 with the same create-if-absent publish as objects, which makes it a
// compare-and-swap on "the state is still generation n" (see the class remarks).
public sealed partial class FileSystemBackupStore
{
    private const string GenerationSuffix = ".lease";
    private const int GenerationDigits = 20;
    private const int MaxLeaseFolderNameLength = 200;
    private const int MaxLeaseAttempts = 16;
    /// <inheritdoc />
    /// <remarks>
    /// The lease is a file under <c>leases/</c>, never listed as an object. A lease that expired (its holder
    /// stopped renewing it, crashed or was killed) is taken over by the first writer that asks for it; of
    /// writers racing for it, exactly one wins and the others get <see cref="BackupErrorCode.LeaseHeld"/>.
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="leaseName"/> breaks the key rules, or <paramref name="holder"/> is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="duration"/> is shorter than 1 second or longer than 1 hour.</exception>
    public override async Task<StoreLease> AcquireLeaseAsync(string leaseName, string holder, TimeSpan duration, CancellationToken cancellationToken = default)
    {
        ValidateKey(leaseName);
        ArgumentException.ThrowIfNullOrWhiteSpace(holder);
        ValidateLeaseDuration(duration);
        cancellationToken.ThrowIfCancellationRequested();
        var folder = LeaseFolder(leaseName);
        var token = RandomNumberGenerator.GetHexString(32, lowercase: true);
        using (await EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                StoreLeaseRecord? head = null;
                for (var attempt = 0; attempt < MaxLeaseAttempts; attempt++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    head = ReadLeaseHead(leaseName, folder);
                    var now = _time.GetUtcNow();
                    if (head is not null && !head.IsFreeAt(now))
                    {
                        throw head.HeldException();
                    }

                    var record = new StoreLeaseRecord(leaseName, (head?.Generation ?? 0) + 1, holder, token, now + duration, Released: false);
                    if (await TryAdvanceLeaseAsync(folder, record, cancellationToken).ConfigureAwait(false))
                    {
                        return new RecordStoreLease<StoreLeaseRecord>(record.LeaseName, record.Holder, record, r => r.ExpiresAt, (r, c) => RenewLeaseAsync(r, duration, c), EnsureLeaseHeldAsync, ReleaseLeaseAsync);
                    }

                    // Another writer created that generation first: read the new state and judge again.
                }

                throw new Refusal(
                    BackupErrorCode.StoreUnavailable,
                    StoreLeaseRecord.Item(leaseName),
                    $"The lease '{leaseName}' changed hands {MaxLeaseAttempts} times while this writer tried to acquire it.",
                    "Retry; if it keeps happening, fewer writers should compete for one lease.")
                    .ToException();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw Unavailable(StoreLeaseRecord.Item(leaseName), $"acquire the lease '{leaseName}'", ex);
            }
        }
    }

    /// <summary>Renews the lease <paramref name="mine"/> (any generation of it), as generation n + 1 with a new expiry.</summary>
    internal async Task<StoreLeaseRecord> RenewLeaseAsync(StoreLeaseRecord mine, TimeSpan duration, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var folder = LeaseFolder(mine.LeaseName);
        using (await EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                var head = ReadLeaseHead(mine.LeaseName, folder);
                var now = _time.GetUtcNow();

                // Expired but not taken over: renewing takes it back, since no one else can hold it.
                if (head is null || head.Token != mine.Token || head.Released)
                {
                    throw StoreLeaseRecord.LostException(mine, head, now);
                }

                var renewed = head with { Generation = head.Generation + 1, ExpiresAt = now + duration };
                if (await TryAdvanceLeaseAsync(folder, renewed, cancellationToken).ConfigureAwait(false))
                {
                    return renewed;
                }

                throw StoreLeaseRecord.LostException(mine, ReadLeaseHead(mine.LeaseName, folder), now);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw Unavailable(StoreLeaseRecord.Item(mine.LeaseName), $"renew the lease '{mine.LeaseName}'", ex);
            }
        }
    }

    /// <summary>Checks that <paramref name="mine"/> is still the lease's state and has not expired.</summary>
    internal async Task EnsureLeaseHeldAsync(StoreLeaseRecord mine, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var folder = LeaseFolder(mine.LeaseName);
        using (await EnterAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                var head = ReadLeaseHead(mine.LeaseName, folder);
                var now = _time.GetUtcNow();
                if (head is null || head.Token != mine.Token || head.IsFreeAt(now))
                {
                    throw StoreLeaseRecord.LostException(mine, head, now);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw Unavailable(StoreLeaseRecord.Item(mine.LeaseName), $"check the lease '{mine.LeaseName}'", ex);
            }
        }
    }

    /// <summary>Releases <paramref name="mine"/> if it is still the lease's state; otherwise does nothing.</summary>
    internal async Task ReleaseLeaseAsync(StoreLeaseRecord mine)
    {
        var folder = LeaseFolder(mine.LeaseName);
        using (await EnterAsync(CancellationToken.None).ConfigureAwait(false))
        {
            try
            {
                var head = ReadLeaseHead(mine.LeaseName, folder);
                if (head is null || head.Token != mine.Token || head.Released)
                {
                    return;
                }

                var released = head with { Generation = head.Generation + 1, ExpiresAt = _time.GetUtcNow(), Released = true };
                _ = await TryAdvanceLeaseAsync(folder, released, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw Unavailable(StoreLeaseRecord.Item(mine.LeaseName), $"release the lease '{mine.LeaseName}'", ex);
            }
        }
    }

    /// <summary>
    /// Creates generation <paramref name="record"/>.Generation if absent (the compare-and-swap), then checks
    /// that it is the highest, and deletes generations older than its predecessor.
    /// </summary>
    private async Task<bool> TryAdvanceLeaseAsync(string[] segments, StoreLeaseRecord record, CancellationToken cancellationToken)
    {
        using var folder = OpenFolder(segments, create: true, out var fileAt) ?? throw FolderNotOpened(segments, fileAt);
        if (!await CreateFileAsync(folder, GenerationName(record.Generation), record.ToJson(), cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        // A writer that stalled between reading generation n and creating n + 1 may re-create a number that
        // was collected below: then a higher generation exists, and that one is the state, not this one.
        var generations = ListGenerations(folder);
        if (generations.Count > 0 && generations.Max() != record.Generation)
        {
            return false;
        }

        foreach (var old in generations.Where(g => g < record.Generation - 1))
        {
            folder.TryDeleteQuietly(GenerationName(old));
        }

        return true;
    }

    /// <summary>Reads the highest generation of a lease, or <see langword="null"/> if it was never taken.</summary>
    private StoreLeaseRecord? ReadLeaseHead(string leaseName, string[] segments)
    {
        using var folder = OpenFolder(segments, create: false, out _);
        if (folder is null)
        {
            return null;
        }

        for (var attempt = 0; ; attempt++)
        {
            var generations = ListGenerations(folder);
            if (generations.Count == 0)
            {
                return null;
            }

            var generation = generations.Max();
            var name = GenerationName(generation);
            byte[] bytes;
            using (var stream = folder.OpenRead(name))
            {
                if (stream is null)
                {
                    if (attempt < MaxLeaseAttempts)
                    {
                        continue; // collected after a newer generation appeared: read again
                    }

                    throw new FileNotFoundException($"The lease file '{folder.Child(name)}' kept disappearing while it was read.");
                }

                using var buffer = new MemoryStream();
                stream.CopyTo(buffer);
                bytes = buffer.ToArray();
            }

            var record = StoreLeaseRecord.TryParse(bytes);
            if (record is null || record.Generation != generation || record.LeaseName != leaseName)
            {
                throw new BackupException(new Refusal(
                    BackupErrorCode.StoreUnavailable,
                    StoreLeaseRecord.Item(leaseName),
                    $"The file-system store at '{RootPath}' has a lease file '{folder.Child(name)}' that is not a record of the lease '{leaseName}'.",
                    "The store's folder was altered by hand or by another program. Stop every writer of this store, delete the lease's folder, and restart them."));
            }

            return record;
        }
    }

    private List<long> ListGenerations(StoreFolder folder)
    {
        var generations = new List<long>();
        foreach (var entry in folder.ReadEntries())
        {
            var name = entry.Name;
            if (name.Length == GenerationDigits + GenerationSuffix.Length &&
                name.EndsWith(GenerationSuffix, StringComparison.Ordinal) &&
                long.TryParse(name.AsSpan(0, GenerationDigits), NumberStyles.None, CultureInfo.InvariantCulture, out var generation))
            {
                // A generation that is a link could be a record written anywhere: never take it for the lease's state.
                if (entry.Kind == EntryKind.Link)
                {
                    throw LinkRefused(folder.Child(name));
                }

                generations.Add(generation);
            }
        }

        return generations;
    }

    private static string GenerationName(long generation) =>
        generation.ToString("D" + GenerationDigits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture) + GenerationSuffix;

    /// <summary>
    /// The lease's folder below the root: <c>leases/</c> and the lease's name with '/' as '+' (a character no
    /// key holds, so names cannot collide), or, for names too long for a file name, '=' and the SHA-256 of the name.
    /// </summary>
    private static string[] LeaseFolder(string leaseName)
    {
        var flat = leaseName.Replace('/', '+');
        if (flat.Length > MaxLeaseFolderNameLength)
        {
            flat = "=" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(leaseName)));
        }

        return [LeasesFolderName, flat];
    }
}
