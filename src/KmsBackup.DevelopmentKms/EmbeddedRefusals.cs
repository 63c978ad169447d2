namespace KmsBackup.DevelopmentKms;

/// <summary>
/// The refusals of the embedded service, each with a stable code, a message that names the item and
/// the instance, and a remedy (the seed's FAQ wording for quota and name conflicts). None carries key
/// material, a secret value or a ciphertext.
/// </summary>
internal static class EmbeddedRefusals
{
    public const string QuotaRemedy = "Delete unused keys or secrets, or upgrade the instance.";
    public const string NameConflictRemedy = "Delete or rename the conflicting item, or restore to another target.";

    public static BackupException InstanceNotFound(string instanceId) =>
        Refuse(BackupErrorCode.NotFound, $"instance '{instanceId}'",
            $"The instance '{instanceId}' does not exist in this key management service.",
            "Check the instance ID, or create the instance first.");

    public static BackupException InstanceExists(string instanceId) =>
        Refuse(BackupErrorCode.NameConflict, $"instance '{instanceId}'",
            $"An instance with the ID '{instanceId}' already exists.",
            "Choose another instance ID.");

    public static BackupException InstanceNotUsable(InstanceState instance) => instance.IsReleased
        ? Refuse(BackupErrorCode.InstanceNotEnabled, $"instance '{instance.Id}'",
            $"The instance '{instance.Id}' was released at {instance.ReleasedAt?.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture)}; it takes no requests.",
            "Use another instance; restore what it held from its backup.")
        : Refuse(BackupErrorCode.InstanceNotEnabled, $"instance '{instance.Id}'",
            $"The instance '{instance.Id}' is not enabled.",
            "Enable the instance first, then retry.");

    public static BackupException ItemNotFound(ItemType type, string name, string instanceId) =>
        Refuse(BackupErrorCode.NotFound, Item(type, name),
            $"The {Noun(type)} '{name}' does not exist in instance '{instanceId}'.",
            $"Check the {Noun(type)} name; a deleted {Noun(type)} can be restored from a backup.");

    public static BackupException SecretVersionNotFound(string secretName, string versionId, string instanceId) =>
        Refuse(BackupErrorCode.NotFound, $"secret '{secretName}' version '{versionId}'",
            $"The secret '{secretName}' in instance '{instanceId}' has no version '{versionId}'.",
            "Read the secret's versions from its record and use one of them.");

    public static BackupException NameConflict(ItemType type, string name, InstanceState holder, string targetInstanceId) =>
        Refuse(BackupErrorCode.NameConflict, Item(type, name),
            holder.Id == targetInstanceId
                ? $"A {Noun(type)} named '{name}' already exists in instance '{holder.Id}'; {Noun(type)} names are unique in a region ('{holder.Region}')."
                : $"A {Noun(type)} named '{name}' already exists in instance '{holder.Id}' of the same region ('{holder.Region}') as instance '{targetInstanceId}'; {Noun(type)} names are unique in a region.",
            NameConflictRemedy);

    public static BackupException KeyIdConflict(string keyId, string keyName, string existingName, string instanceId) =>
        Refuse(BackupErrorCode.NameConflict, $"key '{keyName}'",
            $"The key '{keyName}' has the ID '{keyId}', which the key '{existingName}' of instance '{instanceId}' already has.",
            NameConflictRemedy);

    public static BackupException InsufficientQuota(InstanceState instance, ItemType type, string name)
    {
        var (count, quota) = type == ItemType.Key ? (instance.Keys.Count, instance.KeyQuota) : (instance.Secrets.Count, instance.SecretQuota);
        return Refuse(BackupErrorCode.InsufficientQuota, $"instance '{instance.Id}'",
            $"The instance '{instance.Id}' holds {count} {Noun(type)}s of its quota of {quota}; creating the {Noun(type)} '{name}' needs 1 more.",
            QuotaRemedy);
    }

    public static BackupException EncryptionKeyMissing(string secretName, string keyId, string instanceId) =>
        Refuse(BackupErrorCode.EncryptionKeyMissing, $"secret '{secretName}'",
            $"The key '{keyId}' that encrypts the secret '{secretName}' is not in instance '{instanceId}'.",
            "Restore the key that encrypts the secret into the instance first, then retry.");

    public static BackupException CiphertextKeyMissing(string keyId, string keyVersionId, string instanceId) =>
        Refuse(BackupErrorCode.EncryptionKeyMissing, $"key '{keyId}' version '{keyVersionId}'",
            $"The key '{keyId}' (version '{keyVersionId}') that encrypted the ciphertext is not in instance '{instanceId}'.",
            "Decrypt in the instance that holds the key, or restore the key into this instance first.");

