namespace KmsBackup.Tests.Engine;

/// <summary>Lifecycle operations through the engine: ownership (R2), reset (L5), expiry and renewal (L4), retention (W5).</summary>
public class EngineLifecycleTests
{
    [Fact]
    [Trait("Rule", "R2")]
    public async Task Only_the_owner_may_enable_view_or_change_a_backup()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.CreateInstanceAsync("kst-theirs", owner: "acct-other");
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;
        var mine = await h.Client.CreateDefaultBackupAsync(EngineHarness.Owner);

        var view = await Assert.ThrowsAsync<BackupException>(() => h.Client.GetDataPageAsync("acct-other", backup.Id, new DateOnly(2026, 5, 1), BackupDataType.FullyBackedUpKeys));
        Assert.Equal(BackupErrorCode.AccessDenied, view.Code);
        Assert.Contains("acct-other", view.Message, StringComparison.Ordinal);
        Assert.Equal(BackupErrorCode.AccessDenied, (await Assert.ThrowsAsync<BackupException>(() => h.Client.ResetBackupAsync("acct-other", mine.Id))).Code);
        Assert.Equal(BackupErrorCode.AccessDenied, (await Assert.ThrowsAsync<BackupException>(() => h.Client.GetStateAtAsync("acct-other", backup.Id, h.Clock.GetUtcNow()))).Code);

