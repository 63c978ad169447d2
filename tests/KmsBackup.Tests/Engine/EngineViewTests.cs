using System.Text;

namespace KmsBackup.Tests.Engine;

/// <summary>Rules D2–D4 through the engine: the six views of a date, paging and filtering, and the state at any instant.</summary>
public class EngineViewTests
{
    private static readonly TimeSpan FiveMinutes = TimeSpan.FromMinutes(5);
    private static readonly DateOnly May1 = new(2026, 5, 1);
    private static readonly DateOnly May2 = new(2026, 5, 2);

    private static async Task<(EngineHarness H, BackupDetails Backup)> DayOfChangesAsync()
    {
        var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.Kms.GenerateKeyAsync("kst-a", "orders", EngineHarness.Owner);
        await h.Kms.GenerateKeyAsync("kst-a", "payments", EngineHarness.Owner);
        await h.Kms.StoreSecretAsync("kst-a", "db-password", "orders", Encoding.UTF8.GetBytes("hunter2"), EngineHarness.Owner);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;

        // On May 1 after the first full: add a key and a secret, rotate a key and a secret, delete a key.
        await h.RunUntilAsync(EngineHarness.Start.AddMinutes(30), FiveMinutes);
        await h.Kms.GenerateKeyAsync("kst-a", "invoices", EngineHarness.Owner);
        await h.Kms.StoreSecretAsync("kst-a", "api-token", "payments", Encoding.UTF8.GetBytes("tok"), EngineHarness.Owner);
        await h.RunUntilAsync(EngineHarness.Start.AddHours(2), FiveMinutes);
        await h.Kms.RotateKeyAsync("kst-a", "orders");
        await h.Kms.PutSecretValueAsync("kst-a", "db-password", Encoding.UTF8.GetBytes("hunter3"));
        await h.Kms.DeleteKeyAsync("kst-a", "payments");
        await h.RunUntilAsync(new DateTimeOffset(2026, 5, 2, 6, 0, 0, TimeSpan.Zero), FiveMinutes);

        // On May 2 (after its 00:00 full): one more key.
        await h.Kms.GenerateKeyAsync("kst-a", "may2-key", EngineHarness.Owner);
        await h.RunUntilAsync(new DateTimeOffset(2026, 5, 2, 7, 0, 0, TimeSpan.Zero), FiveMinutes);
        return (h, backup);
    }

    private static async Task<List<string>> NamesAsync(EngineHarness h, string backupId, DateOnly date, BackupDataType type)
    {
        var names = new List<string>();
        await foreach (var item in h.Client.GetDataAsync(EngineHarness.Owner, backupId, date, type))
        {
            names.Add(item.Name);
        }

        return names;
    }

    [Fact]
    [Trait("Rule", "D2")]
    public async Task The_six_views_of_a_date_show_its_full_backup_and_what_was_added_and_rotated_that_day()
    {
        var (h, backup) = await DayOfChangesAsync();
        await using var _ = h;

        // May 1: the full is the first one (at enabling), before the day's changes.
        Assert.Equal(["orders", "payments"], await NamesAsync(h, backup.Id, May1, BackupDataType.FullyBackedUpKeys));
        Assert.Equal(["invoices"], await NamesAsync(h, backup.Id, May1, BackupDataType.IncrementallyBackedUpKeys));
        Assert.Equal(["orders"], await NamesAsync(h, backup.Id, May1, BackupDataType.RotatedKeys));
        Assert.Equal(["db-password"], await NamesAsync(h, backup.Id, May1, BackupDataType.FullyBackedUpSecrets));
        Assert.Equal(["api-token"], await NamesAsync(h, backup.Id, May1, BackupDataType.IncrementallyBackedUpSecrets));
        Assert.Equal(["db-password"], await NamesAsync(h, backup.Id, May1, BackupDataType.RotatedSecrets));

        // May 2: the 00:00 full holds the state at midnight; only may2-key was added that day.
        Assert.Equal(["invoices", "orders"], await NamesAsync(h, backup.Id, May2, BackupDataType.FullyBackedUpKeys));
        Assert.Equal(["may2-key"], await NamesAsync(h, backup.Id, May2, BackupDataType.IncrementallyBackedUpKeys));
        Assert.Empty(await NamesAsync(h, backup.Id, May2, BackupDataType.RotatedKeys));

        var page = await h.Client.GetDataPageAsync(EngineHarness.Owner, backup.Id, May2, BackupDataType.FullyBackedUpKeys);
        Assert.Equal(new TimeOnly(0, 0), TimeOnly.FromDateTime(page.FullPoint!.TakenAt.UtcDateTime));
        var orders = page.Items.Single(i => i.Name == "orders");
        Assert.Equal(2, orders.VersionCount);
        Assert.NotNull(orders.LastRotatedAt);
        Assert.Equal(EngineHarness.Owner, orders.CreatorAccount);
    }

