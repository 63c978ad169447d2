namespace KmsBackup;

/// <summary>A problem found by verify: the item (object, pack, recovery point) and what is wrong with it.</summary>
/// <param name="Item">What is damaged, e.g. <c>object 3fa2c81b09de</c>.</param>
/// <param name="Description">What is wrong.</param>
public sealed record VerificationProblem(string Item, string Description);

/// <summary>What verify found in a backup store: problems (damage that loses data) and garbage (unreferenced data that the next prune removes).</summary>
public sealed class RepositoryVerification
{
    internal RepositoryVerification(
        IReadOnlyList<VerificationProblem> problems, int packsChecked, int objectsChecked, int pointsChecked,
        int unreferencedObjects, IReadOnlyList<string> unreferencedPacks, int packsWithoutIndex, int abandonedPoints,
        IReadOnlyDictionary<long, int> packsByKeyGeneration, long currentKeyGeneration)
    {
        PacksByKeyGeneration = packsByKeyGeneration;
        CurrentKeyGeneration = currentKeyGeneration;
        AbandonedPoints = abandonedPoints;
        Problems = problems;
        PacksChecked = packsChecked;
        ObjectsChecked = objectsChecked;
        PointsChecked = pointsChecked;
        UnreferencedObjects = unreferencedObjects;
        UnreferencedPacks = unreferencedPacks;
        PacksWithoutIndex = packsWithoutIndex;
    }

    /// <summary>Every problem found; empty when the store is intact.</summary>
    public IReadOnlyList<VerificationProblem> Problems { get; }

    /// <summary>Whether no problem was found (garbage is not a problem).</summary>
    public bool IsClean => Problems.Count == 0;

    /// <summary>How many packs were read and hashed.</summary>
    public int PacksChecked { get; }

    /// <summary>How many objects were opened and their MACs checked.</summary>
    public int ObjectsChecked { get; }

    /// <summary>How many recovery points were read and their references followed.</summary>
    public int PointsChecked { get; }

    /// <summary>Objects no recovery point refers to (left by an interrupted run or pruning); the next prune removes them.</summary>
    public int UnreferencedObjects { get; }

    /// <summary>Packs none of whose objects a recovery point refers to.</summary>
    public IReadOnlyList<string> UnreferencedPacks { get; }

    /// <summary>The bytes of every pack in the store, as listed (referenced, unreferenced and duplicate objects, and pack headers).</summary>
    public long PackBytes { get; internal init; }

    /// <summary>
    /// The bytes of the sealed objects that recovery points refer to, one copy of each: what the store would hold if
    /// it held nothing else. <see cref="PackBytes"/> over this is the store's overhead; prunes keep it bounded by
    /// deleting dead packs and repacking partly used ones (<see cref="BackupClientOptions.PruneRepackThreshold"/>).
    /// </summary>
    public long ReferencedBytes { get; internal init; }

    /// <summary>
    /// How many packs are sealed under each key generation of the repository, by sequence number (docs/repository-format.md,
    /// "Keys"); packs of a generation whose key record this client cannot read are counted under 0.
    /// After <c>RotateRepositoryKeyAsync</c>, <c>RekeyAsync</c> and the prunes that follow, only
    /// <see cref="CurrentKeyGeneration"/> remains.
    /// </summary>
    public IReadOnlyDictionary<long, int> PacksByKeyGeneration { get; }

    /// <summary>The newest key generation: what new data is sealed under.</summary>
    public long CurrentKeyGeneration { get; }

    /// <summary>Packs written without their index (a run interrupted between the two); garbage.</summary>
    public int PacksWithoutIndex { get; }

    /// <summary>
    /// Recovery points of backups that have no catalog entry: left by an upload that died between writing its
    /// points and its catalog entry. Garbage, not damage: nothing lists or shows them, and a prune marks them and
    /// a later one (after the grace period) deletes them.
    /// </summary>
    public int AbandonedPoints { get; }

    /// <summary>A one-line summary.</summary>
    public override string ToString() =>
        $"{(IsClean ? "clean" : $"{Problems.Count} problems")}: {PacksChecked} packs, {ObjectsChecked} objects, {PointsChecked} recovery points checked; {UnreferencedObjects} unreferenced objects{(AbandonedPoints > 0 ? $", {AbandonedPoints} abandoned recovery points" : string.Empty)}";
}
