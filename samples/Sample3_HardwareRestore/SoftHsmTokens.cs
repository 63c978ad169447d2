using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using KmsBackup.Hsm.Pkcs11;

namespace Sample3_HardwareRestore;

/// <summary>
/// SoftHSM2 tokens in a folder of the sample's own: a config whose token directory is that folder,
/// set natively as SOFTHSM2_CONF before the PKCS#11 library is first loaded, and tokens made with
/// softhsm2-util, each with fresh random PINs that live only in this process's memory.
/// </summary>
internal sealed partial class SoftHsmTokens
{
    private readonly string _utility;
    private readonly string _config;

    private SoftHsmTokens(string libraryPath, string utility, string config)
    {
        LibraryPath = libraryPath;
        _utility = utility;
        _config = config;
    }

    /// <summary>The PKCS#11 library: KMSBACKUP_PKCS11_LIBRARY, or SoftHSM2's usual place on Debian and Ubuntu.</summary>
    public string LibraryPath { get; }

    public int Count { get; private set; }

    public static string DefaultLibraryPath =>
        Environment.GetEnvironmentVariable("KMSBACKUP_PKCS11_LIBRARY") is { Length: > 0 } path ? path : Pkcs11HsmClusterGatewayOptions.DefaultLibraryPath;

    /// <summary>softhsm2-util on the PATH, or <see langword="null"/>.</summary>
    public static string? FindUtility() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, "softhsm2-util"))
            .FirstOrDefault(File.Exists);

    /// <summary>Writes the config into <paramref name="folder"/> and points this process's native environment at it.</summary>
    public static SoftHsmTokens Create(string folder, string libraryPath, string utility)
    {
        var tokens = Path.Combine(folder, "tokens");
        Directory.CreateDirectory(tokens);
        var config = Path.Combine(folder, "softhsm2.conf");
        File.WriteAllText(config, $"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n");

        // .NET's Environment.SetEnvironmentVariable does not reach the native environment that SoftHSM2 reads.
        if (SetEnv("SOFTHSM2_CONF", config, 1) != 0)
        {
            throw new InvalidOperationException("setenv(SOFTHSM2_CONF) failed.");
        }

        return new SoftHsmTokens(libraryPath, utility, config);
    }

    /// <summary>
    /// Initialises a new token in the first free slot; returns its label and user PIN (never printed) and, for an HSM of
    /// a cluster, its SO PIN too: SoftHSM2 lets only the security officer mark the HSM's copy of the backup key trusted,
    /// the only key the cluster's keys may be wrapped with.
    /// </summary>
    public Pkcs11TokenAccess NewToken(string label, bool withSoPin = false)
    {
        var soPin = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        var userPin = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        var start = new ProcessStartInfo(_utility)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // The PINs go on softhsm2-util's command line: fine for throwaway tokens of a sample, not for real ones.
        foreach (var arg in new[] { "--init-token", "--free", "--label", label, "--so-pin", soPin, "--pin", userPin, "--module", LibraryPath })
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["SOFTHSM2_CONF"] = _config;
        using var process = Process.Start(start) ?? throw new InvalidOperationException("softhsm2-util did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            // softhsm2-util does not echo PINs; its messages name the slot and the label.
            throw new InvalidOperationException($"softhsm2-util --init-token for '{label}' exited {process.ExitCode}: {error.Result.Trim()} {output.Result.Trim()}");
        }

        Count++;
        return withSoPin ? new Pkcs11TokenAccess(label, userPin, soPin) : new Pkcs11TokenAccess(label, userPin);
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);
}
