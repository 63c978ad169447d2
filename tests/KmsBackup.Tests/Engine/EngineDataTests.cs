using System.Text;

namespace KmsBackup.Tests.Engine;

/// <summary>What the store holds: key material only for software instances (D1), nothing in plaintext, costs that follow changes.</summary>
public class EngineDataTests
{
    [Fact]
    [Trait("Rule", "D1")]
    public async Task A_software_backup_holds_key_material_and_a_hardware_backup_holds_metadata_only()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-soft");
        await h.CreateInstanceAsync("kst-hard", InstanceKind.Hardware);
        await h.Kms.GenerateKeyAsync("kst-soft", "soft-key", EngineHarness.Owner);
        await h.Kms.GenerateKeyAsync("kst-hard", "hard-key", EngineHarness.Owner);
        h.Clock.SetUtcNow(new DateTimeOffset(2026, 5, 1, 9, 0, 0, TimeSpan.Zero));

        var soft = (await h.Client.OnInstanceEnabledAsync("kst-soft"))!;
        var hard = (await h.Client.OnInstanceEnabledAsync("kst-hard"))!;

        var softState = await h.Client.GetStateAtAsync(EngineHarness.Owner, soft.Id, h.Clock.GetUtcNow());
        var hardState = await h.Client.GetStateAtAsync(EngineHarness.Owner, hard.Id, h.Clock.GetUtcNow());
        Assert.True(softState.Snapshot.FindKey("soft-key")!.HasMaterial);
        var hardKey = hardState.Snapshot.FindKey("hard-key")!;
        Assert.False(hardKey.HasMaterial);
        Assert.All(hardKey.Versions, v => Assert.Null(v.Material));
        Assert.Equal(InstanceKind.Hardware, hardState.Snapshot.Source.Kind);
    }

    [Fact]
    public async Task Key_material_and_secret_values_never_appear_in_the_store_in_plaintext()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.Kms.GenerateKeyAsync("kst-a", "orders", EngineHarness.Owner);
        var secretValue = Encoding.UTF8.GetBytes("correct horse battery staple: the-secret-value-0123456789");
        await h.Kms.StoreSecretAsync("kst-a", "db-password", "orders", secretValue, EngineHarness.Owner);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;
        await h.RunUntilAsync(EngineHarness.Start.AddHours(1), TimeSpan.FromMinutes(5));

        var material = (await h.Kms.GetKeyAsync("kst-a", "orders"))!.CurrentVersion.Material!.Span.ToArray();
        var secretCiphertext = (await h.Kms.GetSecretAsync("kst-a", "db-password"))!.CurrentVersion.Ciphertext.Span.ToArray();
        var files = h.StoreFilesContent().ToList();
        Assert.NotEmpty(files);
        foreach (var (path, bytes) in files)
        {
            Assert.False(ByteSearch.Contains(bytes, material), $"key material found in {path}");
            Assert.False(ByteSearch.Contains(bytes, secretValue), $"secret value found in {path}");
            Assert.False(ByteSearch.Contains(bytes, secretCiphertext.AsSpan(secretCiphertext.Length - 16)), $"secret ciphertext found unencrypted in {path}");
            Assert.False(ByteSearch.Contains(bytes, "db-password"u8), $"a secret's name found in plaintext in {path}");
        }

        // ...and yet the backup holds them: the restored state has the material.
        var state = await h.Client.GetStateAtAsync(EngineHarness.Owner, backup.Id, h.Clock.GetUtcNow());
        Assert.True(state.Snapshot.FindKey("orders")!.CurrentVersion.Material!.Span.SequenceEqual(material));
    }

    [Fact]
    public async Task An_unchanged_instance_costs_no_new_objects_and_a_change_costs_a_few()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        for (var i = 0; i < 300; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"key-{i:D4}", EngineHarness.Owner);
        }

        var backup = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;
        var quiet = await h.RunUntilAsync(EngineHarness.Start.AddMinutes(30), TimeSpan.FromMinutes(5));
        Assert.All(quiet, r => Assert.Equal(0, r.ObjectsWritten));
        Assert.All(quiet, r => Assert.True(r.UsedChangeFeed));

        await h.Kms.RotateKeyAsync("kst-a", "key-0150");
        var changed = Assert.Single(await h.RunUntilAsync(EngineHarness.Start.AddMinutes(35), TimeSpan.FromMinutes(5)));
        Assert.InRange(changed.ObjectsWritten, 1, 4); // its leaf and the branches above it
        Assert.Equal(1, changed.Point.ChangeCount);

        // The next daily full of the unchanged instance writes nothing new either.
        var fulls = (await h.RunUntilAsync(new DateTimeOffset(2026, 5, 2, 0, 5, 0, TimeSpan.Zero), TimeSpan.FromMinutes(5)))
            .Where(r => r.Point.Kind == BackupRunKind.Full).ToList();
        Assert.Equal(0, Assert.Single(fulls).ObjectsWritten);
        Assert.Equal(backup.Id, fulls[0].Point.BackupId);
    }
}
