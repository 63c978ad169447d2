using System.IO.Abstractions;
using KmsBackup;
using KmsBackup.DevelopmentKms;
using KmsBackup.Storage;

/// <summary>
/// What the fragments of the docs take as given, in a fresh temporary folder of their own: the embedded key
/// management service with instance <c>kst-1</c> (cn-hangzhou, account <c>acct-1</c>; key <c>orders</c> and
/// secret <c>db-password</c>) and an empty instance <c>kst-shanghai-1</c> (cn-shanghai, same account), a key file,
/// a file-system store, a <see cref="BackupClient"/> over them, and the automatic backup of <c>kst-1</c> with its first full.
/// </summary>
internal sealed class EmbeddedSetup : IDisposable
{
    private readonly bool _ownsRoot;

    private EmbeddedSetup(string root, bool ownsRoot, EmbeddedKeyManagementService kms, KeyFileRepositoryKeyProvider keys, BackupClient client, BackupDetails backup)
    {
        Root = root;
        _ownsRoot = ownsRoot;
        Kms = kms;
        Keys = keys;
        Client = client;
        Backup = backup;
    }

    /// <summary>The folder that holds the service, the key file and the store; a fresh one is deleted on <see cref="Dispose"/>.</summary>
    public string Root { get; }

    public EmbeddedKeyManagementService Kms { get; }

    public KeyFileRepositoryKeyProvider Keys { get; }

    public BackupClient Client { get; }

    /// <summary>The automatic backup of <c>kst-1</c>.</summary>
    public BackupDetails Backup { get; }

    /// <summary>The day of the backup's first full: the one day the fragments read, download and restore.</summary>
    public DateOnly Today => Backup.LatestPoint?.Date ?? throw new InvalidOperationException("The backup has no recovery point.");

    /// <summary>
    /// Sets it all up in a fresh temporary folder, or in <paramref name="root"/>: a folder of the caller's, which it sets up
    /// the first time and opens again later (as a restarted process would), and never deletes.
    /// </summary>
    public static async Task<EmbeddedSetup> StartAsync(string? root = null, BackupClientOptions? options = null)
    {
        var ownsRoot = root is null;
        root ??= Directory.CreateTempSubdirectory("kmsbackup-snippet-").FullName;
        var files = new FileSystem();
        var kms = new EmbeddedKeyManagementService(files, Path.Combine(root, "kms"), TimeProvider.System);
        var fresh = await kms.GetInstanceAsync("kst-1") is null;
        if (fresh)
        {
            await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-1", InstanceKind.Software, "cn-hangzhou", "acct-1"));
            await kms.GenerateKeyAsync("kst-1", "orders", "acct-1");
            await kms.StoreSecretAsync("kst-1", "db-password", "orders", "correct horse battery staple"u8.ToArray(), "acct-1");
            await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-shanghai-1", InstanceKind.Software, "cn-shanghai", "acct-1"));
        }

        var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, Path.Combine(root, "keys", "repository.key"));
        var client = await BackupClient.OpenAsync(new FileSystemBackupStore(files, Path.Combine(root, "store")), keys, kms, options: options);
        var backup = fresh
            ? await client.OnInstanceEnabledAsync("kst-1") ?? throw new InvalidOperationException("kst-1 got no automatic backup.")
            : await client.ListBackupsAsync("acct-1").FirstAsync(b => b.Instance?.Id == "kst-1");
        return new EmbeddedSetup(root, ownsRoot, kms, keys, client, backup);
    }

    public void Dispose()
    {
        Client.Dispose();
        Keys.Dispose();
        Kms.Dispose();
        if (_ownsRoot)
        {
            Directory.Delete(Root, recursive: true);
        }
    }
}
