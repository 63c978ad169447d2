using KmsBackup.DevelopmentKms;

using static KmsBackup.Tests.Instances.EmbeddedServiceHarness;

namespace KmsBackup.Tests.Instances;

public sealed class EmbeddedKeyTests : IDisposable
{
    private readonly EmbeddedServiceHarness _h = new();

    private EmbeddedKeyManagementService Kms => _h.Service;

    public void Dispose() => _h.Dispose();

    [Fact]
    public async Task A_software_key_has_256_bits_of_material_its_spec_creator_and_description()
    {
        await _h.CreateAsync("kst-1");

        var key = await Kms.GenerateKeyAsync("kst-1", "orders", Owner, "for orders");

        Assert.StartsWith("key-", key.Id, StringComparison.Ordinal);
        Assert.Equal("orders", key.Name);
        Assert.Equal(EmbeddedKeyManagementService.KeySpec, key.Spec);
        Assert.Equal(Owner, key.CreatorAccount);
        Assert.Equal("for orders", key.Description);
        Assert.Equal(Start, key.CreatedAt);
        var version = Assert.Single(key.Versions);
        Assert.Equal(32, version.Material!.Length);
        Assert.Null(key.LastRotatedAt);
        Assert.Equal(key, await Kms.GetKeyAsync("kst-1", "orders"));
    }

    [Fact]
    public async Task Two_keys_get_different_material_and_ids()
    {
        await _h.CreateAsync("kst-1");
        var a = await Kms.GenerateKeyAsync("kst-1", "a", Owner);
        var b = await Kms.GenerateKeyAsync("kst-1", "b", Owner);

        Assert.NotEqual(a.Id, b.Id);
        Assert.NotEqual(a.CurrentVersion.Material, b.CurrentVersion.Material);
    }

    [Fact]
    public async Task Rotation_adds_a_version_with_new_material_and_old_ciphertexts_still_decrypt()
    {
        await _h.CreateAsync("kst-1");
        var original = await Kms.GenerateKeyAsync("kst-1", "orders", Owner);
        var before = await Kms.EncryptAsync("kst-1", "orders", Utf8("before rotation"));
        _h.Time.Advance(TimeSpan.FromDays(30));

        var rotated = await Kms.RotateKeyAsync("kst-1", "orders");
        var after = await Kms.EncryptAsync("kst-1", "orders", Utf8("after rotation"));

        Assert.Equal(2, rotated.Versions.Length);
        Assert.Equal(original.Versions[0], rotated.Versions[0]);
        Assert.NotEqual(rotated.Versions[0].Material, rotated.Versions[1].Material);
        Assert.Equal(Start.AddDays(30), rotated.LastRotatedAt);
        Assert.Equal(original.Id, rotated.Id);
        Assert.Equal("before rotation", Text(await Kms.DecryptAsync("kst-1", before)));
        Assert.Equal("after rotation", Text(await Kms.DecryptAsync("kst-1", after)));
    }

    [Fact]
    public async Task An_altered_ciphertext_is_refused_as_an_integrity_violation()
    {
        await _h.CreateAsync("kst-1");
        await Kms.GenerateKeyAsync("kst-1", "orders", Owner);
        var ciphertext = await Kms.EncryptAsync("kst-1", "orders", Utf8("payload"));

        ciphertext[^1] ^= 1;
        var altered = await Assert.ThrowsAsync<BackupException>(() => Kms.DecryptAsync("kst-1", ciphertext));
        var garbage = await Assert.ThrowsAsync<BackupException>(() => Kms.DecryptAsync("kst-1", new byte[] { 9, 9, 9 }));

        Assert.Equal(BackupErrorCode.IntegrityViolation, altered.Code);
        Assert.Equal(BackupErrorCode.IntegrityViolation, garbage.Code);
    }

    [Fact]
    public async Task Deleting_a_key_removes_it_and_its_ciphertexts_no_longer_decrypt_here()
    {
        await _h.CreateAsync("kst-1");
        await Kms.GenerateKeyAsync("kst-1", "orders", Owner);
        var ciphertext = await Kms.EncryptAsync("kst-1", "orders", Utf8("payload"));

        await Kms.DeleteKeyAsync("kst-1", "orders");

        Assert.Null(await Kms.GetKeyAsync("kst-1", "orders"));
        var missing = await Assert.ThrowsAsync<BackupException>(() => Kms.DecryptAsync("kst-1", ciphertext));
        Assert.Equal(BackupErrorCode.EncryptionKeyMissing, missing.Code);
        var again = await Assert.ThrowsAsync<BackupException>(() => Kms.DeleteKeyAsync("kst-1", "orders"));
        Assert.Equal(BackupErrorCode.NotFound, again.Code);
        Assert.Contains("orders", again.Message, StringComparison.Ordinal);
        Assert.Equal(0, (await Kms.GetInstanceAsync("kst-1"))!.KeyCount);
    }

