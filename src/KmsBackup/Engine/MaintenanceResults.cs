
namespace KmsBackup;

/// <summary>What a prune removed.</summary>
/// <param name="RecoveryPointsDeleted">Recovery points deleted (past retention, of reset and released backups, or left without a catalog entry by an upload that died, once a prune has marked them and the grace period has passed).</param>
/// <param name="PacksDeleted">Pack files deleted (marked by an earlier prune and still unreferenced).</param>
/// <param name="PacksMarked">Pack files newly marked for deletion by a later prune.</param>
public sealed record PruneSummary(int RecoveryPointsDeleted, int PacksDeleted, int PacksMarked)
{
    /// <summary>
    /// Whether the prune deleted nothing because this host's clock is more than
    /// <see cref="BackupClientOptions.MaximumClockLead"/> ahead of the latest time the store has seen (see
    /// <see cref="BackupClient.GetStoreClockAsync"/>).
    /// </summary>
    public bool DeletionsHeld { get; init; }

    /// <summary>
    /// Why no pack was collected although the prune ran (a recovery point or an object it refers to could
    /// not be read, so what is dead cannot be known), or <see langword="null"/>. Run verify to see the damage.
    /// </summary>
    public string? CollectionBlocked { get; init; }

    /// <summary>
    /// Packs this prune repacked (the unused bytes of the packs had reached <see cref="BackupClientOptions.PruneRepackThreshold"/>):
    /// the live objects of each were copied into new packs and it was marked; a prune at least
    /// <see cref="BackupClientOptions.PruneGracePeriod"/> later deletes it. Not counted in <see cref="PruneSummary.PacksMarked"/>.
    /// </summary>
    public int PacksRepacked { get; init; }

    /// <summary>Bytes of new packs and indexes the repacking wrote.</summary>
    public long BytesRepacked { get; init; }
}

/// <summary>What <see cref="BackupClient.RotateRepositoryKeyAsync"/> did.</summary>
/// <param name="KeyGeneration">The sequence number of the new key generation (2 for the first rotation): what new data is sealed under.</param>
/// <param name="GenerationId">The new generation's random ID, which the objects sealed under it name (8 hexadecimal digits). Two hosts rotating at
/// once make two generations of one sequence number with different IDs; every host then seals under the one with the higher ID.</param>
public sealed record RepositoryKeyRotation(long KeyGeneration, string GenerationId);

/// <summary>What <see cref="BackupClient.RekeyAsync"/> did.</summary>
/// <param name="KeyGeneration">The key generation data was re-encrypted under.</param>
/// <param name="PacksRewritten">Packs of older generations whose objects were re-encrypted into new packs; each old pack is marked, and a prune at least <see cref="BackupClientOptions.PruneGracePeriod"/> later deletes it.</param>
/// <param name="ObjectsCopied">Objects re-encrypted.</param>
/// <param name="BytesWritten">Bytes of new packs and indexes written.</param>
/// <param name="PacksRemaining">Packs of older generations this call left for a later one (beyond its budget). Packs already marked by a prune are not counted: the prunes delete them.</param>
public sealed record RekeySummary(long KeyGeneration, int PacksRewritten, int ObjectsCopied, long BytesWritten, int PacksRemaining)
{
    /// <summary>
    /// Packs of older generations that could not be read or opened (damaged, or deleted meanwhile): left as they are,
    /// not counted in <see cref="PacksRemaining"/>. <see cref="BackupClient.VerifyAsync"/> names what is damaged.
    /// </summary>
    public int PacksDamaged { get; init; }

    /// <summary>Whether no readable pack of an older generation is left to rewrite (the prunes that follow still have to delete the old ones).</summary>
    public bool IsComplete => PacksRemaining == 0;
}

/// <summary>This host's clock against the latest time the store has seen.</summary>
public sealed record StoreClockStatus
{
    /// <summary>This host's clock when it was read.</summary>
    public required DateTimeOffset LocalTime { get; init; }

    /// <summary>The latest time a writer of the store recorded; <see langword="null"/> when none has yet.</summary>
    public DateTimeOffset? StoreTime { get; init; }

    /// <summary>
    /// Whether this host holds every deletion (retention, releases, pack collection) because its clock is more
    /// than <see cref="MaximumLead"/> ahead of <see cref="StoreTime"/>. Backups keep running meanwhile. It
    /// ends when the clock is fixed, or when an operator confirms it with <see cref="BackupClient.ConfirmClockAsync"/>.
    /// </summary>
    public required bool DeletionsHeld { get; init; }

    /// <summary>How far ahead of the store's time this clock may run before deletions are held.</summary>
    public required TimeSpan MaximumLead { get; init; }

    /// <summary>How far behind the store's time this clock may run and still commit.</summary>
    public required TimeSpan MaximumLag { get; init; }
}
