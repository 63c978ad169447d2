using System.Globalization;
using KmsBackup.Cli.Output;
using KmsBackup.DevelopmentKms;
using KmsBackup.Storage;

namespace KmsBackup.Cli.Workspace;

/// <summary>
/// Where the tool's data lives, resolved from options and environment variables: a folder holding the
/// backup store (<c>store/</c>), the embedded key management service (<c>kms/</c>) and the repository
/// key file (<c>keys/repository.key</c>). Each part can be moved elsewhere on its own.
/// </summary>
internal sealed record LocalFolderPaths(string Store, string Kms, string KeyFile)
{
    public const string RootVariable = "KMSBACKUP_ROOT";
    public const string StoreVariable = "KMSBACKUP_STORE";
    public const string KmsVariable = "KMSBACKUP_KMS";
    public const string KeyFileVariable = "KMSBACKUP_KEY_FILE";

    /// <summary>The layout under one root folder; the quick start writes the same layout.</summary>
    public static LocalFolderPaths Under(string root, Func<string, string, string> combine) =>
        new(combine(root, "store"), combine(root, "kms"), combine(combine(root, "keys"), "repository.key"));
}

/// <summary>
/// An open local folder: the file-system store, the embedded service and a <see cref="BackupClient"/>
/// over them. Commands are thin over <see cref="Client"/>.
/// </summary>
internal sealed class LocalFolder : IAsyncDisposable
{
    private readonly RepositoryKeyProvider _keys;

    private LocalFolder(EmbeddedKeyManagementService kms, RepositoryKeyProvider keys, BackupClient client)
    {
        Kms = kms;
        _keys = keys;
        Client = client;
    }

    public EmbeddedKeyManagementService Kms { get; }

    public BackupClient Client { get; }

    /// <summary>The repository's configuration object, which every store holding a repository has (docs/repository-format.md).</summary>
    private const string RepositoryConfigKey = "config";

    /// <summary>
    /// Opens the folder. Every part must exist: the repository key file, the store's repository and the service's
    /// key. A mistyped path is "not found" and nothing is written there: only <see cref="InitializeAsync"/> creates.
    /// With <paramref name="unlock"/> (a passphrase or recovery-share provider), the repository opens with it instead,
    /// and the key file need not exist: that is how a folder whose key file was lost is opened.
    /// </summary>
    public static async Task<LocalFolder> OpenAsync(
        CliHost host, LocalFolderPaths paths, TimeProvider time, Func<CancellationToken, Task<RepositoryKeyProvider>>? unlock, CancellationToken cancellationToken)
    {
        var files = host.FileSystem;
        if (unlock is null && !files.File.Exists(paths.KeyFile))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, $"key file '{paths.KeyFile}'",
                $"There is no repository key file at '{paths.KeyFile}', so there is no KmsBackup folder there.",
                $"Point --root (or {LocalFolderPaths.RootVariable}) at a folder the SDK or the quick start wrote, or --key-file at its key file; or create a new folder with 'kmsbackup init'."));
        }

        // Read before anything opens: the service and the store would create their folders on first use.
        var store = new FileSystemBackupStore(files, paths.Store, time);
        if (!files.Directory.Exists(paths.Store) || await store.TryReadAsync(RepositoryConfigKey, cancellationToken).ConfigureAwait(false) is null)
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, $"store folder '{paths.Store}'",
                $"There is no backup store at '{paths.Store}' (no repository there); the tool does not create one by mistake.",
                $"Check --store (or {LocalFolderPaths.StoreVariable}) and --root; to start a new folder, run 'kmsbackup init'."));
        }

        if (!files.File.Exists(ServiceKeyFile(files, paths)))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, $"service folder '{paths.Kms}'",
                $"There is no embedded key management service at '{paths.Kms}' (no {ServiceKeyFileName} there); the tool does not create one by mistake.",
                $"Check --kms (or {LocalFolderPaths.KmsVariable}) and --root; to start a new folder, run 'kmsbackup init'."));
        }

        return await OpenPartsAsync(host, paths, store, time, unlock, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Creates a new folder: the repository key file, the service (with its key) and the store's repository. Refuses,
    /// writing nothing, when any of the three is there already: a new key beside an old store would lock the store.
    /// </summary>
    public static async Task<LocalFolder> InitializeAsync(CliHost host, LocalFolderPaths paths, TimeProvider time, CancellationToken cancellationToken)
    {
        var files = host.FileSystem;
        var existing = new List<string>();
        if (files.File.Exists(paths.KeyFile) || files.Directory.Exists(paths.KeyFile))
        {
            existing.Add($"key file '{paths.KeyFile}'");
        }

        if (files.File.Exists(paths.Store) || (files.Directory.Exists(paths.Store) && files.Directory.EnumerateFileSystemEntries(paths.Store).Any()))
        {
            existing.Add($"store folder '{paths.Store}'");
        }

        if (files.File.Exists(paths.Kms) || (files.Directory.Exists(paths.Kms) && files.Directory.EnumerateFileSystemEntries(paths.Kms).Any()))
        {
            existing.Add($"service folder '{paths.Kms}'");
        }

        if (existing.Count > 0)
        {
            throw new BackupException(new Refusal(
                FolderExists, existing[0],
                $"'init' creates a new folder only, and these are there already: {string.Join(", ", existing)}. Nothing was written.",
                "To use that folder, run the command without 'init'; to start a new one, give --root (and --store, --kms, --key-file) paths that do not exist or are empty."));
        }

        return await OpenPartsAsync(host, paths, new FileSystemBackupStore(files, paths.Store, time), time, unlock: null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The refusal of 'init' on a folder that has a store, a service or a key file already.</summary>
    public static BackupErrorCode FolderExists { get; } = new("FolderExists");

    private const string ServiceKeyFileName = "service.key";

    // The tool opens the service with its default options, which keep the service's key in its folder.
    private static string ServiceKeyFile(System.IO.Abstractions.IFileSystem files, LocalFolderPaths paths) => files.Path.Combine(paths.Kms, ServiceKeyFileName);

    private static async Task<LocalFolder> OpenPartsAsync(
        CliHost host, LocalFolderPaths paths, FileSystemBackupStore store, TimeProvider time, Func<CancellationToken, Task<RepositoryKeyProvider>>? unlock, CancellationToken cancellationToken)
    {
        var files = host.FileSystem;
        var kms = new EmbeddedKeyManagementService(files, paths.Kms, time);
        RepositoryKeyProvider? keys = null;
        try
        {
            keys = unlock is not null
                ? await unlock(cancellationToken).ConfigureAwait(false)
                : await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, paths.KeyFile, cancellationToken).ConfigureAwait(false);
            var options = new BackupClientOptions
            {
                TimeProvider = time,
                LeaseHolder = string.Create(CultureInfo.InvariantCulture, $"kmsbackup-{Environment.ProcessId}"),
            };
            var client = await BackupClient.OpenAsync(store, keys, kms, hsmClusters: null, options, cancellationToken).ConfigureAwait(false);
            return new LocalFolder(kms, keys, client);
        }
        catch
        {
            (keys as IDisposable)?.Dispose();
            kms.Dispose();
            throw;
        }
    }

    public ValueTask DisposeAsync()
    {
        Client.Dispose();
        (_keys as IDisposable)?.Dispose();
        Kms.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>A clock stopped at one instant: <c>--now</c> evaluates windows and expiry as of that instant.</summary>
internal sealed class FixedTimeProvider(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}
