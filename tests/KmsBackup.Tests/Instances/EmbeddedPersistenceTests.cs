using System.IO.Abstractions;
using System.Text;

using KmsBackup.DevelopmentKms;

using Microsoft.Extensions.Time.Testing;

using static KmsBackup.Tests.Instances.EmbeddedServiceHarness;

namespace KmsBackup.Tests.Instances;

public sealed class EmbeddedPersistenceTests : IDisposable
{
    private const string Value = "s3cr3t-value-0b7d41";
    private readonly EmbeddedServiceHarness _h = new();

    private EmbeddedKeyManagementService Kms => _h.Service;

    public void Dispose() => _h.Dispose();

    [Fact]
    public async Task A_reopened_service_sees_every_instance_key_secret_and_its_change_feed()
    {
        await _h.CreateAsync("kst-1");
        await _h.CreateAsync("kst-hw", Shanghai, InstanceKind.Hardware);
        await Kms.GenerateKeyAsync("kst-1", "k", Consumer, "described");
        await Kms.GenerateKeyAsync("kst-hw", "hsm", Owner);
        await Kms.StoreSecretAsync("kst-1", "s", "k", Utf8(Value), Owner);
        await Kms.SetInstanceEnabledAsync("kst-hw", false);
        var before = await Kms.ReadSnapshotAsync("kst-1");
        var ciphertext = await Kms.EncryptAsync("kst-1", "k", Utf8("data"));
        await Kms.RotateKeyAsync("kst-1", "k");

        var reopened = _h.Reopen();

        var after = await reopened.ReadSnapshotAsync("kst-1");
        var changes = await reopened.ReadChangesAsync("kst-1", before.Cursor!);
        Assert.Equal(["kst-1", "kst-hw"], (await reopened.ListInstancesAsync().ToListAsync()).Select(i => i.Info.Id));
        Assert.False((await reopened.GetInstanceAsync("kst-hw"))!.Info.IsEnabled);
        Assert.Equal(InstanceKind.Hardware, (await reopened.GetInstanceAsync("kst-hw"))!.Info.Kind);
        Assert.Equal(new Version(3, 9, 1), (await reopened.GetInstanceAsync("kst-hw"))!.Info.ImageVersion);
        Assert.Equal(before.Snapshot.Secrets.ToList(), after.Snapshot.Secrets.ToList()); // (xunit compares ImmutableArray elements by reference)
        Assert.Equal(2, after.Snapshot.Keys[0].Versions.Length);
        Assert.Equal(before.Snapshot.Keys[0].Versions[0], after.Snapshot.Keys[0].Versions[0]);
        Assert.Equal("described", after.Snapshot.Keys[0].Description);
        Assert.Equal(Value, Text(await reopened.GetSecretValueAsync("kst-1", "s")));
        Assert.Equal("data", Text(await reopened.DecryptAsync("kst-1", ciphertext)));
        Assert.False(changes.CursorExpired);
        Assert.Equal(["k"], changes.UpsertedKeys.Select(k => k.Name));
        Assert.Equal(after.Cursor, changes.Cursor);
    }

    [Fact]
    public async Task State_files_hold_neither_key_material_nor_secret_values_nor_names_in_plaintext()
    {
        await _h.CreateAsync("kst-1");
        await Kms.GenerateKeyAsync("kst-1", "orders-key-name", Owner);
        await Kms.StoreSecretAsync("kst-1", "database-secret-name", "orders-key-name", Utf8(Value), Owner);
        await Kms.RotateKeyAsync("kst-1", "orders-key-name");
        var key = (await Kms.GetKeyAsync("kst-1", "orders-key-name"))!;
        var files = _h.Files().ToList();

        var needles = new List<byte[]> { Utf8(Value), Utf8("orders-key-name"), Utf8("database-secret-name") };
        foreach (var version in key.Versions)
        {
            needles.Add(version.Material!.Span.ToArray());
            needles.Add(Encoding.ASCII.GetBytes(Convert.ToBase64String(version.Material.Span)));
            needles.Add(Encoding.ASCII.GetBytes(Convert.ToHexString(version.Material.Span)));
        }

        Assert.Contains(files, f => f.Path.EndsWith("kst-1.state", StringComparison.Ordinal));
        Assert.All(files, file => Assert.All(needles, needle => Assert.True(file.Bytes.AsSpan().IndexOf(needle) < 0, $"{file.Path} holds a secret in plaintext")));
    }

