using KmsBackup.DevelopmentKms;

using static KmsBackup.Tests.Instances.EmbeddedServiceHarness;

namespace KmsBackup.Tests.Instances;

public sealed class EmbeddedSecretTests : IDisposable
{
    private const string Value = "db-password-5f3c9a";
    private readonly EmbeddedServiceHarness _h = new();

    private EmbeddedKeyManagementService Kms => _h.Service;

    public void Dispose() => _h.Dispose();

    [Fact]
    public async Task A_secret_keeps_only_ciphertext_under_its_key_and_reads_back_its_value()
    {
        await _h.CreateAsync("kst-1");
        var key = await Kms.GenerateKeyAsync("kst-1", "secrets-key", Owner);

        var secret = await Kms.StoreSecretAsync("kst-1", "db-password", "secrets-key", Utf8(Value), Owner, "primary database");

        Assert.Equal("db-password", secret.Name);
        Assert.Equal(key.Id, secret.EncryptionKeyId);
        Assert.Equal(Owner, secret.CreatorAccount);
        Assert.Equal("primary database", secret.Description);
        var version = Assert.Single(secret.Versions);
        Assert.Equal("v1", version.VersionId);
        Assert.True(version.Ciphertext.Span.IndexOf(Utf8(Value)) < 0);
        Assert.Equal(Value, Text(await Kms.GetSecretValueAsync("kst-1", "db-password")));
        Assert.Equal(secret, await Kms.GetSecretAsync("kst-1", "db-password"));
    }

    [Fact]
    public async Task Putting_a_value_adds_a_version_and_older_versions_stay_readable_also_after_a_key_rotation()
    {
        await _h.CreateAsync("kst-1");
        await Kms.GenerateKeyAsync("kst-1", "secrets-key", Owner);
        await Kms.StoreSecretAsync("kst-1", "db-password", "secrets-key", Utf8("first"), Owner);
        await Kms.RotateKeyAsync("kst-1", "secrets-key");
        _h.Time.Advance(TimeSpan.FromDays(1));

        var rotated = await Kms.PutSecretValueAsync("kst-1", "db-password", Utf8("second"));

        Assert.Equal(["v1", "v2"], rotated.Versions.Select(v => v.VersionId));
        Assert.Equal(Start.AddDays(1), rotated.LastRotatedAt);
        Assert.Equal("second", Text(await Kms.GetSecretValueAsync("kst-1", "db-password")));
        Assert.Equal("first", Text(await Kms.GetSecretValueAsync("kst-1", "db-password", "v1")));
        var missing = await Assert.ThrowsAsync<BackupException>(() => Kms.GetSecretValueAsync("kst-1", "db-password", "v9"));
        Assert.Equal(BackupErrorCode.NotFound, missing.Code);
    }

    [Fact]
    public async Task Deleting_a_secret_removes_all_its_versions()
    {
        await _h.CreateAsync("kst-1");
        await Kms.GenerateKeyAsync("kst-1", "secrets-key", Owner);
        await Kms.StoreSecretAsync("kst-1", "db-password", "secrets-key", Utf8(Value), Owner);

        await Kms.DeleteSecretAsync("kst-1", "db-password");

        Assert.Null(await Kms.GetSecretAsync("kst-1", "db-password"));
        var read = await Assert.ThrowsAsync<BackupException>(() => Kms.GetSecretValueAsync("kst-1", "db-password"));
        Assert.Equal(BackupErrorCode.NotFound, read.Code);
    }

    [Fact]
    public async Task A_secret_needs_its_key_in_the_same_instance()
    {
        await _h.CreateAsync("kst-1");
        await _h.CreateAsync("kst-2");
        await Kms.GenerateKeyAsync("kst-2", "elsewhere", Owner);

        var refused = await Assert.ThrowsAsync<BackupException>(() => Kms.StoreSecretAsync("kst-1", "s", "elsewhere", Utf8(Value), Owner));

        Assert.Equal(BackupErrorCode.NotFound, refused.Code);
        Assert.Equal("key 'elsewhere'", refused.Item);
        Assert.Null(await Kms.GetSecretAsync("kst-1", "s"));
    }

