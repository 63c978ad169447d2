using System.Text;
using Microsoft.Extensions.Time.Testing;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace KmsBackup.Hsm.Pkcs11.Tests;

/// <summary>The PKCS#11 HSM cluster gateway against real SoftHSM2 tokens.</summary>
public class Pkcs11GatewayTests
{
    private static readonly DateTimeOffset s_start = new(2026, 5, 1, 9, 0, 0, TimeSpan.Zero);

    [SoftHsmFact]
    [Trait("Rule", "H6")]
    public async Task A_cluster_is_its_tokens_with_zones_and_its_first_HSM_is_the_primary()
    {
        using var gateway = SoftHsm.Gateway(null, SoftHsm.NewCluster("cls-info"));
        var info = (await gateway.GetClusterAsync("cls-info"))!;
        Assert.Equal("cls-info-hsm-a", info.PrimaryHsmId);
        Assert.Equal(SoftHsm.Owner, info.OwnerAccount);
        Assert.Equal(2, info.ZoneCount);
        Assert.Equal(HsmClusterMode.Cluster, info.Mode);
        Assert.False(info.IsEnabled);
        Assert.False(info.IsInUse);
        Assert.Empty(HardwareRules.CheckRestoreCluster(info, "cn-hangzhou"));

        var connected = await gateway.ConnectInstanceAsync("cls-info", "kst-hw-1");
        Assert.True(connected.IsEnabled);
        Assert.True(connected.IsInUse);
        Assert.Equal("cls-info", (await gateway.FindClusterOfInstanceAsync("kst-hw-1"))!.ClusterId);
        Assert.Null(await gateway.GetClusterAsync("cls-none"));
    }

    [SoftHsmFact]
    public async Task A_key_is_generated_inside_the_primary_kept_in_step_on_every_HSM_and_never_readable()
    {
        var cluster = SoftHsm.NewCluster("cls-keys", hsms: 3);
        using var gateway = SoftHsm.Gateway(null, cluster);
        await gateway.GenerateKeyAsync("cls-keys", "key-0001");
        Assert.True(await gateway.IsKeyMaterialPresentAsync("cls-keys", "key-0001"));
        Assert.False(await gateway.IsKeyMaterialPresentAsync("cls-keys", "key-0002"));
        Assert.Equal(BackupErrorCode.NameConflict, (await Assert.ThrowsAsync<BackupException>(() => gateway.GenerateKeyAsync("cls-keys", "key-0001"))).Code);

        // Every HSM of the cluster holds it, and none will give its value out.
        var module = SoftHsm.Module();
        foreach (var hsm in cluster.Hsms)
        {
            lock (module.Gate)
            {
                using var session = module.OpenSession(hsm.Token);
                var key = Pkcs11Objects.FindKey(session, "key-0001");
                Assert.NotNull(key);
                var attributes = session.GetAttributeValue(key!, [CKA.CKA_SENSITIVE, CKA.CKA_VALUE]);
                Assert.True(attributes[0].GetValueAsBool());
                Assert.True(attributes[1].CannotBeRead);
            }
        }

        // Data sealed in the cluster opens in the cluster.
        var sealedData = await gateway.EncryptAsync("cls-keys", "key-0001", "pay the invoices"u8.ToArray());
        var opened = await gateway.DecryptAsync("cls-keys", "key-0001", sealedData);
        Assert.Equal("pay the invoices", Encoding.UTF8.GetString(opened.Span));
        sealedData[^1] ^= 1;
        Assert.Equal(BackupErrorCode.IntegrityViolation, (await Assert.ThrowsAsync<BackupException>(() => gateway.DecryptAsync("cls-keys", "key-0001", sealedData))).Code);
        Assert.Equal(BackupErrorCode.KeyMaterialMissing, (await Assert.ThrowsAsync<BackupException>(() => gateway.EncryptAsync("cls-keys", "key-0002", new byte[1]))).Code);
    }

