using KmsBackup.DevelopmentKms;
using KmsBackup.Tests.Engine;

namespace KmsBackup.Tests.Restore;

/// <summary>
/// Issue 17, item 3: a recovery drill restores a sample of a recovery point into an empty scratch instance, compares
/// what the instance then holds with the backup, deletes it again, and reports; production is never touched.
/// </summary>
[Trait("Issue", "17")]
public class RecoveryDrillTests
{
    private const string Scratch = "kst-scratch";
    private const string ScratchRegion = "cn-shanghai"; // names are unique per region: the drill restores the production names

    [Fact]
    public async Task A_drill_restores_a_sample_into_the_scratch_instance_finds_it_equal_to_the_backup_and_leaves_the_scratch_empty()
    {
        await using var h = await EngineHarness.CreateAsync();
        var backup = await BackUpAsync(h, keys: 40, secrets: 30);
        await h.CreateInstanceAsync(Scratch, region: ScratchRegion);

        var report = await h.Client.DrillAsync(new RecoveryDrillRequest
        {
            CallerAccount = EngineHarness.Owner, BackupId = backup.Id, ScratchInstanceId = Scratch, SampleSize = 8, Seed = 17, VerifyRepository = true,
        });

        Assert.True(report.Passed, string.Join("\n", report.Items));
        Assert.Equal(40, report.KeysInPoint);
        Assert.Equal(30, report.SecretsInPoint);
        Assert.Equal(8, report.Items.Count(i => i.Type == ItemType.Secret));
        Assert.InRange(report.Items.Count(i => i.Type == ItemType.Key), 8, 16); // the sample and the keys of the sampled secrets
        Assert.All(report.Items, i => Assert.Equal(RecoveryDrillOutcome.Matched, i.Outcome));
        Assert.True(report.ScratchCleared);
        Assert.True(report.Verification!.IsClean);
        var keyFile = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(h.Files, EngineHarness.KeyFile);
        Assert.Equal(keyFile.KeyId, report.KeyProviderId);
        var scratch = (await h.Kms.GetInstanceAsync(Scratch))!;
        Assert.Equal((0, 0), (scratch.KeyCount, scratch.SecretCount));

        // Production is as it was: every key and secret still there.
        var production = (await h.Kms.GetInstanceAsync("kst-prod"))!;
        Assert.Equal((40, 30), (production.KeyCount, production.SecretCount));

        // A seeded drill samples the same items again; another seed samples others.
        var again = await h.Client.DrillAsync(new RecoveryDrillRequest
        {
            CallerAccount = EngineHarness.Owner, BackupId = backup.Id, ScratchInstanceId = Scratch, SampleSize = 8, Seed = 17,
        });
        Assert.Equal(report.Items.Select(i => i.Name), again.Items.Select(i => i.Name));
        var other = await h.Client.DrillAsync(new RecoveryDrillRequest
        {
            CallerAccount = EngineHarness.Owner, BackupId = backup.Id, ScratchInstanceId = Scratch, SampleSize = 8, Seed = 18,
        });
        Assert.NotEqual(report.Items.Select(i => i.Name), other.Items.Select(i => i.Name));
        Assert.True(other.Passed);
    }

    [Fact]
    public async Task A_drill_that_restores_something_other_than_the_backup_reports_each_item_that_differs_and_fails()
    {
        await using var h = await EngineHarness.CreateAsync();
        var backup = await BackUpAsync(h, keys: 5, secrets: 0);
        await h.CreateInstanceAsync(Scratch, region: ScratchRegion);

        // A key management service whose restore writes damage key material: the drill must notice, not pass.
        using var drilling = await h.OpenAnotherClientAsync("drill", gateway: new DamagingGateway(h.Kms));
        var report = await drilling.DrillAsync(new RecoveryDrillRequest
        {
            CallerAccount = EngineHarness.Owner, BackupId = backup.Id, ScratchInstanceId = Scratch, SampleSize = 5,
        });

        Assert.False(report.Passed);
        Assert.Equal(5, report.Items.Count);
        Assert.All(report.Items, i =>
        {
            Assert.Equal(RecoveryDrillOutcome.Differs, i.Outcome);
            Assert.Contains("key material differ", i.Problem, StringComparison.Ordinal);
        });
        Assert.True(report.ScratchCleared);
    }