    public static BackupException AccessDenied(string account, InstanceState instance) =>
        Refuse(BackupErrorCode.AccessDenied, $"account '{account}'",
            $"The account '{account}' is neither the owner of instance '{instance.Id}' nor a consumer it is shared with.",
            "Act as the instance's owner, or share the instance with the account first.");

    public static BackupException HardwareKeyMaterial(string keyName, string instanceId) =>
        Refuse(BackupErrorCode.OperationNotSupported, $"key '{keyName}'",
            $"The material of key '{keyName}' of hardware instance '{instanceId}' is in its HSM cluster; the embedded service cannot encrypt or decrypt with it.",
            "Use a key of a software instance.");

    public static BackupException UnusableMaterial(string keyName, string instanceId) =>
        Refuse(BackupErrorCode.OperationNotSupported, $"key '{keyName}'",
            $"The material of key '{keyName}' in instance '{instanceId}' is not a valid AES key (16, 24 or 32 bytes).",
            "Use a key created by a software instance.");

    public static BackupException KindMismatch(KeyRecord key, InstanceState instance) => instance.Kind == InstanceKind.Hardware
        ? Refuse(BackupErrorCode.InstanceKindMismatch, $"key '{key.Name}'",
            $"The key '{key.Name}' carries key material, but instance '{instance.Id}' is a hardware instance whose keys keep their material in the HSM cluster.",
            "Restore a software key into a software instance.")
        : Refuse(BackupErrorCode.InstanceKindMismatch, $"key '{key.Name}'",
            $"The key '{key.Name}' carries no key material (a hardware key), but instance '{instance.Id}' is a software instance.",
            "Restore a hardware key's metadata into a new hardware instance connected to an HSM cluster that holds its material.");

    public static BackupException HardwareSecretNotSupported(string secretName, string instanceId) =>
        Refuse(BackupErrorCode.OperationNotSupported, $"secret '{secretName}'",
            $"The embedded service cannot encrypt the secret '{secretName}' in hardware instance '{instanceId}': its keys' material is in the HSM cluster.",
            "Store the secret in a software instance.");

    public static BackupException CiphertextInvalid(string what, string instanceId) =>
        Refuse(BackupErrorCode.IntegrityViolation, what,
            $"The ciphertext of {what} failed authentication in instance '{instanceId}': it was altered, truncated, or made for another item.",
            "Use the ciphertext exactly as the service returned it.");

    public static BackupException Downgrade(string instanceId, string what) =>
        Refuse(BackupErrorCode.OperationNotSupported, $"instance '{instanceId}'",
            $"Upgrading instance '{instanceId}' cannot lower its {what}.",
            $"Give a {what} at least as high as the current one.");

    public static BackupException StateNotWritten(string instanceId, Exception cause) =>
        new(new Refusal(BackupErrorCode.StoreUnavailable, $"instance '{instanceId}'",
            $"The state of instance '{instanceId}' could not be written; nothing was changed.",
            "Check that the service folder is writable and has free space, then retry."), cause);

    public static BackupException StateUnreadable(string file, string why, Exception? cause = null) =>
        new(new Refusal(BackupErrorCode.IntegrityViolation, $"state file '{file}'",
            $"The state file '{file}' cannot be read: {why}",
            "Restore the service folder (state files and master key file together) from a copy, or restore the instance's items from a backup into a new folder."), cause);

    public static BackupException MasterKeyUnreadable(string file, string why, Exception? cause = null) =>
        new(new Refusal(BackupErrorCode.IntegrityViolation, $"master key file '{file}'",
            $"The master key file '{file}' cannot be used: {why}",
            "Put back the master key file that belongs to this service folder; without it the state files cannot be read."), cause);

    public static BackupException FolderInUse(string folder, Exception cause) =>
        new(new Refusal(BackupErrorCode.LeaseHeld, $"folder '{folder}'",
            $"Another embedded key management service (in this or another process) has the folder '{folder}' open.",
            "Wait for the other process that uses the folder (another kmsbackup command, or a host app) to finish, or stop it; in code, dispose of the other EmbeddedKeyManagementService first. Or use another folder."), cause);

    private static BackupException Refuse(BackupErrorCode code, string item, string message, string remedy) =>
        new Refusal(code, item, message, remedy).ToException();

    private static string Item(ItemType type, string name) => $"{Noun(type)} '{name}'";

    private static string Noun(ItemType type) => type == ItemType.Key ? "key" : "secret";
}
