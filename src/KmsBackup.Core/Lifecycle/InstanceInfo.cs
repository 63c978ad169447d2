namespace KmsBackup;

/// <summary>What the backup rules need to know of a key management instance.</summary>
public sealed record InstanceInfo
{
    /// <summary>The image version from which a hardware instance supports backup (rule H1).</summary>
    public static Version MinimumHardwareImageVersion { get; } = new(3, 9, 1);

    /// <summary>Describes an instance.</summary>
    /// <param name="id">The instance ID.</param>
    /// <param name="kind">Software or hardware.</param>
    /// <param name="region">The region the instance is in, e.g. <c>cn-hangzhou</c>.</param>
    /// <param name="createdAt">When the instance was created; decides eligibility for an automatic backup.</param>
    /// <exception cref="ArgumentException"><paramref name="id"/> or <paramref name="region"/> is empty.</exception>
    public InstanceInfo(string id, InstanceKind kind, string region, DateTimeOffset createdAt)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(id);
        ArgumentException.ThrowIfNullOrWhiteSpace(region);
        if (!Enum.IsDefined(kind))
        {
            throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not a defined instance kind.");
        }

        Id = id;
        Kind = kind;
        Region = region;
        CreatedAt = createdAt;
    }

    /// <summary>The instance ID.</summary>
    public string Id { get; }

    /// <summary>Software or hardware.</summary>
    public InstanceKind Kind { get; }

    /// <summary>The region the instance is in.</summary>
    public string Region { get; }

    /// <summary>When the instance was created.</summary>
    public DateTimeOffset CreatedAt { get; }

    /// <summary>Whether the instance is enabled (and not released). Only enabled instances can be backed up.</summary>
    public bool IsEnabled { get; init; } = true;

    /// <summary>The instance's image version; hardware instances need 3.9.1 or later. <see langword="null"/> when unknown.</summary>
    public Version? ImageVersion { get; init; }
}

/// <summary>The instance a backup is bound to, as recorded when it was enabled.</summary>
/// <param name="Id">The instance ID.</param>
/// <param name="Kind">Software or hardware.</param>
/// <param name="Region">The instance's region.</param>
public sealed record BoundInstance(string Id, InstanceKind Kind, string Region);

/// <summary>
/// From which creation instant an instance gets an automatic backup when it is enabled (rule K4).
/// The defaults are the seed's: software instances created on or after 2024-04-26, hardware
/// instances created on or after 2026-04-01 (both 00:00 UTC).
/// </summary>
public sealed record AutomaticBackupCutoffs
{
    /// <summary>
    /// The seed's cutoffs. A new instance on each read, so that nothing (a configuration binder setting properties
    /// through reflection, say) can change the default of another.
    /// </summary>
    public static AutomaticBackupCutoffs Default => new();

    /// <summary>Software instances created at or after this instant get an automatic backup.</summary>
    public DateTimeOffset SoftwareCreatedOnOrAfter { get; init; } = new(2024, 4, 26, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Hardware instances created at or after this instant get an automatic backup.</summary>
    public DateTimeOffset HardwareCreatedOnOrAfter { get; init; } = new(2026, 4, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>The cutoff for <paramref name="kind"/>.</summary>
    /// <param name="kind">Software or hardware.</param>
    internal DateTimeOffset For(InstanceKind kind) => kind == InstanceKind.Hardware ? HardwareCreatedOnOrAfter : SoftwareCreatedOnOrAfter;
}
