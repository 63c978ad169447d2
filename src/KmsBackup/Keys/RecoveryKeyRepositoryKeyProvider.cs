using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace KmsBackup;

/// <summary>
/// A <see cref="RepositoryKeyProvider"/> for offline escrow: a random 256-bit recovery key, split with Shamir's secret
/// sharing into N shares of which any M rebuild it. The shares are text, printed once when the key is made
/// (<see cref="Split"/>) and never stored by the SDK; <see cref="FromShares"/> rebuilds the provider from any M of them.
/// </summary>
/// <remarks>
/// <para>A share reads <c>kbr1-&lt;set&gt;-&lt;M&gt;-&lt;number&gt;-&lt;64 hex digits&gt;-&lt;checksum&gt;</c>: the set is the recovery key's
/// fingerprint (16 hex digits, also the provider's key ID), M the threshold, the number 1 to N, and the checksum the first
/// 8 hex digits of SHA-256 over the UTF-8 of everything before it, so that a mistyped share is named, not silently
/// used. Spaces and line breaks in a share are ignored; hex digits may be upper or lower case.</para>
/// <para>Fewer than M shares reveal nothing about the key.</para>
/// </remarks>
public sealed class RecoveryKeyRepositoryKeyProvider : RepositoryKeyProvider, IDisposable
{
    /// <summary>The most shares a recovery key can be split into.</summary>
    public const int MaximumShareCount = 255;

    private const int KeySize = 32;
    private const string SharePrefix = "kbr1";
    private static readonly byte[] s_associatedData = "kmsbackup/repository-key/v1"u8.ToArray();
    private readonly byte[] _wrappingKey;

    private RecoveryKeyRepositoryKeyProvider(ReadOnlySpan<byte> recoveryKey)
    {
        _wrappingKey = GC.AllocateArray<byte>(KeySize, pinned: true);
        HKDF.DeriveKey(HashAlgorithmName.SHA256, recoveryKey, _wrappingKey, salt: [], info: "kmsbackup/recovery-key/v1/wrap"u8);
        KeyId = "recovery:" + Fingerprint(recoveryKey);
    }

    /// <summary>Identifies the recovery key by a fingerprint of it (a truncated SHA-256 under a label), never the key itself.</summary>
    public override string KeyId { get; }

