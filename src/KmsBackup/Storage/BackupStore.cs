namespace KmsBackup;

/// <summary>
/// Where backup data lives: a small blob-like contract that a file system, Azure Blob Storage, S3 or
/// anything else can serve, and that several hosts can share. Objects are immutable once created;
/// every write is create-if-absent and becomes visible only when complete. A lease per backup gives
/// one writer at a time.
/// </summary>
/// <remarks>
/// <para>Keys are <c>/</c>-separated segments of letters, digits, <c>.</c>, <c>_</c> and <c>-</c>, at most
/// 512 characters; no segment is empty, <c>.</c> or <c>..</c>. <see cref="ValidateKey"/> checks them.</para>
/// <para>Every implementation passes the store contract test suite. Implementations are thread-safe. An
/// implementation may refuse a call for a reason of its own with a <see cref="BackupException"/> of its own
/// code: <see cref="Storage.FileSystemBackupStore"/> refuses a symbolic link below its folder with
/// <see cref="BackupErrorCode.StoreLinkRefused"/>.</para>
/// </remarks>
public abstract class BackupStore
{
    /// <summary>The longest object key.</summary>
    public const int MaximumKeyLength = 512;

    /// <summary>For subclasses.</summary>
    protected BackupStore()
    {
    }

    /// <summary>
    /// Creates the object <paramref name="key"/> with <paramref name="content"/> if no object has that key.
    /// The object becomes visible whole or not at all (a crash leaves no partial object).
    /// </summary>
    /// <param name="key">The object's key.</param>
    /// <param name="content">The object's bytes. The caller may reuse the buffer once the returned task completes: read it only until then.</param>
    /// <param name="cancellationToken">Cancels the write; the object is then absent or whole.</param>
    /// <returns><see langword="true"/> if created; <see langword="false"/> if an object had that key already (it is left unchanged).</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    public abstract Task<bool> TryCreateAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default);

    /// <summary>Reads the object <paramref name="key"/>.</summary>
    /// <param name="key">The object's key.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>The object's bytes, or <see langword="null"/> when there is no such object.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    public abstract Task<byte[]?> TryReadAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Lists the complete objects whose keys start with <paramref name="prefix"/>, in ordinal key order.</summary>
    /// <param name="prefix">A key prefix, possibly empty.</param>
    /// <param name="cancellationToken">Cancels the listing.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    public abstract IAsyncEnumerable<StoreObject> ListAsync(string prefix, CancellationToken cancellationToken = default);

    /// <summary>Deletes the object <paramref name="key"/>.</summary>
    /// <param name="key">The object's key.</param>
    /// <param name="cancellationToken">Cancels the deletion.</param>
    /// <returns>Whether an object was deleted.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the store failed.</exception>
    public abstract Task<bool> DeleteAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>
    /// Takes the lease <paramref name="leaseName"/> for <paramref name="duration"/>, so that its holder is
    /// the only writer of what the lease guards (one backup). An expired lease can be taken over.
    /// </summary>
    /// <param name="leaseName">What the lease guards, a key-like name such as <c>backups/b-1</c>.</param>
    /// <param name="holder">Who takes it, as it should be named to a second writer (host and process, say).</param>
    /// <param name="duration">How long the lease lasts unless renewed; from 1 second to 1 hour.</param>
    /// <param name="cancellationToken">Cancels the attempt.</param>
    /// <returns>The lease; dispose it to release it.</returns>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.LeaseHeld"/>: another holder has it (the error names it and when it expires).</exception>
    public abstract Task<StoreLease> AcquireLeaseAsync(string leaseName, string holder, TimeSpan duration, CancellationToken cancellationToken = default);

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
            if (segment.Length == 0 || segment is "." or ".." ||
                !segment.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                throw new ArgumentException($"The store key '{key}' has an invalid segment '{segment}': use letters, digits, '.', '_' and '-', separated by '/'.", nameof(key));
            }
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
    public override string ToString() => $"lease '{Name}' held by '{Holder}' until {ExpiresAt:O}";
}
