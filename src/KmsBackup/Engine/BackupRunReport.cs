using System.Collections;
using System.Runtime.ExceptionServices;

namespace KmsBackup;

/// <summary>
/// What one pass of <see cref="BackupClient.RunDueBackupsAsync"/> did: the runs that committed a recovery point
/// (the report is the list of them) and the backups whose runs failed. A failed backup never hides the others:
/// every due backup is tried and reported.
/// </summary>
public sealed class BackupRunReport : IReadOnlyList<BackupRunResult>
{
    private readonly IReadOnlyList<BackupRunResult> _runs;

    /// <summary>A report of <paramref name="runs"/> and <paramref name="failures"/>; for tests and fakes of <see cref="BackupClient"/>.</summary>
    /// <param name="runs">The runs that committed a recovery point.</param>
    /// <param name="failures">The backups whose runs failed.</param>
    public BackupRunReport(IEnumerable<BackupRunResult> runs, IEnumerable<BackupRunFailure> failures)
    {
        ArgumentNullException.ThrowIfNull(runs);
        ArgumentNullException.ThrowIfNull(failures);
        _runs = [.. runs];
        Failures = [.. failures];
    }

    /// <summary>The backups whose runs failed, each with what it threw; empty when every due backup ran.</summary>
    public IReadOnlyList<BackupRunFailure> Failures { get; }

    /// <summary>Whether no run failed.</summary>
    public bool Succeeded => Failures.Count == 0;

    /// <summary>The number of runs that committed a recovery point.</summary>
    public int Count => _runs.Count;

    /// <summary>The run at <paramref name="index"/>, in the order they ran.</summary>
    /// <param name="index">The run's position.</param>
    public BackupRunResult this[int index] => _runs[index];

    /// <summary>
    /// Throws when a run failed: the failure itself when there is one, an <see cref="AggregateException"/> holding
    /// each when there are several. For callers that treat any failed backup as a failed pass.
    /// </summary>
    /// <returns>This report, when every run succeeded.</returns>
    public BackupRunReport ThrowIfAnyFailed()
    {
        if (Failures.Count == 1)
        {
            ExceptionDispatchInfo.Throw(Failures[0].Error);
        }

        if (Failures.Count > 1)
        {
            throw new AggregateException(
                $"The runs of {Failures.Count} backups failed ({string.Join(", ", Failures.Select(f => f.BackupId))}); the other due backups ran.",
                Failures.Select(f => f.Error));
        }

        return this;
    }

    /// <inheritdoc />
    public IEnumerator<BackupRunResult> GetEnumerator() => _runs.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>The report in one line: runs and failed backups.</summary>
    public override string ToString() =>
        Failures.Count == 0 ? $"{Count} run(s)" : $"{Count} run(s), {Failures.Count} failed ({string.Join(", ", Failures.Select(f => f.BackupId))})";
}
