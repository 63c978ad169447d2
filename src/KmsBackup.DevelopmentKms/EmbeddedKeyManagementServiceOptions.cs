using System.ComponentModel.DataAnnotations;

namespace KmsBackup.DevelopmentKms;

/// <summary>Options of an <see cref="EmbeddedKeyManagementService"/>.</summary>
public sealed class EmbeddedKeyManagementServiceOptions
{
    /// <summary>The default <see cref="ChangeLogCapacity"/>.</summary>
    public const int DefaultChangeLogCapacity = 10_000;

    /// <summary>
    /// How many changes each instance's change log keeps. A cursor older than the oldest kept change
    /// reads as expired (<see cref="InstanceChanges.CursorExpired"/>) and the engine reads a whole
    /// snapshot instead. At least 1; default 10,000.
    /// </summary>
    [Range(1, int.MaxValue)]
    public int ChangeLogCapacity { get; set; } = DefaultChangeLogCapacity;

    /// <summary>
    /// Where the master key file is, which encrypts the state files; <see langword="null"/> (the default)
    /// for <c>service.key</c> in the root folder. Keeping it on another volume, or another protected
    /// place, means a copy of the root folder alone reveals nothing.
    /// </summary>
    public string? MasterKeyPath { get; set; }

    /// <summary>
    /// The HSM clusters' key operations for hardware instances: with them, generating a hardware key
    /// makes its material in the instance's cluster, and hardware keys encrypt, decrypt and protect
    /// secrets there. <see langword="null"/> (the default): hardware instances hold key metadata only
    /// and their keys cannot be used for cryptography.
    /// </summary>
    public HardwareKeyOperations? HardwareKeys { get; set; }
}