    [Fact]
    public async Task A_drill_refuses_the_backups_own_instance_and_an_instance_that_holds_items_and_writes_nothing()
    {
        await using var h = await EngineHarness.CreateAsync();
        var backup = await BackUpAsync(h, keys: 3, secrets: 1);
        await h.CreateInstanceAsync(Scratch, region: ScratchRegion);
        await h.Kms.GenerateKeyAsync(Scratch, "someone-elses", EngineHarness.Owner);
        var before = h.StoreFilesContent().Select(f => f.Path).Order(StringComparer.Ordinal).ToList();

        var own = await Assert.ThrowsAsync<BackupException>(() => h.Client.DrillAsync(new RecoveryDrillRequest
        {
            CallerAccount = EngineHarness.Owner, BackupId = backup.Id, ScratchInstanceId = "kst-prod",
        }));
        Assert.Equal(BackupErrorCode.DrillTargetNotScratch, own.Code);
        Assert.Contains("is the one the backup", own.Message, StringComparison.Ordinal);

        var busy = await Assert.ThrowsAsync<BackupException>(() => h.Client.DrillAsync(new RecoveryDrillRequest
        {
            CallerAccount = EngineHarness.Owner, BackupId = backup.Id, ScratchInstanceId = Scratch,
        }));
        Assert.Equal(BackupErrorCode.DrillTargetNotScratch, busy.Code);
        Assert.Contains("holds 1 key and 0 secrets", busy.Message, StringComparison.Ordinal);
        Assert.Contains("empty instance", busy.Refusal.Remedy, StringComparison.Ordinal);

        // Another account's backup is refused before anything is read; so is a scratch instance of another region's names.
        var stranger = await Assert.ThrowsAsync<BackupException>(() => h.Client.DrillAsync(new RecoveryDrillRequest
        {
            CallerAccount = "acct-stranger", BackupId = backup.Id, ScratchInstanceId = Scratch,
        }));
        Assert.True(stranger.Code == BackupErrorCode.AccessDenied || stranger.Code == BackupErrorCode.NotFound, stranger.Code.ToString());

        await h.CreateInstanceAsync("kst-same-region");
        var conflict = await Assert.ThrowsAsync<RestoreException>(() => h.Client.DrillAsync(new RecoveryDrillRequest
        {
            CallerAccount = EngineHarness.Owner, BackupId = backup.Id, ScratchInstanceId = "kst-same-region",
        }));
        Assert.True(conflict.RefusedByPlan);
        Assert.Equal(BackupErrorCode.NameConflict, conflict.Code);

        Assert.Equal(before, h.StoreFilesContent().Select(f => f.Path).Order(StringComparer.Ordinal).ToList());
        Assert.Equal(1, (await h.Kms.GetInstanceAsync(Scratch))!.KeyCount);
        Assert.Equal(0, (await h.Kms.GetInstanceAsync("kst-same-region"))!.KeyCount);
    }

    [Fact]
    public async Task A_drill_on_the_copy_in_a_second_store_opened_alone_with_its_own_key_passes()
    {
        await using var h = await EngineHarness.CreateAsync();
        var backup = await BackUpAsync(h, keys: 20, secrets: 10);
        await h.CreateInstanceAsync(Scratch, region: ScratchRegion);
        var options = new BackupClientOptions { TimeProvider = h.Clock, LeaseHolder = "copier", InstanceDiscoveryInterval = null };
        using (var copyKeys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(h.Files, "/dr/copy.key"))
        using (var copy = await BackupClient.OpenAsync(new KmsBackup.Storage.FileSystemBackupStore(h.Files, "/dr/store", h.Clock), copyKeys, h.Kms, null, options))
        {
            var copied = await h.Client.CopyToAsync(copy);
            Assert.True(copied.IsComplete);
        }

        // The primary store and its key are gone; the copy, with its own key, opens alone and passes a drill.
        h.Files.Directory.Delete(EngineHarness.StoreRoot, recursive: true);
        h.Files.File.Delete(EngineHarness.KeyFile);
        using var drKeys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(h.Files, "/dr/copy.key");
        using var dr = await BackupClient.OpenAsync(new KmsBackup.Storage.FileSystemBackupStore(h.Files, "/dr/store", h.Clock), drKeys, h.Kms, null, options);
        var report = await dr.DrillAsync(new RecoveryDrillRequest
        {
            CallerAccount = EngineHarness.Owner, BackupId = backup.Id, ScratchInstanceId = Scratch, SampleSize = 6, VerifyRepository = true,
        });

        Assert.True(report.Passed, string.Join("\n", report.Items));
        Assert.Equal(drKeys.KeyId, report.KeyProviderId);
        Assert.Equal((20, 10), (report.KeysInPoint, report.SecretsInPoint));
    }

