using System.IO.Abstractions;
using System.Security.Cryptography;

namespace KmsBackup;

/// <summary>
/// A <see cref="RepositoryKeyProvider"/> whose key-encryption key is 32 random bytes in a key file,
/// readable by its owner only (mode 0600 on Unix). Keep the key file apart from the backup store: whoever
/// has both can read the backups; whoever loses the key file loses them.
/// </summary>
public sealed class KeyFileRepositoryKeyProvider : RepositoryKeyProvider, IDisposable
{
    private const int KeySize = 32;
    private static readonly byte[] s_associatedData = "kmsbackup/repository-key/v1"u8.ToArray();
    private readonly byte[] _key;

    private KeyFileRepositoryKeyProvider(byte[] key)
    {
        _key = key;
        KeyId = "keyfile:" + Convert.ToHexStringLower(SHA256.HashData(key))[..16];
    }

    /// <summary>Identifies the key by a fingerprint of it (a truncated SHA-256), never the key itself.</summary>
    public override string KeyId { get; }

    /// <summary>Opens the key file at <paramref name="path"/>, creating it with a fresh random key (mode 0600) when it does not exist.</summary>
    /// <param name="fileSystem">The file system.</param>
    /// <param name="path">The key file's path.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.IntegrityViolation"/>: the file is not a 32-byte key.</exception>
    public static async Task<KeyFileRepositoryKeyProvider> OpenOrCreateAsync(IFileSystem fileSystem, string path, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!fileSystem.File.Exists(path))
        {
            var fresh = RandomNumberGenerator.GetBytes(KeySize);
            var directory = fileSystem.Path.GetDirectoryName(fileSystem.Path.GetFullPath(path));
            if (!string.IsNullOrEmpty(directory))
            {
                fileSystem.Directory.CreateDirectory(directory);
            }

            var temp = $"{path}.tmp-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}";
            try
            {
                var stream = fileSystem.FileStream.New(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None);
                await using (stream.ConfigureAwait(false))
                {
                    if (!OperatingSystem.IsWindows())
                    {
                        fileSystem.File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                    }

                    await stream.WriteAsync(fresh, cancellationToken).ConfigureAwait(false);
                    await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
                    stream.Flush(flushToDisk: true);
                }

                // Publish without overwriting a key another process created meanwhile.
                try
                {
                    fileSystem.File.Move(temp, path, overwrite: false);
                }
                catch (IOException) when (fileSystem.File.Exists(path))
                {
                    fileSystem.File.Delete(temp);
                }
            }
            finally
            {
                CryptographicOperations.ZeroMemory(fresh);
            }
        }

        var key = await fileSystem.File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false);
        if (key.Length != KeySize)
        {
            CryptographicOperations.ZeroMemory(key);
            throw new BackupIntegrityException(new Refusal(
                BackupErrorCode.IntegrityViolation, $"key file '{path}'",
                $"The key file '{path}' does not hold a {KeySize}-byte key.",
                "Point the provider at the key file the repository was created with."));
        }

        return new KeyFileRepositoryKeyProvider(key);
    }

    /// <inheritdoc />
    public override Task<byte[]> WrapAsync(ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var wrapped = new byte[12 + key.Length + 16];
        RandomNumberGenerator.Fill(wrapped.AsSpan(0, 12));
        using var aes = new AesGcm(_key, 16);
        aes.Encrypt(wrapped.AsSpan(0, 12), key.Span, wrapped.AsSpan(12, key.Length), wrapped.AsSpan(12 + key.Length), s_associatedData);
        return Task.FromResult(wrapped);
    }

    /// <inheritdoc />
    public override Task<SensitiveBytes> UnwrapAsync(ReadOnlyMemory<byte> wrappedKey, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var wrapped = wrappedKey.Span;
        if (wrapped.Length < 12 + 16)
        {
            throw Unwrappable();
        }

        var key = new byte[wrapped.Length - 28];
        try
        {
            using var aes = new AesGcm(_key, 16);
            aes.Decrypt(wrapped[..12], wrapped[12..^16], wrapped[^16..], key, s_associatedData);
        }
        catch (AuthenticationTagMismatchException)
        {
            CryptographicOperations.ZeroMemory(key);
            throw Unwrappable();
        }

        return Task.FromResult(SensitiveBytes.Own(key));
    }

    /// <summary>Zeroes the key in memory.</summary>
    public void Dispose() => CryptographicOperations.ZeroMemory(_key);

    private BackupIntegrityException Unwrappable() => new(new Refusal(
        BackupErrorCode.IntegrityViolation, "repository key",
        $"The repository key cannot be unwrapped with the key '{KeyId}': wrong key file, or a damaged config.",
        "Use the key file the repository was created with."));
}
