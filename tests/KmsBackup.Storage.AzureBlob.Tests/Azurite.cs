using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Storage.Blobs;

namespace KmsBackup.Storage.AzureBlob.Tests;

/// <summary>
/// The Azurite the tests use. eng/test.sh starts one and exports its connection string as
/// <c>KMSBACKUP_AZURITE_CONNECTION_STRING</c>; under <c>CI=true</c> that variable must be set (the tests fail
/// otherwise, they never skip). Run locally without it (from an IDE, say), the tests start an Azurite of their own
/// from <c>KMSBACKUP_AZURITE_BLOB</c> or the copy eng/services.sh installs under artifacts/tools, and fail with a
/// message saying how to install it when there is none.
/// </summary>
public static class Azurite
{
    public const string ConnectionStringVariable = "KMSBACKUP_AZURITE_CONNECTION_STRING";
    public const string BlobExecutableVariable = "KMSBACKUP_AZURITE_BLOB";

    /// <summary>The emulator's well-known development account key (public: Microsoft documents it for Azurite).</summary>
    public const string DevelopmentAccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private static readonly Lazy<Task<string>> s_shared = new(StartSharedAsync);

    /// <summary>The connection string of the shared Azurite.</summary>
    public static Task<string> ConnectionStringAsync() => s_shared.Value;

    /// <summary>A connection string for an Azurite on <paramref name="port"/>.</summary>
    public static string ConnectionString(int port) =>
        $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DevelopmentAccountKey};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;";

    /// <summary>A fresh container name: every test gets an empty store.</summary>
    public static string NewContainerName() => "t" + Guid.NewGuid().ToString("N");

    /// <summary>Client options with short retry delays, so that a failure the tests cause is told quickly.</summary>
    public static BlobClientOptions ClientOptions(int maxRetries = 3, params HttpPipelinePolicy[] perRetryPolicies)
    {
        var options = new BlobClientOptions();
        options.Retry.MaxRetries = maxRetries;
        options.Retry.Mode = RetryMode.Exponential;
        options.Retry.Delay = TimeSpan.FromMilliseconds(20);
        options.Retry.MaxDelay = TimeSpan.FromMilliseconds(500);
        options.Retry.NetworkTimeout = TimeSpan.FromSeconds(20);
        foreach (var policy in perRetryPolicies)
        {
            options.AddPolicy(policy, HttpPipelinePosition.PerRetry);
        }

        return options;
    }

    /// <summary>Store options with small listing pages and small blocks, so that the tests page and stage blocks.</summary>
    public static AzureBlobBackupStoreOptions SmallPagesAndBlocks(string prefix = "") => new()
    {
        Prefix = prefix,
        ListPageSize = 50,
        SingleUploadLimit = 4 << 20,
        BlockSize = 1 << 20,
    };

    /// <summary>The azurite-blob executable: <c>KMSBACKUP_AZURITE_BLOB</c>, or eng/services.sh's copy under artifacts/tools.</summary>
    public static string? FindBlobExecutable()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(BlobExecutableVariable);
        if (!string.IsNullOrEmpty(fromEnvironment) && File.Exists(fromEnvironment))
        {
            return fromEnvironment;
        }

        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "KmsBackup.Sdk.sln")))
            {
                var installed = Path.Combine(folder.FullName, "artifacts", "tools", "azurite", "node_modules", ".bin", "azurite-blob");
                return File.Exists(installed) ? installed : null;
            }
        }

        return null;
    }

    /// <summary>The executable, or a failure that says how to get it.</summary>
    public static string RequireBlobExecutable() =>
        FindBlobExecutable() ?? throw new InvalidOperationException(
            $"Azurite is not installed: run 'bash eng/test.sh' (it installs Azurite into artifacts/tools/azurite and starts it), or set {BlobExecutableVariable} to an azurite-blob executable.");

    private static async Task<string> StartSharedAsync()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(ConnectionStringVariable);
        if (!string.IsNullOrEmpty(fromEnvironment))
        {
            return fromEnvironment;
        }

        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException(
                $"{ConnectionStringVariable} is not set. In CI the Azure Blob tests run against the Azurite that eng/test.sh starts; they never skip.");
        }

        var own = await AzuriteProcess.StartAsync(RequireBlobExecutable());
        AppDomain.CurrentDomain.ProcessExit += (_, _) => own.Dispose();
        return own.ConnectionString;
    }
}

