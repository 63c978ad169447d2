using System.IO.Abstractions.TestingHelpers;
using System.Text;

using KmsBackup.DevelopmentKms;
using KmsBackup.Storage;

using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Hsm.Pkcs11.Tests;

/// <summary>A key in a PKCS#11 token as one of several repository key providers (issue 17, item 1), on SoftHSM2.</summary>
public class Pkcs11KeyProviderTests
{
    private const string Owner = "acct-owner";
    private static readonly DateTimeOffset s_start = new(2026, 5, 1, 9, 0, 0, TimeSpan.Zero);

    [SoftHsmFact]
    [Trait("Issue", "17")]
    public async Task A_token_added_to_a_key_file_repository_opens_it_alone_and_a_token_created_one_opens_by_passphrase_once_the_token_is_removed()
    {
        var files = new MockFileSystem();
        var clock = new FakeTimeProvider(s_start);
        using var kms = new EmbeddedKeyManagementService(files, "/kms", clock);
        var options = new BackupClientOptions { TimeProvider = clock, LeaseHolder = "host-a", InstanceDiscoveryInterval = null };
        BackupStore Store(string root) => new FileSystemBackupStore(files, root, clock);
        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-a", InstanceKind.Software, "cn-hangzhou", Owner) { CreatedAt = s_start.AddDays(-1), KeyQuota = 100 });
        await kms.GenerateKeyAsync("kst-a", "orders", Owner);
        await kms.StoreSecretAsync("kst-a", "db-password", "orders", Encoding.UTF8.GetBytes("hunter2-the-value"), Owner);

        // A key-file repository gets the token as a second provider; the token then opens it alone.
        var token = SoftHsm.NewToken("keyring");
        string backupId;
        using (var keyFile = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, "/keys/repository.key"))
        using (var client = await BackupClient.OpenAsync(Store("/one"), keyFile, kms, null, options))
        using (var hsmKey = Pkcs11RepositoryKeyProvider.Open(SoftHsm.LibraryPath, token))
        {
            backupId = (await client.OnInstanceEnabledAsync("kst-a"))!.Id;
            var added = await client.AddKeyProviderAsync(hsmKey);
            Assert.Equal("pkcs11", added.Kind);
        }

        using (var hsmKey = Pkcs11RepositoryKeyProvider.Open(SoftHsm.LibraryPath, token))
        using (var byToken = await BackupClient.OpenAsync(Store("/one"), hsmKey, kms, null, options))
        {
            var names = new List<string>();
            await foreach (var item in byToken.GetDataAsync(Owner, backupId, DateOnly.FromDateTime(s_start.UtcDateTime), BackupDataType.FullyBackedUpKeys))
            {
                names.Add(item.Name);
            }

            Assert.Equal(["orders"], names);
        }

        // A repository created with the token: add a passphrase, remove the token, and only the passphrase opens it.
        var second = SoftHsm.NewToken("created-with");
        string tokenKeyId;
        using (var hsmKey = Pkcs11RepositoryKeyProvider.Open(SoftHsm.LibraryPath, second))
        using (var client = await BackupClient.OpenAsync(Store("/two"), hsmKey, kms, null, options))
        using (var passphrase = new PassphraseRepositoryKeyProvider("correct horse battery staple"))
        {
            tokenKeyId = hsmKey.KeyId;
            await client.AddKeyProviderAsync(passphrase);
            await client.RemoveKeyProviderAsync(tokenKeyId);
            Assert.Equal(["passphrase"], (await client.ListKeyProvidersAsync()).Select(p => p.Kind));
        }

        using (var hsmKey = Pkcs11RepositoryKeyProvider.Open(SoftHsm.LibraryPath, second))
        {
            var refused = await Assert.ThrowsAnyAsync<BackupException>(async () => (await BackupClient.OpenAsync(Store("/two"), hsmKey, kms, null, options)).Dispose());
            Assert.Equal(BackupErrorCode.KeyProviderNotRegistered, refused.Code);
            Assert.Contains(tokenKeyId, refused.Message, StringComparison.Ordinal);
        }

        using var again = new PassphraseRepositoryKeyProvider("correct horse battery staple");
        using var byPassphrase = await BackupClient.OpenAsync(Store("/two"), again, kms, null, options);
        Assert.True((await byPassphrase.VerifyAsync()).IsClean);
    }
}
