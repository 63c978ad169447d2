using KmsBackup.DevelopmentKms;

using static KmsBackup.Tests.Instances.EmbeddedServiceHarness;

namespace KmsBackup.Tests.Instances;

/// <summary>The embedded service as a restore target: quotas, names, encrypting keys (R4), faithful restore (R9), idempotence and rollback.</summary>
public sealed class EmbeddedRestoreTargetTests : IDisposable
{
    private const string Value = "api-token-93b1e7";
    private readonly EmbeddedServiceHarness _h = new();

    private EmbeddedKeyManagementService Kms => _h.Service;

    public void Dispose() => _h.Dispose();

    [Fact]
    [Trait("Rule", "R4")]
    public async Task The_key_quota_is_enforced_with_the_seeds_remedy_and_an_upgrade_lifts_it()
    {
        await _h.CreateAsync("kst-1", keyQuota: 2);
        await Kms.GenerateKeyAsync("kst-1", "k1", Owner);
        await Kms.GenerateKeyAsync("kst-1", "k2", Owner);

        var refused = await Assert.ThrowsAsync<BackupException>(() => Kms.GenerateKeyAsync("kst-1", "k3", Owner));

        Assert.Equal(BackupErrorCode.InsufficientQuota, refused.Code);
        Assert.Contains("kst-1", refused.Message, StringComparison.Ordinal);
        Assert.Contains("holds 2 keys of its quota of 2", refused.Message, StringComparison.Ordinal);
        Assert.Contains("k3", refused.Message, StringComparison.Ordinal);
        Assert.Equal("Delete unused keys or secrets, or upgrade the instance.", refused.Remedy);
        Assert.Null(await Kms.GetKeyAsync("kst-1", "k3"));

        await Kms.UpgradeInstanceAsync("kst-1", keyQuota: 3, secretQuota: 100);
        await Kms.GenerateKeyAsync("kst-1", "k3", Owner);
    }

    [Fact]
    [Trait("Rule", "R4")]
    public async Task The_secret_quota_is_enforced_for_new_secrets_and_restored_ones_but_not_for_new_versions()
    {
        await _h.CreateAsync("kst-1", secretQuota: 1);
        var key = await Kms.GenerateKeyAsync("kst-1", "k", Owner);
        var secret = await Kms.StoreSecretAsync("kst-1", "s1", "k", Utf8(Value), Owner);
        await Kms.PutSecretValueAsync("kst-1", "s1", Utf8("newer"));

        var created = await Assert.ThrowsAsync<BackupException>(() => Kms.StoreSecretAsync("kst-1", "s2", "k", Utf8(Value), Owner));
        var restored = await Assert.ThrowsAsync<BackupException>(() =>
            Kms.CreateSecretAsync("kst-1", new SecretRecord("s3", key.Id, Owner, Start, secret.Versions), "op-1"));

        Assert.Equal(BackupErrorCode.InsufficientQuota, created.Code);
        Assert.Equal(BackupErrorCode.InsufficientQuota, restored.Code);
        Assert.Contains("holds 1 secrets of its quota of 1", restored.Message, StringComparison.Ordinal);
        Assert.Equal(1, (await Kms.GetInstanceAsync("kst-1"))!.SecretCount);
    }

    [Fact]
    [Trait("Rule", "R4")]
    public async Task A_restore_into_a_full_instance_is_refused_and_creates_nothing()
    {
        await _h.CreateAsync("kst-src");
        await _h.CreateAsync("kst-full", Shanghai, keyQuota: 0);
        var key = await Kms.GenerateKeyAsync("kst-src", "k", Owner);

        var refused = await Assert.ThrowsAsync<BackupException>(() => Kms.CreateKeyAsync("kst-full", key, "op-1"));

        Assert.Equal(BackupErrorCode.InsufficientQuota, refused.Code);
        Assert.Contains("kst-full", refused.Message, StringComparison.Ordinal);
        Assert.Empty((await Kms.ReadSnapshotAsync("kst-full")).Snapshot.Keys);
    }