    [SoftHsmFact]
    public async Task A_key_cannot_be_wrapped_out_with_the_user_PIN_and_a_wrapping_key_of_ones_own()
    {
        var cluster = SoftHsm.NewCluster("cls-trust");
        using var gateway = SoftHsm.Gateway(null, cluster);
        await gateway.GenerateKeyAsync("cls-trust", "key-t1");
        await gateway.TakeBackupImageAsync("cls-trust");

        // The attacker knows a user PIN of the cluster and speaks PKCS#11 to its HSMs directly.
        var module = SoftHsm.Module();
        foreach (var hsm in cluster.Hsms)
        {
            lock (module.Gate)
            {
                using var session = module.OpenSession(hsm.Token);
                var key = Pkcs11Objects.FindKey(session, "key-t1")!;

                // A wrapping key of its own, whose value it could read: the HSM refuses to wrap the key with it.
                var own = session.GenerateKey(session.Factories.MechanismFactory.Create(CKM.CKM_AES_KEY_GEN),
                [
                    Pkcs11Objects.A(session, CKA.CKA_CLASS, CKO.CKO_SECRET_KEY), Pkcs11Objects.A(session, CKA.CKA_KEY_TYPE, CKK.CKK_AES),
                    Pkcs11Objects.A(session, CKA.CKA_VALUE_LEN, 32UL), Pkcs11Objects.A(session, CKA.CKA_TOKEN, false),
                    Pkcs11Objects.A(session, CKA.CKA_SENSITIVE, false), Pkcs11Objects.A(session, CKA.CKA_EXTRACTABLE, true),
                    Pkcs11Objects.A(session, CKA.CKA_WRAP, true), Pkcs11Objects.A(session, CKA.CKA_UNWRAP, true),
                ]);
                var untrusted = Assert.Throws<Pkcs11Exception>(() => session.WrapKey(Pkcs11Objects.AesKeyWrap(session), own, key));
                Assert.Equal(CKR.CKR_KEY_NOT_WRAPPABLE, untrusted.RV);
                Assert.True(session.GetAttributeValue(key, [CKA.CKA_WRAP_WITH_TRUSTED])[0].GetValueAsBool());

                // The trusted backup key wraps it, but what it unwraps is sensitive and wrappable only with a trusted key again.
                var backupKey = Pkcs11Objects.FindMemberBackupKey(session)!;
                Assert.True(session.GetAttributeValue(backupKey, [CKA.CKA_TRUSTED])[0].GetValueAsBool());
                var wrapped = session.WrapKey(Pkcs11Objects.AesKeyWrap(session), backupKey, key);
                var readable = Assert.Throws<Pkcs11Exception>(() => session.UnwrapKey(Pkcs11Objects.AesKeyWrap(session), backupKey, wrapped,
                [
                    Pkcs11Objects.A(session, CKA.CKA_CLASS, CKO.CKO_SECRET_KEY), Pkcs11Objects.A(session, CKA.CKA_KEY_TYPE, CKK.CKK_AES),
                    Pkcs11Objects.A(session, CKA.CKA_TOKEN, false), Pkcs11Objects.A(session, CKA.CKA_SENSITIVE, false), Pkcs11Objects.A(session, CKA.CKA_EXTRACTABLE, true),
                ]));
                Assert.Equal(CKR.CKR_TEMPLATE_INCONSISTENT, readable.RV);

                // The backup key itself can be neither changed, nor copied into a changeable key, nor wrapped out.
                var change = Assert.Throws<Pkcs11Exception>(() => session.SetAttributeValue(backupKey, [Pkcs11Objects.A(session, CKA.CKA_UNWRAP_TEMPLATE, new List<IObjectAttribute>())]));
                Assert.Equal(CKR.CKR_ACTION_PROHIBITED, change.RV);
                var copy = Assert.Throws<Pkcs11Exception>(() => session.CopyObject(backupKey, [Pkcs11Objects.A(session, CKA.CKA_TOKEN, false)]));
                Assert.Equal(CKR.CKR_ACTION_PROHIBITED, copy.RV);
                var export = Assert.Throws<Pkcs11Exception>(() => session.WrapKey(Pkcs11Objects.AesKeyWrap(session), own, backupKey));
                Assert.Equal(CKR.CKR_KEY_UNEXTRACTABLE, export.RV);
                session.DestroyObject(own);
            }
        }
    }