        // Binding my backup to someone else's instance is refused too.
        var foreign = await Assert.ThrowsAsync<BackupException>(() => h.Client.EnableBackupAsync(EngineHarness.Owner, mine.Id, "kst-theirs", InstanceKind.Software));
        Assert.Equal(BackupErrorCode.AccessDenied, foreign.Code);
        Assert.Empty(await ToListAsync(h.Client.ListBackupsAsync("acct-other")));
        Assert.Equal(2, (await ToListAsync(h.Client.ListBackupsAsync(EngineHarness.Owner))).Count);
    }

    [Fact]
    [Trait("Rule", "L5")]
    public async Task Reset_deletes_every_recovery_point_and_leaves_the_backup_disabled()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        var backup = await h.Client.CreateDefaultBackupAsync(EngineHarness.Owner);
        await h.Client.EnableBackupAsync(EngineHarness.Owner, backup.Id, "kst-a", InstanceKind.Software, "prod");
        await h.RunUntilAsync(EngineHarness.Start.AddHours(1), TimeSpan.FromMinutes(5));

        var reset = await h.Client.ResetBackupAsync(EngineHarness.Owner, backup.Id);

        Assert.Equal(BackupStatus.Disabled, reset.Status);
        Assert.Null(reset.Instance);
        Assert.DoesNotContain(h.Files.AllFiles, p => p.Contains($"/points/{backup.Id}/", StringComparison.Ordinal));
        var view = await Assert.ThrowsAsync<BackupException>(() => h.Client.GetDataPageAsync(EngineHarness.Owner, backup.Id, new DateOnly(2026, 5, 1), BackupDataType.FullyBackedUpKeys));
        Assert.Equal(BackupErrorCode.BackupNotEnabled, view.Code);
        Assert.Empty(await h.RunUntilAsync(EngineHarness.Start.AddHours(2), TimeSpan.FromMinutes(5)));
    }

    [Fact]
    [Trait("Rule", "L4")]
    public async Task An_expired_backup_refuses_views_until_renewed_and_is_released_with_its_data_after_15_days()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        var paid = (await h.Client.PurchaseBackupsAsync(EngineHarness.Owner, new PurchaseOrder(EngineHarness.Region, 30, PurchaseTerm.FromMonths(1))))[0];
        await h.Client.EnableBackupAsync(EngineHarness.Owner, paid.Id, "kst-a", InstanceKind.Software);

        // A month passes with no scheduler running: longer than the store lets a clock jump without holding
        // deletions, so the operator confirms the clock when the host comes back.
        h.Clock.SetUtcNow(EngineHarness.Start.AddMonths(1).AddDays(1));
        Assert.True((await h.Client.GetStoreClockAsync()).DeletionsHeld);
        await h.Client.ConfirmClockAsync();
        var expired = await Assert.ThrowsAsync<BackupException>(() => h.Client.GetDataPageAsync(EngineHarness.Owner, paid.Id, new DateOnly(2026, 5, 20), BackupDataType.FullyBackedUpKeys));
        Assert.Equal(BackupErrorCode.BackupExpired, expired.Code);

        var renewed = await h.Client.RenewBackupAsync(EngineHarness.Owner, paid.Id, PurchaseTerm.FromMonths(1));
        Assert.Equal(BackupStatus.Enabled, renewed.Status);
        Assert.Single((await h.Client.RunDueBackupsAsync()).ThrowIfAnyFailed()); // the catch-up full after the expired days

        // The scheduler keeps ticking: 15 days after expiry its run releases the backup and deletes its data.
        await h.RunUntilAsync(renewed.ExpiresAt!.Value.AddDays(15).AddMinutes(-1), TimeSpan.FromHours(6));
        Assert.Contains(h.Files.AllFiles, p => p.Contains($"/points/{paid.Id}/", StringComparison.Ordinal));
        await h.RunUntilAsync(renewed.ExpiresAt!.Value.AddDays(15), TimeSpan.FromHours(6));
        var released = await h.Client.GetBackupAsync(EngineHarness.Owner, paid.Id);
        Assert.Equal(BackupStatus.Released, released.Status);
        Assert.DoesNotContain(h.Files.AllFiles, p => p.Contains($"/points/{paid.Id}/", StringComparison.Ordinal));
        var renewLate = await Assert.ThrowsAsync<BackupException>(() => h.Client.RenewBackupAsync(EngineHarness.Owner, paid.Id, PurchaseTerm.FromMonths(1)));
        Assert.Equal(BackupErrorCode.BackupReleased, renewLate.Code);
    }

    [Fact]
    [Trait("Rule", "W5")]
    public async Task Prune_deletes_recovery_points_past_retention_and_then_the_packs_only_they_used()
    {
        await using var h = await EngineHarness.CreateAsync(o => o.PruneGracePeriod = TimeSpan.FromHours(1));
        await h.CreateInstanceAsync("kst-a");
        var backup = await h.Client.CreateDefaultBackupAsync(EngineHarness.Owner);
        await h.Client.EnableBackupAsync(EngineHarness.Owner, backup.Id, "kst-a", InstanceKind.Software);
        var day = 0;
        await h.RunUntilAsync(EngineHarness.Start.AddDays(10), TimeSpan.FromHours(6), async now =>
        {
            if (now.Hour == 3)
            {
                await h.Kms.GenerateKeyAsync("kst-a", $"day-{day++:D2}", EngineHarness.Owner); // each day changes something
            }
        });

        var first = await h.Client.PruneAsync();
        Assert.True(first.RecoveryPointsDeleted > 0);
        var dates = h.Files.AllFiles.Where(p => p.Contains($"/points/{backup.Id}/", StringComparison.Ordinal))
            .Select(p => DateOnly.Parse(p.Split('/')[^2], System.Globalization.CultureInfo.InvariantCulture)).Distinct().Order().ToList();
        Assert.Equal(7, dates.Count); // a default backup keeps 7 days
        Assert.Equal(new DateOnly(2026, 5, 11).AddDays(-6), dates[0]);

        // Packs are deleted in a second prune, after the grace period, and nothing still referenced goes.
        Assert.Equal(0, first.PacksDeleted);
        Assert.True(first.PacksMarked > 0, "older versions of changed leaves should leave some packs unreferenced");
        h.Clock.Advance(TimeSpan.FromHours(2));
        var second = await h.Client.PruneAsync();
        Assert.Equal(first.PacksMarked, second.PacksDeleted);
        var verification = await h.Client.VerifyAsync();
        Assert.True(verification.IsClean, string.Join("; ", verification.Problems));
        foreach (var date in dates)
        {
            await foreach (var _ in h.Client.GetDataAsync(EngineHarness.Owner, backup.Id, date, BackupDataType.FullyBackedUpKeys))
            {
            }
        }
    }

    private static async Task<List<T>> ToListAsync<T>(IAsyncEnumerable<T> items)
    {
        var list = new List<T>();
        await foreach (var item in items)
        {
            list.Add(item);
        }

        return list;
    }
}
