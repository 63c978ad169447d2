using System.Globalization;
using System.Text;

namespace KmsBackup.Cli;

/// <summary>
/// The tool's exit codes. They are part of its contract with scripts and never change meaning. This file is their
/// one source: <c>--help</c> prints <see cref="Summary"/>, error codes map to exit codes through <see cref="Of"/>, and
/// the exit-code tables of the READMEs are <see cref="MarkdownTable"/> (a test checks that they are).
/// </summary>
internal static class ExitCodes
{
    /// <summary>The command did what it was asked.</summary>
    public const int Ok = 0;

    /// <summary>An unexpected error (a bug or an environment failure); the message says what.</summary>
    public const int Error = 1;

    /// <summary>Bad usage: an unknown or missing command or option, a missing or malformed value.</summary>
    public const int Usage = 2;

    /// <summary>
    /// Refused by a rule: a date outside the viewable window, an expired backup, an operation the
    /// backup's kind does not allow, a restore plan with violations (name conflict, missing key, quota).
    /// The message names the item and the remedy.
    /// </summary>
    public const int Refused = 3;

    /// <summary>A backup, instance, date, file or folder that does not exist.</summary>
    public const int NotFound = 4;

    /// <summary>Integrity: a backup file that fails to decrypt or authenticate (wrong key, tampering, truncation), a repository key provider that is not registered or a wrong passphrase, a store that verify finds damaged, a drill whose restored items differ from the backup, or a store folder holding a link below its root (<c>StoreLinkRefused</c>).</summary>
    public const int Integrity = 5;

    /// <summary>The store is busy (another writer holds the backup's lease, or the folder is open in another process) or unavailable; retry later.</summary>
    public const int Unavailable = 6;

    /// <summary>Cancelled (Ctrl+C).</summary>
    public const int Cancelled = 130;

    /// <summary>The error codes (<c>error.code</c> in <c>--json</c>) that exit other than <see cref="Refused"/>; every other <see cref="BackupErrorCode"/> exits 3.</summary>
    private static readonly (BackupErrorCode Code, int ExitCode)[] s_errorCodes =
    [
        (BackupErrorCode.NotFound, NotFound),
        (BackupErrorCode.IntegrityViolation, Integrity),
        (BackupErrorCode.StoreLinkRefused, Integrity),
        (BackupErrorCode.WrongFileKey, Integrity),
        (BackupErrorCode.FileCorrupt, Integrity),
        (BackupErrorCode.FileTruncated, Integrity),
        (BackupErrorCode.UnsupportedFileVersion, Integrity),
        (BackupErrorCode.KeyProviderNotRegistered, Integrity),
        (BackupErrorCode.WrongPassphrase, Integrity),
        (BackupErrorCode.LeaseHeld, Unavailable),
        (BackupErrorCode.LeaseLost, Unavailable),
        (BackupErrorCode.StoreUnavailable, Unavailable),
        (BackupErrorCode.TemporaryFolderUnavailable, Unavailable),
    ];

    /// <summary>Every exit code: its number, a line for <c>--help</c>, and the README's fuller meaning.</summary>
    public static IReadOnlyList<ExitCodeMeaning> All { get; } =
    [
        new(Ok, "ok", "ok", ["-"]),
        new(Error, "unexpected error", "unexpected error (a bug, or an environment failure such as a permission); the message says what", ["`Error`"]),
        new(Usage, "bad usage (unknown or missing command or option, missing or malformed value)",
            "bad usage: an unknown or missing command or option, a missing or malformed value, a confirmation (`--yes`) not given", ["`Usage`"]),
        new(Refused, "refused by a rule (window, expiry, kind, restore plan violations); the remedy is printed",
            "refused by a rule: date outside the window, expired backup, an operation the kind does not allow, a restore plan with violations (name conflict, missing key, quota), access denied, a restore operation that has finished, `init` on an existing folder, a `--now` before the store's time; the remedy is printed",
            ["any code not listed in another row, e.g. `DateOutsideWindow`, `NameConflict`, `EncryptionKeyMissing`, `InsufficientQuota`, `AccessDenied`, `FolderExists`, `NowBeforeStoreTime`"]),
        new(NotFound, "not found (backup, instance, date with no backup, file, folder, store, service)",
            "not found: backup, instance, a date with no backup, restore operation, file, folder, and a store, service or key file that is not there (a mistyped path: nothing is created)", []),
        new(Integrity, "integrity (backup file or repository wrong key, or damaged; store verify or a drill found problems; a link in the store)",
            "integrity: a backup file with a wrong key or damaged; a repository key provider that is not registered, or a wrong passphrase; a store that verify finds damaged; a drill whose restored items differ from the backup; a store whose folder holds a link below its root (naming the link: remove it)",
            ["any error of a backup file"]),
        new(Unavailable, "busy or unavailable (lease held by another writer, folder in use); retry later",
            "busy or unavailable: another writer holds the backup's (or the restore operation's) lease, or the folder is open in another process; retry", []),
        new(Cancelled, "cancelled", "cancelled (Ctrl+C; a restore in progress rolls back first)", ["`Cancelled`"]),
    ];

    /// <summary>The exit codes as --help lists them.</summary>
    public static string Summary { get; } =
        "Exit codes:" + string.Concat(All.Select(e => string.Create(CultureInfo.InvariantCulture, $"{Environment.NewLine}  {e.Code,-5}{e.Help}")));

    /// <summary>The exit code of a refusal with this error code: the same whether a command throws it or a restore plan reports it.</summary>
    public static int Of(BackupErrorCode code)
    {
        foreach (var (errorCode, exitCode) in s_errorCodes)
        {
            if (errorCode == code)
            {
                return exitCode;
            }
        }

        return Refused;
    }

    /// <summary>The README's exit-code table, in Markdown, from <see cref="All"/> and the error codes' mapping.</summary>
    public static string MarkdownTable()
    {
        var table = new StringBuilder();
        table.Append("| exit code | meaning | `error.code` (with `--json`) |\n|---|---|---|\n");
        foreach (var e in All)
        {
            var codes = s_errorCodes.Where(c => c.ExitCode == e.Code).Select(c => $"`{c.Code}`").Concat(e.OtherErrorCodes);
            table.Append(CultureInfo.InvariantCulture, $"| {e.Code} | {e.Details} | {string.Join(", ", codes)} |\n");
        }

        return table.ToString();
    }
}

/// <summary>One exit code as the help and the README tell it.</summary>
/// <param name="Code">The exit code.</param>
/// <param name="Help">Its line in <c>--help</c>.</param>
/// <param name="Details">Its meaning in the README.</param>
/// <param name="OtherErrorCodes">The <c>error.code</c> values that give it, besides the mapped <see cref="BackupErrorCode"/>s (Markdown).</param>
internal sealed record ExitCodeMeaning(int Code, string Help, string Details, IReadOnlyList<string> OtherErrorCodes);