    [Fact]
    [Trait("Rule", "D3")]
    public async Task Views_are_paged_and_filtered_by_name_and_refuse_dates_outside_the_window()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        for (var i = 0; i < 25; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"app-{i:D2}", EngineHarness.Owner);
        }

        await h.Kms.GenerateKeyAsync("kst-a", "other", EngineHarness.Owner);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;

        var seen = new List<string>();
        string? token = null;
        var pages = 0;
        do
        {
            var page = await h.Client.GetDataPageAsync(EngineHarness.Owner, backup.Id, May1, BackupDataType.FullyBackedUpKeys,
                new BackupDataQuery { PageSize = 10, NameContains = "APP-", ContinuationToken = token });
            Assert.True(page.Items.Count <= 10);
            seen.AddRange(page.Items.Select(i => i.Name));
            token = page.ContinuationToken;
            pages++;
        }
        while (token is not null);

        Assert.Equal(3, pages);
        Assert.Equal(Enumerable.Range(0, 25).Select(i => $"app-{i:D2}"), seen);

        // The automatic backup has 90 viewable days: 91 days later May 1 is out of reach; the day before enabling never was.
        h.Clock.Advance(TimeSpan.FromDays(91));
        var late = await Assert.ThrowsAsync<BackupException>(() => h.Client.GetDataPageAsync(EngineHarness.Owner, backup.Id, May1, BackupDataType.FullyBackedUpKeys));
        Assert.Equal(BackupErrorCode.DateNotReachable, late.Code);
        Assert.Contains("92 viewable days", late.Message, StringComparison.Ordinal);
        var before = await Assert.ThrowsAsync<BackupException>(() => h.Client.GetDataPageAsync(EngineHarness.Owner, backup.Id, May1.AddDays(-1), BackupDataType.FullyBackedUpKeys));
        Assert.Equal(BackupErrorCode.DateBeforeEnabled, before.Code);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => h.Client.GetDataPageAsync(EngineHarness.Owner, backup.Id, May1, BackupDataType.FullyBackedUpKeys, new BackupDataQuery { PageSize = 0 }));
    }

    [Fact]
    [Trait("Rule", "D4")]
    public async Task The_state_at_any_instant_is_the_latest_recovery_point_at_or_before_it()
    {
        var (h, backup) = await DayOfChangesAsync();
        await using var _ = h;

        // Just before the rotation was backed up, "orders" has one version; just after, two.
        var beforeRotation = await h.Client.GetStateAtAsync(EngineHarness.Owner, backup.Id, EngineHarness.Start.AddHours(2));
        var afterRotation = await h.Client.GetStateAtAsync(EngineHarness.Owner, backup.Id, EngineHarness.Start.AddHours(2).AddMinutes(5));
        Assert.Single(beforeRotation.Snapshot.FindKey("orders")!.Versions);
        Assert.Equal(2, afterRotation.Snapshot.FindKey("orders")!.Versions.Length);
        Assert.NotNull(beforeRotation.Snapshot.FindKey("payments"));
        Assert.Null(afterRotation.Snapshot.FindKey("payments"));
        Assert.True(beforeRotation.Point.TakenAt <= EngineHarness.Start.AddHours(2));

        // Between points, the latest point before counts; the last point equals the instance now.
        var between = await h.Client.GetStateAtAsync(EngineHarness.Owner, backup.Id, EngineHarness.Start.AddHours(2).AddMinutes(7));
        Assert.Equal(afterRotation.Point.Sequence, between.Point.Sequence);
        var latest = await h.Client.GetStateAtAsync(EngineHarness.Owner, backup.Id, h.Clock.GetUtcNow());
        var live = (await h.Kms.ReadSnapshotAsync("kst-a")).Snapshot;
        Assert.Equal(live.Keys.ToList(), latest.Snapshot.Keys.ToList());
        Assert.Equal(live.Secrets.ToList(), latest.Snapshot.Secrets.ToList());

        var none = await Assert.ThrowsAsync<BackupException>(() => h.Client.GetStateAtAsync(EngineHarness.Owner, backup.Id, EngineHarness.Start.AddSeconds(-1)));
        Assert.Equal(BackupErrorCode.NotFound, none.Code);
    }
}
