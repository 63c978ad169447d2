using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using NSec.Cryptography;

namespace KmsBackup;

/// <summary>
/// A <see cref="RepositoryKeyProvider"/> whose key-encryption key is derived from a passphrase with Argon2id, a
/// memory-hard function, so that guessing passphrases costs an attacker memory as well as time.
/// </summary>
/// <remarks>
/// <para>What this provider wraps carries its own Argon2id parameters and random 16-byte salt:
/// <c>"KBPW"</c>, version byte 1, uint32 memory in KiB, uint32 passes, uint32 parallelism (1), salt, 12-byte nonce,
/// AES-256-GCM ciphertext, 16-byte tag; the bytes before the nonce are the associated data. Parameters read back are
/// bounded (<see cref="MaximumMemorySizeKiB"/>, <see cref="MaximumPasses"/>) before anything is derived, so a planted
/// record cannot make a host allocate gigabytes.</para>
/// <para>Its <see cref="KeyId"/> names the salt of the key it wraps new keys under (<c>passphrase:</c> and 16 hex
/// digits); it <see cref="Accepts"/> every passphrase provider's record, since the passphrase alone does not say which
/// record it opens: opening a repository tries each.</para>
/// </remarks>
public sealed class PassphraseRepositoryKeyProvider : RepositoryKeyProvider, IDisposable
{
    /// <summary>The default memory cost, 19 MiB (OWASP's recommended minimum for Argon2id with 2 passes).</summary>
    public const int DefaultMemorySizeKiB = 19 * 1024;

    /// <summary>The default number of passes.</summary>
    public const int DefaultPasses = 2;

    /// <summary>The least memory cost accepted, 7 MiB (OWASP's lowest setting, with 5 passes).</summary>
    public const int MinimumMemorySizeKiB = 7 * 1024;

    /// <summary>The most memory cost accepted, 256 MiB, also when read from a record: a planted record cannot make a host allocate more.</summary>
    public const int MaximumMemorySizeKiB = 256 * 1024;

    /// <summary>The most passes accepted, also when read from a record.</summary>
    public const int MaximumPasses = 16;

    /// <summary>The shortest passphrase accepted, in characters.</summary>
    public const int MinimumPassphraseLength = 12;

    private const int SaltSize = 16;
    private const int HeaderSize = 4 + 1 + 4 + 4 + 4 + SaltSize;
    private const int KeySize = 32;
    private static readonly byte[] s_magic = "KBPW"u8.ToArray();
    private readonly byte[] _passphrase;
    private readonly byte[] _salt;
    private readonly int _memorySizeKiB;
    private readonly int _passes;
    private bool _disposed;

