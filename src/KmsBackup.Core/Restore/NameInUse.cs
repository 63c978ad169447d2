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
}