    [Fact]
    public async Task A_drill_rejects_a_sample_size_out_of_range()
    {
        await using var h = await EngineHarness.CreateAsync();
        var request = new RecoveryDrillRequest { CallerAccount = EngineHarness.Owner, BackupId = "bk-1", ScratchInstanceId = Scratch, SampleSize = 0 };
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => h.Client.DrillAsync(request));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => h.Client.DrillAsync(request with { SampleSize = RecoveryDrillRequest.MaxSampleSize + 1 }));
    }

    /// <summary>An instance with keys and secrets (each secret under one of the keys), enabled and backed up.</summary>
    private static async Task<BackupDetails> BackUpAsync(EngineHarness h, int keys, int secrets)
    {
        await h.CreateInstanceAsync("kst-prod");
        for (var i = 0; i < keys; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-prod", $"key-{i:D3}", EngineHarness.Owner);
        }

        for (var i = 0; i < secrets; i++)
        {
            await h.Kms.StoreSecretAsync("kst-prod", $"secret-{i:D3}", $"key-{i % keys:D3}", System.Text.Encoding.UTF8.GetBytes($"value {i}"), EngineHarness.Owner);
        }

        return (await h.Client.OnInstanceEnabledAsync("kst-prod"))!;
    }

    /// <summary>Restores keys with their material's first byte flipped, as a broken restore path of a service would.</summary>
    private sealed class DamagingGateway(EmbeddedKeyManagementService inner) : InstanceGateway
    {
        public override Task<InstanceDescription?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken = default) => inner.GetInstanceAsync(instanceId, cancellationToken);

        public override IAsyncEnumerable<InstanceDescription> ListInstancesAsync(string? region = null, CancellationToken cancellationToken = default) => inner.ListInstancesAsync(region, cancellationToken);

        public override Task<SnapshotRead> ReadSnapshotAsync(string instanceId, CancellationToken cancellationToken = default) => inner.ReadSnapshotAsync(instanceId, cancellationToken);

        public override Task<IReadOnlyList<NameInUse>> FindNamesInUseAsync(string region, ItemType type, IReadOnlyCollection<string> names, CancellationToken cancellationToken = default) =>
            inner.FindNamesInUseAsync(region, type, names, cancellationToken);

        public override Task<IReadOnlySet<string>> FindKeyIdsAsync(string instanceId, IReadOnlyCollection<string> keyIds, CancellationToken cancellationToken = default) =>
            inner.FindKeyIdsAsync(instanceId, keyIds, cancellationToken);

        public override Task<bool> CreateKeyAsync(string instanceId, KeyRecord key, string operationId, CancellationToken cancellationToken = default)
        {
            var damaged = new KeyRecord(key.Id, key.Name, key.Spec, key.CreatorAccount, key.CreatedAt, key.Versions.Select(v =>
            {
                var material = v.Material!.Span.ToArray();
                material[0] ^= 0xFF;
                return v with { Material = SensitiveBytes.Own(material) };
            }))
            { Description = key.Description };
            return inner.CreateKeyAsync(instanceId, damaged, operationId, cancellationToken);
        }

        public override Task<bool> CreateSecretAsync(string instanceId, SecretRecord secret, string operationId, CancellationToken cancellationToken = default) =>
            inner.CreateSecretAsync(instanceId, secret, operationId, cancellationToken);

        public override Task<bool> DeleteRestoredItemAsync(string instanceId, ItemType type, string name, string operationId, CancellationToken cancellationToken = default) =>
            inner.DeleteRestoredItemAsync(instanceId, type, name, operationId, cancellationToken);
    }
}
