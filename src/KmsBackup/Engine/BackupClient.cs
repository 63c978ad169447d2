using KmsBackup.Repository;

namespace KmsBackup;

/// <summary>
/// The entry point of KmsBackup.Sdk: creates, purchases, enables, runs, views, extends, resets and
/// renews backups of key management instances, over a <see cref="BackupStore"/>, an
/// <see cref="InstanceGateway"/> and a <see cref="RepositoryKeyProvider"/>. Thread-safe; several
/// clients (in several processes) can share one store, one writer per backup at a time.
/// </summary>
/// <remarks>
/// <para>Two kinds of operation, told apart by their first parameter:</para>
/// <list type="bullet">
/// <item><b>Account operations</b> take the caller account first and act for it: only the owner of a backup (for a
/// bound backup, the owner of its instance) may enable, view, restore or change it (rule R2). The lifecycle
/// (<see cref="CreateDefaultBackupAsync"/>, <see cref="PurchaseBackupsAsync"/>, <see cref="EnableBackupAsync"/>,
/// extend, reset, renew, get, list), the data views and the backup file (<see cref="GetDataPageAsync"/>,
/// <see cref="DownloadAsync"/>, <see cref="UploadAsync"/>), restores (<see cref="PlanRestoreAsync"/>,
/// <see cref="RestoreAsync"/> and the unfinished ones) and hardware instances (<see cref="GetProtectionAsync"/>, ...).</item>
/// <item><b>Operator operations</b> take no caller account: the host calls them for its key management service and its
/// repository. The instance events (<see cref="OnInstanceEnabledAsync"/>, <see cref="OnInstanceReleasedAsync"/>),
/// runs and health (<see cref="RunDueBackupsAsync"/>, <see cref="GetHealthAsync"/>) and maintenance
/// (<see cref="RotateRepositoryKeyAsync"/>, <see cref="RekeyAsync"/>, <see cref="PruneAsync"/>,
/// <see cref="VerifyAsync"/>, the store clock).</item>
/// </list>
/// <para>Time comes only from <see cref="BackupClientOptions.TimeProvider"/>.</para>
/// </remarks>
public partial class BackupClient : IDisposable
{
    private readonly BackupRepository _repository = null!;
    private readonly LifecycleOperations _lifecycle = null!;
    private readonly BackupRunner _runner = null!;
    private readonly RunHealth _health = null!;
    private readonly MaintenanceOperations _maintenance = null!;
    private readonly BackupDataReader _data = null!;
    private readonly BackupFileTransfer _files = null!;
    private readonly HardwareOperations _hardware = null!;
    private readonly RestoreExecutor _executor = null!;
    private readonly UnfinishedRestores _unfinished = null!;
    private readonly RecoveryDrills _drills = null!;
    private readonly BackupCatalog _catalog = null!;
    private readonly BackupCopier _copier = null!;

    /// <summary>For mocking only.</summary>
    protected BackupClient()
    {
    }

    private BackupClient(BackupRepository repository, InstanceGateway instances, HsmClusterGateway? hsmClusters, BackupClientOptions options)
    {
        _repository = repository;
        var catalog = _catalog = new BackupCatalog(repository, instances, hsmClusters, options);
        _copier = new BackupCopier(catalog);
        var history = new RunHistory(catalog);
        _health = new RunHealth(catalog, history);
        var automatic = new AutomaticBackups(catalog);
        _runner = new BackupRunner(catalog, history, _health, automatic);
        _data = new BackupDataReader(catalog);
        _hardware = new HardwareOperations(catalog, _data);
        _lifecycle = new LifecycleOperations(catalog, _runner, _hardware, automatic);
        _executor = new RestoreExecutor(catalog, new RestorePreparation(catalog, _data));
        _unfinished = new UnfinishedRestores(catalog, _executor);
        _files = new BackupFileTransfer(catalog, _data);
        _maintenance = new MaintenanceOperations(catalog);
        _drills = new RecoveryDrills(catalog, _data, _executor, _maintenance);
    }

    /// <summary>Opens the backup repository in <paramref name="store"/> (creating it when the store is empty) and returns a client for it.</summary>
    /// <param name="store">Where backup data lives.</param>
    /// <param name="repositoryKeys">Guards the repository's encryption keys.</param>
    /// <param name="instances">The key management service whose instances are backed up and restored into.</param>
    /// <param name="hsmClusters">The HSM clusters of hardware instances (rules H2–H7), for example the PKCS#11 gateway;
    /// <see langword="null"/> when no hardware instance is backed up (hardware operations are then refused with
    /// <see cref="BackupErrorCode.OperationNotSupported"/>, and hardware backups are listed without their HSM details).</param>
    /// <param name="options">Options; <see langword="null"/> for the defaults.</param>
    /// <param name="cancellationToken">Cancels opening.</param>
    /// <exception cref="BackupException">The store failed, the key provider does not match the repository, or the repository is damaged.</exception>
    public static async Task<BackupClient> OpenAsync(
        BackupStore store, RepositoryKeyProvider repositoryKeys, InstanceGateway instances, HsmClusterGateway? hsmClusters = null,
        BackupClientOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(repositoryKeys);
        ArgumentNullException.ThrowIfNull(instances);
        var validated = (options ?? new BackupClientOptions()).Clone();
        validated.Validate();
        var repository = await BackupRepository.OpenOrInitializeAsync(
            store, repositoryKeys, new StoreClockPolicy(validated.TimeProvider, validated.MaximumClockLead, validated.MaximumClockLag), cancellationToken).ConfigureAwait(false);
        return new BackupClient(repository, instances, hsmClusters, validated);
    }

    /// <summary>Releases the client's keys.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the client's keys.</summary>
    /// <param name="disposing">Whether called from <see cref="Dispose()"/>.</param>
    protected virtual void Dispose(bool disposing)
    {
        if (disposing)
        {
            _repository?.Dispose();
        }
    }
}
