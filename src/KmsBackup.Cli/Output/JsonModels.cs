using System.Text.Json;
using System.Text.Json.Serialization;

namespace KmsBackup.Cli.Output;

// The shapes --json prints. They are the tool's contract with scripts: fields are added, never renamed
// or removed. Dates are yyyy-MM-dd, instants ISO 8601 UTC, names as on the command line.

internal sealed record JsonRange(string Start, string End, int Days);

internal sealed record JsonInstanceRef(string Id, string Kind, string Region);

internal sealed record JsonPoint(long Sequence, string Kind, string Date, string TakenAt, long Keys, long Secrets, int Changes)
{
    public static JsonPoint From(RecoveryPoint p) =>
        new(p.Sequence, Names.Of(p.Kind), Names.Date(p.Date), Names.Instant(p.TakenAt), p.KeyCount, p.SecretCount, p.ChangeCount);
}

internal sealed record JsonBackup(
    string Id, string Type, string Kind, string Status, string Owner, string? Alias, JsonInstanceRef? Instance, string? Region,
    string TimeZone, int ViewableDays, JsonRange? QueryableRange, string CreatedAt, string? EnabledAt, string? ExpiresAt,
    string? ReleaseDueAt, JsonPoint? LatestPoint)
{
    public static JsonBackup From(BackupDetails b) => new(
        b.Id, b.Label, Names.Of(b.Kind), Names.Of(b.Status), b.OwnerAccount, b.Alias,
        b.Instance is { } i ? new JsonInstanceRef(i.Id, Names.Of(i.Kind), i.Region) : null,
        b.Region, b.TimeZone.Id, b.ViewableDays,
        b.QueryableRange is { } r ? new JsonRange(Names.Date(r.Start), Names.Date(r.End), r.Length) : null,
        Names.Instant(b.CreatedAt), Names.Instant(b.EnabledAt), Names.Instant(b.ExpiresAt), Names.Instant(b.ReleaseDueAt),
        b.LatestPoint is { } p ? JsonPoint.From(p) : null);
}

internal sealed record JsonItem(
    string Type, string Name, string? KeyId, string? Spec, string? EncryptionKeyId, string Creator, string CreatedAt,
    string? LastRotatedAt, int Versions, string? Description)
{
    public static JsonItem From(BackupDataItem i) => new(
        Names.Of(i.Type), i.Name, i.KeyId, i.Spec, i.EncryptionKeyId, i.CreatorAccount, Names.Instant(i.CreatedAt),
        Names.Instant(i.LastRotatedAt), i.VersionCount, i.Description);
}

internal sealed record JsonView(string Type, string Title, int Count, IReadOnlyList<JsonItem> Items);

internal sealed record JsonData(string BackupId, string Date, IReadOnlyList<JsonView> Views);

internal sealed record JsonRefusal(string Code, string Item, string Message, string Remedy)
{
    public static JsonRefusal From(Refusal r) => new(r.Code.ToString(), r.Item, r.Message, r.Remedy);
}

internal sealed record JsonPlanItem(
    string Type, string Name, string? KeyId, string? EncryptionKeyId, string Creator, int Versions, string Outcome, IReadOnlyList<JsonRefusal> Refusals)
{
    public static JsonPlanItem From(RestorePlanItem i) => new(
        Names.Of(i.Type), i.Name, i.KeyId, i.EncryptionKeyId, i.CreatorAccount, i.VersionCount, Names.Of(i.Outcome),
        [.. i.Refusals.Select(JsonRefusal.From)]);
}

internal sealed record JsonPlan(
    string OperationId, string BackupId, string BackupDate, string? PointTakenAt, string? SourceInstance, string TargetInstance,
    string? TargetRegion, bool CanExecute, int KeysToRestore, int SecretsToRestore, int AlreadyRestored,
    IReadOnlyList<JsonPlanItem> Items, IReadOnlyList<JsonRefusal> BatchRefusals)
{
    public static JsonPlan From(RestorePlan p) => new(
        p.OperationId, p.BackupId, Names.Date(p.BackupDate), Names.Instant(p.PointTakenAt), p.SourceInstanceId, p.TargetInstanceId,
        p.TargetRegion, p.CanExecute, p.KeysToRestore, p.SecretsToRestore, p.AlreadyRestored,
        [.. p.Items.Select(JsonPlanItem.From)], [.. p.BatchRefusals.Select(JsonRefusal.From)]);
}

