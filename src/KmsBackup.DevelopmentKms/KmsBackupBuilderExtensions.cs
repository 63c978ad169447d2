using System.IO.Abstractions;
using KmsBackup.DevelopmentKms;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace KmsBackup.Hosting;

/// <summary>Registers the development key management service as a KmsBackup instance's gateway.</summary>
public static class KmsBackupBuilderExtensions
{
    /// <summary>
    /// Sets the instance's gateway to the embedded key management service, which keeps its instances in files
    /// under <c>kms/</c> of <see cref="KmsBackupOptions.DataPath"/>: for development, samples and tests, not
    /// for a production key management service.
    /// </summary>
    /// <param name="builder">The KmsBackup instance's builder.</param>
    /// <returns>The builder.</returns>
    public static KmsBackupBuilder UseEmbeddedKeyManagementService(this KmsBackupBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var name = builder.Name;
        return builder.UseInstanceGateway(s =>
        {
            var files = s.GetRequiredService<IFileSystem>();
            var options = s.GetRequiredService<IOptionsMonitor<KmsBackupOptions>>().Get(name);
            return new EmbeddedKeyManagementService(files, options.ResolveEmbeddedServicePath(files, name), s.GetRequiredService<TimeProvider>());
        });
    }
}
