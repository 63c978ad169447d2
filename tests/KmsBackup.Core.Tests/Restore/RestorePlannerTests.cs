using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace KmsBackup.Tests.Restore;

/// <summary>The restore planner (rules R1–R8) as a pure function of its facts.</summary>
public class RestorePlannerTests
{
    private const string Owner = "acct-owner";
    private const string Consumer = "acct-consumer";
    private const string SourceId = "kst-src";
    private const string TargetId = "kst-dst";
    private static readonly DateTimeOffset EnabledAt = new(2026, 5, 1, 9, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Now = new(2026, 5, 4, 12, 0, 0, TimeSpan.Zero);
    private static readonly DateOnly Date = new(2026, 5, 2);

    private static BackupState Backup(int viewableDays = 30, int months = 12)
    {
        var purchased = BackupLifecycle.Purchase("paid-1", new PurchaseOrder("cn-hangzhou", viewableDays, PurchaseTerm.FromMonths(months)), BackupTimeZone.Utc, EnabledAt.AddDays(-1))
            .GetBackupsOrThrow()[0];
        var instance = new InstanceInfo(SourceId, InstanceKind.Software, "cn-hangzhou", EnabledAt.AddDays(-30));
        return BackupLifecycle.Apply(purchased, new EnableBackup(instance, InstanceKind.Software, "alias"), EnabledAt).GetStateOrThrow();
    }

    internal static KeyRecord Key(string name, string? id = null, string creator = Owner, bool material = true) =>
        new(id ?? $"key-{name}", name, "Aliyun_AES_256", creator, EnabledAt.AddDays(-2),
            [new KeyVersion("v1", EnabledAt.AddDays(-2), material ? SensitiveBytes.Copy(new byte[32]) : null)]);

    internal static SecretRecord Secret(string name, string keyId, string creator = Owner) =>
        new(name, keyId, creator, EnabledAt.AddDays(-2), [new SecretVersion("v1", EnabledAt.AddDays(-2), SensitiveBytes.Copy(new byte[48]))]);

    internal static InstanceDescription Target(
        string id = TargetId, string owner = Owner, string region = "cn-shanghai", InstanceKind kind = InstanceKind.Software,
        int keyQuota = 100, int keyCount = 0, int secretQuota = 100, int secretCount = 0, bool enabled = true) =>
        new(new InstanceInfo(id, kind, region, EnabledAt.AddDays(-10)) { IsEnabled = enabled }, owner)
        {
            KeyQuota = keyQuota,
            KeyCount = keyCount,
            SecretQuota = secretQuota,
            SecretCount = secretCount,
        };

    private static RestorePlanInput Input(IReadOnlyList<KeyRecord>? keys = null, IReadOnlyList<SecretRecord>? secrets = null, InstanceDescription? target = null) => new()
    {
        OperationId = "op-1",
        CallerAccount = Owner,
        BackupOwnerAccount = Owner,
        Backup = Backup(),
        BackupDate = Date,
        Now = Now,
        PointTakenAt = new DateTimeOffset(2026, 5, 2, 0, 0, 5, TimeSpan.Zero),
        Source = new SnapshotSource(SourceId, InstanceKind.Software, "cn-hangzhou", Owner),
        Keys = keys ?? [Key("orders"), Key("billing")],
        Secrets = secrets ?? [Secret("db-password", "key-orders")],
        TargetInstanceId = (target ?? Target()).Info.Id,
        Target = target ?? Target(),
    };

    private static Refusal Only(RestorePlan plan) => Assert.Single(plan.AllRefusals);

    [Fact]
    [Trait("Rule", "R6")]
    [Trait("Rule", "R7")]
    public void A_clean_plan_lists_every_item_keys_before_secrets_and_can_execute()
    {
        var plan = RestorePlanner.Plan(Input());

        Assert.True(plan.CanExecute);
        Assert.Empty(plan.AllRefusals);
        Assert.Equal(["key:billing", "key:orders", "secret:db-password"], plan.Items.Select(i => $"{i.Type.ToString().ToLowerInvariant()}:{i.Name}").ToList());
        Assert.All(plan.Items, i => Assert.Equal(RestoreItemOutcome.Restore, i.Outcome));
        Assert.Equal((2, 1, 0), (plan.KeysToRestore, plan.SecretsToRestore, plan.AlreadyRestored));
        Assert.Equal("cn-shanghai", plan.TargetRegion);
        Assert.Equal(SourceId, plan.SourceInstanceId);
    }

    [Fact]
    [Trait("Rule", "R6")]
    public void A_plan_holds_no_key_material_or_ciphertext()
    {
        var key = Key("orders");
        key.Versions[0].Material!.Span.ToArray().AsSpan().Clear();
        var plan = RestorePlanner.Plan(Input([key]));
        var members = typeof(RestorePlanItem).GetProperties().Select(p => p.PropertyType).Concat(typeof(RestorePlan).GetProperties().Select(p => p.PropertyType));
        Assert.DoesNotContain(members, t => t == typeof(KeyRecord) || t == typeof(SecretRecord) || t == typeof(SensitiveBytes) || t == typeof(byte[]));
        Assert.DoesNotContain("sensitive", plan.ToString(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    [Trait("Rule", "R1")]
    public void Any_region_of_the_owners_account_is_a_target_but_another_accounts_instance_is_not()
    {
        Assert.True(RestorePlanner.Plan(Input(target: Target(region: "cn-hangzhou"))).CanExecute);
        Assert.True(RestorePlanner.Plan(Input(target: Target(region: "eu-central-1"))).CanExecute);

        var refusal = Only(RestorePlanner.Plan(Input(target: Target(owner: "acct-stranger"))));
        Assert.Equal(BackupErrorCode.NotFound, refusal.Code);
        Assert.Equal($"instance '{TargetId}'", refusal.Item);
        Assert.DoesNotContain("acct-stranger", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "R1")]
    [Trait("Rule", "R2")]
    public void A_refusal_about_another_accounts_target_never_names_its_owner_or_figures()
    {
        // Every fact about the victim's instance that a plan could echo: owner, region, kind, state, quota, names, key IDs, HSM material.
        var victims = Target(owner: "acct-victim", region: "eu-victim-1", kind: InstanceKind.Hardware, keyQuota: 3, keyCount: 2, secretQuota: 7, secretCount: 5, enabled: false);
        var foreign = RestorePlanner.Plan(Input(target: victims) with
        {
            NamesInUse = [new NameInUse(ItemType.Key, "orders", TargetId), new NameInUse(ItemType.Secret, "db-password", "kst-victim-neighbour")],
            TargetKeyIds = new HashSet<string>(StringComparer.Ordinal) { "key-billing" },
            TargetClusterId = "cls-victim",
            KeyIdsWithMaterial = new HashSet<string>(StringComparer.Ordinal),
        });
        var missing = RestorePlanner.Plan(Input() with { Target = null });

        // Not found or not yours: one refusal, the same to the letter in both cases.
        var refusal = Only(foreign);
        var absent = Only(missing);
        Assert.Equal(absent.Code, refusal.Code);
        Assert.Equal(absent.Item, refusal.Item);
        Assert.Equal(absent.Message, refusal.Message);
        Assert.Equal(absent.Remedy, refusal.Remedy);
        Assert.Equal(BackupErrorCode.NotFound, refusal.Code);
        Assert.Equal(missing.TargetRegion, foreign.TargetRegion);
        Assert.Null(foreign.TargetRegion);
        Assert.Equal(
            missing.Items.Select(i => (i.Type, i.Name, i.Outcome, i.Refusals.Count)).ToList(),
            foreign.Items.Select(i => (i.Type, i.Name, i.Outcome, i.Refusals.Count)).ToList());

        var said = string.Join("\n", foreign.AllRefusals.Select(r => $"{r.Code} {r.Item} {r.Message} {r.Remedy}"));
        foreach (var leak in new[] { "acct-victim", "eu-victim-1", "kst-victim-neighbour", "cls-victim", "hardware", "quota", "enabled" })
        {
            Assert.DoesNotContain(leak, said, StringComparison.OrdinalIgnoreCase);
        }

        Assert.DoesNotMatch(@"\b[2357]\b", said);
    }

    [Fact]
    [Trait("Rule", "R1")]
    public void Software_data_goes_only_to_an_enabled_existing_software_instance()
    {
        Assert.Equal(BackupErrorCode.InstanceKindMismatch, Only(RestorePlanner.Plan(Input(target: Target(kind: InstanceKind.Hardware)))).Code);
        Assert.Equal(BackupErrorCode.InstanceNotEnabled, Only(RestorePlanner.Plan(Input(target: Target(enabled: false)))).Code);
        var released = Target() with { ReleasedAt = Now.AddDays(-1) };
        Assert.Equal(BackupErrorCode.InstanceNotEnabled, Only(RestorePlanner.Plan(Input(target: released))).Code);

        var missing = RestorePlanner.Plan(Input() with { Target = null, TargetInstanceId = "kst-none" });
        Assert.Contains(missing.BatchRefusals, r => r.Code == BackupErrorCode.NotFound && r.Item == "instance 'kst-none'");
        Assert.False(missing.CanExecute);
    }

    [Fact]
    [Trait("Rule", "R2")]
    public void Only_the_resource_owner_may_restore()
    {
        var plan = RestorePlanner.Plan(Input() with { CallerAccount = Consumer });
        Assert.False(plan.CanExecute);
        Assert.Equal(BackupErrorCode.AccessDenied, Only(plan).Code);
    }

    [Fact]
    [Trait("Rule", "R2")]
    public void A_consumer_created_item_restores_only_to_its_original_shared_instance()
    {
        var keys = new[] { Key("owner-key"), Key("consumer-key", creator: Consumer) };
        var elsewhere = RestorePlanner.Plan(Input(keys, []));
        var refused = Assert.Single(elsewhere.Items, i => i.Outcome == RestoreItemOutcome.Refused);
        Assert.Equal("consumer-key", refused.Name);
        var refusal = Assert.Single(refused.Refusals);
        Assert.Equal(BackupErrorCode.RestoreTargetNotAllowed, refusal.Code);
        Assert.Contains(SourceId, refusal.Remedy, StringComparison.Ordinal);
        Assert.Equal(RestoreItemOutcome.Restore, elsewhere.Items.Single(i => i.Name == "owner-key").Outcome);

        var original = RestorePlanner.Plan(Input(keys, [], Target(id: SourceId, region: "cn-hangzhou")));
        Assert.True(original.CanExecute);
    }

    [Fact]
    [Trait("Rule", "R3")]
    public void Hardware_data_restores_only_to_a_new_hardware_instance()
    {
        var hardware = Input([Key("hsm-key", material: false)], []) with
        {
            Source = new SnapshotSource(SourceId, InstanceKind.Hardware, "cn-hangzhou", Owner),
        };

        var original = Only(RestorePlanner.Plan(hardware with { TargetInstanceId = SourceId, Target = Target(id: SourceId, region: "cn-hangzhou", kind: InstanceKind.Hardware) }));
        Assert.Equal(BackupErrorCode.RestoreTargetNotAllowed, original.Code);
        Assert.Contains("new", original.Remedy, StringComparison.Ordinal);

        Assert.Equal(BackupErrorCode.InstanceKindMismatch, Only(RestorePlanner.Plan(hardware with { Target = Target() })).Code);
        Assert.True(RestorePlanner.Plan(hardware with { Target = Target(kind: InstanceKind.Hardware, region: "cn-hangzhou") }).CanExecute);
    }

    [Fact]
    [Trait("Rule", "R4")]
    [Trait("Rule", "R8")]
    public void A_name_in_use_anywhere_in_the_targets_region_is_a_conflict_that_names_where()
    {
        var plan = RestorePlanner.Plan(Input() with
        {
            NamesInUse = [new NameInUse(ItemType.Key, "orders", "kst-neighbour") { OwnerAccount = Owner }, new NameInUse(ItemType.Secret, "db-password", TargetId)],
        });

        Assert.False(plan.CanExecute);
        var key = plan.Items.Single(i => i.Name == "orders");
        var keyConflict = Assert.Single(key.Refusals);
        Assert.Equal(BackupErrorCode.NameConflict, keyConflict.Code);
        Assert.Equal("key 'orders'", keyConflict.Item);
        Assert.Contains("kst-neighbour", keyConflict.Message, StringComparison.Ordinal);
        Assert.Contains("rename", keyConflict.Remedy, StringComparison.Ordinal);
        var secretConflict = Assert.Single(plan.Items.Single(i => i.Name == "db-password").Refusals);
        Assert.Contains($"target instance '{TargetId}'", secretConflict.Message, StringComparison.Ordinal);
        Assert.Equal(RestoreItemOutcome.Restore, plan.Items.Single(i => i.Name == "billing").Outcome);
    }

    [Fact]
    [Trait("Rule", "R4")]
    public void A_secrets_key_must_be_in_the_target_or_earlier_in_the_batch()
    {
        var alone = RestorePlanner.Plan(Input([], [Secret("db-password", "key-orders")]));
        var refusal = Only(alone);
        Assert.Equal(BackupErrorCode.EncryptionKeyMissing, refusal.Code);
        Assert.Equal("secret 'db-password'", refusal.Item);
        Assert.Contains("key-orders", refusal.Remedy, StringComparison.Ordinal);

        // Restore requests take key names: the refusal gives the key's name and ID when the backup's data names it.
        var named = Only(RestorePlanner.Plan(Input([], [Secret("db-password", "key-orders")]) with
        {
            EncryptionKeyNames = new Dictionary<string, string> { ["key-orders"] = "orders" },
        }));
        Assert.Contains("the key 'orders' (ID 'key-orders')", named.Message, StringComparison.Ordinal);
        Assert.Contains("Restore the key 'orders'", named.Remedy, StringComparison.Ordinal);
        Assert.Contains("key-orders", named.Remedy, StringComparison.Ordinal);

        // A key the backup's data does not hold (deleted before that date) is named by ID, and the remedy says so.
        Assert.Contains("does not hold", refusal.Message, StringComparison.Ordinal);
        Assert.Contains("the key with the ID 'key-orders'", refusal.Message, StringComparison.Ordinal);

        Assert.True(RestorePlanner.Plan(Input([], [Secret("db-password", "key-orders")]) with { TargetKeyIds = new HashSet<string> { "key-orders" } }).CanExecute);
        Assert.True(RestorePlanner.Plan(Input([Key("orders")], [Secret("db-password", "key-orders")])).CanExecute);
    }

    [Fact]
    [Trait("Rule", "R4")]
    public void A_key_whose_id_the_target_already_holds_is_a_conflict()
    {
        var plan = RestorePlanner.Plan(Input([Key("orders")], []) with { TargetKeyIds = new HashSet<string> { "key-orders" } });
        var refusal = Only(plan);
        Assert.Equal(BackupErrorCode.NameConflict, refusal.Code);
        Assert.Contains("key-orders", refusal.Message, StringComparison.Ordinal);

        // The same key (name and ID) in the target is one conflict, not two.
        var same = RestorePlanner.Plan(Input([Key("orders")], []) with
        {
            TargetKeyIds = new HashSet<string> { "key-orders" },
            NamesInUse = [new NameInUse(ItemType.Key, "orders", TargetId)],
        });
        Assert.Contains("already exists in the target instance", Only(same).Message, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "R4")]
    public void The_quota_refusal_counts_the_whole_batch_and_gives_the_seeds_remedy()
    {
        var keys = Enumerable.Range(0, 4).Select(i => Key($"k{i}")).ToList();
        var plan = RestorePlanner.Plan(Input(keys, [], Target(keyQuota: 10, keyCount: 8)));
        var refusal = Only(plan);
        Assert.Equal(BackupErrorCode.InsufficientQuota, refusal.Code);
        Assert.Contains("holds 8 keys of its quota of 10; this restore adds 4 keys, 2 more", refusal.Message, StringComparison.Ordinal);
        Assert.Contains("upgrade", refusal.Remedy, StringComparison.Ordinal);
        Assert.Contains("Delete unused", refusal.Remedy, StringComparison.Ordinal);
        Assert.True(RestorePlanner.Plan(Input(keys, [], Target(keyQuota: 12, keyCount: 8))).CanExecute);
    }

    [Property(MaxTest = 300)]
    [Trait("Rule", "R4")]
    public void Quota_is_refused_exactly_when_the_whole_batch_does_not_fit(byte count, byte room, byte keys, byte secrets, byte already)
    {
        var keyCount = count % 50;
        var quota = keyCount + (room % 12);
        var keyItems = Enumerable.Range(0, keys % 15).Select(i => Key($"k{i:D2}")).ToList();
        var alreadyCount = keyItems.Count == 0 ? 0 : already % (keyItems.Count + 1);
        var secretItems = Enumerable.Range(0, secrets % 6).Select(i => Secret($"s{i}", "key-in-target")).ToList();
        var input = Input(keyItems, secretItems, Target(keyQuota: quota, keyCount: keyCount, secretQuota: 3, secretCount: 0)) with
        {
            TargetKeyIds = new HashSet<string> { "key-in-target" },
            NamesInUse = [.. keyItems.Take(alreadyCount).Select(k => new NameInUse(ItemType.Key, k.Name, TargetId) { RestoredByOperation = "op-1" })],
        };

        var plan = RestorePlanner.Plan(input);

        var adding = keyItems.Count - alreadyCount;
        var keyQuotaRefused = plan.BatchRefusals.Any(r => r.Code == BackupErrorCode.InsufficientQuota && r.Message.Contains(" keys of its quota", StringComparison.Ordinal));
        var secretQuotaRefused = plan.BatchRefusals.Any(r => r.Code == BackupErrorCode.InsufficientQuota && r.Message.Contains(" secrets of its quota", StringComparison.Ordinal));
        Assert.Equal(keyCount + adding > quota, keyQuotaRefused);
        Assert.Equal(secretItems.Count > 3, secretQuotaRefused);
        Assert.Equal(alreadyCount, plan.AlreadyRestored);
        Assert.Equal(adding, plan.KeysToRestore + plan.Items.Count(i => i.Type == ItemType.Key && i.Outcome == RestoreItemOutcome.Refused));
    }

    [Property(MaxTest = 200)]
    [Trait("Rule", "R6")]
    public void Every_chosen_item_appears_once_and_the_plan_is_the_same_for_the_same_facts(byte keys, byte secrets, byte conflicts)
    {
        var keyItems = Enumerable.Range(0, keys % 20).Select(i => Key($"key{(i * 7919) % 1000:D3}")).DistinctBy(k => k.Name).ToList();
        var secretItems = Enumerable.Range(0, secrets % 20).Select(i => Secret($"sec{(i * 104729) % 1000:D3}", i % 2 == 0 && keyItems.Count > 0 ? keyItems[0].Id : "key-absent")).DistinctBy(s => s.Name).ToList();
        var input = Input(keyItems, secretItems) with
        {
            NamesInUse = [.. keyItems.Take(conflicts % 4).Select(k => new NameInUse(ItemType.Key, k.Name, "kst-neighbour"))],
        };

        var plan = RestorePlanner.Plan(input);
        var again = RestorePlanner.Plan(input);

        Assert.Equal(keyItems.Count + secretItems.Count, plan.Items.Length);
        Assert.Equal(keyItems.Select(k => k.Name).Order(ItemNameComparer.Instance), plan.Items.Where(i => i.Type == ItemType.Key).Select(i => i.Name));
        Assert.Equal(secretItems.Select(s => s.Name).Order(ItemNameComparer.Instance), plan.Items.Where(i => i.Type == ItemType.Secret).Select(i => i.Name));
        Assert.True(plan.Items.SkipWhile(i => i.Type == ItemType.Key).All(i => i.Type == ItemType.Secret), "keys come before secrets");
        Assert.Equal(plan.Items.Select(i => i.ToString()), again.Items.Select(i => i.ToString()));
        Assert.Equal(plan.AllRefusals.ToList(), again.AllRefusals.ToList());
        Assert.Equal(plan.AllRefusals.Any(), !plan.CanExecute);
        Assert.All(plan.Items, i => Assert.Equal(i.Outcome == RestoreItemOutcome.Refused, i.Refusals.Count > 0));
    }

    [Fact]
    [Trait("Rule", "R5")]
    public void A_date_outside_the_window_before_enabling_or_of_an_expired_backup_is_refused()
    {
        var outside = Only(RestorePlanner.Plan(Input() with { Backup = Backup(viewableDays: 7), BackupDate = new DateOnly(2026, 5, 1), Now = new DateTimeOffset(2026, 5, 20, 12, 0, 0, TimeSpan.Zero) }));
        Assert.Equal(BackupErrorCode.DateOutsideWindow, outside.Code);
        Assert.Contains("needs 20 viewable days", outside.Message, StringComparison.Ordinal); // 2026-05-01 seen from 2026-05-20

        var before = Only(RestorePlanner.Plan(Input() with { BackupDate = new DateOnly(2026, 4, 30) }));
        Assert.Equal(BackupErrorCode.DateBeforeEnabled, before.Code);

        var expired = Only(RestorePlanner.Plan(Input() with { Backup = Backup(months: 1), Now = EnabledAt.AddMonths(1).AddDays(2) }));
        Assert.Equal(BackupErrorCode.BackupExpired, expired.Code);
        Assert.Contains("15 days", expired.Remedy, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "R5")]
    public void A_date_without_a_recovery_point_is_reported_once()
    {
        var plan = RestorePlanner.Plan(Input([], []) with { Source = null, PointTakenAt = null });
        Assert.Equal(BackupErrorCode.NotFound, Only(plan).Code);
    }

    [Fact]
    [Trait("Rule", "R7")]
    public void Items_this_operation_restored_already_are_left_alone_but_another_operations_are_conflicts()
    {
        var ours = new NameInUse(ItemType.Key, "orders", TargetId) { RestoredByOperation = "op-1" };
        var plan = RestorePlanner.Plan(Input() with { NamesInUse = [ours] });
        Assert.True(plan.CanExecute);
        Assert.Equal(RestoreItemOutcome.AlreadyRestored, plan.Items.Single(i => i.Name == "orders").Outcome);
        Assert.Equal(1, plan.AlreadyRestored);

        var theirs = RestorePlanner.Plan(Input() with { NamesInUse = [ours with { RestoredByOperation = "op-2" }] });
        Assert.Equal(BackupErrorCode.NameConflict, Only(theirs).Code);
    }

    [Fact]
    [Trait("Rule", "R8")]
    public void A_name_in_use_by_an_instance_of_another_account_or_of_no_known_account_is_a_conflict_that_does_not_name_it()
    {
        foreach (var owner in new[] { "acct-victim", null })
        {
            var plan = RestorePlanner.Plan(Input() with { NamesInUse = [new NameInUse(ItemType.Key, "orders", "kst-victim") { OwnerAccount = owner }] });

            var conflict = Only(plan);
            Assert.Equal(BackupErrorCode.NameConflict, conflict.Code);
            Assert.Equal("key 'orders'", conflict.Item);
            Assert.DoesNotContain("kst-victim", conflict.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("acct-victim", conflict.Message, StringComparison.Ordinal);
            Assert.Contains("another region", conflict.Remedy, StringComparison.Ordinal);
        }
    }

    [Fact]
    [Trait("Rule", "R8")]
    public void A_conflict_with_an_item_another_restore_left_in_the_target_names_that_operation_in_its_remedy()
    {
        var left = new NameInUse(ItemType.Key, "orders", TargetId) { RestoredByOperation = "restore-lost" };
        var plan = RestorePlanner.Plan(Input() with { NamesInUse = [left] });

        var conflict = Only(plan);
        Assert.Equal(BackupErrorCode.NameConflict, conflict.Code);
        Assert.Contains("restore operation 'restore-lost'", conflict.Remedy, StringComparison.Ordinal);
        Assert.Contains("resume it or roll it back", conflict.Remedy, StringComparison.Ordinal);

        // Elsewhere in the region, or made by a user, the remedy is the seed's alone.
        var neighbour = RestorePlanner.Plan(Input() with { NamesInUse = [left with { InstanceId = "kst-neighbour" }] });
        var user = RestorePlanner.Plan(Input() with { NamesInUse = [left with { RestoredByOperation = null }] });
        Assert.All([Only(neighbour), Only(user)], r => Assert.DoesNotContain("restore-lost", r.Remedy, StringComparison.Ordinal));
    }

    [Fact]
    [Trait("Rule", "R6")]
    public void Names_asked_for_that_the_data_does_not_hold_are_named()
    {
        var plan = RestorePlanner.Plan(Input() with { MissingKeyNames = ["ghost"], MissingSecretNames = ["phantom"] });
        Assert.Equal(["key 'ghost'", "secret 'phantom'"], plan.BatchRefusals.Select(r => r.Item).ToList());
        Assert.All(plan.BatchRefusals, r => Assert.Equal(BackupErrorCode.NotFound, r.Code));
    }
}