    [Fact]
    public async Task Every_change_whose_write_fails_changes_nothing_in_memory_or_on_disk()
    {
        await _h.CreateAsync("kst-1");
        await _h.CreateAsync("kst-2", Shanghai);
        var key = await Kms.GenerateKeyAsync("kst-1", "k", Owner);
        await Kms.StoreSecretAsync("kst-1", "s", "k", Utf8(Value), Owner);
        var secret = (await Kms.GetSecretAsync("kst-1", "s"))!;
        Func<Task>[] changes =
        [
            () => _h.CreateAsync("kst-3"),
            () => Kms.GenerateKeyAsync("kst-1", "k2", Owner),
            () => Kms.RotateKeyAsync("kst-1", "k"),
            () => Kms.StoreSecretAsync("kst-1", "s2", "k", Utf8(Value), Owner),
            () => Kms.PutSecretValueAsync("kst-1", "s", Utf8("next")),
            () => Kms.SetDescriptionAsync("kst-1", ItemType.Key, "k", "new"),
            () => Kms.CreateKeyAsync("kst-2", key, "op-1"),
            () => Kms.UpgradeInstanceAsync("kst-1", 500, 500),
            () => Kms.ReleaseInstanceAsync("kst-2"),
            () => Kms.DeleteSecretAsync("kst-1", "s"),
            () => Kms.DeleteKeyAsync("kst-1", "k"),
            () => Kms.SetInstanceEnabledAsync("kst-1", false),
        ];

        foreach (var change in changes)
        {
            var before = await Describe(Kms);
            var files = _h.Files().ToDictionary(f => f.Path, f => f.Bytes);
            _h.Faults.FailWrites = true;

            var refused = await Assert.ThrowsAsync<BackupException>(change);

            _h.Faults.FailWrites = false;
            Assert.Equal(BackupErrorCode.StoreUnavailable, refused.Code);
            Assert.Equal(before, await Describe(Kms));
            Assert.Equal(files.Keys.Order(), _h.Files().Select(f => f.Path).Order());
            Assert.All(_h.Files(), f => Assert.Equal(files[f.Path], f.Bytes));
        }

        Assert.Equal(changes.Length, _h.Faults.FailedWrites);
        Assert.Equal(await Describe(Kms), await Describe(_h.Reopen()));
        Assert.Equal(Value, Text(await Kms.GetSecretValueAsync("kst-1", "s")));
        Assert.Equal(secret, await Kms.GetSecretAsync("kst-1", "s"));

        // With the disk healthy again, the same changes go through and survive a reopen.
        foreach (var change in changes)
        {
            await change();
        }

        Assert.Equal(await Describe(Kms), await Describe(_h.Reopen()));
    }

    private static async Task<string> Describe(EmbeddedKeyManagementService kms)
    {
        var lines = new List<string>();
        await foreach (var instance in kms.ListInstancesAsync())
        {
            var read = await kms.ReadSnapshotAsync(instance.Info.Id);
            lines.Add($"{instance.Info} owner={instance.OwnerAccount} shared={string.Join(',', instance.SharedWith)} quotas={instance.KeyQuota}/{instance.SecretQuota} " +
                      $"counts={instance.KeyCount}/{instance.SecretCount} released={instance.ReleasedAt:O} cursor={read.Cursor}");
            lines.AddRange(read.Snapshot.Keys.Select(k => $"{k} {k.Description} {string.Join(',', k.Versions.Select(v => v.VersionId + (v.Material is null ? "-" : Convert.ToHexString(v.Material.Span))))}"));
            lines.AddRange(read.Snapshot.Secrets.Select(s => $"{s} {s.Description} {string.Join(',', s.Versions.Select(v => v.VersionId + Convert.ToHexString(v.Ciphertext.Span)))}"));
        }

        return string.Join('\n', lines);
    }

    [Fact]
    public async Task A_leftover_temporary_file_of_a_crashed_write_is_ignored_and_removed()
    {
        await _h.CreateAsync("kst-1");
        await Kms.GenerateKeyAsync("kst-1", "k", Owner);
        _h.Service.Dispose();
        var leftover = $"{Root}/instances/kst-1.state.tmp-0123456789abcdef";
        _h.FileSystem.File.WriteAllBytes(leftover, [1, 2, 3]); // half-written next state

        var reopened = _h.Reopen();

        Assert.Single((await reopened.ReadSnapshotAsync("kst-1")).Snapshot.Keys);
        Assert.False(_h.FileSystem.File.Exists(leftover));
    }

    [Fact]
    public async Task An_altered_state_file_is_refused_when_opening()
    {
        await _h.CreateAsync("kst-1");
        _h.Service.Dispose();
        var path = $"{Root}/instances/kst-1.state";
        var original = _h.FileSystem.File.ReadAllBytes(path);
        var altered = original.ToArray();
        altered[^5] ^= 0x40;
        _h.FileSystem.File.WriteAllBytes(path, altered);

        var refused = Assert.Throws<BackupException>(() => _h.Open());

        Assert.Equal(BackupErrorCode.IntegrityViolation, refused.Code);
        Assert.Contains("kst-1.state", refused.Message, StringComparison.Ordinal);

        // The failed open let go of the folder: with the file put back, the service opens.
        _h.FileSystem.File.WriteAllBytes(path, original);
        using var repaired = _h.Open();
        Assert.NotNull(await repaired.GetInstanceAsync("kst-1"));
    }

