using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.IO.Abstractions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KmsBackup.Hosting;

/// <summary>
/// Gives the <see cref="BackupClient"/> of each KmsBackup instance registered with
/// <see cref="KmsBackupServiceCollectionExtensions.AddKmsBackup(IServiceCollection, string, Action{KmsBackupOptions})"/>,
/// by name (as the Azure SDK's client factory does). Resolve it from the container; it is a singleton.
/// </summary>
/// <remarks>
/// Opening a client reads the repository from its store, so it is asynchronous and happens on the first
/// <see cref="GetClientAsync"/> for a name (the hosted scheduler asks at its first tick, right after the host
/// starts). The client is then kept and shared: it is thread-safe. If opening fails (the store is
/// unreachable, say), the failure is thrown to that caller and the next call tries again. Clients are
/// disposed with the container.
/// </remarks>
public abstract class BackupClientProvider
{
    /// <summary>For subclasses and mocking.</summary>
    protected BackupClientProvider()
    {
    }

    /// <summary>The names of the registered instances; <see cref="Options.DefaultName"/> (the empty string) is the unnamed one.</summary>
    public abstract IReadOnlyCollection<string> Names { get; }

    /// <summary>Gets the client of the instance <paramref name="name"/>, opening it on first use.</summary>
    /// <param name="name">The instance's name; <see langword="null"/> for the unnamed instance registered by <c>AddKmsBackup()</c>.</param>
    /// <param name="cancellationToken">Stops waiting; an open in progress goes on for the next caller.</param>
    /// <returns>The open client, shared by every caller.</returns>
    /// <exception cref="ArgumentException">No instance of that name is registered.</exception>
    /// <exception cref="BackupException">Opening failed: the store or the key provider failed, or the repository is damaged.</exception>
    public abstract ValueTask<BackupClient> GetClientAsync(string? name = null, CancellationToken cancellationToken = default);
}

/// <summary>Opens each instance's client from its registered parts, once, and keeps it.</summary>
internal sealed class DefaultBackupClientProvider : BackupClientProvider, IDisposable
{
    private readonly IServiceProvider _services;
    private readonly IOptionsMonitor<KmsBackupOptions> _options;
    private readonly string[] _names;
    private readonly ConcurrentDictionary<string, Lazy<Task<OpenedClient>>> _clients = new(StringComparer.Ordinal);
    private int _disposed;

    public DefaultBackupClientProvider(IServiceProvider services, IOptionsMonitor<KmsBackupOptions> options, IEnumerable<KmsBackupRegistration> registrations)
    {
        _services = services;
        _options = options;
        _names = [.. registrations.Select(r => r.Name).Distinct(StringComparer.Ordinal)];
    }

    public override IReadOnlyCollection<string> Names => _names;

    public override async ValueTask<BackupClient> GetClientAsync(string? name = null, CancellationToken cancellationToken = default)
    {
        name ??= Options.DefaultName;
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (!_names.Contains(name, StringComparer.Ordinal))
        {
            throw new ArgumentException(
                $"No KmsBackup instance named '{name}' is registered; register it with services.AddKmsBackup(\"{name}\", ...). Registered: {string.Join(", ", _names.Select(n => $"'{n}'"))}.",
                nameof(name));
        }

        var opening = _clients.GetOrAdd(name, n => new Lazy<Task<OpenedClient>>(() => OpenAsync(n)));
        try
        {
            return (await opening.Value.WaitAsync(cancellationToken).ConfigureAwait(false)).Client;
        }
        catch when (opening.Value.IsFaulted || opening.Value.IsCanceled)
        {
            // Not kept: the next caller tries again.
            _clients.TryRemove(KeyValuePair.Create(name, opening));
            throw;
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (var opening in _clients.Values)
        {
            if (opening.IsValueCreated && opening.Value.IsCompletedSuccessfully)
            {
                opening.Value.Result.Dispose();
            }
        }

        _clients.Clear();
    }

    private async Task<OpenedClient> OpenAsync(string name)
    {
        var options = _options.Get(name);
        var files = _services.GetRequiredService<IFileSystem>();
        var store = KmsBackupParts.Resolve<BackupStore>(_services, name) ?? throw Missing<BackupStore>(name);
        var gateway = KmsBackupParts.Resolve<InstanceGateway>(_services, name) ?? throw Missing<InstanceGateway>(name);
        var keys = KmsBackupParts.Resolve<RepositoryKeyProvider>(_services, name);
        var hsmClusters = KmsBackupParts.Resolve<HsmClusterGateway>(_services, name);
        KeyFileRepositoryKeyProvider? ownedKeys = null;
        if (keys is null)
        {
            ownedKeys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, options.ResolveKeyFilePath(files, name)).ConfigureAwait(false);
            keys = ownedKeys;
        }

        try
        {
            var clientOptions = options.ToClientOptions(
                _services.GetRequiredService<TimeProvider>(), _services.GetService<ILoggerFactory>(), _services.GetService<IMeterFactory>());
            var client = await BackupClient.OpenAsync(store, keys, gateway, hsmClusters, clientOptions).ConfigureAwait(false);
            return new OpenedClient(client, ownedKeys);
        }
        catch
        {
            ownedKeys?.Dispose();
            throw;
        }
    }

    internal static InvalidOperationException Missing<T>(string name) =>
        typeof(T) == typeof(InstanceGateway)
            ? new($"The KmsBackup instance '{name}' has no InstanceGateway: register the host's key management service with AddKmsBackup(...).UseInstanceGateway(...), or, for development and tests only, AddKmsBackup(...).UseEmbeddedKeyManagementService() from the KmsBackup.DevelopmentKms package.")
            : new($"The KmsBackup instance '{name}' has no {typeof(T).Name}: register one, or keep the default that AddKmsBackup registers.");

    private sealed record OpenedClient(BackupClient Client, KeyFileRepositoryKeyProvider? OwnedKeys) : IDisposable
    {
        public void Dispose()
        {
            Client.Dispose();
            OwnedKeys?.Dispose();
        }
    }
}

/// <summary>Marks a registered instance name.</summary>
internal sealed record KmsBackupRegistration(string Name);

/// <summary>Where an instance's parts are registered: plain services for the unnamed instance, keyed services under its name for the others.</summary>
internal static class KmsBackupParts
{
    public static T? Resolve<T>(IServiceProvider services, string name)
        where T : class =>
        name.Length == 0 ? services.GetService<T>() : services.GetKeyedService<T>(name);

    public static ServiceDescriptor Describe<T>(string name, Func<IServiceProvider, T> factory)
        where T : class =>
        name.Length == 0
            ? ServiceDescriptor.Singleton(factory)
            : ServiceDescriptor.KeyedSingleton<T>(name, (services, _) => factory(services));

    public static bool IsPart<T>(ServiceDescriptor descriptor, string name) =>
        descriptor.ServiceType == typeof(T) &&
        (name.Length == 0 ? !descriptor.IsKeyedService : descriptor.IsKeyedService && Equals(descriptor.ServiceKey, name));
}

/// <summary>Fails the host's start when a registered instance has no <see cref="InstanceGateway"/>, naming the instance and the remedy.</summary>
internal sealed class KmsBackupStartupCheck(IServiceProvider services) : Microsoft.Extensions.Hosting.IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var registration in services.GetServices<KmsBackupRegistration>())
        {
            if (KmsBackupParts.Resolve<InstanceGateway>(services, registration.Name) is null)
            {
                throw DefaultBackupClientProvider.Missing<InstanceGateway>(registration.Name);
            }
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
