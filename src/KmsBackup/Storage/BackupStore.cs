using System.Runtime.CompilerServices;

namespace KmsBackup;

/// <summary>
/// Where backup data lives: a small blob-like contract that a file system, Azure Blob Storage, S3 or
/// anything else can serve, and that several hosts can share. Objects are immutable once created;
/// every write is create-if-absent and becomes visible only when complete. A lease per backup gives
/// one writer at a time.
/// </summary>
/// <remarks>
/// <para>Keys are <c>/</c>-separated segments of letters, digits, <c>.</c>, <c>_</c> and <c>-</c>, at most
/// 512 characters; no segment is empty, <c>.</c> or <c>..</c>. <see cref="ValidateKey"/> checks them. The
/// first segment <c>leases</c> is the store's own: its lease records live there, so the object methods
/// refuse keys and prefixes under <c>leases/</c> and listings never show them.</para>
/// <para><b>For authors of a store.</b> Implement the four primitives (<see cref="TryCreateCoreAsync"/>,
/// <see cref="TryReadCoreAsync"/>, <see cref="ListCoreAsync"/>, <see cref="DeleteCoreAsync"/>) over the whole
/// key space, lease records included; this class checks keys, prefixes and cancellation before calling them,
/// and keeps the lease records out of what callers see. Leases come with them: <see cref="AcquireLeaseAsync"/>
/// runs one protocol over those primitives (numbered, immutable generation records, each created if absent),
/// which is correct on any store whose create-if-absent is atomic and whose listing shows every object
/// created before it began that was not deleted since. Pass the store's clock to
/// <see cref="BackupStore(TimeProvider)"/>: leases expire by it. A store that decorates another (to count,
/// pause or fail calls) forwards its primitives to the other store's public methods, which refuse the lease
/// area; such a decorator overrides <see cref="AcquireLeaseAsync"/> too, and forwards it.</para>
/// <para>Every implementation passes the store contract test suite. Implementations are thread-safe. An
/// implementation may refuse a call for a reason of its own with a <see cref="BackupException"/> of its own
/// code: <see cref="Storage.FileSystemBackupStore"/> refuses a symbolic link below its folder with
/// <see cref="BackupErrorCode.StoreLinkRefused"/>.</para>
/// </remarks>
public abstract partial class BackupStore
{
    /// <summary>The longest object key.</summary>
    public const int MaximumKeyLength = 512;

    private readonly TimeProvider _time;

    /// <summary>For subclasses: a store whose leases expire by the system clock.</summary>
    protected BackupStore()
        : this(null)
    {
    }

