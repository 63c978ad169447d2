using System.Security.Cryptography;
using KmsBackup.DevelopmentKms;
using KmsBackup.Tests.Engine;

namespace KmsBackup.Tests.Hardware;

/// <summary>The engine with hardware instances and an HSM cluster gateway: H1, H2–H4 report, H5 image restore, H6 details, H7 dates and missing material, R3, D1.</summary>
public class HardwareEngineTests
{
    private static async Task<(EngineHarness H, FakeHsmClusterGateway Hsm)> CreateAsync()
    {
        var hsm = new FakeHsmClusterGateway();
        var h = await EngineHarness.CreateAsync(hsmClusters: hsm);
        return (h, hsm);
    }

    /// <summary>A hardware instance connected to cluster <c>cls-orig</c>, with a key whose material is in the cluster.</summary>
    private static async Task<(string KeyId, byte[] Material)> HardwareInstanceAsync(EngineHarness h, FakeHsmClusterGateway hsm, string instanceId = "kst-hw", string clusterId = "cls-orig", string keyName = "orders")
    {
        await h.CreateInstanceAsync(instanceId, InstanceKind.Hardware);
        hsm.Add(FakeHsmClusterGateway.NewCluster(clusterId) with { Backup = new HsmBackupPolicy(true, 90, TimeSpan.FromDays(1)) });
        await hsm.ConnectInstanceAsync(clusterId, instanceId);
        var key = await h.Kms.GenerateKeyAsync(instanceId, keyName, EngineHarness.Owner);
        var material = RandomNumberGenerator.GetBytes(32);
        hsm.PutKey(clusterId, key.Id, material);
        return (key.Id, material);
    }

    [Fact]
    [Trait("Rule", "H6")]
    public async Task A_hardware_backup_shows_its_cluster_ID_and_primary_HSM()
    {
        var (h, hsm) = await CreateAsync();
        await using var _ = h;
        await HardwareInstanceAsync(h, hsm);
        await h.CreateInstanceAsync("kst-sw");
        var hard = (await h.Client.OnInstanceEnabledAsync("kst-hw"))!;
        var soft = (await h.Client.OnInstanceEnabledAsync("kst-sw"))!;

        var details = await h.Client.GetBackupAsync(EngineHarness.Owner, hard.Id);
        Assert.Equal(new HsmClusterReference("cls-orig", "cls-orig-hsm-a"), details.Hsm);
        Assert.Null((await h.Client.GetBackupAsync(EngineHarness.Owner, soft.Id)).Hsm);
        var listed = await h.Client.ListBackupsAsync(EngineHarness.Owner).ToListAsync();
        Assert.Equal("cls-orig", listed.Single(b => b.Id == hard.Id).Hsm!.ClusterId);

        // An unreachable HSM leaves the details readable, without the HSM info.
        hsm.Failure = new BackupException(new Refusal(BackupErrorCode.HsmTokenNotFound, "token 't'", "The HSM token 't' is not present.", "Reconnect it."));
        Assert.Null((await h.Client.GetBackupAsync(EngineHarness.Owner, hard.Id)).Hsm);
    }

    [Fact]
    [Trait("Rule", "H1")]
    public async Task A_hardware_instance_older_than_3_9_1_gets_no_backup()
    {
        var (h, hsm) = await CreateAsync();
        await using var _ = h;
        await h.Kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-old", InstanceKind.Hardware, EngineHarness.Region, EngineHarness.Owner)
        {
            CreatedAt = h.Clock.GetUtcNow().AddDays(-1),
            ImageVersion = new Version(3, 9, 0),
        });

        Assert.Null(await h.Client.OnInstanceEnabledAsync("kst-old"));
        var backup = await h.Client.CreateDefaultBackupAsync(EngineHarness.Owner);
        var e = await Assert.ThrowsAsync<BackupException>(() => h.Client.EnableBackupAsync(EngineHarness.Owner, backup.Id, "kst-old", InstanceKind.Hardware));
        Assert.Equal(BackupErrorCode.ImageVersionTooOld, e.Code);
        Assert.Contains("kst-old", e.Message, StringComparison.Ordinal);

