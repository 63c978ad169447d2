namespace KmsBackup.Samples.Tests;

/// <summary>Whether SoftHSM2 is here for the hardware sample: its PKCS#11 library and softhsm2-util on the PATH.</summary>
internal static class SoftHsm
{
    public static string LibraryPath { get; } =
        Environment.GetEnvironmentVariable("KMSBACKUP_PKCS11_LIBRARY") is { Length: > 0 } path ? path : "/usr/lib/softhsm/libsofthsm2.so";

    public static bool IsInstalled =>
        File.Exists(LibraryPath) &&
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, "softhsm2-util")));
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
            Skip = $"SoftHSM2 is not installed ({SoftHsm.LibraryPath} and softhsm2-util); eng/test.sh installs it.";
        }
    }
}

/// <summary>A theory that needs SoftHSM2: skipped outside CI when SoftHSM2 is not installed, as <see cref="SoftHsmFactAttribute"/>.</summary>
public sealed class SoftHsmTheoryAttribute : TheoryAttribute
{
    public SoftHsmTheoryAttribute()
    {
        if (!SoftHsm.IsInstalled && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.Ordinal))
        {
            Skip = $"SoftHSM2 is not installed ({SoftHsm.LibraryPath} and softhsm2-util); eng/test.sh installs it.";
        }
    }
}