    /// <summary>Makes a new random recovery key and splits it into <paramref name="shareCount"/> shares, any <paramref name="threshold"/> of which rebuild it.</summary>
    /// <param name="threshold">How many shares open the repository (M), from 1 to <paramref name="shareCount"/>.</param>
    /// <param name="shareCount">How many shares to make (N), from 1 to <see cref="MaximumShareCount"/>.</param>
    /// <returns>The provider and its shares: hand each share to its keeper once; the SDK stores none of them.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The counts are out of range.</exception>
    public static RecoveryKeySplit Split(int threshold, int shareCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(shareCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(shareCount, MaximumShareCount);
        ArgumentOutOfRangeException.ThrowIfLessThan(threshold, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(threshold, shareCount);
        var key = GC.AllocateArray<byte>(KeySize, pinned: true);
        RandomNumberGenerator.Fill(key);
        byte[][] parts = [];
        try
        {
            var set = Fingerprint(key);
            parts = ShamirSecretSharing.Split(key, threshold, shareCount);
            var shares = new string[shareCount];
            for (var i = 0; i < shareCount; i++)
            {
                var body = string.Create(CultureInfo.InvariantCulture, $"{SharePrefix}-{set}-{threshold}-{i + 1}-{Convert.ToHexStringLower(parts[i])}");
                shares[i] = body + "-" + Checksum(body);
            }

            return new RecoveryKeySplit(new RecoveryKeyRepositoryKeyProvider(key), shares, threshold);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
            foreach (var part in parts)
            {
                CryptographicOperations.ZeroMemory(part);
            }
        }
    }

    /// <summary>Rebuilds the recovery key from shares made by <see cref="Split"/>: at least the threshold of them, in any order.</summary>
    /// <param name="shares">The shares as printed (spaces and line breaks are ignored). Duplicates count once.</param>
    /// <returns>The provider; dispose it to clear the key.</returns>
    /// <exception cref="BackupException">
    /// <see cref="BackupErrorCode.InvalidRecoveryShare"/>: a share is malformed or mistyped (named by its position), shares of
    /// different recovery keys are mixed, or the shares do not rebuild the key they name.
    /// <see cref="BackupErrorCode.TooFewRecoveryShares"/>: fewer distinct shares than the threshold.
    /// </exception>
    public static RecoveryKeyRepositoryKeyProvider FromShares(IEnumerable<string> shares)
    {
        ArgumentNullException.ThrowIfNull(shares);
        var parsed = new List<(byte Number, byte[] Value)>();
        string? set = null;
        var threshold = 0;
        try
        {
            var position = 0;
            foreach (var text in shares)
            {
                position++;
                var share = Parse(text, position);
                if (set is null)
                {
                    (set, threshold) = (share.Set, share.Threshold);
                }
                else if (!string.Equals(set, share.Set, StringComparison.Ordinal) || threshold != share.Threshold)
                {
                    CryptographicOperations.ZeroMemory(share.Value);
                    throw Invalid(position, share.Number, $"it belongs to the recovery key '{share.Set}', the shares before it to '{set}'", "Give shares of one recovery key only.");
                }

                if (parsed.Any(p => p.Number == share.Number))
                {
                    if (!parsed.First(p => p.Number == share.Number).Value.AsSpan().SequenceEqual(share.Value))
                    {
                        CryptographicOperations.ZeroMemory(share.Value);
                        throw Invalid(position, share.Number, "another share given has the same number and a different value", "Give each share once, as it was printed.");
                    }

                    CryptographicOperations.ZeroMemory(share.Value);
                    continue;
                }

                parsed.Add((share.Number, share.Value));
            }

            if (set is null || parsed.Count < threshold)
            {
                throw new BackupException(new Refusal(
                    BackupErrorCode.TooFewRecoveryShares, "recovery shares",
                    set is null
                        ? "No recovery share was given."
                        : string.Create(CultureInfo.InvariantCulture, $"{parsed.Count} distinct share(s) of the recovery key '{set}' were given; it needs {threshold}."),
                    "Collect at least the threshold of shares from their keepers and give them all at once."));
            }

            var key = GC.AllocateArray<byte>(KeySize, pinned: true);
            try
            {
                var used = parsed.Take(threshold).ToList();
                ShamirSecretSharing.Combine(used.Select(p => p.Number).ToArray(), used.Select(p => p.Value).ToList(), key);
                if (!string.Equals(Fingerprint(key), set, StringComparison.Ordinal))
                {
                    throw new BackupException(new Refusal(
                        BackupErrorCode.InvalidRecoveryShare, $"recovery key '{set}'",
                        $"The shares given do not rebuild the recovery key '{set}': at least one of them is not the share it claims to be (its checksum was recomputed after a change).",
                        "Give the shares exactly as they were printed."));
                }

                return new RecoveryKeyRepositoryKeyProvider(key);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(key);
            }
        }
        finally
        {
            foreach (var (_, value) in parsed)
            {
                CryptographicOperations.ZeroMemory(value);
            }
        }
    }

    /// <inheritdoc />
    public override Task<byte[]> WrapAsync(ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_disposed, this);
        var wrapped = new byte[key.Length + AesGcmKeyWrap.Overhead];
        AesGcmKeyWrap.Seal(_wrappingKey, key.Span, wrapped, s_associatedData);
        return Task.FromResult(wrapped);
    }

    /// <inheritdoc />
    public override Task<SensitiveBytes> UnwrapAsync(ReadOnlyMemory<byte> wrappedKey, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_disposed, this);
        var key = AesGcmKeyWrap.Open(_wrappingKey, wrappedKey.Span, s_associatedData) ?? throw Unwrappable();
        return Task.FromResult(SensitiveBytes.Own(key));
    }

    private bool _disposed;

    /// <summary>Zeroes the key in memory.</summary>
    public void Dispose()
    {
        _disposed = true;
        CryptographicOperations.ZeroMemory(_wrappingKey);
    }

