using System.Reflection;
using System.Runtime.InteropServices;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace KmsBackup.Hsm.Pkcs11;

/// <summary>
/// A loaded PKCS#11 library, shared by every user in the process: a module is initialised once per
/// process (a second C_Initialize fails), so loads are counted and the last release finalises it.
/// </summary>
internal sealed class Pkcs11Module : IDisposable
{
    private static readonly Lock s_gate = new();
    private static readonly Dictionary<string, Pkcs11Module> s_loaded = new(StringComparer.Ordinal);
    private static bool s_resolverSet;
    private int _references;

    private Pkcs11Module(string path, IPkcs11Library library, Pkcs11InteropFactories factories)
    {
        LibraryPath = path;
        Library = library;
        Factories = factories;
    }

    public string LibraryPath { get; }

    public IPkcs11Library Library { get; }

    public Pkcs11InteropFactories Factories { get; }

    /// <summary>Every PKCS#11 call of the process goes through this lock: simple, and SoftHSM2 tokens are not built for heavy concurrency anyway.</summary>
    public Lock Gate { get; } = new();

    public static Pkcs11Module Acquire(string libraryPath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(libraryPath);
        lock (s_gate)
        {
            if (!s_loaded.TryGetValue(libraryPath, out var module))
            {
                SetResolver();
                var factories = new Pkcs11InteropFactories();
                IPkcs11Library library;
                try
                {
                    library = factories.Pkcs11LibraryFactory.LoadPkcs11Library(factories, libraryPath, AppType.MultiThreaded);
                }
                catch (Exception e) when (e is UnmanagedException or DllNotFoundException or EntryPointNotFoundException or BadImageFormatException or Pkcs11Exception)
                {
                    throw new BackupException(new Refusal(
                        BackupErrorCode.HsmLibraryNotFound, $"PKCS#11 library '{libraryPath}'",
                        $"The PKCS#11 library '{libraryPath}' could not be loaded and initialised ({e.GetType().Name}).",
                        "Install the HSM's PKCS#11 module (for SoftHSM2: apt-get install softhsm2) and point LibraryPath at it."), e);
                }

                module = new Pkcs11Module(libraryPath, library, factories);
                s_loaded.Add(libraryPath, module);
            }

            module._references++;
            return module;
        }
    }

    /// <summary>The slot of the token labelled <paramref name="label"/>.</summary>
    public ISlot FindSlot(string label)
    {
        foreach (var slot in Library.GetSlotList(SlotsType.WithTokenPresent))
        {
            var info = slot.GetTokenInfo();
            if (info.TokenFlags.TokenInitialized && string.Equals(info.Label.TrimEnd(), label, StringComparison.Ordinal))
            {
                return slot;
            }
        }

        throw new BackupException(new Refusal(
            BackupErrorCode.HsmTokenNotFound, $"token '{label}'",
            $"No initialised PKCS#11 token labelled '{label}' is present in '{LibraryPath}'.",
            "Check the token label, that the HSM is connected, and (for SoftHSM2) that SOFTHSM2_CONF points at the token directory."));
    }

    /// <summary>Opens a read-write session on the token and logs the user in.</summary>
    public ISession OpenSession(Pkcs11TokenAccess token)
    {
        var slot = FindSlot(token.TokenLabel);
        var session = slot.OpenSession(SessionType.ReadWrite);
        try
        {
            session.Login(CKU.CKU_USER, token.UserPin);
        }
        catch (Pkcs11Exception e) when (e.RV == CKR.CKR_USER_ALREADY_LOGGED_IN)
        {
            // Login state is shared by all sessions of the process on a token.
        }
        catch (Pkcs11Exception e)
        {
            session.Dispose();
            throw Pkcs11Errors.Map(e, token.ToString(), "login");
        }
        catch
        {
            session.Dispose();
            throw;
        }

        return session;
    }

    public void Dispose()
    {
        lock (s_gate)
        {
            if (--_references == 0)
            {
                s_loaded.Remove(LibraryPath);
                Library.Dispose();
            }
        }
    }

    // Pkcs11Interop 5.3.0 loads 'libdl' to dlopen the module; Debian 12 ships only libdl.so.2.
    private static void SetResolver()
    {
        if (s_resolverSet)
        {
            return;
        }

        try
        {
            NativeLibrary.SetDllImportResolver(typeof(Pkcs11InteropFactories).Assembly, Resolve);
        }
        catch (InvalidOperationException)
        {
            // Another component set a resolver for Pkcs11Interop already; it is theirs to get right.
        }

        s_resolverSet = true;
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath) =>
        string.Equals(name, "libdl", StringComparison.Ordinal) && NativeLibrary.TryLoad("libdl.so.2", out var handle) ? handle : IntPtr.Zero;
}

/// <summary>Turns PKCS#11 failures into typed errors that name the cause, never a PIN or a key.</summary>
internal static class Pkcs11Errors
{
    /// <summary>Runs PKCS#11 calls on <paramref name="token"/>; a PKCS#11 failure becomes a typed error naming the token and the operation.</summary>
    public static T Guard<T>(Pkcs11TokenAccess token, string operation, Func<T> body)
    {
        try
        {
            return body();
        }
        catch (Pkcs11Exception e)
        {
            throw Map(e, token.ToString(), operation);
        }
    }

    /// <inheritdoc cref="Guard{T}(Pkcs11TokenAccess, string, Func{T})"/>
    public static void Guard(Pkcs11TokenAccess token, string operation, Action body) => Guard(token, operation, () =>
    {
        body();
        return true;
    });

    public static BackupException Map(Pkcs11Exception e, string item, string operation)
    {
        var rv = e.RV.ToString();
        return e.RV switch
        {
            CKR.CKR_PIN_INCORRECT or CKR.CKR_PIN_INVALID or CKR.CKR_PIN_LEN_RANGE or CKR.CKR_PIN_LOCKED or CKR.CKR_PIN_EXPIRED or CKR.CKR_USER_PIN_NOT_INITIALIZED =>
                new BackupException(new Refusal(
                    BackupErrorCode.HsmLoginFailed, item,
                    $"The HSM {item} refused the login ({rv}).",
                    e.RV == CKR.CKR_PIN_LOCKED
                        ? "The user PIN is locked: have the token's security officer reset it."
                        : "Check the user PIN configured for the token."), e),
            CKR.CKR_TOKEN_NOT_PRESENT or CKR.CKR_TOKEN_NOT_RECOGNIZED or CKR.CKR_SLOT_ID_INVALID or CKR.CKR_DEVICE_REMOVED =>
                new BackupException(new Refusal(
                    BackupErrorCode.HsmTokenNotFound, item,
                    $"The HSM {item} is not present ({rv}).",
                    "Reconnect the HSM, or check the token label."), e),
            _ => new BackupException(new Refusal(
                BackupErrorCode.HsmOperationFailed, item,
                $"The HSM operation '{operation}' on {item} failed ({rv}).",
                "Check that the HSM supports the mechanism and that the token is healthy; retry."), e),
        };
    }
}
