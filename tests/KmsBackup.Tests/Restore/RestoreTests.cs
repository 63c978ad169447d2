// Over 400 lines: the seed's restore procedure and rules R1 to R9, one test each, over one fixture.
using KmsBackup.DevelopmentKms;
using KmsBackup.Tests.Engine;
using static KmsBackup.Tests.Restore.RestoreSetup;

namespace KmsBackup.Tests.Restore;

/// <summary>Restore through the engine into the embedded service: the seed's procedures and rules R1–R9.</summary>
public class RestoreTests
{
    private const string Owner = EngineHarness.Owner;

    [Fact]
    [Trait("Rule", "R4")]
    [Trait("Rule", "R7")]
    public async Task The_seeds_secret_procedure_key_first_then_the_secret_which_decrypts_to_its_value()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, values) = await BackUpSourceAsync(h);
        var dataBefore = await h.Kms.EncryptAsync(Source, "orders", "encrypted before the loss"u8.ToArray());

        // The accident: the secret and its key are deleted.
        await h.Kms.DeleteSecretAsync(Source, "db-password");
        await h.Kms.DeleteKeyAsync(Source, "orders");
        var emptied = await ContentOfAsync(h, Source);

        // Restoring the secret alone is refused: its key is not in the target, and nothing is written.
        var refused = await Assert.ThrowsAsync<RestoreException>(() =>
            h.Client.RestoreAsync(Request(backup.Id, Source, secrets: ["db-password"], type: BackupDataType.FullyBackedUpSecrets)));
        Assert.Equal(BackupErrorCode.EncryptionKeyMissing, refused.Code);
        Assert.Equal("secret 'db-password'", refused.Item);
        Assert.Contains("the key 'orders' (ID 'key-", refused.Message, StringComparison.Ordinal); // requests take key names
        Assert.Contains("Restore the key 'orders'", refused.Refusal.Remedy, StringComparison.Ordinal);
        Assert.True(refused.RefusedByPlan);
        await AssertUnchangedAsync(h, Source, emptied);

        // Restore the key (from the fully backed-up keys), then the secret.
        var key = await h.Client.RestoreAsync(Request(backup.Id, Source, keys: ["orders"], type: BackupDataType.FullyBackedUpKeys));
        Assert.Equal(["orders"], key.Restored.Select(i => i.Name).ToList());
        var secret = await h.Client.RestoreAsync(Request(backup.Id, Source, secrets: ["db-password"], type: BackupDataType.FullyBackedUpSecrets));
        Assert.Equal(["db-password"], secret.Restored.Select(i => i.Name).ToList());

        var value = await h.Kms.GetSecretValueAsync(Source, "db-password");
        Assert.Equal(values["db-password"], value.Span.ToArray());
        var data = await h.Kms.DecryptAsync(Source, dataBefore);
        Assert.Equal("encrypted before the loss"u8.ToArray(), data.Span.ToArray());
    }

    [Fact]
    [Trait("Rule", "R9")]
    public async Task A_restored_item_keeps_its_name_id_versions_metadata_and_creator()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        var original = await ContentOfAsync(h, Source);
        await h.CreateInstanceAsync("kst-far", region: OtherRegion);

        await h.Client.RestoreAsync(Request(backup.Id, "kst-far"));

        var restored = await ContentOfAsync(h, "kst-far");
        Assert.Equal(original.Keys, restored.Keys);
        Assert.Equal(original.Secrets, restored.Secrets);
        var orders = restored.Keys.Single(k => k.Name == "orders");
        Assert.Equal(2, orders.Versions.Length);
        Assert.Equal("order signing", orders.Description);
        Assert.Equal(Owner, orders.CreatorAccount);
        Assert.Equal(2, restored.Secrets.Single(s => s.Name == "api-token").Versions.Length);
    }

    [Fact]
    [Trait("Rule", "R1")]
    public async Task Cross_region_copy_back_up_in_one_region_restore_and_use_in_another()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, values) = await BackUpSourceAsync(h);
        var target = await h.CreateInstanceAsync("kst-shanghai", region: OtherRegion);
        Assert.NotEqual(EngineHarness.Region, target.Info.Region);

        var plan = await h.Client.PlanRestoreAsync(Request(backup.Id, "kst-shanghai"));
        Assert.True(plan.CanExecute, string.Join("; ", plan.AllRefusals));
        Assert.Equal(OtherRegion, plan.TargetRegion);
        var result = await h.Client.RestoreAsync(Request(backup.Id, "kst-shanghai", operationId: plan.OperationId));

        Assert.Equal(4, result.Restored.Count);
        foreach (var (name, value) in values)
        {
            var restored = await h.Kms.GetSecretValueAsync("kst-shanghai", name);
            Assert.Equal(value, restored.Span.ToArray());
        }

        // The source still has its items: names are unique per region, so the copy in another region is no conflict.
        Assert.Equal(2, (await ContentOfAsync(h, Source)).Keys.Count);
    }

    [Fact]
    [Trait("Rule", "R8")]
    [Trait("Rule", "R4")]
    public async Task A_name_used_by_another_instance_of_the_targets_region_is_found_by_the_plan()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync("kst-target", region: OtherRegion);
        await h.CreateInstanceAsync("kst-neighbour", region: OtherRegion);
        await h.Kms.GenerateKeyAsync("kst-neighbour", "billing", Owner);
        var before = await ContentOfAsync(h, "kst-target");

        var plan = await h.Client.PlanRestoreAsync(Request(backup.Id, "kst-target"));

        Assert.False(plan.CanExecute);
        var conflict = Assert.Single(plan.AllRefusals);
        Assert.Equal(BackupErrorCode.NameConflict, conflict.Code);
        Assert.Equal("key 'billing'", conflict.Item);
        Assert.Contains("kst-neighbour", conflict.Message, StringComparison.Ordinal);
        var thrown = await Assert.ThrowsAsync<RestoreException>(() => h.Client.RestoreAsync(Request(backup.Id, "kst-target")));
        Assert.Equal(BackupErrorCode.NameConflict, thrown.Code);
        await AssertUnchangedAsync(h, "kst-target", before);
    }

    [Fact]
    [Trait("Rule", "R4")]
    public async Task Insufficient_quota_for_the_whole_batch_is_refused_with_the_seeds_remedy()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync("kst-small", region: OtherRegion, keyQuota: 2);
        await h.Kms.GenerateKeyAsync("kst-small", "existing", Owner);

        var thrown = await Assert.ThrowsAsync<RestoreException>(() => h.Client.RestoreAsync(Request(backup.Id, "kst-small")));

        Assert.Equal(BackupErrorCode.InsufficientQuota, thrown.Code);
        Assert.Contains("upgrade the target instance", thrown.Remedy, StringComparison.Ordinal);
        Assert.Equal(["existing"], (await ContentOfAsync(h, "kst-small")).Keys.Select(k => k.Name).ToList());
    }

    [Fact]
    [Trait("Rule", "R2")]
    public async Task A_restore_by_an_account_that_is_not_the_owner_is_refused_before_any_backup_data_is_read()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync("kst-far", region: OtherRegion);
        RecordingStore? recording = null;
        using var client = await h.OpenAnotherClientAsync("reader", wrapStore: s => recording = new RecordingStore(s));
        recording!.Reads.Clear();

        var denied = await Assert.ThrowsAsync<BackupException>(() => client.RestoreAsync(Request(backup.Id, "kst-far") with { CallerAccount = "acct-intruder" }));

        Assert.Equal(BackupErrorCode.AccessDenied, denied.Code);
        Assert.NotEmpty(recording.Reads);
        Assert.All(recording.Reads, key => Assert.StartsWith("catalog/", key.Replace("list:", "", StringComparison.Ordinal), StringComparison.Ordinal));

        // The owner's plan does read the data (so the recorder sees data reads when there are any).
        await client.PlanRestoreAsync(Request(backup.Id, "kst-far"));
        Assert.Contains(recording.Reads, key => key.StartsWith("packs/", StringComparison.Ordinal));
    }

    [Fact]
    [Trait("Rule", "R1")]
    [Trait("Rule", "R2")]
    public async Task A_refusal_about_another_accounts_target_never_names_its_owner_or_figures()
    {
        // The attacker owns a backup and aims its restore at an instance ID of another account.
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        var gateway = new RecordingGateway(h.Kms);
        using var attacker = await h.OpenAnotherClientAsync("attacker", gateway);
        var request = Request(backup.Id, "kst-victim");
        var missing = await attacker.PlanRestoreAsync(request);

        // The victim's instance: another region, 2 keys of a quota of 3, one of them named as the attacker's key.
        await h.CreateInstanceAsync("kst-victim", region: OtherRegion, owner: "acct-victim", keyQuota: 3);
        await h.Kms.GenerateKeyAsync("kst-victim", "orders", "acct-victim");
        await h.Kms.GenerateKeyAsync("kst-victim", "victim-payroll", "acct-victim");
        var before = await ContentOfAsync(h, "kst-victim");
        gateway.Calls.Clear();
        var foreign = await attacker.PlanRestoreAsync(request);

        // Not found or not yours: the same refusal, to the letter, whether the instance exists or not.
        var refusal = Assert.Single(foreign.AllRefusals);
        var absent = Assert.Single(missing.AllRefusals);
        Assert.Equal(absent.Code, refusal.Code);
        Assert.Equal(absent.Item, refusal.Item);
        Assert.Equal(absent.Message, refusal.Message);
        Assert.Equal(absent.Remedy, refusal.Remedy);
        Assert.Equal(BackupErrorCode.NotFound, refusal.Code);
        Assert.Null(foreign.TargetRegion);
        var said = $"{refusal.Item} {refusal.Message} {refusal.Remedy}";
        foreach (var leak in new[] { "acct-victim", "victim-payroll", OtherRegion, "quota", " 2 ", " 3" })
        {
            Assert.DoesNotContain(leak, said, StringComparison.Ordinal);
        }

        // Nothing but the description that says it is not the attacker's is asked of the victim's instance or region.
        Assert.Equal(["get kst-victim"], gateway.Calls.ToList());

        gateway.Calls.Clear();
        var thrown = await Assert.ThrowsAsync<RestoreException>(() => attacker.RestoreAsync(request));
        Assert.Equal((absent.Code, absent.Item, absent.Message, absent.Remedy), (thrown.Code, thrown.Item, thrown.Refusal.Message, thrown.Remedy));
        Assert.Equal(["get kst-victim"], gateway.Calls.ToList());
        await AssertUnchangedAsync(h, "kst-victim", before);
    }

    [Fact]
    [Trait("Rule", "R8")]
    [Trait("Rule", "R1")]
    public async Task A_name_taken_by_another_accounts_instance_in_the_region_is_a_conflict_that_never_names_that_instance()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync("kst-mine", region: OtherRegion);
        await h.CreateInstanceAsync("kst-victim", region: OtherRegion, owner: "acct-victim");
        await h.Kms.GenerateKeyAsync("kst-victim", "orders", "acct-victim");

        var plan = await h.Client.PlanRestoreAsync(Request(backup.Id, "kst-mine", keys: ["orders"]));

        // The name is taken in the region, so the restore cannot create it: a conflict, but not a map of another account.
        var conflict = Assert.Single(plan.AllRefusals);
        Assert.Equal(BackupErrorCode.NameConflict, conflict.Code);
        Assert.Equal("key 'orders'", conflict.Item);
        foreach (var leak in new[] { "kst-victim", "acct-victim" })
        {
            Assert.DoesNotContain(leak, $"{conflict.Message} {conflict.Remedy}", StringComparison.Ordinal);
        }

        Assert.Contains("another account", conflict.Message, StringComparison.Ordinal);
        Assert.Contains("another region", conflict.Remedy, StringComparison.Ordinal);

        // A gateway that does not say who owns an instance: the engine finds out, and still names only the owner's own.
        await h.CreateInstanceAsync("kst-mine-too", region: OtherRegion);
        await h.Kms.GenerateKeyAsync("kst-mine-too", "billing", EngineHarness.Owner);
        using var client = await h.OpenAnotherClientAsync("ownerless", new RecordingGateway(h.Kms, withoutOwners: true));
        var both = await client.PlanRestoreAsync(Request(backup.Id, "kst-mine", keys: ["orders", "billing"]));
        Assert.Contains("kst-mine-too", Assert.Single(both.Items.Single(i => i.Name == "billing").Refusals).Message, StringComparison.Ordinal);
        Assert.DoesNotContain("kst-victim", Assert.Single(both.Items.Single(i => i.Name == "orders").Refusals).Message, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "R2")]
    public async Task Items_a_consumer_created_restore_only_to_the_original_shared_instance_and_both_can_use_them()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.Kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-shared", InstanceKind.Software, EngineHarness.Region, Owner)
        {
            CreatedAt = h.Clock.GetUtcNow().AddDays(-1),
            SharedWith = ["acct-consumer"],
        });
        await h.Kms.GenerateKeyAsync("kst-shared", "consumer-key", "acct-consumer");
        await h.Kms.GenerateKeyAsync("kst-shared", "owner-key", Owner);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-shared"))!;
        await h.RunUntilAsync(new DateTimeOffset(2026, 5, 2, 1, 0, 0, TimeSpan.Zero), TimeSpan.FromHours(1));
        await h.CreateInstanceAsync("kst-other", region: OtherRegion);

        var elsewhere = await h.Client.PlanRestoreAsync(Request(backup.Id, "kst-other"));
        var refused = Assert.Single(elsewhere.Items, i => i.Outcome == RestoreItemOutcome.Refused);
        Assert.Equal("consumer-key", refused.Name);
        Assert.Equal(BackupErrorCode.RestoreTargetNotAllowed, Assert.Single(refused.Refusals).Code);
        Assert.True((await h.Client.PlanRestoreAsync(Request(backup.Id, "kst-other", keys: ["owner-key"]))).CanExecute);

        // Only the owner may restore, even into the shared instance.
        await Assert.ThrowsAsync<BackupException>(() => h.Client.RestoreAsync(Request(backup.Id, "kst-shared", keys: ["consumer-key"]) with { CallerAccount = "acct-consumer" }));

        await h.Kms.DeleteKeyAsync("kst-shared", "consumer-key");
        await h.Client.RestoreAsync(Request(backup.Id, "kst-shared", keys: ["consumer-key"]));
        var restored = (await h.Kms.GetKeyAsync("kst-shared", "consumer-key"))!;
        Assert.Equal("acct-consumer", restored.CreatorAccount);
        var ciphertext = await h.Kms.EncryptAsync("kst-shared", "consumer-key", "both can use it"u8.ToArray());
        var plain = await h.Kms.DecryptAsync("kst-shared", ciphertext);
        Assert.Equal("both can use it"u8.ToArray(), plain.Span.ToArray());
    }

    [Fact]
    [Trait("Rule", "R3")]
    public async Task A_hardware_instances_data_restores_to_a_new_hardware_instance_never_to_the_original()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-hsm", InstanceKind.Hardware);
        await h.Kms.GenerateKeyAsync("kst-hsm", "hsm-key", Owner);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-hsm"))!;
        await h.RunUntilAsync(new DateTimeOffset(2026, 5, 2, 1, 0, 0, TimeSpan.Zero), TimeSpan.FromHours(1));
        await h.Kms.DeleteKeyAsync("kst-hsm", "hsm-key");
        await h.CreateInstanceAsync("kst-soft", region: OtherRegion);
        await h.CreateInstanceAsync("kst-hsm-new", InstanceKind.Hardware, region: OtherRegion);

        var original = await Assert.ThrowsAsync<RestoreException>(() => h.Client.RestoreAsync(Request(backup.Id, "kst-hsm")));
        Assert.Equal(BackupErrorCode.RestoreTargetNotAllowed, original.Code);
        Assert.Null(await h.Kms.GetKeyAsync("kst-hsm", "hsm-key"));
        var software = await Assert.ThrowsAsync<RestoreException>(() => h.Client.RestoreAsync(Request(backup.Id, "kst-soft")));
        Assert.Equal(BackupErrorCode.InstanceKindMismatch, software.Code);

        await h.Client.RestoreAsync(Request(backup.Id, "kst-hsm-new"));
        var restored = (await h.Kms.GetKeyAsync("kst-hsm-new", "hsm-key"))!;
        Assert.False(restored.HasMaterial);
    }

    [Fact]
    [Trait("Rule", "R5")]
    public async Task Dates_before_enabling_outside_the_window_or_of_an_expired_backup_are_refused_before_reading_data()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync("kst-far", region: OtherRegion);

        var before = await h.Client.PlanRestoreAsync(Request(backup.Id, "kst-far") with { BackupDate = new DateOnly(2026, 4, 30) });
        Assert.Equal(BackupErrorCode.DateBeforeEnabled, Assert.Single(before.AllRefusals).Code);
        Assert.Empty(before.Items);

        var future = await h.Client.PlanRestoreAsync(Request(backup.Id, "kst-far") with { BackupDate = new DateOnly(2026, 6, 30) });
        Assert.False(future.CanExecute);

        // An automatic backup keeps 90 days, which cannot be extended: on 2026-08-05, 2026-05-02 would need 96.
        h.Clock.SetUtcNow(new DateTimeOffset(2026, 8, 5, 12, 0, 0, TimeSpan.Zero));
        var outside = await h.Client.PlanRestoreAsync(Request(backup.Id, "kst-far"));
        var refusal = Assert.Single(outside.AllRefusals);
        Assert.Equal(BackupErrorCode.DateNotReachable, refusal.Code);
        Assert.Contains("96", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "R5")]
    [Trait("Rule", "W4")]
    public async Task The_seeds_May_example_extend_to_16_viewable_days_then_restore_May_5_on_May_20()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync(Source);
        await h.Kms.GenerateKeyAsync(Source, "orders", Owner);
        var purchased = (await h.Client.PurchaseBackupsAsync(Owner, new PurchaseOrder(EngineHarness.Region, 10, PurchaseTerm.FromMonths(12)))).Single();
        await h.Client.EnableBackupAsync(Owner, purchased.Id, Source, InstanceKind.Software, "paid");
        await h.RunUntilAsync(new DateTimeOffset(2026, 5, 5, 1, 0, 0, TimeSpan.Zero), TimeSpan.FromHours(1));
        await h.Kms.DeleteKeyAsync(Source, "orders");
        h.Clock.SetUtcNow(new DateTimeOffset(2026, 5, 20, 10, 0, 0, TimeSpan.Zero));
        var request = Request(purchased.Id, Source, keys: ["orders"]) with { BackupDate = new DateOnly(2026, 5, 5) };

        var refused = await Assert.ThrowsAsync<RestoreException>(() => h.Client.RestoreAsync(request));
        Assert.Equal(BackupErrorCode.DateOutsideWindow, refused.Code);
        Assert.Contains("needs 16 viewable days", refused.Message, StringComparison.Ordinal);
        Assert.Null(await h.Kms.GetKeyAsync(Source, "orders"));

        await h.Client.ExtendViewableDaysAsync(Owner, purchased.Id, 16);
        var restored = await h.Client.RestoreAsync(request);
        Assert.Equal(["orders"], restored.Restored.Select(i => i.Name).ToList());
        Assert.NotNull(await h.Kms.GetKeyAsync(Source, "orders"));
    }

    [Fact]
    [Trait("Rule", "R5")]
    public async Task An_expired_purchased_backup_refuses_to_restore_until_renewed()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync(Source);
        await h.Kms.GenerateKeyAsync(Source, "orders", Owner);
        var purchased = (await h.Client.PurchaseBackupsAsync(Owner, new PurchaseOrder(EngineHarness.Region, 30, PurchaseTerm.FromMonths(1)))).Single();
        await h.Client.EnableBackupAsync(Owner, purchased.Id, Source, InstanceKind.Software, "paid");
        await h.RunUntilAsync(new DateTimeOffset(2026, 5, 2, 1, 0, 0, TimeSpan.Zero), TimeSpan.FromHours(1));
        await h.CreateInstanceAsync("kst-far", region: OtherRegion);
        h.Clock.SetUtcNow(new DateTimeOffset(2026, 6, 3, 0, 0, 0, TimeSpan.Zero));

        var thrown = await Assert.ThrowsAsync<RestoreException>(() => h.Client.RestoreAsync(Request(purchased.Id, "kst-far")));

        Assert.Equal(BackupErrorCode.BackupExpired, thrown.Code);
        Assert.Contains("15 days", thrown.Remedy, StringComparison.Ordinal);
        Assert.Empty((await ContentOfAsync(h, "kst-far")).Keys);
    }

    [Fact]
    [Trait("Rule", "R6")]
    public async Task Planning_writes_nothing_even_when_time_has_expired_the_backup_and_deletions_are_due()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync(Source);
        await h.Kms.GenerateKeyAsync(Source, "orders", Owner);
        var purchased = (await h.Client.PurchaseBackupsAsync(Owner, new PurchaseOrder(EngineHarness.Region, 30, PurchaseTerm.FromMonths(1)))).Single();
        await h.Client.EnableBackupAsync(Owner, purchased.Id, Source, InstanceKind.Software, "paid");
        await h.RunUntilAsync(new DateTimeOffset(2026, 5, 3, 1, 0, 0, TimeSpan.Zero), TimeSpan.FromHours(1));
        await h.CreateInstanceAsync("kst-far", region: OtherRegion);

        // Past expiry (the stored state still says Enabled) and past the days retention keeps: a scheduled run or a
        // prune would store the expiry and delete data now. A plan must do neither.
        h.Clock.SetUtcNow(new DateTimeOffset(2026, 7, 20, 0, 0, 0, TimeSpan.Zero));
        var before = h.StoreFilesContent().ToDictionary(f => f.Path, f => Convert.ToHexString(f.Bytes));

        var plan = await h.Client.PlanRestoreAsync(Request(purchased.Id, "kst-far"));

        Assert.False(plan.CanExecute);
        var after = h.StoreFilesContent().ToDictionary(f => f.Path, f => Convert.ToHexString(f.Bytes));
        Assert.Equal(before.Keys.Order(StringComparer.Ordinal), after.Keys.Order(StringComparer.Ordinal));
        Assert.All(before, f => Assert.Equal(f.Value, after[f.Key]));
    }

    [Fact]
    [Trait("Rule", "R1")]
    [Trait("Rule", "D4")]
    public async Task A_released_instance_is_recovered_whole_from_a_point_in_time()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, values) = await BackUpSourceAsync(h);
        var beforeRelease = await ContentOfAsync(h, Source);
        await h.Kms.GenerateKeyAsync(Source, "late-key", Owner);
        var lateKeyAt = h.Clock.GetUtcNow();
        await h.RunUntilAsync(lateKeyAt.AddMinutes(10), TimeSpan.FromMinutes(5));
        await h.Kms.ReleaseInstanceAsync(Source);
        await h.Client.OnInstanceReleasedAsync(Source);
        await h.CreateInstanceAsync("kst-new");

        var result = await h.Client.RestoreAsync(new RestoreRequest
        {
            CallerAccount = Owner,
            BackupId = backup.Id,
            TargetInstanceId = "kst-new",
            PointInTime = lateKeyAt.AddMinutes(-1),
            AllItems = true,
        });

        Assert.Equal(4, result.Restored.Count);
        var restored = await ContentOfAsync(h, "kst-new");
        Assert.Equal(beforeRelease.Keys, restored.Keys);
        Assert.Equal(beforeRelease.Secrets, restored.Secrets);
        var value = await h.Kms.GetSecretValueAsync("kst-new", "api-token");
        Assert.Equal(values["api-token"], value.Span.ToArray());
    }

    [Fact]
    [Trait("Rule", "R7")]
    public async Task A_rerun_with_the_same_operation_id_restores_nothing_twice()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync("kst-far", region: OtherRegion);

        var first = await h.Client.RestoreAsync(Request(backup.Id, "kst-far", operationId: "op-rerun"));
        var afterFirst = await ContentOfAsync(h, "kst-far");
        var second = await h.Client.RestoreAsync(Request(backup.Id, "kst-far", operationId: "op-rerun"));

        Assert.Equal(4, first.Restored.Count);
        Assert.Empty(second.Restored);
        Assert.Equal(4, second.AlreadyRestored.Count);
        await AssertUnchangedAsync(h, "kst-far", afterFirst);

        // Another operation sees the same items as conflicts.
        var other = await h.Client.PlanRestoreAsync(Request(backup.Id, "kst-far", operationId: "op-other"));
        Assert.All(other.Items, i => Assert.Equal(RestoreItemOutcome.Refused, i.Outcome));
        Assert.All(other.Items, i => Assert.Contains(i.Refusals, r => r.Code == BackupErrorCode.NameConflict));
    }

    [Fact]
    [Trait("Rule", "R7")]
    public async Task Progress_gives_the_operation_id_before_the_first_write_then_each_item_keys_first()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync("kst-far", region: OtherRegion);
        var reports = new List<RestoreProgress>();
        var gateway = new FailingGateway(h.Kms);
        using var client = await h.OpenAnotherClientAsync("restorer", gateway);
        var createsAtStart = -1;

        var result = await client.RestoreAsync(Request(backup.Id, "kst-far"), new SynchronousProgress<RestoreProgress>(p =>
        {
            reports.Add(p);
            if (p.Phase == RestorePhase.Started)
            {
                createsAtStart = gateway.Creates;
            }
        }));

        var started = reports[0];
        Assert.Equal((RestorePhase.Started, 0, 4, (RestoreOperationItem?)null), (started.Phase, started.Completed, started.Total, started.Item));
        Assert.Equal(0, createsAtStart);
        Assert.All(reports, r => Assert.Equal(result.OperationId, r.OperationId));
        var items = reports.Skip(1).ToList();
        Assert.Equal([1, 2, 3, 4], items.Select(r => r.Completed).ToList());
        Assert.All(items, r => Assert.Equal((RestorePhase.Restoring, 4), (r.Phase, r.Total)));
        Assert.Equal(["billing", "orders", "api-token", "db-password"], items.Select(r => r.Item!.Name).ToList());
    }

    [Fact]
    [Trait("Rule", "D2")]
    public async Task Restoring_from_a_view_takes_the_items_as_that_view_shows_them()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        h.Clock.SetUtcNow(new DateTimeOffset(2026, 5, 2, 8, 0, 0, TimeSpan.Zero));
        await h.Kms.GenerateKeyAsync(Source, "added-today", Owner);
        await h.RunUntilAsync(new DateTimeOffset(2026, 5, 2, 8, 10, 0, TimeSpan.Zero), TimeSpan.FromMinutes(5));
        await h.CreateInstanceAsync("kst-far", region: OtherRegion);

        var added = await h.Client.PlanRestoreAsync(Request(backup.Id, "kst-far", type: BackupDataType.IncrementallyBackedUpKeys));
        Assert.Equal(["added-today"], added.Items.Select(i => i.Name).ToList());
        var full = await h.Client.PlanRestoreAsync(Request(backup.Id, "kst-far", type: BackupDataType.FullyBackedUpKeys));
        Assert.Equal(["billing", "orders"], full.Items.Select(i => i.Name).ToList());
        var missing = await h.Client.PlanRestoreAsync(Request(backup.Id, "kst-far", keys: ["added-today"], type: BackupDataType.FullyBackedUpKeys));
        Assert.Equal("key 'added-today'", Assert.Single(missing.AllRefusals).Item);
    }

    [Fact]
    public async Task A_malformed_request_is_an_argument_error_that_says_what_to_change()
    {
        await using var h = await EngineHarness.CreateAsync();
        var both = Request("b", "t") with { PointInTime = h.Clock.GetUtcNow() };
        Assert.Contains("not both", (await Assert.ThrowsAsync<ArgumentException>(() => h.Client.PlanRestoreAsync(both))).Message, StringComparison.Ordinal);
        var namesAndAll = Request("b", "t", keys: ["k"]) with { AllItems = true };
        await Assert.ThrowsAsync<ArgumentException>(() => h.Client.PlanRestoreAsync(namesAndAll));
        var wrongType = Request("b", "t", secrets: ["s"], type: BackupDataType.RotatedKeys);
        Assert.Contains("only keys", (await Assert.ThrowsAsync<ArgumentException>(() => h.Client.PlanRestoreAsync(wrongType))).Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ArgumentException>(() => h.Client.PlanRestoreAsync(Request("b", "t", keys: ["k", "k"])));
    }
}

/// <summary>An <see cref="IProgress{T}"/> that reports on the caller's thread, so tests see every report at once.</summary>
internal sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
