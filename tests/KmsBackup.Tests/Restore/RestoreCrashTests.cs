using System.Text;
using KmsBackup.Repository;
using KmsBackup.Storage;
using KmsBackup.Tests.Engine;
using static KmsBackup.Tests.Restore.RestoreSetup;

namespace KmsBackup.Tests.Restore;

/// <summary>
/// A restore whose process dies between its writes and its rollback (rule R7): the dying client's gateway
/// and store fail every call after the k-th create (lease release included), and a fresh client over the
/// same store and the same instance service takes over, as a restarted process would.
/// </summary>
public class RestoreCrashTests
{
    private const string Target = "kst-far";

    public static TheoryData<int> EveryCreate() => [1, 2, 3, 4];

    [Fact]
    [Trait("Rule", "R7")]
    public async Task A_restore_whose_process_dies_before_its_rollback_is_finished_by_a_restarted_process_without_name_conflicts()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, values) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync(Target, region: OtherRegion);
        var (operationId, _) = await CrashAsync(h, backup.Id, dieAfterCreate: 2);

        using var restarted = await h.OpenAnotherClientAsync("restarted");

        // A rerun without the ID is a new operation: the dead run's items are conflicts, and the refusal names their operation.
        var rerun = await Assert.ThrowsAsync<RestoreException>(() => restarted.RestoreAsync(Request(backup.Id, Target)));
        Assert.Equal(BackupErrorCode.NameConflict, rerun.Code);
        Assert.Contains($"restore operation '{operationId}'", rerun.Remedy, StringComparison.Ordinal);

        // The journal lists the dead operation with what it left; resuming it by its ID finishes the restore.
        var unfinished = Assert.Single(await ListAsync(restarted));
        Assert.Equal(operationId, unfinished.OperationId);
        Assert.Equal(["billing", "orders", "api-token", "db-password"], unfinished.Items.Select(i => i.Name).ToList());
        Assert.Equal(["billing", "orders"], unfinished.ItemsInTarget.Select(i => i.Name).ToList());
        h.Clock.Advance(h.Options.LeaseDuration);

        var result = await restarted.ResumeRestoreAsync(EngineHarness.Owner, operationId);

        Assert.Equal(["billing", "orders"], result.AlreadyRestored.Select(i => i.Name).ToList());
        Assert.Equal(["api-token", "db-password"], result.Restored.Select(i => i.Name).ToList());
        var content = await ContentOfAsync(h, Target);
        Assert.Equal(["billing", "orders"], content.Keys.Select(k => k.Name).ToList());
        Assert.Equal(["api-token", "db-password"], content.Secrets.Select(s => s.Name).ToList());
        Assert.Equal(values["db-password"], (await h.Kms.GetSecretValueAsync(Target, "db-password")).Span.ToArray());
        Assert.Empty(await ListAsync(restarted));
    }

    [Theory]
    [MemberData(nameof(EveryCreate))]
    [Trait("Rule", "R7")]
    public async Task After_a_crash_at_any_create_a_rollback_by_the_operation_id_leaves_the_target_as_it_was(int k)
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync(Target, region: OtherRegion);
        await h.Kms.GenerateKeyAsync(Target, "already-there", EngineHarness.Owner);
        var before = await ContentOfAsync(h, Target);
        var (operationId, _) = await CrashAsync(h, backup.Id, k);
        var left = await ContentOfAsync(h, Target);
        Assert.Equal(before.Keys.Count + k, left.Keys.Count + left.Secrets.Count);

        using var restarted = await h.OpenAnotherClientAsync("restarted");
        Assert.Equal(k, Assert.Single(await ListAsync(restarted)).ItemsInTarget.Count);

        // The dead process's lease outlives it: until it expires, nobody can tell it from a slow process.
        var busy = await Assert.ThrowsAsync<BackupException>(() => restarted.RollBackRestoreAsync(EngineHarness.Owner, operationId));
        Assert.Equal(BackupErrorCode.LeaseHeld, busy.Code);
        h.Clock.Advance(h.Options.LeaseDuration);

        var rollback = await restarted.RollBackRestoreAsync(EngineHarness.Owner, operationId);

        // Exactly what the dead run created, newest first: secrets before the keys that encrypt them.
        Assert.Equal(new[] { "billing", "orders", "api-token", "db-password" }.Take(k).Reverse().ToList(), rollback.Removed.Select(i => i.Name).ToList());
        Assert.Equal(4 - k, rollback.Skipped.Count);
        await AssertUnchangedAsync(h, Target, before);
        Assert.Empty(await ListAsync(restarted));

        // Finished: neither can run again; a new restore of the same items meets no conflict.
        var again = await Assert.ThrowsAsync<BackupException>(() => restarted.RollBackRestoreAsync(EngineHarness.Owner, operationId));
        Assert.Equal(BackupErrorCode.RestoreOperationFinished, again.Code);
        Assert.Contains(operationId, again.Message, StringComparison.Ordinal);
        var resume = await Assert.ThrowsAsync<BackupException>(() => restarted.ResumeRestoreAsync(EngineHarness.Owner, operationId));
        Assert.Equal(BackupErrorCode.RestoreOperationFinished, resume.Code);
        Assert.False(string.IsNullOrWhiteSpace(resume.Remedy));
        Assert.Equal(4, (await restarted.RestoreAsync(Request(backup.Id, Target))).Restored.Count);
    }

    [Theory]
    [MemberData(nameof(EveryCreate))]
    [Trait("Rule", "R7")]
    public async Task After_a_crash_at_any_create_a_resume_by_the_operation_id_restores_the_rest_and_nothing_twice(int k)
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, values) = await BackUpSourceAsync(h);
        var source = await ContentOfAsync(h, Source);
        await h.CreateInstanceAsync(Target, region: OtherRegion);
        var (operationId, _) = await CrashAsync(h, backup.Id, k);

        // A newer point of the same date holds a key the first run never saw: the resume reads the data that run read.
        h.Clock.Advance(h.Options.LeaseDuration);
        await h.Kms.GenerateKeyAsync(Source, "added-later", EngineHarness.Owner);
        await h.RunUntilAsync(h.Clock.GetUtcNow().AddMinutes(10), TimeSpan.FromMinutes(5));
        using var restarted = await h.OpenAnotherClientAsync("restarted");
        var reports = new List<RestoreProgress>();

        var result = await restarted.ResumeRestoreAsync(EngineHarness.Owner, operationId, new SynchronousProgress<RestoreProgress>(reports.Add));

        Assert.Equal(operationId, result.OperationId);
        Assert.Equal(k, result.AlreadyRestored.Count);
        Assert.Equal(4 - k, result.Restored.Count);
        Assert.Equal((RestorePhase.Started, operationId), (reports[0].Phase, reports[0].OperationId));
        var content = await ContentOfAsync(h, Target);
        Assert.Equal(source.Keys, content.Keys);
        Assert.Equal(source.Secrets, content.Secrets);
        foreach (var (name, value) in values)
        {
            Assert.Equal(value, (await h.Kms.GetSecretValueAsync(Target, name)).Span.ToArray());
        }

        Assert.Empty(await ListAsync(restarted));
        var again = await restarted.RestoreAsync(Request(backup.Id, Target, operationId: operationId) with { AllItems = false, KeyNames = ["billing", "orders"], SecretNames = ["api-token", "db-password"] });
        Assert.Empty(again.Restored);
    }

    [Fact]
    [Trait("Rule", "R7")]
    public async Task A_caller_supplied_operation_id_is_the_one_journaled_and_listed()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync(Target, region: OtherRegion);

        var (reported, thrown) = await CrashAsync(h, backup.Id, dieAfterCreate: 3, operationId: "op-mine");

        Assert.Equal("op-mine", reported);
        Assert.Equal("op-mine", thrown.OperationId);
        using var restarted = await h.OpenAnotherClientAsync("restarted");
        var listed = Assert.Single(await ListAsync(restarted));
        Assert.Equal(("op-mine", backup.Id, Day2, Target, 1), (listed.OperationId, listed.BackupId, listed.BackupDate, listed.TargetInstanceId, listed.Runs));
    }

    [Fact]
    [Trait("Rule", "R2")]
    public async Task Only_the_owner_lists_resumes_or_rolls_back_an_operation_and_an_unknown_id_is_not_found()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync(Target, region: OtherRegion);
        var (operationId, _) = await CrashAsync(h, backup.Id, dieAfterCreate: 2);
        h.Clock.Advance(h.Options.LeaseDuration);
        using var restarted = await h.OpenAnotherClientAsync("restarted");
        var before = await ContentOfAsync(h, Target);

        Assert.Empty(await ListAsync(restarted, "acct-intruder"));
        var resume = await Assert.ThrowsAsync<BackupException>(() => restarted.ResumeRestoreAsync("acct-intruder", operationId));
        var rollback = await Assert.ThrowsAsync<BackupException>(() => restarted.RollBackRestoreAsync("acct-intruder", operationId));
        var reuse = await Assert.ThrowsAsync<BackupException>(() => restarted.RestoreAsync(Request(backup.Id, Target, operationId: operationId) with { CallerAccount = "acct-intruder" }));
        var unknown = await Assert.ThrowsAsync<BackupException>(() => restarted.RollBackRestoreAsync(EngineHarness.Owner, "restore-unknown"));
        var otherTarget = await Assert.ThrowsAsync<BackupException>(() => restarted.RestoreAsync(Request(backup.Id, Source, operationId: operationId)));

        Assert.All([resume, rollback], e => Assert.Equal(BackupErrorCode.AccessDenied, e.Code));
        Assert.All([resume, rollback], e => Assert.Contains(operationId, e.Message, StringComparison.Ordinal));
        Assert.All([resume, rollback, reuse], e => Assert.DoesNotContain(Target, e.Message, StringComparison.Ordinal));
        Assert.Equal(BackupErrorCode.AccessDenied, reuse.Code);
        Assert.Equal((BackupErrorCode.NotFound, "restore operation 'restore-unknown'"), (unknown.Code, unknown.Item));
        Assert.Contains("list the unfinished restores", unknown.Remedy, StringComparison.Ordinal);
        Assert.Equal(BackupErrorCode.RestoreOperationMismatch, otherTarget.Code);
        await AssertUnchangedAsync(h, Target, before);
        await Assert.ThrowsAsync<ArgumentException>(() => restarted.ResumeRestoreAsync(EngineHarness.Owner, "../config"));
    }

    [Fact]
    public async Task The_journal_holds_names_and_ids_but_no_key_material_or_secret_value()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, values) = await BackUpSourceAsync(h);
        var source = await ContentOfAsync(h, Source);
        await h.CreateInstanceAsync(Target, region: OtherRegion);
        var (operationId, _) = await CrashAsync(h, backup.Id, dieAfterCreate: 3);
        h.Clock.Advance(h.Options.LeaseDuration);
        using (var restarted = await h.OpenAnotherClientAsync("restarted"))
        {
            await restarted.ResumeRestoreAsync(EngineHarness.Owner, operationId);
        }

        var secrets = source.Keys.SelectMany(k => k.Versions).Select(v => v.Material!.Span.ToArray())
            .Concat(source.Secrets.SelectMany(s => s.Versions).Select(v => v.Ciphertext.Span.ToArray()))
            .Concat(values.Values)
            .ToList();
        using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(h.Files, EngineHarness.KeyFile);
        using var repository = await BackupRepository.OpenOrInitializeAsync(
            new FileSystemBackupStore(h.Files, EngineHarness.StoreRoot, h.Clock), keys, new StoreClockPolicy(h.Clock, TimeSpan.FromHours(48), TimeSpan.FromMinutes(2)), CancellationToken.None);
        var journal = new List<(string Key, byte[] Sealed, byte[] Plain)>();
        await foreach (var entry in repository.Store.ListAsync(RestoreJournal.Prefix))
        {
            var sealedBytes = (await repository.Store.TryReadAsync(entry.Key))!;
            journal.Add((entry.Key, sealedBytes, repository.Crypto.Open(sealedBytes, Encoding.UTF8.GetBytes(entry.Key), entry.Key)));
        }

        // Run 1 (the dead one) began; run 2 (the resume) began and completed.
        Assert.Equal(
            [$"restores/{operationId}/000001/begin", $"restores/{operationId}/000002/begin", $"restores/{operationId}/000002/end"],
            journal.Select(j => j.Key).ToList());
        Assert.Contains(journal, j => ByteSearch.Contains(j.Plain, "db-password"u8));
        foreach (var (key, sealedBytes, plain) in journal)
        {
            foreach (var secret in secrets)
            {
                Assert.False(ByteSearch.Contains(plain, secret), $"{key} holds key material or a secret");
                Assert.False(ByteSearch.Contains(sealedBytes, secret), $"{key} holds key material or a secret");
            }
        }
    }

    [Fact]
    public async Task A_damaged_journal_object_is_a_typed_integrity_error_naming_it_and_stays_local()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync(Target, region: OtherRegion);
        var (operationId, _) = await CrashAsync(h, backup.Id, dieAfterCreate: 2);
        h.Clock.Advance(h.Options.LeaseDuration);
        var key = $"restores/{operationId}/000001/begin";
        var path = $"{EngineHarness.StoreRoot}/objects/{key}";
        var bytes = h.Files.File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x01;
        h.Files.File.WriteAllBytes(path, bytes);
        var before = await ContentOfAsync(h, Target);
        using var restarted = await h.OpenAnotherClientAsync("restarted");

        // Listing stays usable for everyone (the damaged operation's owner cannot be read, so it is left out);
        // verify names the object, and acting on the operation is a typed error naming it.
        Assert.Empty(await ListAsync(restarted));
        var verification = await restarted.VerifyAsync();
        Assert.Contains(verification.Problems, p => p.Item == $"restore journal object '{key}'");
        var rollback = await Assert.ThrowsAsync<BackupIntegrityException>(() => restarted.RollBackRestoreAsync(EngineHarness.Owner, operationId));
        var resume = await Assert.ThrowsAsync<BackupIntegrityException>(() => restarted.ResumeRestoreAsync(EngineHarness.Owner, operationId));

        Assert.All([rollback, resume], e =>
        {
            Assert.Equal(BackupErrorCode.IntegrityViolation, e.Code);
            Assert.Equal($"restore journal object '{key}'", e.Item);
        });
        await AssertUnchangedAsync(h, Target, before);
    }

    [Fact]
    [Trait("Rule", "R7")]
    public async Task A_restore_that_completes_or_rolls_back_in_its_own_process_leaves_nothing_unfinished()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync(Target, region: OtherRegion);
        await h.CreateInstanceAsync("kst-other", region: OtherRegion);
        using var failing = await h.OpenAnotherClientAsync("failing", new FailingGateway(h.Kms) { FailCreateAt = 3 });

        var failed = await Assert.ThrowsAsync<RestoreException>(() => failing.RestoreAsync(Request(backup.Id, Target)));
        var completed = await h.Client.RestoreAsync(Request(backup.Id, "kst-other", keys: ["orders"]));

        Assert.Empty(failed.LeftInTarget);
        Assert.StartsWith("restore-", failed.OperationId, StringComparison.Ordinal);
        Assert.Empty(await ListAsync(h.Client));
        var finished = await Assert.ThrowsAsync<BackupException>(() => h.Client.RollBackRestoreAsync(EngineHarness.Owner, failed.OperationId));
        Assert.Equal(BackupErrorCode.RestoreOperationFinished, finished.Code);
        Assert.Contains("rolled back", finished.Message, StringComparison.Ordinal);
        var done = await Assert.ThrowsAsync<BackupException>(() => h.Client.RollBackRestoreAsync(EngineHarness.Owner, completed.OperationId));
        Assert.Contains("completed", done.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Runs a restore of the source's four items into <see cref="Target"/> in a process that dies right after
    /// its <paramref name="dieAfterCreate"/>-th create. Returns the operation ID the restore reported before
    /// its first write (all the dead process could have kept), and what it threw.
    /// </summary>
    private static async Task<(string OperationId, RestoreException Thrown)> CrashAsync(EngineHarness h, string backupId, int dieAfterCreate, string? operationId = null)
    {
        var death = new ProcessDeath();
        string? reported = null;
        using var doomed = await h.OpenAnotherClientAsync("doomed", new DyingGateway(h.Kms, death, dieAfterCreate), s => new DyingStore(s, death));
        var thrown = await Assert.ThrowsAsync<RestoreException>(() => doomed.RestoreAsync(
            Request(backupId, Target, operationId: operationId),
            new SynchronousProgress<RestoreProgress>(p => reported ??= p.Phase == RestorePhase.Started ? p.OperationId : null)));
        Assert.True(death.IsDead);
        Assert.NotNull(reported);
        return (reported, thrown);
    }

    private static async Task<List<RestoreOperation>> ListAsync(BackupClient client, string account = EngineHarness.Owner)
    {
        var operations = new List<RestoreOperation>();
        await foreach (var operation in client.ListUnfinishedRestoresAsync(account))
        {
            operations.Add(operation);
        }

        return operations;
    }
}