    [Fact]
    public async Task After_its_key_is_deleted_a_secret_cannot_be_read_until_the_key_is_restored()
    {
        await _h.CreateAsync("kst-1");
        await Kms.GenerateKeyAsync("kst-1", "secrets-key", Owner);
        await Kms.StoreSecretAsync("kst-1", "db-password", "secrets-key", Utf8(Value), Owner);
        var backedUp = (await Kms.ReadSnapshotAsync("kst-1")).Snapshot.FindKey("secrets-key")!;

        await Kms.DeleteKeyAsync("kst-1", "secrets-key");
        var read = await Assert.ThrowsAsync<BackupException>(() => Kms.GetSecretValueAsync("kst-1", "db-password"));
        var put = await Assert.ThrowsAsync<BackupException>(() => Kms.PutSecretValueAsync("kst-1", "db-password", Utf8("x")));
        await Kms.CreateKeyAsync("kst-1", backedUp, "restore-1");

        Assert.Equal(BackupErrorCode.EncryptionKeyMissing, read.Code);
        Assert.Equal(BackupErrorCode.EncryptionKeyMissing, put.Code);
        Assert.Contains(backedUp.Id, read.Message, StringComparison.Ordinal);
        Assert.Equal(Value, Text(await Kms.GetSecretValueAsync("kst-1", "db-password")));
    }

    [Fact]
    public async Task A_secret_ciphertext_is_bound_to_its_secret_and_version()
    {
        await _h.CreateAsync("kst-1");
        var key = await Kms.GenerateKeyAsync("kst-1", "secrets-key", Owner);
        var original = await Kms.StoreSecretAsync("kst-1", "a", "secrets-key", Utf8(Value), Owner);
        var ciphertext = original.CurrentVersion.Ciphertext;

        // The same ciphertext under another secret's name does not decrypt, nor as plain data.
        var swapped = new SecretRecord("b", key.Id, Owner, Start, [new SecretVersion("v1", Start, SensitiveBytes.Copy(ciphertext.Span))]);
        await Kms.CreateSecretAsync("kst-1", swapped, "op-swap");
        var asOtherSecret = await Assert.ThrowsAsync<BackupException>(() => Kms.GetSecretValueAsync("kst-1", "b"));
        var asData = await Assert.ThrowsAsync<BackupException>(() => Kms.DecryptAsync("kst-1", ciphertext.Span.ToArray()));

        Assert.Equal(BackupErrorCode.IntegrityViolation, asOtherSecret.Code);
        Assert.Equal(BackupErrorCode.IntegrityViolation, asData.Code);
    }

    [Fact]
    public async Task Secret_values_never_appear_in_records_exceptions_or_descriptions()
    {
        await _h.CreateAsync("kst-1", secretQuota: 1);
        await Kms.GenerateKeyAsync("kst-1", "secrets-key", Owner);
        var secret = await Kms.StoreSecretAsync("kst-1", "db-password", "secrets-key", Utf8(Value), Owner);
        var value = await Kms.GetSecretValueAsync("kst-1", "db-password");
        var quota = await Assert.ThrowsAsync<BackupException>(() => Kms.StoreSecretAsync("kst-1", "second", "secrets-key", Utf8(Value), Owner));
        var snapshot = (await Kms.ReadSnapshotAsync("kst-1")).Snapshot;

        string[] shown = [secret.ToString(), value.ToString(), quota.ToString(), snapshot.ToString(), snapshot.Keys[0].ToString(), Kms.ToString()];
        Assert.All(shown, text => Assert.DoesNotContain(Value, text, StringComparison.Ordinal));
    }
}