internal sealed record JsonRestore(string OperationId, IReadOnlyList<string> Restored, IReadOnlyList<string> AlreadyRestored, JsonPlan Plan);

internal sealed record JsonOperationItem(string Type, string Name)
{
    public static JsonOperationItem From(RestoreOperationItem i) => new(Names.Of(i.Type), i.Name);
}

internal sealed record JsonOperationItemState(string Type, string Name, bool InTarget);

internal sealed record JsonRestoreOperation(
    string OperationId, string BackupId, string BackupDate, string TargetInstance, string StartedAt, int Runs, int ItemsInTarget,
    IReadOnlyList<JsonOperationItemState> Items)
{
    public static JsonRestoreOperation From(RestoreOperation o) => new(
        o.OperationId, o.BackupId, Names.Date(o.BackupDate), o.TargetInstanceId, Names.Instant(o.StartedAt), o.Runs, o.ItemsInTarget.Count,
        [.. o.Items.Select(i => new JsonOperationItemState(Names.Of(i.Type), i.Name, o.ItemsInTarget.Contains(i)))]);
}

internal sealed record JsonRollback(string OperationId, string TargetInstance, IReadOnlyList<JsonOperationItem> Removed, IReadOnlyList<JsonOperationItem> Skipped);

internal sealed record JsonDownload(string BackupId, string Date, string File, long Length, string? DataKey, string? DataKeyFile);

internal sealed record JsonFileVerification(string File, long Length, bool Authentic);

internal sealed record JsonProblem(string Item, string Description);

internal sealed record JsonStoreVerification(
    bool Clean, int PacksChecked, int ObjectsChecked, int PointsChecked, int UnreferencedObjects, int UnreferencedPacks,
    IReadOnlyList<JsonProblem> Problems, long KeyGeneration, IReadOnlyDictionary<string, int> PacksByKeyGeneration, long PackBytes, long ReferencedBytes);

internal sealed record JsonKeyRotation(long KeyGeneration, string GenerationId);

internal sealed record JsonKeyProvider(string Kind, string KeyId, string? AddedAt)
{
    public static JsonKeyProvider From(RepositoryKeyProviderInfo provider) => new(provider.Kind, provider.KeyId, provider.AddedAt is { } at ? Names.Instant(at) : null);
}

/// <summary>A provider just added; <c>Shares</c> only for a recovery key, printed this once.</summary>
internal sealed record JsonKeyProviderAdded(string Kind, string KeyId, string? AddedAt, int? Threshold, IReadOnlyList<string>? Shares);

internal sealed record JsonKeyProviderRemoved(string KeyId);

internal sealed record JsonRekey(long KeyGeneration, int PacksRewritten, int ObjectsCopied, long BytesWritten, int PacksRemaining, bool Complete);

internal sealed record JsonStoreClock(string LocalTime, string? StoreTime, bool DeletionsHeld, string MaximumLead, string MaximumLag)
{
    public static JsonStoreClock From(StoreClockStatus status) => new(
        Names.Instant(status.LocalTime), status.StoreTime is { } storeTime ? Names.Instant(storeTime) : null, status.DeletionsHeld,
        status.MaximumLead.ToString("c", System.Globalization.CultureInfo.InvariantCulture), status.MaximumLag.ToString("c", System.Globalization.CultureInfo.InvariantCulture));
}

internal sealed record JsonInstance(string Id, string Kind, string Region, string Owner, bool Enabled, string? ReleasedAt);

internal sealed record JsonScheduledRun(string Kind, string DueAt, string Reason)
{
    public static JsonScheduledRun From(ScheduledRun run) => new(Names.Of(run.Kind), Names.Instant(run.DueAt), Names.Of(run.Reason));
}

