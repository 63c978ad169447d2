namespace KmsBackup.Repository;

internal static class RepositoryErrors
{
    public static BackupIntegrityException Integrity(string item, string why) => new(new Refusal(
        BackupErrorCode.IntegrityViolation, item,
        $"The repository's {item} failed its integrity check: {why}. No data from it was used.",
        "Run verify to list every damaged object; restore the store from a copy, or let the next backup rewrite what it can."));

    public static BackupException Unavailable(string key, Exception cause) => new(new Refusal(
        BackupErrorCode.StoreUnavailable, $"object '{key}'",
        $"The backup store failed on '{key}': {cause.GetType().Name}.",
        "Check that the store is reachable and writable, then retry."), cause);
}