    [SoftHsmFact]
    public async Task SoftHSM2_lets_only_its_security_officer_mark_the_backup_key_trusted()
    {
        // Without the SO PIN the token cannot join the backup domain: the user may not create a trusted key.
        var noSo = SoftHsm.NewCluster("cls-no-so");
        noSo = noSo with { Hsms = [.. noSo.Hsms.Select(h => h with { Token = new Pkcs11TokenAccess(h.Token.TokenLabel, SoftHsm.UserPin) })] };
        using (var gateway = SoftHsm.Gateway(null, noSo))
        {
            var refused = await Assert.ThrowsAsync<BackupException>(() => gateway.GenerateKeyAsync("cls-no-so", "key-n1"));
            Assert.Equal(BackupErrorCode.HsmOperationFailed, refused.Code);
            Assert.Contains("CKR_ATTRIBUTE_READ_ONLY", refused.Message, StringComparison.Ordinal);
            Assert.Contains(noSo.Hsms[0].Token.TokenLabel, refused.Message, StringComparison.Ordinal);
            Assert.Contains("SO PIN", refused.Remedy, StringComparison.Ordinal);
            Assert.False(await gateway.IsKeyMaterialPresentAsync("cls-no-so", "key-n1"));
        }

        // A wrong SO PIN is a login failure that names the token, never the PIN.
        var wrongSo = SoftHsm.NewCluster("cls-wrong-so");
        wrongSo = wrongSo with { Hsms = [.. wrongSo.Hsms.Select(h => h with { Token = new Pkcs11TokenAccess(h.Token.TokenLabel, SoftHsm.UserPin, "not-the-so-pin-1") })] };
        using (var gateway = SoftHsm.Gateway(null, wrongSo))
        {
            var refused = await Assert.ThrowsAsync<BackupException>(() => gateway.TakeBackupImageAsync("cls-wrong-so"));
            Assert.Equal(BackupErrorCode.HsmLoginFailed, refused.Code);
            Assert.Contains("security officer", refused.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("not-the-so-pin-1", refused.ToString(), StringComparison.Ordinal);

            // The user's login is back: the cluster still answers.
            Assert.False(await gateway.IsKeyMaterialPresentAsync("cls-wrong-so", "key-w1"));
        }
    }

    [SoftHsmFact]
    [Trait("Rule", "H5")]
    public async Task An_image_restored_into_a_new_cluster_decrypts_what_the_old_cluster_encrypted()
    {
        var clock = new FakeTimeProvider(s_start);
        var vault = SoftHsm.NewToken("vault");
        var original = SoftHsm.NewCluster("cls-orig");
        byte[] sealedData;
        HsmBackupImage image;
        using (var gateway = SoftHsm.Gateway(clock, vault, original))
        {
            await gateway.GenerateKeyAsync("cls-orig", "key-a");
            await gateway.GenerateKeyAsync("cls-orig", "key-b");
            sealedData = await gateway.EncryptAsync("cls-orig", "key-a", "before the loss"u8.ToArray());
            clock.Advance(TimeSpan.FromDays(1));
            image = await gateway.TakeBackupImageAsync("cls-orig");
            await gateway.GenerateKeyAsync("cls-orig", "key-late");
            Assert.Equal(2, image.KeyCount);
            Assert.Equal("Auto Create", image.TypeLabel);
        }

        // The original cluster is lost; a gateway over the same vault and a new cluster restores the image.
        var fresh = SoftHsm.NewCluster("cls-new");
        using var restored = SoftHsm.Gateway(clock, vault, fresh);
        var images = await restored.ListBackupImagesAsync("cls-orig");
        Assert.Equal(image.ImageId, Assert.Single(images).ImageId);
        var after = await restored.RestoreImageAsync(image.ImageId, "cls-new");
        Assert.True(after.IsInUse);
        Assert.False(after.IsEnabled);
        Assert.True(await restored.IsKeyMaterialPresentAsync("cls-new", "key-a"));
        Assert.True(await restored.IsKeyMaterialPresentAsync("cls-new", "key-b"));
        Assert.False(await restored.IsKeyMaterialPresentAsync("cls-new", "key-late"));
        var opened = await restored.DecryptAsync("cls-new", "key-a", sealedData);
        Assert.Equal("before the loss", Encoding.UTF8.GetString(opened.Span));

        // A cluster in use takes no image until it is disabled and reset.
        var again = await Assert.ThrowsAsync<BackupException>(() => restored.RestoreImageAsync(image.ImageId, "cls-new"));
        Assert.Equal(BackupErrorCode.ClusterInUse, again.Code);
        Assert.Contains("disable and reset", again.Remedy, StringComparison.Ordinal);
        var reset = await restored.ResetClusterAsync("cls-new");
        Assert.False(reset.IsInUse);
        Assert.Equal(BackupErrorCode.HsmImageNotFound, (await Assert.ThrowsAsync<BackupException>(() => restored.RestoreImageAsync("img-none", "cls-new"))).Code);
        await restored.RestoreImageAsync(image.ImageId, "cls-new");
        Assert.True(await restored.IsKeyMaterialPresentAsync("cls-new", "key-b"));
    }

    [SoftHsmFact]
    public async Task A_wrong_PIN_a_missing_token_and_a_missing_library_are_typed_errors_that_name_the_cause()
    {
        var token = SoftHsm.NewToken("pin");
        var wrong = new Pkcs11TokenAccess(token.TokenLabel, "not-the-pin-9876");
        var e = Assert.Throws<BackupException>(() => Pkcs11HsmClusterGateway.Open(new Pkcs11HsmClusterGatewayOptions { LibraryPath = SoftHsm.LibraryPath, BackupVault = wrong }));
        Assert.Equal(BackupErrorCode.HsmLoginFailed, e.Code);
        Assert.Contains(token.TokenLabel, e.Message, StringComparison.Ordinal);
        Assert.Contains("CKR_PIN_INCORRECT", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-pin-9876", e.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(SoftHsm.UserPin, wrong.ToString(), StringComparison.Ordinal);

        var missing = Assert.Throws<BackupException>(() => Pkcs11RepositoryKeyProvider.Open(SoftHsm.LibraryPath, new Pkcs11TokenAccess("no-such-token", "x")));
        Assert.Equal(BackupErrorCode.HsmTokenNotFound, missing.Code);
        Assert.Contains("no-such-token", missing.Message, StringComparison.Ordinal);

        var library = Assert.Throws<BackupException>(() => Pkcs11RepositoryKeyProvider.Open("/nonexistent/libno-pkcs11.so", token));
        Assert.Equal(BackupErrorCode.HsmLibraryNotFound, library.Code);
        Assert.Contains("/nonexistent/libno-pkcs11.so", library.Message, StringComparison.Ordinal);
    }

    [SoftHsmFact]
    public async Task The_repository_key_stays_in_the_token_and_unwraps_only_what_it_wrapped()
    {
        var token = SoftHsm.NewToken("repo");
        byte[] wrapped;
        string keyId;
        var secret = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        using (var provider = Pkcs11RepositoryKeyProvider.Open(SoftHsm.LibraryPath, token))
        {
            keyId = provider.KeyId;
            Assert.StartsWith($"pkcs11:{token.TokenLabel}:", keyId, StringComparison.Ordinal);
            wrapped = await provider.WrapAsync(secret);
            Assert.Equal(-1, wrapped.AsSpan().IndexOf(secret));
            Assert.DoesNotContain(SoftHsm.UserPin, provider.ToString(), StringComparison.Ordinal);
        }

        using var reopened = Pkcs11RepositoryKeyProvider.Open(SoftHsm.LibraryPath, token);
        Assert.Equal(keyId, reopened.KeyId);
        var key = await reopened.UnwrapAsync(wrapped);
        Assert.Equal(secret, key.Span.ToArray());
        key.Clear();

        wrapped[20] ^= 0x40;
        Assert.Equal(BackupErrorCode.IntegrityViolation, (await Assert.ThrowsAsync<BackupIntegrityException>(() => reopened.UnwrapAsync(wrapped))).Code);

        using var other = Pkcs11RepositoryKeyProvider.Open(SoftHsm.LibraryPath, SoftHsm.NewToken("repo-other"));
        wrapped[20] ^= 0x40;
        await Assert.ThrowsAsync<BackupIntegrityException>(() => other.UnwrapAsync(wrapped));
    }
}

/// <summary>The target-cluster checks of a hardware restore, on clusters of real tokens.</summary>
public class Pkcs11RestoreTargetTests
{
    [SoftHsmFact]
    [Trait("Rule", "H5")]
    public async Task A_target_cluster_in_one_zone_in_another_region_enabled_or_in_use_is_refused_with_the_seed_remedy()
    {
        var oneZone = SoftHsm.NewCluster("cls-one-zone");
        oneZone = oneZone with { Hsms = [oneZone.Hsms[0], oneZone.Hsms[1] with { Zone = oneZone.Hsms[0].Zone }] };
        var far = SoftHsm.NewCluster("cls-far", region: "cn-beijing");
        var enabled = SoftHsm.NewCluster("cls-enabled");
        var used = SoftHsm.NewCluster("cls-used");
        var single = SoftHsm.NewCluster("cls-single", hsms: 1) with { Mode = HsmClusterMode.Standalone };
        using var hsm = SoftHsm.Gateway(null, oneZone, far, enabled, used, single);
        await hsm.ConnectInstanceAsync("cls-enabled", "kst-other");
        await hsm.GenerateKeyAsync("cls-used", "key-someone-elses");

        async Task<IReadOnlyList<Refusal>> Check(string id) => HardwareRules.CheckRestoreCluster((await hsm.GetClusterAsync(id))!, "cn-hangzhou");
        Assert.Equal(BackupErrorCode.ClusterTooFewHsms, Assert.Single(await Check("cls-one-zone")).Code);
        Assert.Equal(BackupErrorCode.RegionMismatch, Assert.Single(await Check("cls-far")).Code);
        Assert.Equal([BackupErrorCode.ClusterEnabled, BackupErrorCode.ClusterInUse], (await Check("cls-enabled")).Select(r => r.Code));
        Assert.All(await Check("cls-enabled"), r => Assert.Contains("disable and reset", r.Remedy, StringComparison.Ordinal));
        Assert.Equal(BackupErrorCode.ClusterInUse, Assert.Single(await Check("cls-used")).Code);
        Assert.Equal([BackupErrorCode.ClusterNotInClusterMode, BackupErrorCode.ClusterTooFewHsms], (await Check("cls-single")).Select(r => r.Code));
    }
}
