using Microsoft.Extensions.DependencyInjection;

namespace KmsBackup.Hosting;

/// <summary>Configures one KmsBackup instance registered with <see cref="KmsBackupServiceCollectionExtensions.AddKmsBackup(IServiceCollection, string, Action{KmsBackupOptions})"/>.</summary>
public sealed class KmsBackupBuilder
{
    internal KmsBackupBuilder(IServiceCollection services, string name)
    {
        Services = services;
        Name = name;
    }

    /// <summary>The service collection.</summary>
    public IServiceCollection Services { get; }

    /// <summary>The instance's name; empty for the unnamed instance.</summary>
    public string Name { get; }

    /// <summary>Adds configuration of the instance's options.</summary>
    /// <param name="configure">Sets the options.</param>
    /// <returns>This builder.</returns>
    public KmsBackupBuilder Configure(Action<KmsBackupOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        Services.Configure(Name, configure);
        return this;
    }

    /// <summary>Replaces the instance's backup store (by default a file-system store).</summary>
    /// <param name="factory">Creates the store, once.</param>
    /// <returns>This builder.</returns>
    public KmsBackupBuilder UseStore(Func<IServiceProvider, BackupStore> factory) => Use(factory);

    /// <summary>
    /// Sets the instance's gateway to the host's key management service. Every instance needs one: none is
    /// registered by default, and a host that starts without one fails to start, naming the instance.
    /// </summary>
    /// <param name="factory">Creates the gateway, once.</param>
    /// <returns>This builder.</returns>
    public KmsBackupBuilder UseInstanceGateway(Func<IServiceProvider, InstanceGateway> factory) => Use(factory);

    /// <summary>
    /// Sets the instance's HSM cluster gateway, through which the client sees the HSM clusters of hardware
    /// instances (rules H2–H7). None by default: hardware operations are then refused.
    /// </summary>
    /// <param name="factory">Creates the gateway, once.</param>
    /// <returns>This builder.</returns>
    public KmsBackupBuilder UseHsmClusterGateway(Func<IServiceProvider, HsmClusterGateway> factory) => Use(factory);

    /// <summary>Sets the instance's repository key provider (by default the key file in the options).</summary>
    /// <param name="factory">Creates the key provider, once.</param>
    /// <returns>This builder.</returns>
    public KmsBackupBuilder UseRepositoryKeyProvider(Func<IServiceProvider, RepositoryKeyProvider> factory) => Use(factory);

    private KmsBackupBuilder Use<T>(Func<IServiceProvider, T> factory)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(factory);
        foreach (var existing in Services.Where(d => KmsBackupParts.IsPart<T>(d, Name)).ToList())
        {
            Services.Remove(existing);
        }

        Services.Add(KmsBackupParts.Describe(Name, factory));
        return this;
    }
}