    /// <summary>Names the provider by its key ID only.</summary>
    /// <returns>A description without key material.</returns>
    public override string ToString() => $"recovery key repository key provider ({KeyId})";

    private static string Fingerprint(ReadOnlySpan<byte> key)
    {
        Span<byte> hash = stackalloc byte[32];
        using (var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            sha.AppendData("kmsbackup/recovery-key/v1/id\n"u8);
            sha.AppendData(key);
            sha.GetHashAndReset(hash);
        }

        return Convert.ToHexStringLower(hash[..8]);
    }

    private static string Checksum(string body) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(body)).AsSpan(0, 4));

    private static (string Set, int Threshold, byte Number, byte[] Value) Parse(string? text, int position)
    {
        var compact = string.Concat((text ?? string.Empty).Where(c => !char.IsWhiteSpace(c))).ToLowerInvariant();
        var fields = compact.Split('-');
        if (fields.Length != 6 || fields[0] != SharePrefix || fields[1].Length != 16 || !IsHex(fields[1]) ||
            !int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var threshold) || threshold is < 1 or > MaximumShareCount ||
            !int.TryParse(fields[3], NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number is < 1 or > MaximumShareCount ||
            fields[4].Length != KeySize * 2 || !IsHex(fields[4]) || fields[5].Length != 8 || !IsHex(fields[5]))
        {
            throw Invalid(position, null, $"it is not a recovery share ('{SharePrefix}-' followed by five fields separated by '-')", "Give the share exactly as it was printed.");
        }

        var body = compact[..compact.LastIndexOf('-')];
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Checksum(body)), Encoding.ASCII.GetBytes(fields[5])))
        {
            throw Invalid(position, (byte)number, "its checksum does not match: it was mistyped or changed", "Copy the share again from its printout, digit by digit.");
        }

        var value = GC.AllocateArray<byte>(KeySize, pinned: true);
        Convert.FromHexString(fields[4], value, out _, out _);
        return (fields[1], threshold, (byte)number, value);
    }

    private static bool IsHex(string s) => s.All(char.IsAsciiHexDigitLower);

    private static BackupException Invalid(int position, byte? number, string why, string remedy)
    {
        var item = number is null
            ? string.Create(CultureInfo.InvariantCulture, $"recovery share {position}")
            : string.Create(CultureInfo.InvariantCulture, $"recovery share {position} (share number {number})");
        return new BackupException(new Refusal(BackupErrorCode.InvalidRecoveryShare, item, $"The {item} was refused: {why}.", remedy));
    }

    private BackupIntegrityException Unwrappable() => new(new Refusal(
        BackupErrorCode.IntegrityViolation, "repository key",
        $"The repository's keyring cannot be unwrapped with the recovery key '{KeyId}': its provider record is damaged.",
        "Open the repository with another of its providers and run verify."));
}

/// <summary>A new recovery key made by <see cref="RecoveryKeyRepositoryKeyProvider.Split"/>: the provider and its shares.</summary>
/// <remarks>The shares are secrets: print them once, hand each to its keeper, and never log them. <see cref="ToString"/> shows none.</remarks>
public sealed class RecoveryKeySplit : IDisposable
{
    internal RecoveryKeySplit(RecoveryKeyRepositoryKeyProvider provider, IReadOnlyList<string> shares, int threshold)
    {
        Provider = provider;
        Shares = shares;
        Threshold = threshold;
    }

    /// <summary>The provider of the new recovery key, to add to a repository.</summary>
    public RecoveryKeyRepositoryKeyProvider Provider { get; }

    /// <summary>The shares, number 1 first. Any <see cref="Threshold"/> of them rebuild the key.</summary>
    public IReadOnlyList<string> Shares { get; }

    /// <summary>How many shares rebuild the key (M).</summary>
    public int Threshold { get; }

    /// <summary>Clears the provider's key.</summary>
    public void Dispose() => Provider.Dispose();

    /// <summary>Names the recovery key and its threshold, never a share.</summary>
    /// <returns>A description without secrets.</returns>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Provider.KeyId}: {Threshold} of {Shares.Count} shares");
}