    [Fact]
    public async Task A_state_file_renamed_to_another_instance_is_refused()
    {
        await _h.CreateAsync("kst-1");
        _h.Service.Dispose();
        _h.FileSystem.File.Move($"{Root}/instances/kst-1.state", $"{Root}/instances/kst-2.state");

        var refused = Assert.Throws<BackupException>(() => _h.Open());

        Assert.Equal(BackupErrorCode.IntegrityViolation, refused.Code);
    }

    [Fact]
    public async Task A_missing_master_key_is_refused_rather_than_replaced()
    {
        await _h.CreateAsync("kst-1");
        _h.Service.Dispose();
        _h.FileSystem.File.Delete($"{Root}/service.key");

        var refused = Assert.Throws<BackupException>(() => _h.Open());

        Assert.Equal(BackupErrorCode.IntegrityViolation, refused.Code);
        Assert.Contains("service.key", refused.Message, StringComparison.Ordinal);
        Assert.False(_h.FileSystem.File.Exists($"{Root}/service.key"));
    }

    [Fact]
    public async Task The_master_key_can_live_outside_the_root_folder()
    {
        using var h = new EmbeddedServiceHarness(new EmbeddedKeyManagementServiceOptions { MasterKeyPath = "/secure/kms-master.key" });
        await h.CreateAsync("kst-1");

        Assert.True(h.FileSystem.File.Exists("/secure/kms-master.key"));
        Assert.False(h.FileSystem.File.Exists($"{Root}/service.key"));
        Assert.NotNull(await h.Reopen().GetInstanceAsync("kst-1"));
    }

    [Fact]
    public void Options_are_validated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new EmbeddedServiceHarness(new EmbeddedKeyManagementServiceOptions { ChangeLogCapacity = 0 }));
    }
}

/// <summary>What only a real disk shows: file modes, the folder lock between two services, and reopening from disk.</summary>
public sealed class EmbeddedRealDiskTests : IDisposable
{
    private const string Value = "real-disk-secret-77c2";
    private readonly string _root = Path.Combine(Path.GetTempPath(), "kmsbackup-embedded-" + Guid.NewGuid().ToString("N"));
    private readonly FileSystem _fileSystem = new();
    private readonly FakeTimeProvider _time = new(Start);

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public async Task On_a_real_disk_state_persists_is_encrypted_and_the_master_key_is_private()
    {
        byte[] material;
        using (var kms = new EmbeddedKeyManagementService(_fileSystem, _root, _time))
        {
            await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-1", InstanceKind.Software, Hangzhou, Owner));
            material = (await kms.GenerateKeyAsync("kst-1", "k", Owner)).CurrentVersion.Material!.Span.ToArray();
            await kms.StoreSecretAsync("kst-1", "s", "k", Utf8(Value), Owner);
            await kms.PutSecretValueAsync("kst-1", "s", Utf8(Value + "-2"));

            var second = Assert.Throws<BackupException>(() => new EmbeddedKeyManagementService(_fileSystem, _root, _time));
            Assert.Equal(BackupErrorCode.LeaseHeld, second.Code);
            Assert.Contains("another kmsbackup command", second.Remedy, StringComparison.Ordinal); // the remedy also reads right to a tool user
        }

        foreach (var file in Directory.EnumerateFiles(_root, "*", SearchOption.AllDirectories))
        {
            var bytes = File.ReadAllBytes(file);
            Assert.True(bytes.AsSpan().IndexOf(Utf8(Value)) < 0, file);
            Assert.True(bytes.AsSpan().IndexOf(material) < 0, file);
            Assert.True(bytes.AsSpan().IndexOf(Encoding.ASCII.GetBytes(Convert.ToBase64String(material))) < 0, file);
            Assert.DoesNotContain(".tmp-", file, StringComparison.Ordinal);
        }

        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_root, "service.key")));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_root, "instances", "kst-1.state")));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(_root));
        }

        using var reopened = new EmbeddedKeyManagementService(_fileSystem, _root, _time);
        Assert.Equal(Value + "-2", Text(await reopened.GetSecretValueAsync("kst-1", "s")));
        Assert.Equal(Value, Text(await reopened.GetSecretValueAsync("kst-1", "s", "v1")));
        Assert.Equal(material, (await reopened.GetKeyAsync("kst-1", "k"))!.CurrentVersion.Material!.Span.ToArray());
    }
}
