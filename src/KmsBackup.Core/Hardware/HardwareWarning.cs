namespace KmsBackup;

/// <summary>
/// Something about a hardware instance's protection that does not stop anything but may leave it
/// unrecoverable: a stable <see cref="Code"/>, a message naming the item, and a remedy (rules H2–H4).
/// </summary>
/// <param name="Code">The stable code.</param>
/// <param name="Item">The item the warning concerns, e.g. <c>cluster 'cls-1'</c>.</param>
/// <param name="Message">What may go wrong.</param>
/// <param name="Remedy">What to do about it.</param>
public sealed record HardwareWarning(BackupErrorCode Code, string Item, string Message, string Remedy)
{
    /// <summary>The warning in one line: code, message and remedy.</summary>
    public override string ToString() => $"{Code}: {Message} Remedy: {Remedy}";
}

/// <summary>How much of an instance a restore could bring back (rule H2).</summary>
public enum ProtectionLevel
{
    /// <summary>Nothing is backed up.</summary>
    Unprotected = 0,

    /// <summary>Key metadata and secrets are backed up, but not the key material (hardware instance without HSM backup).</summary>
    MetadataOnly = 1,

    /// <summary>The HSM backs up key material, but no KMS backup holds the keys' metadata and the secrets.</summary>
    KeyMaterialOnly = 2,

    /// <summary>Everything needed to restore is backed up.</summary>
    Full = 3,
}

/// <summary>An instance's protection: whether its KMS backup and (for hardware) its HSM backup are enabled, and the warnings (rules H2–H4).</summary>
public sealed record InstanceProtection
{
    /// <summary>The instance.</summary>
    public required string InstanceId { get; init; }

    /// <summary>Software or hardware.</summary>
    public required InstanceKind Kind { get; init; }

    /// <summary>Whether an enabled KMS backup backs the instance up.</summary>
    public required bool KmsBackupEnabled { get; init; }

    /// <summary>Whether the HSM backup of the instance's cluster is enabled (always <see langword="false"/> for software instances, which need none).</summary>
    public required bool HsmBackupEnabled { get; init; }

    /// <summary>The protection that results.</summary>
    public required ProtectionLevel Level { get; init; }

    /// <summary>What may leave the instance unrecoverable; empty when fully protected and configured as the seed advises.</summary>
    public required IReadOnlyList<HardwareWarning> Warnings { get; init; }
}