    /// <summary>For subclasses: a store whose leases expire by <paramref name="timeProvider"/>.</summary>
    /// <param name="timeProvider">The clock for lease expiry; the system clock when <see langword="null"/>.</param>
    protected BackupStore(TimeProvider? timeProvider)
    {
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>
    /// Creates the object <paramref name="key"/> with <paramref name="content"/> if no object has that key.
    /// The object becomes visible whole or not at all (a crash leaves no partial object).
    /// </summary>
    /// <param name="key">The object's key.</param>
    /// <param name="content">The object's bytes. The caller may reuse the buffer once the returned task completes: read it only until then.</param>
    /// <param name="cancellationToken">Cancels the write; the object is then absent or whole.</param>
    /// <returns><see langword="true"/> if created; <see langword="false"/> if an object had that key already (it is left unchanged).</returns>
    /// <exception cref="ArgumentException"><paramref name="key"/> breaks the key rules or is under <c>leases/</c>.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    public async Task<bool> TryCreateAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default)
    {
        ValidateObjectKey(key);
        cancellationToken.ThrowIfCancellationRequested();
        return await TryCreateCoreAsync(key, content, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads the object <paramref name="key"/>.</summary>
    /// <param name="key">The object's key.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>The object's bytes, or <see langword="null"/> when there is no such object.</returns>
    /// <exception cref="ArgumentException"><paramref name="key"/> breaks the key rules or is under <c>leases/</c>.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    public async Task<byte[]?> TryReadAsync(string key, CancellationToken cancellationToken = default)
    {
        ValidateObjectKey(key);
        cancellationToken.ThrowIfCancellationRequested();
        return await TryReadCoreAsync(key, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads up to <paramref name="length"/> bytes of the object <paramref name="key"/> from <paramref name="offset"/>:
    /// what a reader of one object in a large pack asks for, so that it does not fetch the whole pack.
    /// </summary>
    /// <param name="key">The object's key.</param>
    /// <param name="offset">Where the range starts, from 0.</param>
    /// <param name="length">How many bytes at most, from 1.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>
    /// The bytes from <paramref name="offset"/>: <paramref name="length"/> of them, or fewer when the object ends
    /// first (none when it ends at or before <paramref name="offset"/>); <see langword="null"/> when there is no such object.
    /// </returns>
    /// <exception cref="ArgumentException"><paramref name="key"/> breaks the key rules or is under <c>leases/</c>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is negative or <paramref name="length"/> is less than 1.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    public async Task<byte[]?> TryReadRangeAsync(string key, long offset, int length, CancellationToken cancellationToken = default)
    {
        ValidateObjectKey(key);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        cancellationToken.ThrowIfCancellationRequested();
        var range = await TryReadRangeCoreAsync(key, offset, length, cancellationToken).ConfigureAwait(false);
        if (range is not null && range.Length > length)
        {
            throw new InvalidOperationException($"The store returned {range.Length} bytes for a range of {length} of '{key}': a store's ranged read returns at most the length asked for.");
        }

        return range;
    }

    /// <summary>
    /// Reads up to <paramref name="destination"/>'s length of bytes of the object <paramref name="key"/> from
    /// <paramref name="offset"/> into <paramref name="destination"/>: the ranged read of
    /// <see cref="TryReadRangeAsync(string, long, int, CancellationToken)"/> into a buffer the caller owns, so that a
    /// reader of many ranges (a download, a verify) can reuse one buffer instead of allocating one per range.
    /// </summary>
    /// <param name="key">The object's key.</param>
    /// <param name="offset">Where the range starts, from 0.</param>
    /// <param name="destination">Where the bytes go, from its start; at least 1 byte long.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>
    /// How many bytes were read: <paramref name="destination"/>'s length, or fewer when the object ends first (0 when it
    /// ends at or before <paramref name="offset"/>); <see langword="null"/> when there is no such object.
    /// </returns>
    /// <exception cref="ArgumentException"><paramref name="key"/> breaks the key rules or is under <c>leases/</c>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is negative or <paramref name="destination"/> is empty.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    public async Task<int?> TryReadRangeIntoAsync(string key, long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        ValidateObjectKey(key);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfLessThan(destination.Length, 1, nameof(destination));
        cancellationToken.ThrowIfCancellationRequested();
        var read = await TryReadRangeIntoCoreAsync(key, offset, destination, cancellationToken).ConfigureAwait(false);
        if (read is < 0 || read > destination.Length)
        {
            throw new InvalidOperationException($"The store said it read {read} bytes into a buffer of {destination.Length} for '{key}': a store's ranged read returns at most the length asked for.");
        }

        return read;
    }

    /// <summary>Lists the complete objects whose keys start with <paramref name="prefix"/>, in ordinal key order.</summary>
    /// <param name="prefix">A key prefix, possibly empty: a key whose last segment may be partial (or empty, after a trailing <c>/</c>).</param>
    /// <param name="cancellationToken">Cancels the listing.</param>
    /// <exception cref="ArgumentException"><paramref name="prefix"/> is not a key prefix, or is under <c>leases/</c>.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    public IAsyncEnumerable<StoreObject> ListAsync(string prefix, CancellationToken cancellationToken = default)
    {
        ValidatePrefix(prefix);
        if (IsInLeaseArea(prefix))
        {
            throw new ArgumentException($"The store prefix '{prefix}' is under '{LeaseAreaPrefix}', where the store keeps its lease records; objects live elsewhere.", nameof(prefix));
        }

        return ListObjectsAsync(prefix, cancellationToken);
    }

    /// <summary>Deletes the object <paramref name="key"/>.</summary>
    /// <param name="key">The object's key.</param>
    /// <param name="cancellationToken">Cancels the deletion.</param>
    /// <returns>Whether an object was deleted.</returns>
    /// <exception cref="ArgumentException"><paramref name="key"/> breaks the key rules or is under <c>leases/</c>.</exception>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    public async Task<bool> DeleteAsync(string key, CancellationToken cancellationToken = default)
    {
        ValidateObjectKey(key);
        cancellationToken.ThrowIfCancellationRequested();
        return await DeleteCoreAsync(key, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The primitive create-if-absent: creates <paramref name="key"/> with <paramref name="content"/> if no object
    /// has that key, atomically (of concurrent creates of one key, from any number of hosts, exactly one returns
    /// <see langword="true"/>), visible whole or not at all.
    /// </summary>
    /// <param name="key">A valid key (<see cref="ValidateKey"/>), possibly under <c>leases/</c>.</param>
    /// <param name="content">The object's bytes; read them only until the returned task completes.</param>
    /// <param name="cancellationToken">Cancels the write; the object is then absent or whole.</param>
    /// <returns><see langword="true"/> if created; <see langword="false"/> if an object had that key already.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    protected abstract Task<bool> TryCreateCoreAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken);

    /// <summary>The primitive read: the object's bytes, or <see langword="null"/> when there is no such object.</summary>
    /// <param name="key">A valid key (<see cref="ValidateKey"/>), possibly under <c>leases/</c>.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    protected abstract Task<byte[]?> TryReadCoreAsync(string key, CancellationToken cancellationToken);

    /// <summary>
    /// The primitive ranged read: up to <paramref name="length"/> bytes from <paramref name="offset"/> (fewer, or none,
    /// when the object ends first), or <see langword="null"/> when there is no such object. By default it reads the
    /// whole object with <see cref="TryReadCoreAsync"/> and returns the range, which is correct for every store; a store
    /// whose medium reads ranges (a file, an HTTP range request) overrides it to fetch only the range.
    /// </summary>
    /// <param name="key">A valid object key (<see cref="ValidateKey"/>), never under <c>leases/</c>.</param>
    /// <param name="offset">Where the range starts, 0 or more.</param>
    /// <param name="length">How many bytes at most, 1 or more.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    protected virtual async Task<byte[]?> TryReadRangeCoreAsync(string key, long offset, int length, CancellationToken cancellationToken)
    {
        var whole = await TryReadCoreAsync(key, cancellationToken).ConfigureAwait(false);
        return whole is null ? null : Slice(whole, offset, length);
    }

    /// <summary>
    /// The primitive ranged read into a buffer: up to <paramref name="destination"/>'s length of bytes from
    /// <paramref name="offset"/>, written from its start; returns how many (fewer, or none, when the object ends first),
    /// or <see langword="null"/> when there is no such object. By default it calls
    /// <see cref="TryReadRangeCoreAsync(string, long, int, CancellationToken)"/> and copies the range, which is correct
    /// for every store; a store that can read straight into the buffer overrides it to save the allocation and the copy.
    /// </summary>
    /// <param name="key">A valid object key (<see cref="ValidateKey"/>), never under <c>leases/</c>.</param>
    /// <param name="offset">Where the range starts, 0 or more.</param>
    /// <param name="destination">Where the bytes go; 1 byte long or more.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    protected virtual async Task<int?> TryReadRangeIntoCoreAsync(string key, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        var range = await TryReadRangeCoreAsync(key, offset, destination.Length, cancellationToken).ConfigureAwait(false);
        if (range is null)
        {
            return null;
        }

        if (range.Length > destination.Length)
        {
            throw new InvalidOperationException($"The store returned {range.Length} bytes for a range of {destination.Length} of '{key}': a store's ranged read returns at most the length asked for.");
        }

        range.CopyTo(destination);
        return range.Length;
    }

    /// <summary>The part of <paramref name="content"/> that a ranged read of <paramref name="offset"/> and <paramref name="length"/> returns.</summary>
    private static byte[] Slice(byte[] content, long offset, int length) =>
        offset >= content.Length ? [] : content.AsSpan((int)offset, (int)Math.Min(length, content.Length - offset)).ToArray();

    /// <summary>
    /// The primitive listing: the complete objects whose keys start with <paramref name="prefix"/>, in ordinal key
    /// order, lease records included. It shows every object created before the listing began and not deleted
    /// since (the lease protocol relies on it).
    /// </summary>
    /// <param name="prefix">A valid key prefix, possibly empty or under <c>leases/</c>.</param>
    /// <param name="cancellationToken">Cancels the listing.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    protected abstract IAsyncEnumerable<StoreObject> ListCoreAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>The primitive deletion: deletes the object <paramref name="key"/>; returns whether an object was deleted.</summary>
    /// <param name="key">A valid key (<see cref="ValidateKey"/>), possibly under <c>leases/</c>.</param>
    /// <param name="cancellationToken">Cancels the deletion.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    protected abstract Task<bool> DeleteCoreAsync(string key, CancellationToken cancellationToken);

    /// <summary>The shortest lease a store grants: 1 second.</summary>
    public static TimeSpan MinimumLeaseDuration { get; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest lease a store grants: 1 hour (renew it to hold it longer).</summary>
    public static TimeSpan MaximumLeaseDuration { get; } = TimeSpan.FromHours(1);

    /// <summary>Checks a lease duration against <see cref="MinimumLeaseDuration"/> and <see cref="MaximumLeaseDuration"/>.</summary>
    /// <param name="duration">The duration.</param>
    /// <param name="parameterName">The name of the parameter or option it came from, for the error.</param>
    /// <exception cref="ArgumentOutOfRangeException">It is out of bounds.</exception>
    public static void ValidateLeaseDuration(TimeSpan duration, string parameterName = "duration")
    {
        if (duration < MinimumLeaseDuration || duration > MaximumLeaseDuration)
        {
            throw new ArgumentOutOfRangeException(parameterName, duration, "A lease lasts from 1 second to 1 hour; renew it to hold it longer.");
        }
    }

    /// <summary>Checks a key against the key rules; throws <see cref="ArgumentException"/> naming the key when it breaks one.</summary>
    /// <param name="key">The key.</param>
    /// <param name="allowEmpty">Whether the empty key (a prefix that lists everything) is allowed.</param>
    /// <exception cref="ArgumentException">The key breaks a rule.</exception>
    public static void ValidateKey(string key, bool allowEmpty = false)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.Length == 0 && allowEmpty)
        {
            return;
        }

        if (key.Length is 0 or > MaximumKeyLength)
        {
            throw new ArgumentException($"A store key has 1 to {MaximumKeyLength} characters; this one has {key.Length}.", nameof(key));
        }

        foreach (var segment in key.Split('/'))
        {
            if (!IsKeySegment(segment))
            {
                throw new ArgumentException($"The store key '{key}' has an invalid segment '{segment}': use letters, digits, '.', '_' and '-', separated by '/'.", nameof(key));
            }
        }
    }

    /// <summary>Whether <paramref name="name"/> is a whole key segment: letters, digits, '.', '_' and '-', neither empty, '.' nor '..'.</summary>
    internal static bool IsKeySegment(string name) =>
        name.Length > 0 && name is not "." and not ".." && name.All(IsKeyCharacter);

    private static bool IsKeyCharacter(char c) => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-';

    /// <summary>A prefix is a key whose last segment may be partial (or empty, after a trailing '/').</summary>
    private static void ValidatePrefix(string prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        if (prefix.Length > MaximumKeyLength)
        {
            throw new ArgumentException($"A store prefix has at most {MaximumKeyLength} characters; this one has {prefix.Length}.", nameof(prefix));
        }

        var segments = prefix.Split('/');
        for (var i = 0; i < segments.Length; i++)
        {
            var segment = segments[i];

            // The last segment may be partial: empty (after a trailing '/'), '.' or '..' start valid segments too.
            var valid = i == segments.Length - 1 ? segment.All(IsKeyCharacter) : IsKeySegment(segment);
            if (!valid)
            {
                throw new ArgumentException($"The store prefix '{prefix}' has an invalid segment '{segment}': use letters, digits, '.', '_' and '-', separated by '/'.", nameof(prefix));
            }
        }
    }

    /// <summary>A key an object may have: a valid key outside the lease area.</summary>
    private static void ValidateObjectKey(string key)
    {
        ValidateKey(key);
        if (key == LeaseArea || IsInLeaseArea(key))
        {
            throw new ArgumentException($"The store key '{key}' is in '{LeaseAreaPrefix}', where the store keeps its lease records; objects use other keys.", nameof(key));
        }
    }

    private static bool IsInLeaseArea(string keyOrPrefix) => keyOrPrefix.StartsWith(LeaseAreaPrefix, StringComparison.Ordinal);

    /// <summary>The primitive listing, checked for cancellation, without the lease records when the prefix covers them.</summary>
    private async IAsyncEnumerable<StoreObject> ListObjectsAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var coversLeaseArea = LeaseAreaPrefix.StartsWith(prefix, StringComparison.Ordinal);
        await foreach (var entry in ListCoreAsync(prefix, cancellationToken).ConfigureAwait(false))
        {
            if (coversLeaseArea && (entry.Key == LeaseArea || IsInLeaseArea(entry.Key)))
            {
                continue;
            }

            yield return entry;
        }
    }
}

/// <summary>An object in a <see cref="BackupStore"/>.</summary>
/// <param name="Key">The object's key.</param>
/// <param name="Length">The object's length in bytes.</param>
public readonly record struct StoreObject(string Key, long Length);

/// <summary>
/// A held lease of a <see cref="BackupStore"/>. Renew it before <see cref="ExpiresAt"/> while working;
/// dispose it to release it. A lease that expired may have been taken over by another writer: check
/// <see cref="EnsureHeldAsync"/> before committing.
/// </summary>
public abstract class StoreLease : IAsyncDisposable
{
    /// <summary>For subclasses.</summary>
    /// <param name="name">What the lease guards.</param>
    /// <param name="holder">Who holds it.</param>
    /// <param name="expiresAt">When it expires unless renewed.</param>
    protected StoreLease(string name, string holder, DateTimeOffset expiresAt)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(holder);
        Name = name;
        Holder = holder;
        ExpiresAt = expiresAt;
    }

    /// <summary>What the lease guards.</summary>
    public string Name { get; }

    /// <summary>Who holds it.</summary>
    public string Holder { get; }

    /// <summary>When it expires unless renewed.</summary>
    public DateTimeOffset ExpiresAt { get; protected set; }

    /// <summary>Extends the lease by its duration from now.</summary>
    /// <param name="cancellationToken">Cancels the renewal.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.LeaseLost"/>: the lease expired and another writer took it.</exception>
    public abstract Task RenewAsync(CancellationToken cancellationToken = default);

    /// <summary>Checks that this holder still holds the lease.</summary>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.LeaseLost"/>: it does not.</exception>
    public abstract Task EnsureHeldAsync(CancellationToken cancellationToken = default);

    /// <summary>Releases the lease if still held. Never throws for a lease already lost.</summary>
    public abstract ValueTask DisposeAsync();

    /// <summary>The lease in one line.</summary>
    public override string ToString() => $"lease '{Name}' held by '{Holder}' until {ViewableWindow.Iso(ExpiresAt)}";
}
