using KmsBackup.Storage;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// Key rotation and rekey against hosts that see different keys, deleted or planted key records, rekeys that die
/// or meet damage (issue 13, finding 7). Each test failed on the first version of rotation.
/// </summary>
public class KeyRotationAttackTests
{
    private const string Owner = EngineHarness.Owner;
    private const string Objects = $"{EngineHarness.StoreRoot}/objects";

    /// <summary>A key provider whose unwrap can fail, as a token does when it hiccups.</summary>
    private sealed class FlakyProvider(RepositoryKeyProvider inner) : RepositoryKeyProvider
    {
        public bool FailUnwrap { get; set; }

        public override string KeyId => inner.KeyId;

        public override Task<byte[]> WrapAsync(ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default) => inner.WrapAsync(key, cancellationToken);

        public override Task<SensitiveBytes> UnwrapAsync(ReadOnlyMemory<byte> wrappedKey, CancellationToken cancellationToken = default) =>
            FailUnwrap
                ? throw new BackupIntegrityException(new Refusal(BackupErrorCode.IntegrityViolation, "repository key", "The token failed (CKR_FUNCTION_FAILED).", "Retry."))
                : inner.UnwrapAsync(wrappedKey, cancellationToken);
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    [Trait("Rule", "W5")]
    public async Task Every_host_reads_every_prune_marker_whatever_key_records_it_can_open(bool providerFails, bool recordDeleted)
    {
        await using var h = await EngineHarness.CreateAsync(o => o.PruneGracePeriod = TimeSpan.FromHours(1));
        var flaky = new FlakyProvider(await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(h.Files, EngineHarness.KeyFile));
        using var writer = await BackupClient.OpenAsync(new FileSystemBackupStore(h.Files, EngineHarness.StoreRoot, h.Clock), flaky, h.Kms,
            hsmClusters: null, new BackupClientOptions { TimeProvider = h.Clock, LeaseHolder = "writer-host" });
        ControlledStore? controlled = null;
        using var pruner = await h.OpenAnotherClientAsync("pruning-host", wrapStore: s => controlled = new ControlledStore(s));
        await h.CreateInstanceAsync("kst-a");
        for (var i = 0; i < 40; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"key-{i:D3}", Owner);
        }

        var backup = await writer.CreateDefaultBackupAsync(Owner);
        await writer.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software); // its packs
        await writer.ResetBackupAsync(Owner, backup.Id);                                  // now dead
        await pruner.RotateRepositoryKeyAsync();
        Assert.True((await pruner.PruneAsync()).PacksMarked > 0);                         // a marker written after the rotation
        flaky.FailUnwrap = providerFails;
        if (recordDeleted)
        {
            foreach (var record in h.Files.Directory.GetFiles($"{Objects}/keys"))
            {
                h.Files.File.Delete(record);
            }
        }