    [Fact]
    public async Task Unknown_instances_and_keys_are_refused_as_not_found()
    {
        await _h.CreateAsync("kst-1");

        var instance = await Assert.ThrowsAsync<BackupException>(() => Kms.GenerateKeyAsync("kst-nope", "k", Owner));
        var key = await Assert.ThrowsAsync<BackupException>(() => Kms.RotateKeyAsync("kst-1", "nope"));

        Assert.Equal(BackupErrorCode.NotFound, instance.Code);
        Assert.Contains("kst-nope", instance.Message, StringComparison.Ordinal);
        Assert.Equal(BackupErrorCode.NotFound, key.Code);
        Assert.Equal("key 'nope'", key.Item);
        Assert.False(string.IsNullOrWhiteSpace(key.Remedy));
        Assert.Null(await Kms.GetInstanceAsync("kst-nope"));
    }

    [Fact]
    public async Task A_consumer_of_a_shared_instance_may_create_and_is_recorded_as_creator_but_a_stranger_may_not()
    {
        await _h.CreateAsync("kst-1");

        var key = await Kms.GenerateKeyAsync("kst-1", "shared-key", Consumer);
        var denied = await Assert.ThrowsAsync<BackupException>(() => Kms.GenerateKeyAsync("kst-1", "other", "acct-stranger"));

        Assert.Equal(Consumer, key.CreatorAccount);
        Assert.Equal(BackupErrorCode.AccessDenied, denied.Code);
        Assert.Contains("acct-stranger", denied.Message, StringComparison.Ordinal);
        Assert.Null(await Kms.GetKeyAsync("kst-1", "other"));
    }

    [Fact]
    public async Task A_disabled_or_released_instance_serves_no_requests()
    {
        await _h.CreateAsync("kst-1");
        await Kms.GenerateKeyAsync("kst-1", "orders", Owner);

        var disabled = await Kms.SetInstanceEnabledAsync("kst-1", enabled: false);
        var whileDisabled = await Assert.ThrowsAsync<BackupException>(() => Kms.EncryptAsync("kst-1", "orders", Utf8("x")));
        await Kms.SetInstanceEnabledAsync("kst-1", enabled: true);
        await Kms.EncryptAsync("kst-1", "orders", Utf8("x"));
        _h.Time.Advance(TimeSpan.FromHours(1));
        var released = await Kms.ReleaseInstanceAsync("kst-1");
        var whileReleased = await Assert.ThrowsAsync<BackupException>(() => Kms.GenerateKeyAsync("kst-1", "k2", Owner));
        var reenable = await Assert.ThrowsAsync<BackupException>(() => Kms.SetInstanceEnabledAsync("kst-1", true));

        Assert.False(disabled.Info.IsEnabled);
        Assert.Equal(BackupErrorCode.InstanceNotEnabled, whileDisabled.Code);
        Assert.False(released.Info.IsEnabled);
        Assert.Equal(Start.AddHours(1), released.ReleasedAt);
        Assert.Equal(BackupErrorCode.InstanceNotEnabled, whileReleased.Code);
        Assert.Equal(BackupErrorCode.InstanceNotEnabled, reenable.Code);
        Assert.Single((await Kms.ReadSnapshotAsync("kst-1")).Snapshot.Keys);
    }

    [Fact]
    public async Task Instances_are_described_listed_by_region_and_unique_by_id()
    {
        await _h.CreateAsync("kst-hz-1");
        await _h.CreateAsync("kst-hz-2");
        await _h.CreateAsync("kst-sh-1", Shanghai);
        await Kms.GenerateKeyAsync("kst-hz-1", "k", Owner);

        var hangzhou = await Kms.ListInstancesAsync(Hangzhou).ToListAsync();
        var all = await Kms.ListInstancesAsync().ToListAsync();
        var described = (await Kms.GetInstanceAsync("kst-hz-1"))!;
        var duplicate = await Assert.ThrowsAsync<BackupException>(() => _h.CreateAsync("kst-hz-1"));

        Assert.Equal(["kst-hz-1", "kst-hz-2"], hangzhou.Select(i => i.Info.Id));
        Assert.Equal(3, all.Count);
        Assert.Equal(InstanceKind.Software, described.Info.Kind);
        Assert.Equal(Hangzhou, described.Info.Region);
        Assert.Equal(Start, described.Info.CreatedAt);
        Assert.True(described.Info.IsEnabled);
        Assert.Equal(Owner, described.OwnerAccount);
        Assert.Equal([Consumer], described.SharedWith);
        Assert.Equal(100, described.KeyQuota);
        Assert.Equal(1, described.KeyCount);
        Assert.Equal(BackupErrorCode.NameConflict, duplicate.Code);
        Assert.Throws<ArgumentException>(() => { _ = Kms.CreateInstanceAsync(new EmbeddedInstanceSpec("../evil", InstanceKind.Software, Hangzhou, Owner)); });
    }

