using System.IO.Abstractions;
using System.Security.Cryptography;
using KmsBackup.Storage;

namespace KmsBackup;

/// <summary>
/// A <see cref="RepositoryKeyProvider"/> whose key-encryption key is 32 random bytes in a key file,
/// readable by its owner only (mode 0600 on Unix). Keep the key file apart from the backup store: whoever
/// has both can read the backups; whoever loses the key file loses them.
/// </summary>
public sealed class KeyFileRepositoryKeyProvider : RepositoryKeyProvider, IDisposable
{
    private const int KeySize = 32;
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private static readonly Lock s_moveFallback = new();
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
    /// <remarks>
    /// Any number of processes may open one new path at once (two first starts of a host, say): the key is
    /// published under its name only if no file has that name, so exactly one key is created and every caller
    /// gets it. The key file is never seen partly written or with a mode other than 0600, and once created it
    /// survives a power loss. On a file system without hard links (FAT, some network mounts) the name is
    /// published by a move that checks for the name first: there, only calls in one process are exclusive.
    /// </remarks>
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
            await CreateAsync(fileSystem, fileSystem.Path.GetFullPath(path), cancellationToken).ConfigureAwait(false);
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

    /// <summary>
    /// Writes a fresh key to a temporary file made for this call alone, then gives it the name
    /// <paramref name="path"/> unless another caller did so first (whose key then stays).
    /// </summary>
    private static async Task CreateAsync(IFileSystem fileSystem, string path, CancellationToken cancellationToken)
    {
        // Only the real file system's paths can be handed to link(2) and fsync(2).
        var usesPosixCalls = fileSystem.GetType() == typeof(System.IO.Abstractions.FileSystem) && PosixFileOperations.IsSupported;
        var folder = fileSystem.Path.GetDirectoryName(path)!;
        var missing = new List<string>();
        for (var ancestor = folder; !string.IsNullOrEmpty(ancestor) && !fileSystem.Directory.Exists(ancestor); ancestor = fileSystem.Path.GetDirectoryName(ancestor))
        {
            missing.Add(ancestor);
        }

        fileSystem.Directory.CreateDirectory(folder);
        if (usesPosixCalls)
        {
            // A key in a folder whose own name is lost at a power loss is lost too.
            foreach (var created in missing)
            {
                PosixFileOperations.SyncDirectory(fileSystem.Path.GetDirectoryName(created)!);
            }
        }

        var temporaryPath = $"{path}.tmp-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}";
        var fresh = RandomNumberGenerator.GetBytes(KeySize);
        try
        {
            // O_CREAT | O_EXCL with mode 0600: the file is the owner's alone from its creation, before a byte is in it.
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = OwnerOnly;
            }

            var stream = fileSystem.FileStream.New(temporaryPath, options);
            await using (stream.ConfigureAwait(false))
            {
                if (!OperatingSystem.IsWindows())
                {
                    // Before anything is written: a umask can only have taken bits away (0277 leaves 0400), and some
                    // file systems ignore the create mode.
                    fileSystem.File.SetUnixFileMode(temporaryPath, OwnerOnly);
                }

                await stream.WriteAsync(fresh, cancellationToken).ConfigureAwait(false);
                stream.Flush(flushToDisk: true);
            }

            Publish(fileSystem, temporaryPath, path, usesPosixCalls);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(fresh);

            // After a link(2) this removes the second name; after a lost race or a failure, the unused key.
            try
            {
                fileSystem.File.Delete(temporaryPath);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }

        // Also when another caller won: the key this one is about to use must survive a power loss.
        if (usesPosixCalls)
        {
            PosixFileOperations.SyncDirectory(folder);
        }
    }

    /// <summary>Gives the complete, flushed file <paramref name="temporaryPath"/> the name <paramref name="path"/> if no file has it.</summary>
    private static void Publish(IFileSystem fileSystem, string temporaryPath, string path, bool usesPosixCalls)
    {
        // Not File.Move(temporaryPath, path, overwrite: false): on Unix .NET checks that the name is free and then
        // calls rename(2), which replaces a key that another process published in between. link(2) fails with
        // EEXIST atomically.
        if (usesPosixCalls && PosixFileOperations.TryLink(temporaryPath, path) != PosixFileOperations.LinkResult.NotSupported)
        {
            return;
        }

        // Windows: the move (MoveFileEx without replace) is atomic. Elsewhere (an in-memory file system, or one
        // without hard links, where the move checks and then renames) the lock makes it exclusive in this process.
        lock (s_moveFallback)
        {
            if (fileSystem.File.Exists(path))
            {
                return;
            }

            try
            {
                fileSystem.File.Move(temporaryPath, path, overwrite: false);
            }
            catch (IOException) when (fileSystem.File.Exists(path))
            {
            }
        }
    }

    /// <inheritdoc />
    public override Task<byte[]> WrapAsync(ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var wrapped = new byte[key.Length + AesGcmKeyWrap.Overhead];
        AesGcmKeyWrap.Seal(_key, key.Span, wrapped, s_associatedData);
        return Task.FromResult(wrapped);
    }

    /// <inheritdoc />
    public override Task<SensitiveBytes> UnwrapAsync(ReadOnlyMemory<byte> wrappedKey, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var key = AesGcmKeyWrap.Open(_key, wrappedKey.Span, s_associatedData) ?? throw Unwrappable();
        return Task.FromResult(SensitiveBytes.Own(key));
    }

    /// <summary>Zeroes the key in memory.</summary>
    public void Dispose() => CryptographicOperations.ZeroMemory(_key);

    private BackupIntegrityException Unwrappable() => new(new Refusal(
        BackupErrorCode.IntegrityViolation, "repository key",
        $"The repository key cannot be unwrapped with the key '{KeyId}': wrong key file, or a damaged config.",
        "Use the key file the repository was created with."));
}
