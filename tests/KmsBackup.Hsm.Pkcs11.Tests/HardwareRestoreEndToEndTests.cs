using System.IO.Abstractions.TestingHelpers;
using System.Text;
using KmsBackup.DevelopmentKms;
using KmsBackup.Storage;
using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Hsm.Pkcs11.Tests;

/// <summary>
/// The seed's whole hardware restore against real SoftHSM2 tokens: back up a hardware instance and its
/// HSM cluster; lose the instance; set up a new cluster, restore the most recent Auto Create image into
/// it, create a new hardware instance on it, restore the keys' metadata, then the secrets; decrypt, with
/// a restored key, data encrypted before the loss.
/// </summary>
public class HardwareRestoreEndToEndTests
{
    private const string Owner = SoftHsm.Owner;
    private const string Region = "cn-hangzhou";

    [SoftHsmFact]
    [Trait("Rule", "H5")]
    [Trait("Rule", "H7")]
    [Trait("Rule", "R3")]
    [Trait("Rule", "D1")]
    public async Task A_lost_hardware_instance_is_restored_into_a_new_instance_on_a_new_cluster_and_its_keys_decrypt_old_data()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 5, 1, 9, 0, 0, TimeSpan.Zero));
        var files = new MockFileSystem();
        var original = SoftHsm.NewCluster("cls-orig");
        var fresh = SoftHsm.NewCluster("cls-new");
        using var hsm = SoftHsm.Gateway(clock, original, fresh);
        using var kms = new EmbeddedKeyManagementService(files, "/kms", clock, new EmbeddedKeyManagementServiceOptions { HardwareKeys = new Pkcs11HardwareKeyOperations(hsm) });
        using var repositoryKey = Pkcs11RepositoryKeyProvider.Open(SoftHsm.LibraryPath, SoftHsm.NewToken("repo"));
        using var client = await BackupClient.OpenAsync(new FileSystemBackupStore(files, "/backups", clock), repositoryKey, kms,
            hsm, new BackupClientOptions { TimeProvider = clock, LeaseHolder = "e2e" });

        // A hardware instance (image 3.9.1) connected to its HSM cluster, with a key and a secret; data encrypted with the key.
        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-hw", InstanceKind.Hardware, Region, Owner) { CreatedAt = clock.GetUtcNow().AddDays(-1), ImageVersion = new Version(3, 9, 1) });
        await hsm.ConnectInstanceAsync("cls-orig", "kst-hw");
        var orders = await kms.GenerateKeyAsync("kst-hw", "orders", Owner);
        Assert.False(orders.HasMaterial);
        Assert.True(await hsm.IsKeyMaterialPresentAsync("cls-orig", orders.Id));
        await kms.StoreSecretAsync("kst-hw", "db-password", "orders", "correct horse battery staple"u8.ToArray(), Owner);
        var encryptedBeforeLoss = await kms.EncryptAsync("kst-hw", "orders", "invoice 2026-0042: 1,250.00 EUR"u8.ToArray());

        // KMS backup (automatic: the instance was created after 2026-04-01) and HSM backup one day later.
        var backup = (await client.OnInstanceEnabledAsync("kst-hw"))!;
        Assert.Equal(new HsmClusterReference("cls-orig", "cls-orig-hsm-a"), (await client.GetBackupAsync(Owner, backup.Id)).Hsm);
        var protection = await client.GetProtectionAsync(Owner, "kst-hw");
        Assert.Equal(ProtectionLevel.Full, protection.Level);
        Assert.Empty(protection.Warnings); // 90 mirror images for 90 viewable days, one day after the KMS backup
        clock.SetUtcNow(new DateTimeOffset(2026, 5, 2, 0, 0, 0, TimeSpan.Zero));
        (await client.RunDueBackupsAsync()).ThrowIfAnyFailed();
        clock.SetUtcNow(new DateTimeOffset(2026, 5, 2, 0, 30, 0, TimeSpan.Zero));
        var image = await hsm.TakeBackupImageAsync("cls-orig");
        await hsm.TakeBackupImageAsync("cls-orig", HsmBackupImageType.Manual);
        Assert.Contains(new DateOnly(2026, 5, 1), await client.GetJointlyRestorableDatesAsync(Owner, backup.Id));

        // A key made after the image: its metadata reaches the KMS backup, its material no image.
        clock.SetUtcNow(new DateTimeOffset(2026, 5, 2, 1, 0, 0, TimeSpan.Zero));
        await kms.GenerateKeyAsync("kst-hw", "late-key", Owner);
        clock.SetUtcNow(new DateTimeOffset(2026, 5, 2, 1, 5, 0, TimeSpan.Zero));
        (await client.RunDueBackupsAsync()).ThrowIfAnyFailed();

        // The backup holds key metadata only (D1).
        var (_, backedUp) = await client.GetStateAtAsync(Owner, backup.Id, clock.GetUtcNow());
        Assert.All(backedUp.Keys, k => Assert.False(k.HasMaterial));

        // Restoring into the original instance is refused (R3).
        var toOriginal = await client.PlanRestoreAsync(new RestoreRequest { CallerAccount = Owner, BackupId = backup.Id, TargetInstanceId = "kst-hw", BackupDate = new DateOnly(2026, 5, 1), AllItems = true });
        Assert.False(toOriginal.CanExecute);
        Assert.Contains(toOriginal.AllRefusals, r => r.Code == BackupErrorCode.RestoreTargetNotAllowed);
        Assert.Contains(await client.CheckHardwareRestoreAsync(Owner, backup.Id, clock.GetUtcNow(), "kst-hw"), r => r.Code == BackupErrorCode.RestoreTargetNotAllowed);

        // The instance is lost.
        await kms.ReleaseInstanceAsync("kst-hw");
        await client.OnInstanceReleasedAsync("kst-hw");

        // A new cluster: two HSMs in two zones, never enabled. The most recent Auto Create image goes into it.
        Assert.Empty(await client.CheckHsmRestoreTargetAsync(Owner, "cls-new", Region));
        var restoredImage = await client.RestoreHsmImageAsync(Owner, backup.Id, "cls-new");
        Assert.Equal(image.ImageId, restoredImage.ImageId);

        // A new hardware instance, enabled and connected to the new cluster.
        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-hw-2", InstanceKind.Hardware, Region, Owner) { ImageVersion = new Version(3, 9, 1) });
        await hsm.ConnectInstanceAsync("cls-new", "kst-hw-2");

        // Before restoring: the key whose material no image holds is flagged by name (H7).
        var flagged = Assert.Single(await client.CheckHardwareRestoreAsync(Owner, backup.Id, clock.GetUtcNow(), "kst-hw-2"));
        Assert.Equal(BackupErrorCode.KeyMaterialMissing, flagged.Code);
        Assert.Equal("key 'late-key'", flagged.Item);
        Assert.Empty(await client.CheckHardwareRestoreAsync(Owner, backup.Id, new DateTimeOffset(2026, 5, 1, 23, 59, 0, TimeSpan.Zero), "kst-hw-2"));

        // Restore the keys' metadata, then the secrets, of 05-01 (a jointly restorable date).
        var keys = await client.RestoreAsync(new RestoreRequest
        {
            CallerAccount = Owner, BackupId = backup.Id, TargetInstanceId = "kst-hw-2",
            BackupDate = new DateOnly(2026, 5, 1), DataType = BackupDataType.FullyBackedUpKeys, KeyNames = ["orders"],
        });
        Assert.Single(keys.Restored);
        var secrets = await client.RestoreAsync(new RestoreRequest
        {
            CallerAccount = Owner, BackupId = backup.Id, TargetInstanceId = "kst-hw-2",
            BackupDate = new DateOnly(2026, 5, 1), DataType = BackupDataType.FullyBackedUpSecrets, SecretNames = ["db-password"],
        });
        Assert.Single(secrets.Restored);

        // The restored key decrypts, inside the new cluster, data encrypted before the loss; the secret reads back.
        var plaintext = await kms.DecryptAsync("kst-hw-2", encryptedBeforeLoss);
        Assert.Equal("invoice 2026-0042: 1,250.00 EUR", Encoding.UTF8.GetString(plaintext.Span));
        plaintext.Clear();
        var secret = await kms.GetSecretValueAsync("kst-hw-2", "db-password");
        Assert.Equal("correct horse battery staple", Encoding.UTF8.GetString(secret.Span));
        secret.Clear();
        Assert.Equal(orders.Id, (await kms.GetKeyAsync("kst-hw-2", "orders"))!.Id);
    }
}
