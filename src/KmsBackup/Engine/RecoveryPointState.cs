namespace KmsBackup;

/// <summary>
/// The instance's keys and secrets as a recovery point holds them (<see cref="BackupClient.GetStateAtAsync"/>):
/// the point, and its snapshot with key material and secret ciphertexts in pinned buffers that the client keeps
/// no reference to. Dispose it (a <see langword="using"/> declaration) to zero them once done.
/// </summary>
public sealed class RecoveryPointState : IDisposable
{
    /// <summary>A state of <paramref name="point"/>; for tests and fakes of <see cref="BackupClient"/>.</summary>
    /// <param name="point">The recovery point.</param>
    /// <param name="snapshot">What it holds.</param>
    public RecoveryPointState(RecoveryPoint point, InstanceSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(point);
        ArgumentNullException.ThrowIfNull(snapshot);
        Point = point;
        Snapshot = snapshot;
    }

    /// <summary>The recovery point: the latest taken at or before the instant asked for.</summary>
    public RecoveryPoint Point { get; }

    /// <summary>The keys and secrets it holds, with key material and secret ciphertexts until <see cref="Dispose"/>.</summary>
    public InstanceSnapshot Snapshot { get; }

    /// <summary>The point and the snapshot, for <c>var (point, snapshot) = ...</c>.</summary>
    /// <param name="point">The recovery point.</param>
    /// <param name="snapshot">What it holds.</param>
    public void Deconstruct(out RecoveryPoint point, out InstanceSnapshot snapshot)
    {
        point = Point;
        snapshot = Snapshot;
    }

    /// <summary>Zeroes every key version's material and every secret version's ciphertext of the snapshot.</summary>
    public void Dispose() => SensitiveValues.Clear(Snapshot);

    /// <summary>The point in one line; never a value.</summary>
    public override string ToString() => $"recovery point {Point.BackupId}#{Point.Sequence}: {Snapshot.Keys.Length} keys, {Snapshot.Secrets.Length} secrets";
}
