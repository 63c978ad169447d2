using Spectre.Console;

namespace KmsBackup.Cli.Output;

/// <summary>The human renderings: tables and short lines. Names and messages are escaped: they are data, not markup.</summary>
internal static class Render
{
    private static string E(string? text) => Markup.Escape(text ?? "");

    public static void Backups(IAnsiConsole console, IReadOnlyList<BackupDetails> backups, bool wide)
    {
        if (backups.Count == 0)
        {
            console.MarkupLine("No backups for this account.");
            return;
        }

        var table = new FittedTable()
            .Column("ID", 0).Column("Type", 1).Column("Status", 0).Column("Backup object", 3).Column("Alias", 5)
            .Column("Viewable days", 6).Column("Queryable range", 2).Column("Expires", 4).Column("Latest point", 7);
        foreach (var b in backups)
        {
            table.Row(
                E(b.Id), E(b.Label), E(Names.Of(b.Status)),
                E(b.Instance is { } i ? $"{i.Id} ({Names.Of(i.Kind)}, {i.Region})" : "-"),
                E(b.Alias ?? "-"), b.ViewableDays.ToString(System.Globalization.CultureInfo.InvariantCulture),
                E(b.QueryableRange?.ToString() ?? "-"),
                E(Names.Instant(b.ExpiresAt) ?? "-"),
                E(b.LatestPoint is { } p ? $"#{p.Sequence} {Names.Of(p.Kind)} {Names.Instant(p.TakenAt)}" : "-"));
        }

        table.Write(console, wide);
    }