    [Fact]
    public async Task Upgrading_raises_quotas_and_image_version_but_never_lowers_them()
    {
        await _h.CreateAsync("kst-hw", kind: InstanceKind.Hardware, keyQuota: 1);

        var upgraded = await Kms.UpgradeInstanceAsync("kst-hw", 5, 200, new Version(3, 10, 0));
        var lower = await Assert.ThrowsAsync<BackupException>(() => Kms.UpgradeInstanceAsync("kst-hw", 4, 200));

        Assert.Equal(5, upgraded.KeyQuota);
        Assert.Equal(200, upgraded.SecretQuota);
        Assert.Equal(new Version(3, 10, 0), upgraded.Info.ImageVersion);
        Assert.Equal(BackupErrorCode.OperationNotSupported, lower.Code);
    }

    [Fact]
    [Trait("Rule", "D1")]
    public async Task Hardware_instance_keys_carry_no_material_and_cannot_be_used_by_the_embedded_service()
    {
        await _h.CreateAsync("kst-hw", kind: InstanceKind.Hardware);

        var key = await Kms.GenerateKeyAsync("kst-hw", "hsm-key", Owner);
        var rotated = await Kms.RotateKeyAsync("kst-hw", "hsm-key");
        var snapshot = (await Kms.ReadSnapshotAsync("kst-hw")).Snapshot;
        var encrypt = await Assert.ThrowsAsync<BackupException>(() => Kms.EncryptAsync("kst-hw", "hsm-key", Utf8("x")));
        var secret = await Assert.ThrowsAsync<BackupException>(() => Kms.StoreSecretAsync("kst-hw", "s", "hsm-key", Utf8("x"), Owner));

        Assert.Null(key.CurrentVersion.Material);
        Assert.All(rotated.Versions, v => Assert.Null(v.Material));
        Assert.Equal(InstanceKind.Hardware, snapshot.Source.Kind);
        Assert.False(Assert.Single(snapshot.Keys).HasMaterial);
        Assert.Equal(BackupErrorCode.OperationNotSupported, encrypt.Code);
        Assert.Equal(BackupErrorCode.OperationNotSupported, secret.Code);
    }

    [Fact]
    public async Task Returned_keys_are_copies_clearing_them_does_not_touch_the_service()
    {
        await _h.CreateAsync("kst-1");
        var key = await Kms.GenerateKeyAsync("kst-1", "orders", Owner);
        var ciphertext = await Kms.EncryptAsync("kst-1", "orders", Utf8("payload"));

        key.CurrentVersion.Material!.Clear();
        (await Kms.ReadSnapshotAsync("kst-1")).Snapshot.Keys[0].CurrentVersion.Material!.Clear();

        Assert.Equal("payload", Text(await Kms.DecryptAsync("kst-1", ciphertext)));
    }

    [Fact]
    public async Task Concurrent_creations_of_one_name_in_a_region_let_exactly_one_through()
    {
        await _h.CreateAsync("kst-1");
        await _h.CreateAsync("kst-2");

        var attempts = Enumerable.Range(0, 16).Select(i => Task.Run(async () =>
        {
            try
            {
                await Kms.GenerateKeyAsync(i % 2 == 0 ? "kst-1" : "kst-2", "contended", Owner);
                return true;
            }
            catch (BackupException e) when (e.Code == BackupErrorCode.NameConflict)
            {
                return false;
            }
        }));
        var results = await Task.WhenAll(attempts);

        Assert.Single(results, won => won);
        Assert.Single(await Kms.FindNamesInUseAsync(Hangzhou, ItemType.Key, ["contended"]));
    }

    [Fact]
    public async Task Instance_ids_are_unique_ignoring_case()
    {
        await _h.CreateAsync("kst-a");

        var refused = await Assert.ThrowsAsync<BackupException>(() => _h.CreateAsync("KST-A"));

        Assert.Equal(BackupErrorCode.NameConflict, refused.Code);
    }

    [Fact]
    public async Task A_disposed_service_refuses_calls()
    {
        await _h.CreateAsync("kst-1");
        _h.Service.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => Kms.GetInstanceAsync("kst-1"));
    }

    [Fact]
    public async Task A_cancelled_call_changes_nothing()
    {
        await _h.CreateAsync("kst-1");
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Kms.GenerateKeyAsync("kst-1", "k", Owner, cancellationToken: cancelled.Token));

        Assert.Null(await Kms.GetKeyAsync("kst-1", "k"));
    }
}
