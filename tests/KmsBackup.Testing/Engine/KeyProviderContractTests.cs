using System.Collections.Concurrent;
using System.IO.Abstractions.TestingHelpers;
using System.Text;

using KmsBackup.DevelopmentKms;
using KmsBackup.Testing.Storage;

using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Testing.Engine;

/// <summary>
/// Several key providers per repository (issue 17, item 1; docs/repository-format.md, "Key providers") on the store
/// under test: each provider opens the repository alone, adding and removing rewrites no data object, the last is never
/// removed, bad input changes nothing, two hosts racing stay consistent, and a repository made before providers existed
/// opens and migrates. Subclass it and implement <see cref="CreateStore"/>.
/// </summary>
public abstract class KeyProviderContractTests
{
    private const string Owner = "acct-owner";
    private const string Passphrase = "correct horse battery staple";
    private static readonly DateTimeOffset s_start = new(2026, 5, 1, 9, 0, 0, TimeSpan.Zero);
    private static readonly DateOnly s_may1 = new(2026, 5, 1);

    /// <summary>The clock of the engine and the store.</summary>
    protected FakeTimeProvider Clock { get; } = new(s_start);

    /// <summary>Holds the embedded instances and the key files.</summary>
    protected MockFileSystem Files { get; } = new();

    /// <summary>A client of this test's store; each call another client over the same data. Each test starts with an empty store.</summary>
    protected abstract BackupStore CreateStore(TimeProvider clock);

    private EmbeddedKeyManagementService? _kms;

    private EmbeddedKeyManagementService Kms => _kms ??= new EmbeddedKeyManagementService(Files, "/kms", Clock);

    private Task<KeyFileRepositoryKeyProvider> KeyFileAsync(string name) => KeyFileRepositoryKeyProvider.OpenOrCreateAsync(Files, $"/keys/{name}.key");

    private Task<BackupClient> OpenAsync(RepositoryKeyProvider keys, string holder = "host-a:1", Func<BackupStore, BackupStore>? wrap = null)
    {
        var store = CreateStore(Clock);
        return BackupClient.OpenAsync(wrap?.Invoke(store) ?? store, keys, Kms, hsmClusters: null, new BackupClientOptions { TimeProvider = Clock, LeaseHolder = holder, InstanceDiscoveryInterval = null });
    }

