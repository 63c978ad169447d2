using KmsBackup.DevelopmentKms;

namespace KmsBackup.Storage.AzureBlob.Tests;

/// <summary>Issue 17, item 3 on Azure Blob: a repository opened with only its escrowed recovery shares passes a drill.</summary>
[Trait("Issue", "17")]
public sealed class AzureBlobDrillTests : AzuriteContainerTest
{
    [Fact]
    public async Task A_repository_on_azure_opened_with_only_its_recovery_shares_restores_a_sample_equal_to_the_backup()
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 5, 1, 9, 0, 0, TimeSpan.Zero));
        var files = new System.IO.Abstractions.TestingHelpers.MockFileSystem();
        using var kms = new EmbeddedKeyManagementService(files, "/kms", clock);
        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-prod", InstanceKind.Software, "cn-hangzhou", "acct-a") { CreatedAt = clock.GetUtcNow().AddDays(-1) });
        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-drill", InstanceKind.Software, "eu-central", "acct-a"));
        for (var i = 0; i < 12; i++)
        {
            await kms.GenerateKeyAsync("kst-prod", $"key-{i:D2}", "acct-a");
            await kms.StoreSecretAsync("kst-prod", $"secret-{i:D2}", $"key-{i:D2}", System.Text.Encoding.UTF8.GetBytes($"value {i}"), "acct-a");
        }

        string backupId;
        IReadOnlyList<string> shares;
        using (var keyFile = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, "/keys/repository.key"))
        using (var client = await BackupClient.OpenAsync(Store(clock), keyFile, kms, hsmClusters: null, new BackupClientOptions { TimeProvider = clock, LeaseHolder = "host-a" }))
        {
            backupId = (await client.OnInstanceEnabledAsync("kst-prod"))!.Id;
            using var split = RecoveryKeyRepositoryKeyProvider.Split(threshold: 2, shareCount: 3);
            await client.AddKeyProviderAsync(split.Provider);
            shares = [.. split.Shares];
        }

        // The key file is gone; two of the three shares open the repository, and the drill proves it.
        files.File.Delete("/keys/repository.key");
        using var escrow = RecoveryKeyRepositoryKeyProvider.FromShares([shares[2], shares[0]]);
        using var recovered = await BackupClient.OpenAsync(Store(clock), escrow, kms, hsmClusters: null, new BackupClientOptions { TimeProvider = clock, LeaseHolder = "recovery" });
        var report = await recovered.DrillAsync(new RecoveryDrillRequest
        {
            CallerAccount = "acct-a", BackupId = backupId, ScratchInstanceId = "kst-drill", SampleSize = 5, Seed = 3, VerifyRepository = true,
        });

        Assert.True(report.Passed, string.Join("\n", report.Items));
        Assert.Equal(escrow.KeyId, report.KeyProviderId);
        Assert.Equal(5, report.Items.Count(i => i.Type == ItemType.Secret));
        Assert.All(report.Items, i => Assert.Equal(RecoveryDrillOutcome.Matched, i.Outcome));
        Assert.True(report.Verification!.IsClean, report.Verification.ToString());
        var scratch = (await kms.GetInstanceAsync("kst-drill"))!;
        Assert.Equal((0, 0), (scratch.KeyCount, scratch.SecretCount));
    }

    private AzureBlobBackupStore Store(TimeProvider clock) => new(Container(), new AzureBlobBackupStoreOptions { Prefix = "drill/" }, clock);
}