    /// <summary>Creates a provider for <paramref name="passphrase"/>, with its own random salt for the keys it wraps.</summary>
    /// <param name="passphrase">The passphrase, at least <see cref="MinimumPassphraseLength"/> characters; kept as UTF-8 (NFC) until disposed.</param>
    /// <param name="memorySizeKiB">Argon2id's memory cost for keys this provider wraps, from <see cref="MinimumMemorySizeKiB"/> to <see cref="MaximumMemorySizeKiB"/>.</param>
    /// <param name="passes">Argon2id's passes for keys this provider wraps, from 1 to <see cref="MaximumPasses"/>.</param>
    /// <exception cref="ArgumentException">The passphrase is shorter than <see cref="MinimumPassphraseLength"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A cost is out of range.</exception>
    public PassphraseRepositoryKeyProvider(ReadOnlySpan<char> passphrase, int memorySizeKiB = DefaultMemorySizeKiB, int passes = DefaultPasses)
    {
        if (passphrase.Length < MinimumPassphraseLength)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"A passphrase needs at least {MinimumPassphraseLength} characters."), nameof(passphrase));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(memorySizeKiB, MinimumMemorySizeKiB);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(memorySizeKiB, MaximumMemorySizeKiB);
        ArgumentOutOfRangeException.ThrowIfLessThan(passes, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(passes, MaximumPasses);

        // One passphrase typed on two machines is one passphrase: compare in a single Unicode normal form.
        var normalized = passphrase.ToString().Normalize(NormalizationForm.FormC);
        _passphrase = GC.AllocateArray<byte>(Encoding.UTF8.GetByteCount(normalized), pinned: true);
        Encoding.UTF8.GetBytes(normalized, _passphrase);
        _salt = RandomNumberGenerator.GetBytes(SaltSize);
        _memorySizeKiB = memorySizeKiB;
        _passes = passes;
        KeyId = "passphrase:" + Convert.ToHexStringLower(SHA256.HashData(_salt).AsSpan(0, 8));
    }

    /// <summary>Names the salt of the keys this provider wraps (never the passphrase or anything derived from it).</summary>
    public override string KeyId { get; }

    /// <inheritdoc />
    public override bool Accepts(string keyId)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        return keyId.StartsWith("passphrase:", StringComparison.Ordinal);
    }

    /// <inheritdoc />
    public override Task<byte[]> WrapAsync(ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_disposed, this);
        var wrapped = new byte[HeaderSize + key.Length + AesGcmKeyWrap.Overhead];
        var header = wrapped.AsSpan(0, HeaderSize);
        s_magic.CopyTo(header);
        header[4] = 1;
        BinaryPrimitives.WriteUInt32LittleEndian(header[5..], (uint)_memorySizeKiB);
        BinaryPrimitives.WriteUInt32LittleEndian(header[9..], (uint)_passes);
        BinaryPrimitives.WriteUInt32LittleEndian(header[13..], 1);
        _salt.CopyTo(header[17..]);
        var kek = Derive(_salt, _memorySizeKiB, _passes);
        try
        {
            AesGcmKeyWrap.Seal(kek, key.Span, wrapped.AsSpan(HeaderSize), header);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(kek);
        }

        return Task.FromResult(wrapped);
    }

    /// <inheritdoc />
    /// <exception cref="BackupException"><see cref="BackupErrorCode.WrongPassphrase"/>: the passphrase does not open it (or it is damaged).
    /// <see cref="BackupErrorCode.IntegrityViolation"/>: it is malformed, or names costs out of bounds.</exception>
    public override Task<SensitiveBytes> UnwrapAsync(ReadOnlyMemory<byte> wrappedKey, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_disposed, this);
        var wrapped = wrappedKey.Span;
        if (wrapped.Length < HeaderSize + 12 + 16 || !wrapped[..4].SequenceEqual(s_magic) || wrapped[4] != 1)
        {
            throw Malformed("it is not a passphrase-wrapped key of version 1");
        }

        var memory = BinaryPrimitives.ReadUInt32LittleEndian(wrapped[5..]);
        var passes = BinaryPrimitives.ReadUInt32LittleEndian(wrapped[9..]);
        var parallelism = BinaryPrimitives.ReadUInt32LittleEndian(wrapped[13..]);
        if (memory is < MinimumMemorySizeKiB or > MaximumMemorySizeKiB || passes is < 1 or > MaximumPasses || parallelism != 1)
        {
            throw Malformed(string.Create(CultureInfo.InvariantCulture, $"its Argon2id costs (memory {memory} KiB, {passes} passes, parallelism {parallelism}) are out of bounds"));
        }

        var kek = Derive(wrapped.Slice(17, SaltSize), (int)memory, (int)passes);
        byte[]? key;
        try
        {
            key = AesGcmKeyWrap.Open(kek, wrapped[HeaderSize..], wrapped[..HeaderSize]);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(kek);
        }

        return key is not null
            ? Task.FromResult(SensitiveBytes.Own(key))
            : throw new BackupException(new Refusal(
                BackupErrorCode.WrongPassphrase, "passphrase",
                "The passphrase does not open the repository's passphrase provider.",
                "Type the passphrase again; if it is lost, open the repository with another of its providers."));
    }

    /// <summary>Zeroes the passphrase in memory.</summary>
    public void Dispose()
    {
        _disposed = true;
        CryptographicOperations.ZeroMemory(_passphrase);
    }

    /// <summary>Names the provider by its key ID only.</summary>
    /// <returns>A description without the passphrase.</returns>
    public override string ToString() => $"passphrase repository key provider ({KeyId})";

    private byte[] Derive(ReadOnlySpan<byte> salt, int memorySizeKiB, int passes)
    {
        var algorithm = PasswordBasedKeyDerivationAlgorithm.Argon2id(new Argon2Parameters
        {
            DegreeOfParallelism = 1,
            MemorySize = memorySizeKiB,
            NumberOfPasses = passes,
        });
        var kek = GC.AllocateArray<byte>(KeySize, pinned: true);
        algorithm.DeriveBytes(_passphrase, salt, kek);
        return kek;
    }

    private static BackupIntegrityException Malformed(string why) => new(new Refusal(
        BackupErrorCode.IntegrityViolation, "passphrase provider record",
        $"The repository's passphrase provider record was refused: {why}.",
        "Open the repository with another of its providers, remove this one and add the passphrase again."));
}