    [Fact]
    [Trait("Rule", "R4")]
    public async Task A_name_used_in_another_instance_of_the_region_conflicts_and_the_refusal_says_where()
    {
        await _h.CreateAsync("kst-hz-1");
        await _h.CreateAsync("kst-hz-2");
        await Kms.GenerateKeyAsync("kst-hz-1", "orders", Owner);

        var sameInstance = await Assert.ThrowsAsync<BackupException>(() => Kms.GenerateKeyAsync("kst-hz-1", "orders", Owner));
        var otherInstance = await Assert.ThrowsAsync<BackupException>(() => Kms.GenerateKeyAsync("kst-hz-2", "orders", Owner));

        foreach (var refused in new[] { sameInstance, otherInstance })
        {
            Assert.Equal(BackupErrorCode.NameConflict, refused.Code);
            Assert.Equal("key 'orders'", refused.Item);
            Assert.Contains("instance 'kst-hz-1'", refused.Message, StringComparison.Ordinal);
            Assert.Equal("Delete or rename the conflicting item, or restore to another target.", refused.Remedy);
        }

        Assert.Null(await Kms.GetKeyAsync("kst-hz-2", "orders"));
    }

    [Fact]
    [Trait("Rule", "R4")]
    public async Task Another_region_does_not_conflict_and_keys_and_secrets_are_separate_name_spaces()
    {
        await _h.CreateAsync("kst-hz-1");
        await _h.CreateAsync("kst-sh-1", Shanghai);
        await Kms.GenerateKeyAsync("kst-hz-1", "orders", Owner);

        await Kms.GenerateKeyAsync("kst-sh-1", "orders", Owner);
        await Kms.StoreSecretAsync("kst-hz-1", "orders", "orders", Utf8(Value), Owner);

        Assert.NotNull(await Kms.GetKeyAsync("kst-sh-1", "orders"));
        Assert.NotNull(await Kms.GetSecretAsync("kst-hz-1", "orders"));
    }

    [Fact]
    [Trait("Rule", "R4")]
    public async Task A_restored_secret_whose_name_is_used_in_the_region_conflicts()
    {
        await _h.CreateAsync("kst-hz-1");
        await _h.CreateAsync("kst-hz-2");
        await Kms.GenerateKeyAsync("kst-hz-1", "k", Owner);
        var secret = await Kms.StoreSecretAsync("kst-hz-1", "db-password", "k", Utf8(Value), Owner);
        var key = (await Kms.GetKeyAsync("kst-hz-1", "k"))!;
        await Kms.DeleteKeyAsync("kst-hz-1", "k");
        await Kms.CreateKeyAsync("kst-hz-2", key, "op-1");

        var refused = await Assert.ThrowsAsync<BackupException>(() => Kms.CreateSecretAsync("kst-hz-2", secret, "op-1"));

        Assert.Equal(BackupErrorCode.NameConflict, refused.Code);
        Assert.Contains("instance 'kst-hz-1'", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "R4")]
    public async Task Names_in_use_are_found_across_every_instance_of_the_region_but_not_in_released_ones()
    {
        await _h.CreateAsync("kst-hz-1");
        await _h.CreateAsync("kst-hz-2");
        await _h.CreateAsync("kst-hz-3");
        await _h.CreateAsync("kst-sh-1", Shanghai);
        await Kms.GenerateKeyAsync("kst-hz-1", "a", Owner);
        await Kms.GenerateKeyAsync("kst-hz-2", "b", Owner);
        await Kms.GenerateKeyAsync("kst-hz-3", "c", Owner);
        await Kms.GenerateKeyAsync("kst-sh-1", "d", Owner);
        await Kms.ReleaseInstanceAsync("kst-hz-3");

        var keys = await Kms.FindNamesInUseAsync(Hangzhou, ItemType.Key, ["a", "b", "c", "d", "e"]);
        var secrets = await Kms.FindNamesInUseAsync(Hangzhou, ItemType.Secret, ["a", "b"]);

        Assert.Equal([new NameInUse(ItemType.Key, "a", "kst-hz-1") { OwnerAccount = Owner }, new NameInUse(ItemType.Key, "b", "kst-hz-2") { OwnerAccount = Owner }], keys);
        Assert.Empty(secrets);
        await Kms.GenerateKeyAsync("kst-hz-1", "c", Owner);
    }