internal sealed record JsonHealth(
    string BackupId, string Kind, string Status, string? Instance, JsonPoint? LatestPoint, string? LastSuccessAt, string? LastFailureAt,
    string? LastErrorType, string? LastErrorMessage, int ConsecutiveFailures, JsonScheduledRun? NextRun, double LagSeconds, string? ExpiresAt)
{
    public static JsonHealth From(BackupHealth h) => new(
        h.BackupId, Names.Of(h.Kind), Names.Of(h.Status), h.InstanceId, h.LatestPoint is { } p ? JsonPoint.From(p) : null,
        Names.Instant(h.LastSuccessAt), Names.Instant(h.LastFailureAt), h.LastErrorType, h.LastErrorMessage, h.ConsecutiveFailures,
        h.NextRun is { } run ? JsonScheduledRun.From(run) : null, h.Lag.TotalSeconds, Names.Instant(h.ExpiresAt));
}

internal sealed record JsonInit(string Store, string Kms, string KeyFile);

internal sealed record JsonError(string Code, string Item, string Message, string Remedy, int ExitCode);

internal sealed record JsonErrorDocument(JsonError Error, JsonPlan? Plan = null);

internal sealed record JsonCopyProblem(string BackupId, string? Point, string Kind, string Code, string Message, string Remedy);

internal sealed record JsonCopiedBackup(string BackupId, IReadOnlyList<string> PointsCopied, int PointsPresent, bool StateCopied, long BytesWritten, int ObjectsWritten);

internal sealed record JsonCopyReport(bool Complete, int PointsCopied, int PointsPresent, long BytesWritten, int ObjectsWritten, IReadOnlyList<JsonCopiedBackup> Backups, IReadOnlyList<JsonCopyProblem> Problems)
{
    public static JsonCopyReport From(BackupCopyReport r) => new(
        r.IsComplete, r.PointsCopied, r.PointsPresent, r.BytesWritten, r.ObjectsWritten,
        [.. r.Backups.Select(b => new JsonCopiedBackup(b.BackupId, [.. b.PointsCopied.Select(p => p.ToString())], b.PointsPresent, b.StateCopied, b.BytesWritten, b.ObjectsWritten))],
        [.. r.Problems.Select(p => new JsonCopyProblem(p.BackupId, p.Point?.ToString(), p.Kind.ToString(), p.Error.Code.ToString(), p.Error.Message, p.Error.Remedy))]);
}

internal static class Json
{
    private static readonly JsonSerializerOptions s_options = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,

        // Output for terminals, files and scripts, never embedded in HTML: '+' in a base64 data key, and quotes in messages,
        // stay as they are, so a value copied from the output is the value.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Writes one JSON document and a newline to the raw output (never through the rich console, which would wrap lines).</summary>
    public static void Write<T>(TextWriter output, T value)
    {
        output.WriteLine(JsonSerializer.Serialize(value, s_options));
        output.Flush();
    }
}

internal sealed record JsonDrillItem(string Type, string Name, string Outcome, string? Problem);

internal sealed record JsonDrill(
    bool Passed, string BackupId, JsonPoint Point, string ScratchInstance, string KeyProvider, string OperationId, long KeysInPoint,
    long SecretsInPoint, IReadOnlyList<JsonDrillItem> Items, bool ScratchCleared, IReadOnlyList<string> LeftInScratch, bool? StoreClean,
    IReadOnlyList<JsonProblem>? StoreProblems, double Seconds)
{
    public static JsonDrill From(RecoveryDrillReport r) => new(
        r.Passed, r.BackupId, JsonPoint.From(r.Point), r.ScratchInstanceId, r.KeyProviderId, r.OperationId, r.KeysInPoint, r.SecretsInPoint,
        [.. r.Items.Select(i => new JsonDrillItem(Names.Of(i.Type), i.Name, Names.Of(i.Outcome), i.Problem))], r.ScratchCleared, r.LeftInScratch,
        r.Verification?.IsClean, r.Verification is { } v ? [.. v.Problems.Select(p => new JsonProblem(p.Item, p.Description))] : null,
        Math.Round(r.Elapsed.TotalSeconds, 3));
}