    public static void Backup(IAnsiConsole console, BackupDetails b)
    {
        var grid = new Grid().AddColumn().AddColumn();
        void Row(string name, string? value) => grid.AddRow($"[bold]{E(name)}[/]", E(value ?? "-"));
        Row("ID", b.Id);
        Row("Type", $"{b.Label} ({Names.Of(b.Kind)})");
        Row("Status", Names.Of(b.Status));
        Row("Owner", b.OwnerAccount);
        Row("Alias", b.Alias);
        Row("Backup object", b.Instance is { } i ? $"{i.Id} ({Names.Of(i.Kind)}, {i.Region})" : null);
        Row("Time zone", b.TimeZone.Id);
        Row("Viewable days", b.ViewableDays.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Row("Queryable range", b.QueryableRange?.ToString());
        Row("Created", Names.Instant(b.CreatedAt));
        Row("Enabled", Names.Instant(b.EnabledAt));
        Row("Expires", Names.Instant(b.ExpiresAt));
        Row("Release due", Names.Instant(b.ReleaseDueAt));
        Row("Latest point", b.LatestPoint is { } p ? $"#{p.Sequence} {Names.Of(p.Kind)} {Names.Instant(p.TakenAt)}: {Names.Count(p.KeyCount, "key")}, {Names.Count(p.SecretCount, "secret")}" : null);
        console.Write(grid);
    }

    public static void View(IAnsiConsole console, string backupId, DateOnly date, BackupDataType type, IReadOnlyList<BackupDataItem> items, bool wide)
    {
        console.MarkupLine($"[bold]{E(Names.Title(type))}[/] of backup {E(backupId)} on {Names.Date(date)}: {items.Count}");
        if (items.Count == 0)
        {
            return;
        }

        var table = new FittedTable()
            .Column("Name", 0).Column(items[0].Type == ItemType.Key ? "Key ID" : "Encrypting key ID", 0).Column("Creator", 2).Column("Created", 1).Column("Last rotated", 4).Column("Versions", 3).Column("Description", 5, wrap: true);
        foreach (var i in items)
        {
            table.Row(
                E(i.Name), E(i.KeyId ?? i.EncryptionKeyId ?? "-"), E(i.CreatorAccount), E(Names.Instant(i.CreatedAt)),
                E(Names.Instant(i.LastRotatedAt) ?? "-"), i.VersionCount.ToString(System.Globalization.CultureInfo.InvariantCulture), E(i.Description ?? ""));
        }

        table.Write(console, wide);
    }

    public static void RestoreOperations(IAnsiConsole console, IReadOnlyList<RestoreOperation> operations, bool wide)
    {
        if (operations.Count == 0)
        {
            console.MarkupLine("No unfinished restores for this account.");
            return;
        }

        var table = new FittedTable()
            .Column("Operation", 0).Column("Backup", 2).Column("Date", 1).Column("Target", 0).Column("Started", 3).Column("Runs", 4).Column("In the target", 1, wrap: true);
        foreach (var o in operations)
        {
            table.Row(
                E(o.OperationId), E(o.BackupId), Names.Date(o.BackupDate), E(o.TargetInstanceId), E(Names.Instant(o.StartedAt)),
                o.Runs.ToString(System.Globalization.CultureInfo.InvariantCulture),
                E($"{o.ItemsInTarget.Count} of {o.Items.Count}{(o.ItemsInTarget.Count > 0 ? ": " + string.Join(", ", o.ItemsInTarget) : "")}"));
        }

        table.Write(console, wide);
        console.MarkupLine("Finish one with 'kmsbackup restore resume <operation-id>', or undo it with 'kmsbackup restore rollback <operation-id>'.");
    }

    public static void Rollback(IAnsiConsole console, RestoreRollbackResult result)
    {
        console.MarkupLine($"[green]Rolled back[/] restore {E(result.OperationId)}: removed {result.Removed.Count} item(s) from {E(result.TargetInstanceId)}"
            + (result.Removed.Count > 0 ? $" ({E(string.Join(", ", result.Removed))})" : "")
            + (result.Skipped.Count > 0 ? $"; {result.Skipped.Count} planned item(s) were not there as the operation created them." : "."));
    }

    public static void Plan(IAnsiConsole console, RestorePlan plan, bool wide)
    {
        console.MarkupLine(
            $"[bold]Restore plan[/] {E(plan.OperationId)}: backup {E(plan.BackupId)} {Names.Date(plan.BackupDate)}"
            + $"{(plan.PointTakenAt is { } at ? $" (point of {Names.Instant(at)})" : "")} into {E(plan.TargetInstanceId)}{(plan.TargetRegion is { } r ? $" ({E(r)})" : "")}");
        if (plan.Items.Length > 0)
        {
            var table = new FittedTable().Column("Type", 1).Column("Name", 0).Column("ID", 2).Column("Versions", 3).Column("Outcome", 0);
            foreach (var i in plan.Items)
            {
                var outcome = i.Outcome switch
                {
                    // A refused plan restores nothing, the items it has no objection to included.
                    RestoreItemOutcome.Restore when !plan.CanExecute => "[yellow]not restored[/]",
                    RestoreItemOutcome.Restore => "[green]restore[/]",
                    RestoreItemOutcome.AlreadyRestored => "already restored",
                    _ => "[red]refused[/]",
                };
                table.Row(E(Names.Of(i.Type)), E(i.Name), E(i.KeyId ?? "-"), i.VersionCount.ToString(System.Globalization.CultureInfo.InvariantCulture), outcome);
            }

            table.Write(console, wide);
        }

        var refusals = plan.AllRefusals.ToList();
        foreach (var refusal in refusals)
        {
            console.MarkupLine($"  [red]{E(refusal.Code.ToString())}[/] {E(refusal.Item)}: {E(refusal.Message)}");
            console.MarkupLine($"    [yellow]Remedy[/]: {E(refusal.Remedy)}");
        }

        console.MarkupLine(plan.CanExecute
            ? $"[green]Can restore[/]: {Names.Count(plan.KeysToRestore, "key")}, {Names.Count(plan.SecretsToRestore, "secret")}; {plan.AlreadyRestored} already restored."
            : $"[red]Refused[/]: {refusals.Count} violation(s); nothing would be written.");
    }

    public static void KeyProviders(IAnsiConsole console, IReadOnlyList<RepositoryKeyProviderInfo> providers, bool wide)
    {
        var table = new FittedTable().Column("Kind", 0).Column("Key ID", 0).Column("Added", 1);
        foreach (var p in providers)
        {
            table.Row(E(p.Kind), E(p.KeyId), p.AddedAt is { } at ? E(Names.Instant(at)) : "(created with the repository)");
        }

        table.Write(console, wide);
    }

    public static void Instances(IAnsiConsole console, IReadOnlyList<InstanceDescription> instances, bool wide)
    {
        if (instances.Count == 0)
        {
            console.MarkupLine("No instances.");
            return;
        }

        var table = new FittedTable().Column("ID", 0).Column("Kind", 2).Column("Region", 1).Column("Owner", 1).Column("State", 0);
        foreach (var i in instances)
        {
            table.Row(E(i.Info.Id), E(Names.Of(i.Info.Kind)), E(i.Info.Region), E(i.OwnerAccount),
                i.ReleasedAt is { } released ? $"released {E(Names.Instant(released))}" : i.Info.IsEnabled ? "enabled" : "disabled");
        }

        table.Write(console, wide);
    }

    public static void Health(IAnsiConsole console, IReadOnlyList<BackupHealth> report, bool wide)
    {
        if (report.Count == 0)
        {
            console.MarkupLine("No backups are run from this folder (none is bound to an instance of its service).");
            return;
        }

        var table = new FittedTable()
            .Column("Backup", 0).Column("Status", 0).Column("Next run", 1).Column("Behind by", 1).Column("Last success", 2)
            .Column("Instance", 3).Column("Failures", 4).Column("Kind", 5).Column("Expires", 6);
        foreach (var h in report)
        {
            table.Row(
                E(h.BackupId), E(Names.Of(h.Status)),
                E(h.NextRun is { } run ? $"{Names.Of(run.Kind)} due {Names.Instant(run.DueAt)}" : "-"),
                h.Lag > TimeSpan.Zero ? $"[yellow]{E(Names.Duration(h.Lag))}[/]" : "-",
                E(Names.Instant(h.LastSuccessAt) ?? "never"), E(h.InstanceId ?? "-"),
                h.ConsecutiveFailures > 0 ? $"[red]{h.ConsecutiveFailures} ({E(h.LastErrorType)})[/]" : "0",
                E(Names.Of(h.Kind)), E(Names.Instant(h.ExpiresAt) ?? "-"));
        }

        table.Write(console, wide);
    }

    public static void Clock(IAnsiConsole console, StoreClockStatus status)
    {
        console.MarkupLine($"This host's clock: {E(Names.Instant(status.LocalTime))}; the store's time: {E(status.StoreTime is { } t ? Names.Instant(t) : "none recorded yet")}.");
        console.MarkupLine(status.DeletionsHeld
            ? $"[yellow]Deletions are held[/]: this clock is more than {E(status.MaximumLead.ToString())} ahead. Fix the clock, or confirm it with 'kmsbackup clock confirm --yes'."
            : "Deletions are not held.");
    }

    public static void Verification(IAnsiConsole console, RepositoryVerification v)
    {
        // The summary's own first word ("clean" or "N problems") would repeat the verdict: "Clean: clean: ...".
        var summary = v.ToString();
        var details = v.IsClean && summary.IndexOf(": ", StringComparison.Ordinal) is var colon and >= 0 ? summary[(colon + 2)..] : summary;
        var space = string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"; packs {v.PackBytes / 1e6:F1} MB for {v.ReferencedBytes / 1e6:F1} MB that recovery points refer to");
        console.MarkupLine(v.IsClean ? $"[green]Clean[/]: {E(details + space)}" : $"[red]Damaged[/]: {E(details + space)}");
        foreach (var problem in v.Problems)
        {
            console.MarkupLine($"  [red]{E(problem.Item)}[/]: {E(problem.Description)}");
        }
    }

