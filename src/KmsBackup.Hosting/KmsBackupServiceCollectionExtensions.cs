using System.IO.Abstractions;
using KmsBackup;
using KmsBackup.Hosting;
using KmsBackup.Storage;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers KmsBackup.Sdk in a service collection: options, the client provider, the hosted scheduler and the file-system defaults.</summary>
public static class KmsBackupServiceCollectionExtensions
{
    /// <summary>Registers the unnamed KmsBackup instance with default options; see <see cref="AddKmsBackup(IServiceCollection, string, Action{KmsBackupOptions})"/>.</summary>
    /// <param name="services">The service collection.</param>
    /// <returns>A builder to configure the instance further.</returns>
    public static KmsBackupBuilder AddKmsBackup(this IServiceCollection services) =>
        AddKmsBackup(services, Options.Options.DefaultName, static _ => { });

    /// <summary>Registers the unnamed KmsBackup instance; see <see cref="AddKmsBackup(IServiceCollection, string, Action{KmsBackupOptions})"/>.</summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the options.</param>
    /// <returns>A builder to configure the instance further.</returns>
    public static KmsBackupBuilder AddKmsBackup(this IServiceCollection services, Action<KmsBackupOptions> configure) =>
        AddKmsBackup(services, Options.Options.DefaultName, configure);

    /// <summary>
    /// Registers the KmsBackup instance <paramref name="name"/>: its <see cref="KmsBackupOptions"/> (validated
    /// when the host starts), its parts, the <see cref="BackupClientProvider"/> that opens its client, and the
    /// hosted <see cref="BackupSchedulerService"/> that runs its due backups. Calling it again for the same
    /// name adds configuration.
    /// </summary>
    /// <remarks>
    /// <para>Every registration is a <c>TryAdd</c>, so a host replaces any part by registering its own, before
    /// or after this call (a later registration wins), or with the builder's <c>Use</c> methods:</para>
    /// <list type="bullet">
    /// <item><see cref="TimeProvider"/>: <see cref="TimeProvider.System"/> by default (tests use a fake one);</item>
    /// <item><see cref="IFileSystem"/>: the real file system by default;</item>
    /// <item><see cref="BackupStore"/>: a <see cref="FileSystemBackupStore"/> in <see cref="KmsBackupOptions.StorePath"/>;</item>
    /// <item><see cref="InstanceGateway"/>: none. The host registers its key management service
    /// (<see cref="KmsBackupBuilder.UseInstanceGateway"/>), or the embedded one for development and tests
    /// (<c>UseEmbeddedKeyManagementService()</c> of the KmsBackup.DevelopmentKms package); a host that starts without one fails to
    /// start with an error that names the instance;</item>
    /// <item><see cref="RepositoryKeyProvider"/>: none is registered; when the host registers none, the key file
    /// <see cref="KmsBackupOptions.KeyFilePath"/> is opened (or created) when the client opens.</item>
    /// </list>
    /// <para>The unnamed instance's parts are plain registrations (<c>services.AddSingleton&lt;BackupStore&gt;(...)</c>);
    /// a named instance's parts are keyed services under its name (<c>services.AddKeyedSingleton&lt;BackupStore&gt;("name", ...)</c>).</para>
    /// </remarks>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The instance's name: letters, digits, '.', '_' and '-', or empty for the unnamed instance.</param>
    /// <param name="configure">Sets the options.</param>
    /// <returns>A builder to configure the instance further.</returns>
    /// <exception cref="ArgumentException"><paramref name="name"/> holds a character other than those allowed.</exception>
    public static KmsBackupBuilder AddKmsBackup(this IServiceCollection services, string name, Action<KmsBackupOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(configure);
        if (name.Length > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-') || name is "." or "..")
        {
            throw new ArgumentException($"The KmsBackup instance name '{name}' is not valid: use up to 64 letters, digits, '.', '_' and '-'.", nameof(name));
        }

        services.AddOptions<KmsBackupOptions>(name).Configure(configure).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KmsBackupOptions>, KmsBackupOptionsValidator>());

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IFileSystem, FileSystem>();
        services.TryAddSingleton<BackupClientProvider, DefaultBackupClientProvider>();
        services.TryAddSingleton<BackupSchedulerService>();

        // Before the scheduler: a host whose instance has no gateway fails to start, saying so.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, KmsBackupStartupCheck>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, BackupSchedulerService>(static s => s.GetRequiredService<BackupSchedulerService>()));

        if (!services.Any(d => d.ServiceType == typeof(KmsBackupRegistration) && d.ImplementationInstance is KmsBackupRegistration r && r.Name == name))
        {
            services.AddSingleton(new KmsBackupRegistration(name));
        }

        services.TryAdd(KmsBackupParts.Describe<BackupStore>(name, s =>
        {
            var files = s.GetRequiredService<IFileSystem>();
            var options = s.GetRequiredService<IOptionsMonitor<KmsBackupOptions>>().Get(name);
            return new FileSystemBackupStore(files, options.ResolveStorePath(files, name), s.GetRequiredService<TimeProvider>());
        }));
        return new KmsBackupBuilder(services, name);
    }
}
