namespace KmsBackup;

/// <summary>A name in use in a region.</summary>
/// <param name="Type">Key or secret.</param>
/// <param name="Name">The name.</param>
/// <param name="InstanceId">The instance that uses it.</param>
public sealed record NameInUse(ItemType Type, string Name, string InstanceId)
{
    /// <summary>
    /// The restore operation that created the item, when a restore did and nobody has changed the item
    /// since; <see langword="null"/> otherwise. A rerun of that operation treats the item as already
    /// restored instead of as a conflict (rule R7).
    /// </summary>
    public string? RestoredByOperation { get; init; }

    /// <summary>
    /// The account that owns <see cref="InstanceId"/>; <see langword="null"/> when the gateway does not say. A restore plan
    /// names the instance only when it is of the backup owner's account: a conflict with another account's instance (or
    /// one whose owner is not known) says only that the name is taken in the region, so that it never reveals another
    /// account's instance (DESIGN.md §4). The engine looks the owner up when a gateway leaves it out.
    /// </summary>
    public string? OwnerAccount { get; init; }
}