        // The prune deletes the marked packs; the writer re-enables meanwhile and relies on them unless it sees the marker.
        h.Clock.Advance(TimeSpan.FromHours(2));
        var reached = new TaskCompletionSource();
        var release = new TaskCompletionSource();
        controlled!.Before = async call =>
        {
            if (call.Kind == StoreCallKind.Delete && call.Key.StartsWith("index/", StringComparison.Ordinal) && !reached.Task.IsCompleted)
            {
                reached.SetResult();
                await release.Task;
            }
        };
        var prune = pruner.PruneAsync();
        await reached.Task;
        BackupDetails? enabled = null;
        try
        {
            enabled = await writer.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);
        }
        catch (BackupIntegrityException) when (providerFails)
        {
            // A host whose key provider fails refuses to commit rather than go on without a key others use.
        }

        release.SetResult();
        await prune;
        if (enabled is not null)
        {
            Assert.Equal(40, enabled.LatestPoint?.KeyCount);
            using var reader = await h.OpenAnotherClientAsync("reader");
            var today = DateOnly.FromDateTime(h.Clock.GetUtcNow().UtcDateTime);
            Assert.Equal(40, (await reader.GetDataPageAsync(Owner, backup.Id, today, BackupDataType.FullyBackedUpKeys)).Items.Count);
        }
    }

    [Fact]
    [Trait("Rule", "D4")]
    public async Task Deleting_the_newest_key_record_never_lets_a_new_generation_take_its_place()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.Kms.GenerateKeyAsync("kst-a", "k0", Owner);
        var backup = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);
        var first = await h.Client.RotateRepositoryKeyAsync();
        foreach (var record in h.Files.Directory.GetFiles($"{Objects}/keys"))
        {
            h.Files.File.Delete(record);
        }

        using var fresh = await h.OpenAnotherClientAsync("fresh");
        var second = await fresh.RotateRepositoryKeyAsync();
        Assert.NotEqual(first.GenerationId, second.GenerationId);

        // The first host still seals under its generation; the others cannot read that, and say so, but nothing
        // is read under a wrong key: the fresh host's own data stays whole.
        await h.Kms.GenerateKeyAsync("kst-a", "k1", Owner);
        h.Clock.Advance(TimeSpan.FromHours(1));
        (await fresh.RunDueBackupsAsync()).ThrowIfAnyFailed();
        using var reader = await h.OpenAnotherClientAsync("reader");
        var verification = await reader.VerifyAsync();
        Assert.True(verification.IsClean, string.Join("; ", verification.Problems.Select(p => $"{p.Item}: {p.Description}")));
    }

    [Fact]
    [Trait("Rule", "D4")]
    public async Task A_rekey_that_died_before_its_marker_is_finished_by_the_next_without_copying_again()
    {
        await using var h = await EngineHarness.CreateAsync(o => o.PruneGracePeriod = TimeSpan.FromHours(1));
        await h.CreateInstanceAsync("kst-a");
        for (var i = 0; i < 300; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"key-{i:D4}", Owner);
        }

        var backup = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);
        var before = PackBytes(h);
        await h.Client.RotateRepositoryKeyAsync();
        ControlledStore? controlled = null;
        using (var dying = await h.OpenAnotherClientAsync("dying", wrapStore: s => controlled = new ControlledStore(s)))
        {
            controlled!.Before = call => call.Kind == StoreCallKind.Create && call.Key.StartsWith("prune/", StringComparison.Ordinal)
                ? throw new IOException("the process died here") : Task.CompletedTask;
            await Assert.ThrowsAsync<IOException>(() => dying.RekeyAsync());
        }

        var next = await h.Client.RekeyAsync();
        Assert.True(next.IsComplete);
        Assert.Equal(0, next.ObjectsCopied);
        for (var i = 0; i < 3; i++)
        {
            await h.Client.PruneAsync();
            h.Clock.Advance(TimeSpan.FromHours(2));
        }

        var after = PackBytes(h);
        Assert.True(after < before * 3 / 2, $"packs held {before} bytes before the rotation and {after} after");
        Assert.Equal([2L], (await h.Client.VerifyAsync()).PacksByKeyGeneration.Keys);
    }

    [Fact]
    [Trait("Rule", "D4")]
    public async Task A_damaged_old_pack_is_left_for_verify_and_every_other_pack_is_rekeyed()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        for (var i = 0; i < 300; i++)
        {
            await h.Kms.GenerateKeyAsync("kst-a", $"key-{i:D4}", Owner);
        }

        var backup = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);
        await h.Kms.GenerateKeyAsync("kst-a", "later", Owner);
        h.Clock.Advance(TimeSpan.FromHours(1));
        (await h.Client.RunDueBackupsAsync()).ThrowIfAnyFailed();
        await h.Client.RotateRepositoryKeyAsync();
        var packs = h.Files.AllFiles.Where(p => p.StartsWith($"{Objects}/packs/", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        Assert.True(packs.Count >= 2);
        var bytes = h.Files.File.ReadAllBytes(packs[0]);
        bytes[^1] ^= 1;
        h.Files.File.WriteAllBytes(packs[0], bytes);

        var rekey = await h.Client.RekeyAsync();
        Assert.Equal(1, rekey.PacksDamaged);
        Assert.Equal(packs.Count - 1, rekey.PacksRewritten);
        Assert.True(rekey.IsComplete);

        // The next rekey copies nothing again and meets the same damaged pack, which verify names.
        var again = await h.Client.RekeyAsync();
        Assert.Equal((0, 0, 1), (again.PacksRewritten, again.ObjectsCopied, again.PacksDamaged));
        Assert.Contains((await h.Client.VerifyAsync()).Problems, p => (p.Item + p.Description).Contains(Path.GetFileName(packs[0])[..12], StringComparison.Ordinal));
    }

    private static long PackBytes(EngineHarness h) =>
        h.Files.AllFiles.Where(p => p.StartsWith($"{Objects}/packs/", StringComparison.Ordinal)).Sum(p => h.Files.FileInfo.New(p).Length);
}