    /// <summary>A repository with one backed-up day, made with the key file "first" (as a repository made before key providers existed is).</summary>
    private async Task<(BackupClient Client, string BackupId)> BackedUpRepositoryAsync()
    {
        var client = await OpenAsync(await KeyFileAsync("first"));
        await Kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-a", InstanceKind.Software, "cn-hangzhou", Owner) { CreatedAt = s_start.AddDays(-1), KeyQuota = 1000 });
        await Kms.GenerateKeyAsync("kst-a", "orders", Owner);
        await Kms.StoreSecretAsync("kst-a", "db-password", "orders", Encoding.UTF8.GetBytes("hunter2-the-value"), Owner);
        var backup = (await client.OnInstanceEnabledAsync("kst-a"))!;
        Clock.Advance(TimeSpan.FromMinutes(5));
        await Kms.GenerateKeyAsync("kst-a", "invoices", Owner);
        Assert.Single((await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        return (client, backup.Id);
    }

    private static async Task<string> ViewAsync(BackupClient client, string backupId)
    {
        var names = new List<string>();
        foreach (var type in new[] { BackupDataType.FullyBackedUpKeys, BackupDataType.IncrementallyBackedUpKeys, BackupDataType.FullyBackedUpSecrets })
        {
            await foreach (var item in client.GetDataAsync(Owner, backupId, s_may1, type))
            {
                names.Add($"{type}:{item.Name}");
            }
        }

        return string.Join(",", names);
    }

    /// <summary>A wrapper that records every write (create and delete) passed through it.</summary>
    private static (Func<BackupStore, BackupStore> Wrap, ConcurrentQueue<string> Writes) RecordWrites()
    {
        var writes = new ConcurrentQueue<string>();
        return (s => new ControlledStore(s)
        {
            Before = call =>
            {
                if (call.Kind is StoreCallKind.Create or StoreCallKind.Delete)
                {
                    writes.Enqueue($"{call.Kind} {call.Key}");
                }

                return Task.CompletedTask;
            },
        }, writes);
    }

    private static async Task AssertRefusedAsync(BackupErrorCode code, Func<Task> act)
    {
        var e = await Assert.ThrowsAnyAsync<BackupException>(act);
        Assert.Equal(code, e.Code);
    }

    [Fact]
    [Trait("Issue", "17")]
    public async Task Each_provider_alone_opens_the_repository_and_adding_them_rewrites_no_data_object()
    {
        var (first, backupId) = await BackedUpRepositoryAsync();
        var expected = await ViewAsync(first, backupId);
        first.Dispose();

        var (wrap, writes) = RecordWrites();
        using var split = RecoveryKeyRepositoryKeyProvider.Split(threshold: 2, shareCount: 3);
        using (var client = await OpenAsync(await KeyFileAsync("first"), wrap: wrap))
        {
            Assert.Equal(["keyfile"], (await client.ListKeyProvidersAsync()).Select(p => p.Kind));
            await client.AddKeyProviderAsync(await KeyFileAsync("second"));
            using var passphrase = new PassphraseRepositoryKeyProvider(Passphrase);
            await client.AddKeyProviderAsync(passphrase);
            await client.AddKeyProviderAsync(split.Provider);
            var listed = await client.ListKeyProvidersAsync();
            Assert.Equal(["keyfile", "keyfile", "passphrase", "recovery"], listed.Select(p => p.Kind).Order(StringComparer.Ordinal));
            Assert.All(listed, p => Assert.NotNull(p.AddedAt));
            await AssertRefusedAsync(BackupErrorCode.KeyProviderAlreadyRegistered, () => client.AddKeyProviderAsync(split.Provider));
        }

        // Only key records: no pack, index, manifest or catalog entry was written or deleted.
        Assert.NotEmpty(writes);
        Assert.All(writes, w => Assert.StartsWith("Create keys/", w, StringComparison.Ordinal));

        using (var byFirst = await OpenAsync(await KeyFileAsync("first")))
        {
            Assert.Equal(expected, await ViewAsync(byFirst, backupId));
        }

        using (var bySecond = await OpenAsync(await KeyFileAsync("second")))
        {
            Assert.Equal(expected, await ViewAsync(bySecond, backupId));

            // A rotation by a host opened with another provider is readable by every provider.
            await bySecond.RotateRepositoryKeyAsync();
            Clock.Advance(TimeSpan.FromMinutes(5));
            await Kms.GenerateKeyAsync("kst-a", "after-rotation", Owner);
            Assert.Single((await bySecond.RunDueBackupsAsync()).ThrowIfAnyFailed());
            expected = await ViewAsync(bySecond, backupId);
            Assert.Contains("after-rotation", expected, StringComparison.Ordinal);
        }

        using (var passphrase = new PassphraseRepositoryKeyProvider(Passphrase))
        using (var byPassphrase = await OpenAsync(passphrase))
        {
            Assert.Equal(expected, await ViewAsync(byPassphrase, backupId));
        }

        using (var recovered = RecoveryKeyRepositoryKeyProvider.FromShares([split.Shares[2], split.Shares[0]]))
        using (var byShares = await OpenAsync(recovered))
        {
            Assert.Equal(expected, await ViewAsync(byShares, backupId));
            var verification = await byShares.VerifyAsync();
            Assert.True(verification.IsClean, string.Join("; ", verification.Problems.Select(p => p.Description)));
        }
    }

    [Fact]
    [Trait("Issue", "17")]
    public async Task A_removed_provider_no_longer_opens_and_the_last_is_never_removed()
    {
        var (first, backupId) = await BackedUpRepositoryAsync();
        var expected = await ViewAsync(first, backupId);
        var firstKeyId = (await KeyFileAsync("first")).KeyId;
        var second = await KeyFileAsync("second");

        // Before any provider was added, the one the repository was created with is the last.
        await AssertRefusedAsync(BackupErrorCode.LastKeyProvider, () => first.RemoveKeyProviderAsync(firstKeyId));
        await first.AddKeyProviderAsync(second);
        first.Dispose();

        var (wrap, writes) = RecordWrites();
        using (var bySecond = await OpenAsync(second, wrap: wrap))
        {
            await bySecond.RemoveKeyProviderAsync(firstKeyId);
            Assert.Equal([second.KeyId], (await bySecond.ListKeyProvidersAsync()).Select(p => p.KeyId));
            await AssertRefusedAsync(BackupErrorCode.NotFound, () => bySecond.RemoveKeyProviderAsync(firstKeyId));
            await AssertRefusedAsync(BackupErrorCode.LastKeyProvider, () => bySecond.RemoveKeyProviderAsync(second.KeyId));
        }

        Assert.Equal([$"Delete {BackupRepositoryNames.ProviderRecord(firstKeyId)}"], writes);

        var refused = await Assert.ThrowsAnyAsync<BackupException>(async () => (await OpenAsync(await KeyFileAsync("first"))).Dispose());
        Assert.Equal(BackupErrorCode.KeyProviderNotRegistered, refused.Code);
        Assert.Contains(firstKeyId, refused.Message, StringComparison.Ordinal);
        Assert.Contains("keys", refused.Remedy, StringComparison.Ordinal);

        using var again = await OpenAsync(second);
        Assert.Equal(expected, await ViewAsync(again, backupId));
    }

    [Fact]
    [Trait("Issue", "17")]
    public async Task A_wrong_passphrase_too_few_or_mistyped_shares_or_an_unknown_key_file_is_a_typed_error_and_writes_nothing()
    {
        var (first, _) = await BackedUpRepositoryAsync();
        using var split = RecoveryKeyRepositoryKeyProvider.Split(threshold: 3, shareCount: 5);
        using (var passphrase = new PassphraseRepositoryKeyProvider(Passphrase))
        {
            await first.AddKeyProviderAsync(passphrase);
        }

        await first.AddKeyProviderAsync(split.Provider);
        first.Dispose();

        var (wrap, writes) = RecordWrites();
        using (var wrong = new PassphraseRepositoryKeyProvider("not the passphrase at all"))
        {
            await AssertRefusedAsync(BackupErrorCode.WrongPassphrase, async () => (await OpenAsync(wrong, wrap: wrap)).Dispose());
        }

        await AssertRefusedAsync(BackupErrorCode.KeyProviderNotRegistered, async () => (await OpenAsync(await KeyFileAsync("stranger"), wrap: wrap)).Dispose());

        var tooFew = Assert.Throws<BackupException>(() => RecoveryKeyRepositoryKeyProvider.FromShares([split.Shares[0], split.Shares[4], split.Shares[0]]));
        Assert.Equal(BackupErrorCode.TooFewRecoveryShares, tooFew.Code);
        Assert.Contains("2 distinct", tooFew.Message, StringComparison.Ordinal);

        // One digit of the second share's value changed: named by its position and number, its value never shown.
        var share = split.Shares[1];
        var at = share.LastIndexOf('-') - 3;
        var mistyped = share[..at] + (share[at] == '0' ? '1' : '0') + share[(at + 1)..];
        var invalid = Assert.Throws<BackupException>(() => RecoveryKeyRepositoryKeyProvider.FromShares([split.Shares[0], mistyped, split.Shares[2]]));
        Assert.Equal(BackupErrorCode.InvalidRecoveryShare, invalid.Code);
        Assert.Contains("recovery share 2 (share number 2)", invalid.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(share.Split('-')[4], invalid.Message, StringComparison.Ordinal);

        // Shares of another recovery key: refused before anything is combined.
        using var other = RecoveryKeyRepositoryKeyProvider.Split(threshold: 3, shareCount: 5);
        Assert.Equal(BackupErrorCode.InvalidRecoveryShare, Assert.Throws<BackupException>(() => RecoveryKeyRepositoryKeyProvider.FromShares([split.Shares[0], other.Shares[1], split.Shares[2]])).Code);

        // Shares of a recovery key that was never added.
        using var unregistered = RecoveryKeyRepositoryKeyProvider.FromShares(other.Shares.Take(3));
        await AssertRefusedAsync(BackupErrorCode.KeyProviderNotRegistered, async () => (await OpenAsync(unregistered, wrap: wrap)).Dispose());

        Assert.Empty(writes);
        using var recovered = RecoveryKeyRepositoryKeyProvider.FromShares(split.Shares.Skip(2));
        (await OpenAsync(recovered)).Dispose();
    }

    [Fact]
    [Trait("Issue", "17")]
    public async Task A_tampered_provider_record_does_not_open_and_the_other_providers_still_do()
    {
        var (first, backupId) = await BackedUpRepositoryAsync();
        var expected = await ViewAsync(first, backupId);
        var second = await KeyFileAsync("second");
        await first.AddKeyProviderAsync(second);
        first.Dispose();

        // An attacker with write access to the store changes the record's date (not its wrapped key): it still unwraps, but
        // does not authenticate under the repository's keys.
        var store = CreateStore(Clock);
        var name = BackupRepositoryNames.ProviderRecord(second.KeyId);
        var bytes = (await store.TryReadAsync(name))!;
        var changed = bytes.ToArray();
        changed[^40] ^= 0x01;
        Assert.True(await store.DeleteAsync(name));
        Assert.True(await store.TryCreateAsync(name, changed));

        var (wrap, writes) = RecordWrites();
        var e = await Assert.ThrowsAnyAsync<BackupIntegrityException>(async () => (await OpenAsync(second, wrap: wrap)).Dispose());
        Assert.Equal(BackupErrorCode.IntegrityViolation, e.Code);
        Assert.Empty(writes);

        // A record whose wrapped key was changed does not unwrap.
        changed = bytes.ToArray();
        changed[^33] ^= 0x01;
        Assert.True(await store.DeleteAsync(name));
        Assert.True(await store.TryCreateAsync(name, changed));
        Assert.Equal(BackupErrorCode.IntegrityViolation, (await Assert.ThrowsAnyAsync<BackupException>(async () => (await OpenAsync(second, wrap: wrap)).Dispose())).Code);
        Assert.Empty(writes);

        using var byFirst = await OpenAsync(await KeyFileAsync("first"));
        Assert.Equal(expected, await ViewAsync(byFirst, backupId));
        Assert.DoesNotContain(second.KeyId, (await byFirst.ListKeyProvidersAsync()).Select(p => p.KeyId));

        // Verify names the damaged record.
        var verification = await byFirst.VerifyAsync();
        Assert.Contains(verification.Problems, p => p.Item.Contains(name, StringComparison.Ordinal));
    }

    [Fact]
    [Trait("Issue", "17")]
    public async Task Two_hosts_adding_providers_at_once_migrate_once_and_both_providers_open_at_every_interleaving()
    {
        var interleavings = 0;
        for (var k = 1; ; k++)
        {
            Assert.True(k <= 60, "host A's add never finished before its k-th call");
            var (first, backupId) = await BackedUpRepositoryAsync();
            var expected = await ViewAsync(first, backupId);
            first.Dispose();

            // Host B runs its whole add at host A's k-th store call; both opened before either added anything.
            var b = await OpenAsync(await KeyFileAsync("first"), "host-b:1");
            var calls = 0;
            var armed = false;
            var bAdded = false;
            var a = await OpenAsync(await KeyFileAsync("first"), "host-a:1", s => new ControlledStore(s)
            {
                Before = async call =>
                {
                    if (armed && ++calls == k)
                    {
                        await b.AddKeyProviderAsync(await KeyFileAsync($"b-{k}"));
                        bAdded = true;
                    }
                },
            });
            armed = true;
            await a.AddKeyProviderAsync(await KeyFileAsync($"a-{k}"));
            if (!bAdded)
            {
                await b.AddKeyProviderAsync(await KeyFileAsync($"b-{k}"));
            }

            a.Dispose();
            b.Dispose();
            foreach (var name in new[] { "first", $"a-{k}", $"b-{k}" })
            {
                using var alone = await OpenAsync(await KeyFileAsync(name), $"check-{name}");
                Assert.True(expected == await ViewAsync(alone, backupId), $"k={k}: the provider '{name}' does not read the backup");
                Assert.Equal(3, (await alone.ListKeyProvidersAsync()).Count);
            }

            if (!bAdded)
            {
                break; // host A made fewer than k calls: every interleaving was tried
            }

            interleavings++;
            await ResetAsync();
        }

        Assert.True(interleavings >= 6, $"only {interleavings} interleavings");
    }

    [Theory]
    [Trait("Issue", "17")]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_rotation_racing_the_migration_leaves_every_generation_readable_by_the_new_provider_alone_at_every_interleaving(bool rotationInsideTheAdd)
    {
        var interleavings = 0;
        for (var k = 1; ; k++)
        {
            Assert.True(k <= 60, "the outer call never finished before its k-th store call");
            var (first, backupId) = await BackedUpRepositoryAsync();
            first.Dispose();

            // One host adds a provider (migrating the repository), the other rotates the key and backs up under the new
            // generation; the inner one runs whole at the outer one's k-th store call.
            var adder = rotationInsideTheAdd ? null : await OpenAsync(await KeyFileAsync("first"), "adder");
            var rotator = rotationInsideTheAdd ? await OpenAsync(await KeyFileAsync("first"), "rotator") : null;
            var calls = 0;
            var armed = false;
            var inner = false;
            async Task RotateAndBackUpAsync(BackupClient client)
            {
                await client.RotateRepositoryKeyAsync();
                Clock.Advance(TimeSpan.FromMinutes(5));
                await Kms.GenerateKeyAsync("kst-a", $"under-new-generation-{k}", Owner);
                Assert.Single((await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
            }

            Func<BackupStore, BackupStore> hook = s => new ControlledStore(s)
            {
                Before = async call =>
                {
                    if (armed && ++calls == k)
                    {
                        inner = true;
                        if (rotationInsideTheAdd)
                        {
                            await RotateAndBackUpAsync(rotator!);
                        }
                        else
                        {
                            await adder!.AddKeyProviderAsync(await KeyFileAsync($"new-{k}"));
                        }
                    }
                },
            };
            if (rotationInsideTheAdd)
            {
                adder = await OpenAsync(await KeyFileAsync("first"), "adder", hook);
                armed = true;
                await adder.AddKeyProviderAsync(await KeyFileAsync($"new-{k}"));
            }
            else
            {
                rotator = await OpenAsync(await KeyFileAsync("first"), "rotator", hook);
                armed = true;
                await RotateAndBackUpAsync(rotator);
                if (!inner)
                {
                    await adder!.AddKeyProviderAsync(await KeyFileAsync($"new-{k}"));
                }
            }

            if (rotationInsideTheAdd && !inner)
            {
                await RotateAndBackUpAsync(rotator!);
            }

            adder!.Dispose();
            rotator!.Dispose();

            // The new provider first: a host opening with the first provider would copy a missed generation under the keyring.
            string seenByNew;
            using (var byNew = await OpenAsync(await KeyFileAsync($"new-{k}"), "check-new"))
            {
                seenByNew = await ViewAsync(byNew, backupId);
            }

            using (var byFirst = await OpenAsync(await KeyFileAsync("first"), "check-first"))
            {
                var expected = await ViewAsync(byFirst, backupId);
                Assert.Contains($"under-new-generation-{k}", expected, StringComparison.Ordinal);
                Assert.True(expected == seenByNew, $"k={k}: the new provider alone does not read the backup as the first does");
            }

            if (!inner)
            {
                break;
            }

            interleavings++;
            await ResetAsync();
        }

        Assert.True(interleavings >= 6, $"only {interleavings} interleavings");
    }

    [Fact]
    [Trait("Issue", "17")]
    public async Task Two_hosts_removing_the_last_two_providers_at_once_leave_one_at_every_interleaving()
    {
        var outcomes = new HashSet<string>();
        for (var k = 1; ; k++)
        {
            Assert.True(k <= 60, "host A's remove never finished before its k-th call");
            var (first, _) = await BackedUpRepositoryAsync();
            var firstKeyId = (await KeyFileAsync("first")).KeyId;
            var second = await KeyFileAsync("second");
            await first.AddKeyProviderAsync(second);
            first.Dispose();

            var b = await OpenAsync(second, "host-b:1");
            var calls = 0;
            var armed = false;
            var interleaved = false;
            Exception? bError = null;
            var a = await OpenAsync(await KeyFileAsync("first"), "host-a:1", s => new ControlledStore(s)
            {
                Before = async call =>
                {
                    if (armed && ++calls == k)
                    {
                        interleaved = true;
                        try
                        {
                            await b.RemoveKeyProviderAsync(second.KeyId);
                        }
                        catch (BackupException e)
                        {
                            bError = e;
                        }
                    }
                },
            });
            armed = true;
            Exception? aError = null;
            try
            {
                await a.RemoveKeyProviderAsync(firstKeyId);
            }
            catch (BackupException e)
            {
                aError = e;
            }

            if (!interleaved)
            {
                try
                {
                    await b.RemoveKeyProviderAsync(second.KeyId);
                }
                catch (BackupException e)
                {
                    bError = e;
                }
            }

            a.Dispose();
            b.Dispose();
            Assert.False(aError is null && bError is null, $"k={k}: both removes succeeded");
            foreach (var error in new[] { aError, bError }.OfType<BackupException>())
            {
                Assert.Contains(error.Code, new[] { BackupErrorCode.LastKeyProvider, BackupErrorCode.LeaseHeld });
            }

            // The provider that was not removed still opens the repository alone.
            using (var check = await OpenAsync(aError is null ? second : await KeyFileAsync("first"), "check"))
            {
                Assert.Single(await check.ListKeyProvidersAsync());
            }

            outcomes.Add($"a:{(aError as BackupException)?.Code.ToString() ?? "removed"} b:{(bError as BackupException)?.Code.ToString() ?? "removed"}");
            if (!interleaved)
            {
                break;
            }

            await ResetAsync();
        }

        // Both orders were seen, and removes that overlapped under the lease.
        Assert.Contains("a:removed b:LastKeyProvider", outcomes);
        Assert.Contains("a:LastKeyProvider b:removed", outcomes);
        Assert.Contains(outcomes, o => o.Contains("LeaseHeld", StringComparison.Ordinal));
    }

    [Fact]
    [Trait("Issue", "17")]
    public async Task A_repository_made_before_providers_existed_with_a_rotated_key_opens_unchanged_and_migrates_without_rewriting_data()
    {
        var (first, backupId) = await BackedUpRepositoryAsync();

        // A key generation wrapped directly by the first provider, as before key providers existed.
        await first.RotateRepositoryKeyAsync();
        Clock.Advance(TimeSpan.FromMinutes(5));
        await Kms.GenerateKeyAsync("kst-a", "sealed-under-generation-2", Owner);
        Assert.Single((await first.RunDueBackupsAsync()).ThrowIfAnyFailed());
        var expected = await ViewAsync(first, backupId);
        first.Dispose();

        var (wrap, writes) = RecordWrites();
        using (var old = await OpenAsync(await KeyFileAsync("first"), wrap: wrap))
        {
            Assert.Equal(expected, await ViewAsync(old, backupId));
            Assert.Empty(writes); // opening changes nothing

            using var passphrase = new PassphraseRepositoryKeyProvider(Passphrase);
            await old.AddKeyProviderAsync(passphrase);
        }

        Assert.All(writes, w => Assert.StartsWith("Create keys/", w, StringComparison.Ordinal));
        Assert.Contains(writes, w => w == "Create keys/keyring");
        Assert.Contains(writes, w => w.StartsWith("Create keys/ring/", StringComparison.Ordinal));

        using (var byPassphrase = new PassphraseRepositoryKeyProvider(Passphrase))
        using (var client = await OpenAsync(byPassphrase))
        {
            Assert.Equal(expected, await ViewAsync(client, backupId));
            var verification = await client.VerifyAsync();
            Assert.True(verification.IsClean, string.Join("; ", verification.Problems.Select(p => p.Description)));
        }

        using var stillFirst = await OpenAsync(await KeyFileAsync("first"));
        Assert.Equal(expected, await ViewAsync(stillFirst, backupId));
    }

    /// <summary>Empties the store and the instances for the next round of a loop.</summary>
    private async Task ResetAsync()
    {
        var store = CreateStore(Clock);
        foreach (var prefix in new[] { "config", "keys/", "packs/", "index/", "points/", "catalog/", "clock/", "pins/", "prune/", "restores/" })
        {
            var keys = new List<string>();
            await foreach (var entry in store.ListAsync(prefix))
            {
                keys.Add(entry.Key);
            }

            foreach (var key in keys)
            {
                await store.DeleteAsync(key);
            }
        }

        _kms?.Dispose();
        _kms = null;
        foreach (var path in Files.AllFiles.Where(p => p.StartsWith("/kms", StringComparison.Ordinal)).ToList())
        {
            Files.File.Delete(path);
        }
    }
}

/// <summary>Names of repository records the tests read and plant (docs/repository-format.md, "Key providers").</summary>
public static class BackupRepositoryNames
{
    /// <summary>The provider record of <paramref name="keyId"/>: <c>keys/providers/</c> and the first 16 bytes of SHA-256 of its UTF-8, in lower-case hex.</summary>
    public static string ProviderRecord(string keyId) =>
        "keys/providers/" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(keyId)).AsSpan(0, 16));
}