    [Fact]
    [Trait("Rule", "R4")]
    public async Task A_secret_whose_encrypting_key_is_absent_from_the_target_is_refused()
    {
        await _h.CreateAsync("kst-src");
        await _h.CreateAsync("kst-dst", Shanghai);
        await Kms.GenerateKeyAsync("kst-src", "k", Owner);
        var secret = await Kms.StoreSecretAsync("kst-src", "db-password", "k", Utf8(Value), Owner);

        var refused = await Assert.ThrowsAsync<BackupException>(() => Kms.CreateSecretAsync("kst-dst", secret, "op-1"));

        Assert.Equal(BackupErrorCode.EncryptionKeyMissing, refused.Code);
        Assert.Equal("secret 'db-password'", refused.Item);
        Assert.Contains(secret.EncryptionKeyId, refused.Message, StringComparison.Ordinal);
        Assert.Contains("kst-dst", refused.Message, StringComparison.Ordinal);
        Assert.Null(await Kms.GetSecretAsync("kst-dst", "db-password"));
    }

    [Fact]
    [Trait("Rule", "R9")]
    public async Task A_restored_key_keeps_its_id_name_versions_material_metadata_and_creator()
    {
        await _h.CreateAsync("kst-src");
        await _h.CreateAsync("kst-dst", Shanghai);
        await Kms.GenerateKeyAsync("kst-src", "orders", Consumer, "orders key");
        _h.Time.Advance(TimeSpan.FromDays(3));
        await Kms.RotateKeyAsync("kst-src", "orders");
        var backedUp = (await Kms.ReadSnapshotAsync("kst-src")).Snapshot.FindKey("orders")!;
        _h.Time.Advance(TimeSpan.FromDays(3));

        var created = await Kms.CreateKeyAsync("kst-dst", backedUp, "op-1");
        var restored = (await Kms.ReadSnapshotAsync("kst-dst")).Snapshot.FindKey("orders")!;

        Assert.True(created);
        Assert.Equal(backedUp, restored);
        Assert.True(restored.SameMetadata(backedUp) && restored.SameVersions(backedUp));
        Assert.Equal(Consumer, restored.CreatorAccount);
        Assert.Equal("orders key", restored.Description);
        Assert.Equal(Start, restored.CreatedAt);
        Assert.Equal(Start.AddDays(3), restored.LastRotatedAt);
    }

    [Fact]
    [Trait("Rule", "R9")]
    public async Task Restoring_is_idempotent_per_operation_and_another_operation_conflicts()
    {
        await _h.CreateAsync("kst-src");
        await _h.CreateAsync("kst-dst", Shanghai);
        await Kms.GenerateKeyAsync("kst-src", "k", Owner);
        var secret = await Kms.StoreSecretAsync("kst-src", "s", "k", Utf8(Value), Owner);
        var key = (await Kms.GetKeyAsync("kst-src", "k"))!;

        Assert.True(await Kms.CreateKeyAsync("kst-dst", key, "op-1"));
        Assert.True(await Kms.CreateSecretAsync("kst-dst", secret, "op-1"));
        var cursor = (await Kms.ReadSnapshotAsync("kst-dst")).Cursor;
        Assert.False(await Kms.CreateKeyAsync("kst-dst", key, "op-1"));
        Assert.False(await Kms.CreateSecretAsync("kst-dst", secret, "op-1"));
        var other = await Assert.ThrowsAsync<BackupException>(() => Kms.CreateKeyAsync("kst-dst", key, "op-2"));

        Assert.Equal(BackupErrorCode.NameConflict, other.Code);
        Assert.Equal(cursor, (await Kms.ReadSnapshotAsync("kst-dst")).Cursor);
        Assert.Equal(1, (await Kms.GetInstanceAsync("kst-dst"))!.KeyCount);
    }

