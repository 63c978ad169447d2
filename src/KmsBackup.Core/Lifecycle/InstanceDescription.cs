namespace KmsBackup;

/// <summary>A key management instance as its service describes it.</summary>
/// <param name="Info">ID, kind, region, creation, state and image version.</param>
/// <param name="OwnerAccount">The account that owns the instance (the resource owner).</param>
public sealed record InstanceDescription(InstanceInfo Info, string OwnerAccount)
{
    /// <summary>The consumer accounts the instance is shared with.</summary>
    public IReadOnlyList<string> SharedWith { get; init; } = [];

    /// <summary>How many keys the instance may hold.</summary>
    public int KeyQuota { get; init; }

    /// <summary>How many secrets the instance may hold.</summary>
    public int SecretQuota { get; init; }

    /// <summary>How many keys it holds now.</summary>
    public int KeyCount { get; init; }

    /// <summary>How many secrets it holds now.</summary>
    public int SecretCount { get; init; }

    /// <summary>When the instance was released, if it was.</summary>
    public DateTimeOffset? ReleasedAt { get; init; }
}
