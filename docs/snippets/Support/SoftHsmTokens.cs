using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

/// <summary>
/// SoftHSM2 tokens for the PKCS#11 snippets, in a token folder of their own: a config whose token directory is that
/// folder, set as SOFTHSM2_CONF in the native environment before the PKCS#11 library is first loaded, and tokens that
/// softhsm2-util initialises with the PINs given.
/// </summary>
internal static partial class SoftHsmTokens
{
    private static string? s_config;

    /// <summary>Points this process at a new token folder under <paramref name="folder"/>.</summary>
    public static void UseFolder(string folder)
    {
        var tokens = Path.Combine(folder, "tokens");
        Directory.CreateDirectory(tokens);
        s_config = Path.Combine(folder, "softhsm2.conf");
        File.WriteAllText(s_config, $"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n");

        // .NET's Environment.SetEnvironmentVariable does not reach the native environment that SoftHSM2 reads.
        if (SetEnv("SOFTHSM2_CONF", s_config, 1) != 0)
        {
            throw new InvalidOperationException("setenv(SOFTHSM2_CONF) failed.");
        }
    }

    /// <summary>A fresh random PIN (never printed).</summary>
    public static string NewPin() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));

    /// <summary>Initialises a token in the first free slot with softhsm2-util.</summary>
    public static void Initialize(string label, string userPin, string soPin)
    {
        var config = s_config ?? throw new InvalidOperationException("Call UseFolder first.");
        var start = new ProcessStartInfo("softhsm2-util") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "--init-token", "--free", "--label", label, "--so-pin", soPin, "--pin", userPin, "--module", LibraryPath })
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["SOFTHSM2_CONF"] = config;
        using var process = Process.Start(start) ?? throw new InvalidOperationException("softhsm2-util did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"softhsm2-util --init-token for '{label}' exited {process.ExitCode}: {error.Result.Trim()} {output.Result.Trim()}");
        }
    }

    /// <summary>SoftHSM2's PKCS#11 library: KMSBACKUP_PKCS11_LIBRARY, or its usual place on Debian and Ubuntu.</summary>
    public static string LibraryPath =>
        Environment.GetEnvironmentVariable("KMSBACKUP_PKCS11_LIBRARY") is { Length: > 0 } path ? path : "/usr/lib/softhsm/libsofthsm2.so";

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);
}
