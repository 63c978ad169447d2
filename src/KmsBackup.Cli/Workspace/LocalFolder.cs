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
    private readonly KeyFileRepositoryKeyProvider _keys;

    private LocalFolder(EmbeddedKeyManagementService kms, KeyFileRepositoryKeyProvider keys, BackupClient client)
    {
        Kms = kms;
        _keys = keys;
        Client = client;
    }

    public EmbeddedKeyManagementService Kms { get; }

    public BackupClient Client { get; }

    /// <summary>
    /// Opens the folder. The repository key file must exist: the tool never creates a new, empty
    /// repository by mistake when pointed at the wrong folder.
    /// </summary>
    public static async Task<LocalFolder> OpenAsync(CliHost host, LocalFolderPaths paths, TimeProvider time, CancellationToken cancellationToken)
    {
        var files = host.FileSystem;
        if (!files.File.Exists(paths.KeyFile))
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, $"key file '{paths.KeyFile}'",
                $"There is no repository key file at '{paths.KeyFile}', so there is no KmsBackup folder there.",
                $"Point --root (or {LocalFolderPaths.RootVariable}) at a folder the SDK or the quick start wrote, or --key-file at its key file."));
        }

        var kms = new EmbeddedKeyManagementService(files, paths.Kms, time);
        KeyFileRepositoryKeyProvider? keys = null;
        try
        {
            keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, paths.KeyFile, cancellationToken).ConfigureAwait(false);
            var options = new BackupClientOptions
            {
                TimeProvider = time,
                LeaseHolder = string.Create(CultureInfo.InvariantCulture, $"kmsbackup-{Environment.ProcessId}"),
            };
            var client = await BackupClient.OpenAsync(new FileSystemBackupStore(files, paths.Store, time), keys, kms, hsmClusters: null, options, cancellationToken).ConfigureAwait(false);
            return new LocalFolder(kms, keys, client);
        }
        catch
        {
            keys?.Dispose();
            kms.Dispose();
            throw;
        }
    }

    public ValueTask DisposeAsync()
    {
        Client.Dispose();
        _keys.Dispose();
        Kms.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>A clock stopped at one instant: <c>--now</c> evaluates windows and expiry as of that instant.</summary>
internal sealed class FixedTimeProvider(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}