        await h.Kms.UpgradeInstanceAsync("kst-old", 1000, 1000, new Version(3, 9, 1));
        var enabled = await h.Client.EnableBackupAsync(EngineHarness.Owner, backup.Id, "kst-old", InstanceKind.Hardware);
        Assert.Equal(BackupStatus.Enabled, enabled.Status);
    }

    [Fact]
    [Trait("Rule", "H2")]
    [Trait("Rule", "H3")]
    [Trait("Rule", "H4")]
    public async Task The_protection_report_warns_of_a_disabled_HSM_backup_a_wrong_offset_and_too_few_images()
    {
        var (h, hsm) = await CreateAsync();
        await using var _ = h;
        await HardwareInstanceAsync(h, hsm);
        var before = await h.Client.GetProtectionAsync(EngineHarness.Owner, "kst-hw");
        Assert.Equal(ProtectionLevel.KeyMaterialOnly, before.Level);

        await h.Client.OnInstanceEnabledAsync("kst-hw");
        Assert.Equal(ProtectionLevel.Full, (await h.Client.GetProtectionAsync(EngineHarness.Owner, "kst-hw")).Level);
        Assert.Empty((await h.Client.GetProtectionAsync(EngineHarness.Owner, "kst-hw")).Warnings);

        hsm.Update("cls-orig", c => c with { Backup = HsmBackupPolicy.Disabled });
        var metadataOnly = await h.Client.GetProtectionAsync(EngineHarness.Owner, "kst-hw");
        Assert.Equal(ProtectionLevel.MetadataOnly, metadataOnly.Level);
        Assert.StartsWith("Metadata only: HSM backup disabled.", Assert.Single(metadataOnly.Warnings).Message, StringComparison.Ordinal);

        hsm.Update("cls-orig", c => c with { Backup = new HsmBackupPolicy(true, 30, TimeSpan.FromHours(12)) });
        var misconfigured = await h.Client.GetProtectionAsync(EngineHarness.Owner, "kst-hw");
        Assert.Equal([BackupErrorCode.HsmBackupOffset, BackupErrorCode.MirrorImagesMismatch], misconfigured.Warnings.Select(w => w.Code));
        Assert.Contains("90", misconfigured.Warnings[1].Remedy, StringComparison.Ordinal);

        await Assert.ThrowsAsync<BackupException>(() => h.Client.GetProtectionAsync("acct-stranger", "kst-hw"));
    }

    [Fact]
    [Trait("Rule", "H7")]
    public async Task Jointly_restorable_dates_are_the_metadata_dates_whose_next_day_has_an_HSM_image()
    {
        var (h, hsm) = await CreateAsync();
        await using var _ = h;
        await HardwareInstanceAsync(h, hsm);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-hw"))!; // 2026-05-01
        await h.RunUntilAsync(new DateTimeOffset(2026, 5, 5, 3, 0, 0, TimeSpan.Zero), TimeSpan.FromHours(6), async now =>
        {
            // The HSM backup runs one day after the KMS backup: an image at 00:30 each day from 05-02.
            if (now.Hour == 3)
            {
                hsm.TakeImage("cls-orig", $"img-{now:MMdd}", new DateTimeOffset(now.Date.AddMinutes(30), TimeSpan.Zero));
            }

            await Task.CompletedTask;
        });

        var dates = await h.Client.GetJointlyRestorableDatesAsync(EngineHarness.Owner, backup.Id);
        Assert.Equal([new DateOnly(2026, 5, 1), new DateOnly(2026, 5, 2), new DateOnly(2026, 5, 3), new DateOnly(2026, 5, 4)], dates);
    }

    [Fact]
    [Trait("Rule", "H5")]
    public async Task The_most_recent_Auto_Create_image_is_restored_only_into_a_fresh_cluster_in_the_region()
    {
        var (h, hsm) = await CreateAsync();
        await using var _ = h;
        var (keyId, _) = await HardwareInstanceAsync(h, hsm);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-hw"))!;
        var t = h.Clock.GetUtcNow();
        hsm.TakeImage("cls-orig", "img-old", t.AddHours(1));
        hsm.TakeImage("cls-orig", "img-new", t.AddHours(2));
        hsm.TakeImage("cls-orig", "img-manual", t.AddHours(3), HsmBackupImageType.Manual);

        hsm.Add(FakeHsmClusterGateway.NewCluster("cls-enabled") with { IsEnabled = true });
        hsm.Add(FakeHsmClusterGateway.NewCluster("cls-far", "cn-beijing"));
        hsm.Add(FakeHsmClusterGateway.NewCluster("cls-one-zone") with { Hsms = [new HsmInfo("x", "z1"), new HsmInfo("y", "z1")] });
        hsm.Add(FakeHsmClusterGateway.NewCluster("cls-used"));
        hsm.PutKey("cls-used", "other-key", new byte[32]);
        foreach (var (cluster, code) in new[]
                 {
                     ("cls-enabled", BackupErrorCode.ClusterEnabled), ("cls-far", BackupErrorCode.RegionMismatch),
                     ("cls-one-zone", BackupErrorCode.ClusterTooFewHsms), ("cls-used", BackupErrorCode.ClusterInUse),
                     ("cls-missing", BackupErrorCode.NotFound),
                 })
        {
            var e = await Assert.ThrowsAsync<BackupException>(() => h.Client.RestoreHsmImageAsync(EngineHarness.Owner, backup.Id, cluster));
            Assert.Equal(code, e.Code);
            Assert.Contains(cluster, e.Message, StringComparison.Ordinal);
        }

        hsm.Add(FakeHsmClusterGateway.NewCluster("cls-new"));
        var image = await h.Client.RestoreHsmImageAsync(EngineHarness.Owner, backup.Id, "cls-new");
        Assert.Equal("img-new", image.ImageId);
        Assert.True(await hsm.IsKeyMaterialPresentAsync("cls-new", keyId));
    }

    [Fact]
    [Trait("Rule", "H5")]
    [Trait("Rule", "R2")]
    public async Task Another_accounts_HSM_cluster_is_refused_as_if_it_did_not_exist_and_never_receives_an_image()
    {
        var (h, hsm) = await CreateAsync();
        await using var _ = h;
        var (keyId, _) = await HardwareInstanceAsync(h, hsm);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-hw"))!;
        hsm.TakeImage("cls-orig", "img-1", h.Clock.GetUtcNow().AddHours(1));

        // The attacker owns a hardware backup and aims its image at a cluster ID of another account: first before it exists...
        var missingCheck = Assert.Single(await h.Client.CheckHsmRestoreTargetAsync(EngineHarness.Owner, "cls-victim", EngineHarness.Region));
        var missingRestore = (await Assert.ThrowsAsync<BackupException>(() => h.Client.RestoreHsmImageAsync(EngineHarness.Owner, backup.Id, "cls-victim"))).Refusal;

        // ...then once the victim has bought it: fresh, in the region, two zones, a valid H5 target for its owner.
        hsm.Add(FakeHsmClusterGateway.NewCluster("cls-victim", owner: "acct-victim"));
        hsm.Calls.Clear();
        var check = Assert.Single(await h.Client.CheckHsmRestoreTargetAsync(EngineHarness.Owner, "cls-victim", EngineHarness.Region));
        var restore = (await Assert.ThrowsAsync<BackupException>(() => h.Client.RestoreHsmImageAsync(EngineHarness.Owner, backup.Id, "cls-victim"))).Refusal;

        foreach (var (absent, refusal) in new[] { (missingCheck, check), (missingRestore, restore), (missingCheck, restore) })
        {
            Assert.Equal(absent.Code, refusal.Code);
            Assert.Equal(absent.Item, refusal.Item);
            Assert.Equal(absent.Message, refusal.Message);
            Assert.Equal(absent.Remedy, refusal.Remedy);
        }

        Assert.Equal(BackupErrorCode.NotFound, check.Code);
        Assert.DoesNotContain(hsm.Calls, c => c.StartsWith("restore ", StringComparison.Ordinal));
        Assert.False(await hsm.IsKeyMaterialPresentAsync("cls-victim", keyId));
        Assert.False((await hsm.GetClusterAsync("cls-victim"))!.IsInUse);

        // A cluster of the victim's that breaks every rule of H5 is refused the same way: its region, zones and state are not told.
        hsm.Add(FakeHsmClusterGateway.NewCluster("cls-victim-far", "eu-victim-1", owner: "acct-victim") with { IsEnabled = true, Hsms = [new HsmInfo("x", "z1")] });
        var far = Assert.Single(await h.Client.CheckHsmRestoreTargetAsync(EngineHarness.Owner, "cls-victim-far", EngineHarness.Region));
        Assert.Equal(BackupErrorCode.NotFound, far.Code);
        Assert.Equal(missingCheck.Message.Replace("cls-victim", "cls-victim-far", StringComparison.Ordinal), far.Message);

        // A cluster assigned to no account is nobody's target; the owner's own fresh cluster takes the image.
        hsm.Add(FakeHsmClusterGateway.NewCluster("cls-unassigned", owner: null));
        Assert.Equal(BackupErrorCode.NotFound, Assert.Single(await h.Client.CheckHsmRestoreTargetAsync(EngineHarness.Owner, "cls-unassigned", EngineHarness.Region)).Code);
        hsm.Add(FakeHsmClusterGateway.NewCluster("cls-mine"));
        Assert.Empty(await h.Client.CheckHsmRestoreTargetAsync(EngineHarness.Owner, "cls-mine", EngineHarness.Region));
        Assert.Equal("img-1", (await h.Client.RestoreHsmImageAsync(EngineHarness.Owner, backup.Id, "cls-mine")).ImageId);
        Assert.True(await hsm.IsKeyMaterialPresentAsync("cls-mine", keyId));
    }

    [Fact]
    [Trait("Rule", "H7")]
    [Trait("Rule", "R2")]
    public async Task Another_accounts_hardware_instance_is_refused_as_if_it_did_not_exist_and_its_cluster_is_never_asked()
    {
        var (h, hsm) = await CreateAsync();
        await using var _ = h;
        await HardwareInstanceAsync(h, hsm);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-hw"))!;
        var at = h.Clock.GetUtcNow();
        var request = new RestoreRequest
        {
            CallerAccount = EngineHarness.Owner,
            BackupId = backup.Id,
            TargetInstanceId = "kst-victim-hw",
            BackupDate = DateOnly.FromDateTime(at.UtcDateTime),
            AllItems = true,
        };
        var missingCheck = (await Assert.ThrowsAsync<BackupException>(() => h.Client.CheckHardwareRestoreAsync(EngineHarness.Owner, backup.Id, at, "kst-victim-hw"))).Refusal;
        var missingPlan = Assert.Single((await h.Client.PlanRestoreAsync(request)).AllRefusals);

        // The victim's hardware instance, on a cluster of its own that holds keys.
        await h.CreateInstanceAsync("kst-victim-hw", InstanceKind.Hardware, owner: "acct-victim");
        hsm.Add(FakeHsmClusterGateway.NewCluster("cls-victim", owner: "acct-victim"));
        await hsm.ConnectInstanceAsync("cls-victim", "kst-victim-hw");
        hsm.PutKey("cls-victim", "victim-key-id", new byte[32]);
        hsm.Calls.Clear();

        var check = (await Assert.ThrowsAsync<BackupException>(() => h.Client.CheckHardwareRestoreAsync(EngineHarness.Owner, backup.Id, at, "kst-victim-hw"))).Refusal;
        var plan = Assert.Single((await h.Client.PlanRestoreAsync(request)).AllRefusals);
        foreach (var (absent, refusal) in new[] { (missingCheck, check), (missingPlan, plan) })
        {
            Assert.Equal(absent.Code, refusal.Code);
            Assert.Equal(absent.Item, refusal.Item);
            Assert.Equal(absent.Message, refusal.Message);
            Assert.Equal(absent.Remedy, refusal.Remedy);
            Assert.Equal(BackupErrorCode.NotFound, refusal.Code);
            Assert.DoesNotContain("cls-victim", refusal.Message, StringComparison.Ordinal);
        }

        // Neither which cluster serves the victim's instance nor which key IDs that cluster holds was asked.
        Assert.Empty(hsm.Calls);
    }

    [Fact]
    [Trait("Rule", "R3")]
    [Trait("Rule", "H7")]
    public async Task A_hardware_restore_to_the_original_instance_is_refused_and_missing_material_is_flagged_before_restore()
    {
        var (h, hsm) = await CreateAsync();
        await using var _ = h;
        await HardwareInstanceAsync(h, hsm);
        var late = await h.Kms.GenerateKeyAsync("kst-hw", "late-key", EngineHarness.Owner);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-hw"))!;
        hsm.TakeImage("cls-orig", "img-1", h.Clock.GetUtcNow()); // taken before late-key's material reached the HSM
        hsm.PutKey("cls-orig", late.Id, new byte[32]);
        var at = h.Clock.GetUtcNow();

        var original = Assert.Single(await h.Client.CheckHardwareRestoreAsync(EngineHarness.Owner, backup.Id, at, "kst-hw"));
        Assert.Equal(BackupErrorCode.RestoreTargetNotAllowed, original.Code);

        await h.CreateInstanceAsync("kst-sw");
        Assert.Equal(BackupErrorCode.InstanceKindMismatch, Assert.Single(await h.Client.CheckHardwareRestoreAsync(EngineHarness.Owner, backup.Id, at, "kst-sw")).Code);

        await h.CreateInstanceAsync("kst-hw-new", InstanceKind.Hardware);
        Assert.Equal(BackupErrorCode.NotFound, Assert.Single(await h.Client.CheckHardwareRestoreAsync(EngineHarness.Owner, backup.Id, at, "kst-hw-new")).Code);

        hsm.Add(FakeHsmClusterGateway.NewCluster("cls-new"));
        await h.Client.RestoreHsmImageAsync(EngineHarness.Owner, backup.Id, "cls-new");
        await hsm.ConnectInstanceAsync("cls-new", "kst-hw-new");
        var missing = Assert.Single(await h.Client.CheckHardwareRestoreAsync(EngineHarness.Owner, backup.Id, at, "kst-hw-new"));
        Assert.Equal(BackupErrorCode.KeyMaterialMissing, missing.Code);
        Assert.Equal("key 'late-key'", missing.Item);

        // The restore plan itself flags the key, so RestoreAsync refuses the batch; without that key it restores.
        // (The original instance is lost first: names are unique in a region.)
        await h.Kms.ReleaseInstanceAsync("kst-hw");
        var request = new RestoreRequest
        {
            CallerAccount = EngineHarness.Owner,
            BackupId = backup.Id,
            TargetInstanceId = "kst-hw-new",
            BackupDate = DateOnly.FromDateTime(at.UtcDateTime),
            AllItems = true,
        };
        var plan = await h.Client.PlanRestoreAsync(request);
        var flagged = Assert.Single(plan.Items, i => i.Outcome == RestoreItemOutcome.Refused);
        Assert.Equal("late-key", flagged.Name);
        Assert.Equal(BackupErrorCode.KeyMaterialMissing, Assert.Single(flagged.Refusals).Code);
        Assert.Equal(BackupErrorCode.KeyMaterialMissing, (await Assert.ThrowsAsync<RestoreException>(() => h.Client.RestoreAsync(request))).Code);
        var restored = await h.Client.RestoreAsync(request with { AllItems = false, KeyNames = ["orders"] });
        Assert.Equal(["orders"], restored.Restored.Select(i => i.Name).ToList());
    }

    [Fact]
    [Trait("Rule", "D1")]
    public async Task No_key_material_of_a_hardware_key_reaches_the_store()
    {
        var (h, hsm) = await CreateAsync();
        await using var _ = h;
        var (_, material) = await HardwareInstanceAsync(h, hsm);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-hw"))!;
        await h.RunUntilAsync(EngineHarness.Start.AddHours(1), TimeSpan.FromMinutes(5));

        foreach (var (path, bytes) in h.StoreFilesContent())
        {
            Assert.False(ByteSearch.Contains(bytes, material), $"hardware key material found in {path}");
        }

        var (_, snapshot) = await h.Client.GetStateAtAsync(EngineHarness.Owner, backup.Id, h.Clock.GetUtcNow());
        Assert.All(snapshot.Keys, k => Assert.False(k.HasMaterial));
    }

    [Fact]
    [Trait("Rule", "D1")]
    public async Task A_gateway_that_hands_over_a_hardware_key_material_is_refused_and_nothing_is_stored()
    {
        var hsm = new FakeHsmClusterGateway();
        await using var inner = await EngineHarness.CreateAsync(hsmClusters: hsm);
        var (_, material) = await HardwareInstanceAsync(inner, hsm);
        var leaky = new LeakyGateway(inner.Kms, material);
        var store = new global::KmsBackup.Storage.FileSystemBackupStore(inner.Files, "/leaky-store", inner.Clock);
        var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(inner.Files, "/keys/leaky.key");
        using var client = await BackupClient.OpenAsync(store, keys, leaky, hsmClusters: null, new BackupClientOptions { TimeProvider = inner.Clock, LeaseHolder = "t" });

        var e = await Assert.ThrowsAsync<BackupException>(() => client.OnInstanceEnabledAsync("kst-hw"));
        Assert.Equal(BackupErrorCode.IntegrityViolation, e.Code);
        Assert.DoesNotContain(Convert.ToHexString(material), e.Message, StringComparison.OrdinalIgnoreCase);
        foreach (var path in inner.Files.AllFiles.Where(p => p.StartsWith("/leaky-store", StringComparison.Ordinal)))
        {
            Assert.False(ByteSearch.Contains(inner.Files.File.ReadAllBytes(path), material), $"hardware key material found in {path}");
        }
    }

    /// <summary>A broken gateway that returns key material for a hardware instance's keys.</summary>
    private sealed class LeakyGateway(EmbeddedKeyManagementService inner, byte[] material) : InstanceGateway
    {
        public override Task<InstanceDescription?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken = default) => inner.GetInstanceAsync(instanceId, cancellationToken);

        public override IAsyncEnumerable<InstanceDescription> ListInstancesAsync(string? region = null, CancellationToken cancellationToken = default) => inner.ListInstancesAsync(region, cancellationToken);

        public override async Task<SnapshotRead> ReadSnapshotAsync(string instanceId, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadSnapshotAsync(instanceId, cancellationToken);
            var keys = read.Snapshot.Keys.Select(k => new KeyRecord(k.Id, k.Name, k.Spec, k.CreatorAccount, k.CreatedAt,
                k.Versions.Select(v => v with { Material = SensitiveBytes.Copy(material) }))).ToList();
            return new SnapshotRead(InstanceSnapshot.Create(read.Snapshot.Source with { Kind = InstanceKind.Software }, read.Snapshot.TakenAt, keys, read.Snapshot.Secrets), null);
        }

        public override Task<IReadOnlyList<NameInUse>> FindNamesInUseAsync(string region, ItemType type, IReadOnlyCollection<string> names, CancellationToken cancellationToken = default) => inner.FindNamesInUseAsync(region, type, names, cancellationToken);

        public override Task<bool> CreateKeyAsync(string instanceId, KeyRecord key, string operationId, CancellationToken cancellationToken = default) => inner.CreateKeyAsync(instanceId, key, operationId, cancellationToken);

        public override Task<bool> CreateSecretAsync(string instanceId, SecretRecord secret, string operationId, CancellationToken cancellationToken = default) => inner.CreateSecretAsync(instanceId, secret, operationId, cancellationToken);

        public override Task<bool> DeleteRestoredItemAsync(string instanceId, ItemType type, string name, string operationId, CancellationToken cancellationToken = default) => inner.DeleteRestoredItemAsync(instanceId, type, name, operationId, cancellationToken);
    }
}