/// <summary>An Azurite blob service of a test's own, on a free loopback port, with a data folder of its own: one it can stop and start again.</summary>
public sealed class AzuriteProcess : IDisposable
{
    private readonly string _executable;
    private readonly bool _ownsLocation;
    private Process? _process;

    private AzuriteProcess(string executable, int port, string location, bool ownsLocation)
    {
        _executable = executable;
        Port = port;
        Location = location;
        _ownsLocation = ownsLocation;
    }

    public int Port { get; }

    public string Location { get; }

    public string ConnectionString => Azurite.ConnectionString(Port);

    public bool IsRunning => _process is { HasExited: false };

    public static async Task<AzuriteProcess> StartAsync(string executable)
    {
        var location = Path.Combine(Path.GetTempPath(), "kmsbackup-azurite-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(location);
        var azurite = new AzuriteProcess(executable, FreePort(), location, ownsLocation: true);
        await azurite.StartAsync();
        return azurite;
    }

    /// <summary>Starts the service (again), on the same port and data folder.</summary>
    public async Task StartAsync()
    {
        // Through a shell that ends Azurite when this test process ends: the test runner may end it without
        // running exit handlers, and an Azurite left behind would hold its port and data folder.
        var start = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(
            "\"$0\" \"$@\" & child=$!; " +
            $"while kill -0 {System.Environment.ProcessId} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1; done; " +
            "kill $child 2>/dev/null; wait $child");
        start.ArgumentList.Add(_executable);
        foreach (var argument in new[] { "--blobHost", "127.0.0.1", "--blobPort", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--location", Location, "--silent", "--skipApiVersionCheck" })
        {
            start.ArgumentList.Add(argument);
        }

        _process = Process.Start(start) ?? throw new InvalidOperationException("Azurite did not start.");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var waited = Stopwatch.StartNew();
        while (waited.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"Azurite exited with {_process.ExitCode} while starting on port {Port}.");
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }

        throw new InvalidOperationException($"Azurite did not listen on port {Port} within 30 seconds.");
    }

    /// <summary>
    /// Kills the service (SIGKILL) and waits for it to exit. Azurite keeps its blob metadata in LokiJS, which it
    /// saves to its data folder every 5 seconds; a graceful stop (SIGTERM) took about 90 seconds on this machine,
    /// so tests that need acknowledged writes to survive wait <see cref="MetadataSaveInterval"/> before killing it.
    /// </summary>
    public async Task KillAsync()
    {
        if (_process is null || _process.HasExited)
        {
            return;
        }

        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
    }

    /// <summary>Longer than Azurite's metadata save interval (5 seconds): after this, acknowledged writes are on disk.</summary>
    public static TimeSpan MetadataSaveInterval { get; } = TimeSpan.FromSeconds(6);

    public void Dispose()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }

        _process?.Dispose();
        if (_ownsLocation)
        {
            try
            {
                Directory.Delete(Location, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>A loopback port nothing listens on now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>Test clients of one fresh container of the shared Azurite; the container is deleted afterwards.</summary>
public abstract class AzuriteContainerTest : IAsyncLifetime
{
    protected string ContainerName { get; } = Azurite.NewContainerName();

    protected string ConnectionString { get; private set; } = string.Empty;

    public async Task InitializeAsync() => ConnectionString = await Azurite.ConnectionStringAsync();

    public async Task DisposeAsync()
    {
        if (ConnectionString.Length > 0)
        {
            await new BlobContainerClient(ConnectionString, ContainerName).DeleteIfExistsAsync();
        }
    }

    protected BlobContainerClient Container(BlobClientOptions? options = null) => new(ConnectionString, ContainerName, options ?? Azurite.ClientOptions());
}
