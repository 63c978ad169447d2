namespace KmsBackup.DevelopmentKms;

/// <summary>
/// What to create an instance of the embedded key management service with
/// (<see cref="EmbeddedKeyManagementService.CreateInstanceAsync"/>).
/// </summary>
/// <param name="Id">The instance ID: 1 to 128 ASCII letters, digits, <c>-</c>, <c>_</c> or <c>.</c>, starting with a letter or digit.</param>
/// <param name="Kind">Software, or hardware (keys keep their material in an HSM cluster: the embedded service holds only their metadata).</param>
/// <param name="Region">The region, e.g. <c>cn-hangzhou</c>. Key and secret names are unique across a region.</param>
/// <param name="OwnerAccount">The account that owns the instance (the resource owner).</param>
public sealed record EmbeddedInstanceSpec(string Id, InstanceKind Kind, string Region, string OwnerAccount)
{
    /// <summary>The default key quota and secret quota.</summary>
    public const int DefaultQuota = 1000;

    /// <summary>The consumer accounts the instance is shared with; they may create keys and secrets in it too.</summary>
    public IReadOnlyList<string> SharedWith { get; init; } = [];

    /// <summary>How many keys the instance may hold; at least 0. Default 1000.</summary>
    public int KeyQuota { get; init; } = DefaultQuota;

    /// <summary>How many secrets the instance may hold; at least 0. Default 1000.</summary>
    public int SecretQuota { get; init; } = DefaultQuota;

    /// <summary>When the instance was created; <see langword="null"/> (the default) for the service clock's now.</summary>
    public DateTimeOffset? CreatedAt { get; init; }

    /// <summary>Whether the instance starts enabled. Default <see langword="true"/>.</summary>
    public bool IsEnabled { get; init; } = true;

    /// <summary>The instance's image version (hardware instances need 3.9.1 or later for backup); <see langword="null"/> when unknown.</summary>
    public Version? ImageVersion { get; init; }
}