    [Fact]
    [Trait("Rule", "R9")]
    public async Task Idempotence_survives_a_reopen()
    {
        await _h.CreateAsync("kst-src");
        await _h.CreateAsync("kst-dst", Shanghai);
        var key = await Kms.GenerateKeyAsync("kst-src", "k", Owner);
        await Kms.CreateKeyAsync("kst-dst", key, "op-1");

        _h.Reopen();

        Assert.False(await Kms.CreateKeyAsync("kst-dst", key, "op-1"));
        Assert.True(await Kms.DeleteRestoredItemAsync("kst-dst", ItemType.Key, "k", "op-1"));
    }

    [Fact]
    [Trait("Rule", "R9")]
    [Trait("Rule", "R4")]
    public async Task A_secret_restored_with_its_key_into_another_instance_decrypts_to_its_original_values()
    {
        await _h.CreateAsync("kst-src");
        await _h.CreateAsync("kst-dr", Shanghai);
        await Kms.GenerateKeyAsync("kst-src", "k", Owner);
        await Kms.StoreSecretAsync("kst-src", "db-password", "k", Utf8("old-" + Value), Owner, "db");
        await Kms.RotateKeyAsync("kst-src", "k");
        await Kms.PutSecretValueAsync("kst-src", "db-password", Utf8(Value));
        var backup = (await Kms.ReadSnapshotAsync("kst-src")).Snapshot;

        // Keys before the secrets they encrypt (R7); the caller may clear its copy afterwards.
        await Kms.CreateKeyAsync("kst-dr", backup.Keys[0], "op-dr");
        await Kms.CreateSecretAsync("kst-dr", backup.Secrets[0], "op-dr");
        backup.Keys[0].CurrentVersion.Material!.Clear();
        backup.Secrets[0].CurrentVersion.Ciphertext.Clear();
        var restored = (await Kms.GetSecretAsync("kst-dr", "db-password"))!;

        Assert.Equal(Value, Text(await Kms.GetSecretValueAsync("kst-dr", "db-password")));
        Assert.Equal("old-" + Value, Text(await Kms.GetSecretValueAsync("kst-dr", "db-password", "v1")));
        Assert.Equal(["v1", "v2"], restored.Versions.Select(v => v.VersionId));
        Assert.Equal(Owner, restored.CreatorAccount);
        Assert.Equal("db", restored.Description);
        var more = await Kms.PutSecretValueAsync("kst-dr", "db-password", Utf8("third"));
        Assert.Equal("v3", more.CurrentVersion.VersionId);
    }

    [Fact]
    public async Task Rollback_deletes_only_the_items_of_that_operation()
    {
        await _h.CreateAsync("kst-src");
        await _h.CreateAsync("kst-dst", Shanghai);
        await Kms.GenerateKeyAsync("kst-src", "k1", Owner);
        await Kms.GenerateKeyAsync("kst-src", "k2", Owner);
        await Kms.GenerateKeyAsync("kst-src", "k3", Owner);
        var secret = await Kms.StoreSecretAsync("kst-src", "s1", "k1", Utf8(Value), Owner);
        var source = (await Kms.ReadSnapshotAsync("kst-src")).Snapshot;
        await Kms.CreateKeyAsync("kst-dst", source.FindKey("k1")!, "op-1");
        await Kms.CreateSecretAsync("kst-dst", secret, "op-1");
        await Kms.CreateKeyAsync("kst-dst", source.FindKey("k2")!, "op-2");
        await Kms.CreateKeyAsync("kst-dst", source.FindKey("k3")!, "op-1");
        await Kms.RotateKeyAsync("kst-dst", "k3"); // changed since: now the user's
        await Kms.GenerateKeyAsync("kst-dst", "own", Owner);

        Assert.True(await Kms.DeleteRestoredItemAsync("kst-dst", ItemType.Secret, "s1", "op-1"));
        Assert.True(await Kms.DeleteRestoredItemAsync("kst-dst", ItemType.Key, "k1", "op-1"));
        Assert.False(await Kms.DeleteRestoredItemAsync("kst-dst", ItemType.Key, "k1", "op-1"));
        Assert.False(await Kms.DeleteRestoredItemAsync("kst-dst", ItemType.Key, "k2", "op-1"));
        Assert.False(await Kms.DeleteRestoredItemAsync("kst-dst", ItemType.Key, "k3", "op-1"));
        Assert.False(await Kms.DeleteRestoredItemAsync("kst-dst", ItemType.Key, "own", "op-1"));

        var left = (await Kms.ReadSnapshotAsync("kst-dst")).Snapshot;
        Assert.Equal(["k2", "k3", "own"], left.Keys.Select(k => k.Name));
        Assert.Empty(left.Secrets);
        Assert.NotNull((await Kms.GetKeyAsync("kst-src", "k1"))!);
    }