    public static void Drill(IAnsiConsole console, RecoveryDrillReport r)
    {
        var matched = r.Items.Count(i => i.Outcome == RecoveryDrillOutcome.Matched);
        var point = $"point {r.Point.Sequence} of {r.BackupId} ({Names.Instant(r.Point.TakenAt)}, {r.KeysInPoint:N0} keys, {r.SecretsInPoint:N0} secrets)";
        console.MarkupLine(r.Passed
            ? $"[green]Recoverable[/]: {E(point)}: {matched} of {r.Items.Count} sampled items restored into '{E(r.ScratchInstanceId)}' match the backup, with the key provider '{E(r.KeyProviderId)}'."
            : $"[red]Not proven[/]: {E(point)}: {matched} of {r.Items.Count} sampled items restored into '{E(r.ScratchInstanceId)}' match the backup, with the key provider '{E(r.KeyProviderId)}'.");
        foreach (var item in r.Items.Where(i => i.Outcome != RecoveryDrillOutcome.Matched))
        {
            var colour = item.Outcome == RecoveryDrillOutcome.Skipped ? "yellow" : "red";
            console.MarkupLine($"  [{colour}]{Names.Of(item.Outcome)}[/] {Names.Of(item.Type)} '{E(item.Name)}': {E(item.Problem ?? "")}");
        }

        if (r.Verification is { } v)
        {
            Verification(console, v);
        }

        console.MarkupLine(r.ScratchCleared
            ? $"The scratch instance '{E(r.ScratchInstanceId)}' is empty again (restore operation {E(r.OperationId)})."
            : $"[red]Left in the scratch instance '{E(r.ScratchInstanceId)}'[/] (delete them by hand): {E(string.Join("; ", r.LeftInScratch))}");
    }
}
