using System.Runtime.InteropServices;
using Net.Pkcs11Interop.Common;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace KmsBackup.Hsm.Pkcs11.Tests;

/// <summary>
/// Real SoftHSM2 tokens in a folder of the tests' own: a config whose token directory is that folder,
/// set natively as SOFTHSM2_CONF before the library is first loaded, and tokens made by C_InitToken.
/// The folder is KMSBACKUP_SOFTHSM_DIR (eng/services.sh points it under artifacts/) or a new temporary one.
/// </summary>
internal static partial class SoftHsm
{
    public const string SoPin = "so-pin-0000";
    public const string UserPin = "user-pin-1234";
    private static readonly Lock s_gate = new();
    private static Pkcs11Module? s_module;
    private static int s_counter;

    public static string LibraryPath { get; } =
        Environment.GetEnvironmentVariable("KMSBACKUP_PKCS11_LIBRARY") is { Length: > 0 } path ? path : Pkcs11HsmClusterGatewayOptions.DefaultLibraryPath;

    public static bool IsInstalled => File.Exists(LibraryPath);

    /// <summary>Makes sure the library is loaded with the tests' own config; keeps it loaded for the whole run.</summary>
    public static Pkcs11Module Module()
    {
        lock (s_gate)
        {
            if (s_module is null)
            {
                var root = Environment.GetEnvironmentVariable("KMSBACKUP_SOFTHSM_DIR") is { Length: > 0 } dir
                    ? dir
                    : Path.Combine(Path.GetTempPath(), "kmsbackup-softhsm-" + Guid.NewGuid().ToString("N"));
                var tokens = Path.Combine(root, "tokens-" + Environment.ProcessId);
                Directory.CreateDirectory(tokens);
                var conf = Path.Combine(root, $"softhsm2-{Environment.ProcessId}.conf");
                File.WriteAllText(conf, $"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n");
                // .NET's Environment.SetEnvironmentVariable does not reach the native environment that SoftHSM2 reads.
                if (SetEnv("SOFTHSM2_CONF", conf, 1) != 0)
                {
                    throw new InvalidOperationException("setenv failed");
                }

                s_module = Pkcs11Module.Acquire(LibraryPath);
            }

            return s_module;
        }
    }

    /// <summary>Initialises a new token with a unique label and returns how to reach it (with its SO PIN when <paramref name="withSoPin"/>).</summary>
    public static Pkcs11TokenAccess NewToken(string prefix, bool withSoPin = false)
    {
        var module = Module();
        var label = $"{prefix}-{Interlocked.Increment(ref s_counter)}";
        lock (module.Gate)
        {
            var slot = module.Library.GetSlotList(SlotsType.WithTokenPresent).First(s => !s.GetTokenInfo().TokenFlags.TokenInitialized);
            slot.InitToken(SoPin, label);
            var initialised = module.FindSlot(label);
            using var session = initialised.OpenSession(SessionType.ReadWrite);
            session.Login(CKU.CKU_SO, SoPin);
            session.InitPin(UserPin);
            session.Logout();
        }

        return withSoPin ? new Pkcs11TokenAccess(label, UserPin, SoPin) : new Pkcs11TokenAccess(label, UserPin);
    }

    public const string Owner = "acct-owner";

    public static Pkcs11ClusterDefinition NewCluster(string clusterId, string region = "cn-hangzhou", int hsms = 2, string? owner = Owner) =>
        new(clusterId, region, Enumerable.Range(0, hsms)
            .Select(i => new Pkcs11HsmDefinition($"{clusterId}-hsm-{(char)('a' + i)}", $"{region}-{(char)('h' + i)}", NewToken($"{clusterId}-{(char)('a' + i)}", withSoPin: true)))
            .ToList())
        {
            Backup = new HsmBackupPolicy(true, 90, TimeSpan.FromDays(1)),
            OwnerAccount = owner,
        };

    public static Pkcs11HsmClusterGateway Gateway(TimeProvider? time, params Pkcs11ClusterDefinition[] clusters) => Gateway(time, NewToken("vault"), clusters);

    public static Pkcs11HsmClusterGateway Gateway(TimeProvider? time, Pkcs11TokenAccess vault, params Pkcs11ClusterDefinition[] clusters)
    {
        Module();
        var options = new Pkcs11HsmClusterGatewayOptions { LibraryPath = LibraryPath, BackupVault = vault, TimeProvider = time ?? TimeProvider.System };
        foreach (var cluster in clusters)
        {
            options.Clusters.Add(cluster);
        }

        return Pkcs11HsmClusterGateway.Open(options);
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);
}

/// <summary>
/// A test that needs SoftHSM2. Outside CI it is skipped when SoftHSM2 is not installed; under
/// CI=true it always runs, so that a missing SoftHSM2 fails it rather than hiding it.
/// </summary>
public sealed class SoftHsmFactAttribute : FactAttribute
{
    public SoftHsmFactAttribute()
    {
        if (!SoftHsm.IsInstalled && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.Ordinal))
        {
            Skip = $"SoftHSM2 is not installed ({SoftHsm.LibraryPath}); eng/test.sh installs it.";
        }
    }
}