    [Fact]
    [Trait("Rule", "D1")]
    public async Task A_hardware_instance_takes_restored_key_metadata_without_material_and_refuses_material()
    {
        await _h.CreateAsync("kst-hw-old", kind: InstanceKind.Hardware);
        await _h.CreateAsync("kst-hw-new", Shanghai, InstanceKind.Hardware);
        await _h.CreateAsync("kst-sw", Shanghai);
        await Kms.GenerateKeyAsync("kst-hw-old", "hsm-key", Owner);
        await Kms.GenerateKeyAsync("kst-sw", "soft-key", Owner);
        var hardwareKey = (await Kms.ReadSnapshotAsync("kst-hw-old")).Snapshot.Keys[0];
        var softwareKey = (await Kms.GetKeyAsync("kst-sw", "soft-key"))!;
        await Kms.DeleteKeyAsync("kst-sw", "soft-key");

        Assert.True(await Kms.CreateKeyAsync("kst-hw-new", hardwareKey, "op-hw"));
        var withMaterial = await Assert.ThrowsAsync<BackupException>(() => Kms.CreateKeyAsync("kst-hw-new", softwareKey, "op-hw"));
        var withoutMaterial = await Assert.ThrowsAsync<BackupException>(() =>
            Kms.CreateKeyAsync("kst-sw", new KeyRecord("key-x", "meta-only", EmbeddedKeyManagementService.KeySpec, Owner, Start, [new KeyVersion("v", Start, null)]), "op-sw"));

        var restored = (await Kms.ReadSnapshotAsync("kst-hw-new")).Snapshot.Keys.Single();
        Assert.Equal(hardwareKey, restored);
        Assert.False(restored.HasMaterial);
        Assert.Equal(BackupErrorCode.InstanceKindMismatch, withMaterial.Code);
        Assert.Equal(BackupErrorCode.InstanceKindMismatch, withoutMaterial.Code);
        Assert.Single((await Kms.ReadSnapshotAsync("kst-hw-new")).Snapshot.Keys);
    }

    [Fact]
    public async Task A_disabled_target_takes_no_restore()
    {
        await _h.CreateAsync("kst-src");
        await _h.CreateAsync("kst-dst", Shanghai);
        var key = await Kms.GenerateKeyAsync("kst-src", "k", Owner);
        await Kms.SetInstanceEnabledAsync("kst-dst", false);

        var refused = await Assert.ThrowsAsync<BackupException>(() => Kms.CreateKeyAsync("kst-dst", key, "op-1"));

        Assert.Equal(BackupErrorCode.InstanceNotEnabled, refused.Code);
    }

    [Fact]
    public async Task A_key_id_already_in_the_target_is_refused()
    {
        await _h.CreateAsync("kst-1");
        var key = await Kms.GenerateKeyAsync("kst-1", "k", Owner);
        var renamed = new KeyRecord(key.Id, "k-copy", key.Spec, key.CreatorAccount, key.CreatedAt, key.Versions);

        var refused = await Assert.ThrowsAsync<BackupException>(() => Kms.CreateKeyAsync("kst-1", renamed, "op-1"));

        Assert.Equal(BackupErrorCode.NameConflict, refused.Code);
        Assert.Contains(key.Id, refused.Message, StringComparison.Ordinal);
    }
}
