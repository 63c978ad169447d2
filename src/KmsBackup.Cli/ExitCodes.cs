namespace KmsBackup.Cli;

/// <summary>
/// The tool's exit codes. They are part of its contract with scripts: the README and <c>--help</c>
/// list them, and they never change meaning.
/// </summary>
internal static class ExitCodes
{
    /// <summary>The command did what it was asked.</summary>
    public const int Ok = 0;

    /// <summary>An unexpected error (a bug or an environment failure); the message says what.</summary>
    public const int Error = 1;

    /// <summary>Bad usage: an unknown command or option, a missing or malformed value.</summary>
    public const int Usage = 2;

    /// <summary>
    /// Refused by a rule: a date outside the viewable window, an expired backup, an operation the
    /// backup's kind does not allow, a restore plan with violations (name conflict, missing key, quota).
    /// The message names the item and the remedy.
    /// </summary>
    public const int Refused = 3;

    /// <summary>A backup, instance, date, file or folder that does not exist.</summary>
    public const int NotFound = 4;

    /// <summary>Integrity: a backup file that fails to decrypt or authenticate (wrong key, tampering, truncation), a store that verify finds damaged, or a store folder holding a link below its root (<c>StoreLinkRefused</c>).</summary>
    public const int Integrity = 5;

    /// <summary>The store is busy (another writer holds the backup's lease, or the folder is open in another process) or unavailable; retry later.</summary>
    public const int Unavailable = 6;

    /// <summary>Cancelled (Ctrl+C).</summary>
    public const int Cancelled = 130;

    /// <summary>The exit codes as --help and the README list them.</summary>
    public const string Summary =
        """
        Exit codes:
          0    ok
          1    unexpected error
          2    bad usage (unknown command or option, missing or malformed value)
          3    refused by a rule (window, expiry, kind, restore plan violations); the remedy is printed
          4    not found (backup, instance, date with no backup, file, folder)
          5    integrity (backup file wrong key or damaged; store verify found problems; a link in the store)
          6    busy or unavailable (lease held by another writer, folder in use); retry later
          130  cancelled
        """;
}
