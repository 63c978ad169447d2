using System.Security.Cryptography;
using System.Text;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// Issue 13, finding 1: the uploader chooses the data key and the format is public, so the payload is the
/// attacker's. Each test crafts a payload, encrypts it with the public codec under its own key, uploads it
/// through the public API, and checks that it is refused with a typed error that names the uploaded file
/// and leaves the store's objects exactly as they were, or (where the payload is a state a real instance can
/// be in) imported whole; and that listing, prune and verify keep working for everyone afterwards.
/// </summary>
public class UploadAttackTests
{
    public const string Name = "crafted upload";

    private static readonly DateOnly Day = new(2026, 4, 28);

    private static long Ticks(int hour, int minute = 0) => new DateTimeOffset(Day.Year, Day.Month, Day.Day, hour, minute, 0, TimeSpan.Zero).UtcTicks;

    private static RawKey Key(string name, string id, params (string Id, byte[]? Material)[] versions) =>
        new(name, id, "Aliyun_AES_256", EngineHarness.Owner, Ticks(1), null,
            versions.Select((v, i) => new RawKeyVersion(v.Id, Ticks(1, i), v.Material is null ? (byte)0 : (byte)1, v.Material)).ToList());

    private static RawSecret Secret(string name, string keyId, params string[] versions) =>
        new(name, keyId, EngineHarness.Owner, Ticks(2), "a secret",
            versions.Select((v, i) => new RawSecretVersion(v, Ticks(2, i), Encoding.UTF8.GetBytes($"ciphertext of {name} {v}"))).ToList());

    /// <summary>A valid day: a full at 00:05 with two keys and a secret, and the last point at 12:00 after one key was added and one rotated.</summary>
    public static RawDay ValidDay()
    {
        var full = new RawSnapshot(Ticks(0, 5), "kst-src", (byte)InstanceKind.Software, EngineHarness.Region, EngineHarness.Owner,
            [Key("alpha", "key-a", ("v1", [1, 2, 3])), Key("beta", "key-b", ("v1", [4, 5, 6]))],
            [Secret("db", "key-a", "s1")]);
        var last = full with
        {
            TakenTicks = Ticks(12),
            Keys = [Key("alpha", "key-a", ("v1", [1, 2, 3]), ("v2", [7, 8, 9])), Key("beta", "key-b", ("v1", [4, 5, 6])), Key("gamma", "key-c", ("v1", [10]))],
        };
        return new RawDay("bka-source", Day.DayNumber, "UTC", full, last,
            [new RawChange((byte)ItemType.Key, (byte)ChangeKind.Rotated, "alpha"), new RawChange((byte)ItemType.Key, (byte)ChangeKind.Added, "gamma")]);
    }

    private static async Task<Task<BackupDetails>> UploadAsync(EngineHarness h, byte[] payload)
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var file = await CraftedFile.EncryptAsync(payload, key);
        return h.Client.UploadAsync(EngineHarness.Owner, new MemoryStream(file), key, Name);
    }

    private static async Task<EngineHarness> HarnessWithABackupAsync()
    {
        var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.Kms.GenerateKeyAsync("kst-a", "orders", EngineHarness.Owner);
        await h.Client.OnInstanceEnabledAsync("kst-a");
        return h;
    }

    /// <summary>Uploads the payload and expects a typed refusal naming the upload, and no change in the store.</summary>
    private static async Task<BackupFileException> AssertRefusedAsync(byte[] payload)
    {
        var h = await HarnessWithABackupAsync();
        await using var _ = h;
        var before = UploadChecks.ObjectKeys(h);

        var error = await Assert.ThrowsAsync<BackupFileException>(async () => await await UploadAsync(h, payload));

        Assert.Contains(Name, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("restore the store", error.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(before, UploadChecks.ObjectKeys(h));
        await UploadChecks.AssertStoreWorksAsync(h);
        return error;
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task The_valid_day_used_below_imports()
    {
        var h = await HarnessWithABackupAsync();
        await using var _ = h;
        var uploaded = await await UploadAsync(h, ValidDay().Encode());
        Assert.Equal(BackupKind.Uploaded, uploaded.Kind);
        await UploadChecks.AssertStoreWorksAsync(h);
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task An_undefined_instance_kind_is_refused_before_anything_is_written()
    {
        var day = ValidDay();
        var error = await AssertRefusedAsync((day with { Full = day.Full with { Kind = 7 }, Last = day.Last with { Kind = 7 } }).Encode());
        Assert.Equal(BackupErrorCode.FileCorrupt, error.Code);
        Assert.Contains("instance kind", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task A_count_larger_than_the_items_that_follow_is_refused()
    {
        var layout = new PayloadLayout();
        var payload = ValidDay().Encode(layout);
        payload[layout.Counts[0]]++; // the full's key count: 2 becomes 3
        await AssertRefusedAsync(payload);
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task An_enormous_count_is_refused_without_allocating_for_it()
    {
        var layout = new PayloadLayout();
        var payload = ValidDay().Encode(layout);
        var at = layout.Counts[0];
        byte[] huge = [0xff, 0xff, 0xff, 0xff, 0x7f]; // 2^35 - 1 keys
        await AssertRefusedAsync([.. payload[..at], .. huge, .. payload[(at + 1)..]]);
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task A_payload_cut_inside_a_record_is_refused()
    {
        var payload = ValidDay().Encode();
        await AssertRefusedAsync(payload[..(payload.Length / 2)]);
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task Bytes_after_the_day_are_refused()
    {
        await AssertRefusedAsync([.. ValidDay().Encode(), 0]);
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task Two_keys_of_one_name_are_refused()
    {
        var day = ValidDay();
        await AssertRefusedAsync((day with { Last = day.Last with { Keys = [.. day.Last.Keys, day.Last.Keys[2] with { Id = "key-d" }] } }).Encode());
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task Two_keys_of_one_ID_are_refused()
    {
        var day = ValidDay();
        await AssertRefusedAsync((day with { Last = day.Last with { Keys = [day.Last.Keys[0], day.Last.Keys[1] with { Id = "key-a" }, day.Last.Keys[2]] } }).Encode());
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task Items_out_of_name_order_are_refused()
    {
        var day = ValidDay();
        await AssertRefusedAsync((day with { Full = day.Full with { Keys = [day.Full.Keys[1], day.Full.Keys[0]] } }).Encode());
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task A_hardware_instance_with_key_material_is_refused()
    {
        var day = ValidDay();
        await AssertRefusedAsync((day with { Full = day.Full with { Kind = (byte)InstanceKind.Hardware }, Last = day.Last with { Kind = (byte)InstanceKind.Hardware } }).Encode());
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task A_bad_material_tag_is_refused()
    {
        var day = ValidDay();
        var key = day.Full.Keys[0];
        await AssertRefusedAsync((day with { Full = day.Full with { Keys = [key with { Versions = [key.Versions[0] with { MaterialTag = 2, Material = null }] }, day.Full.Keys[1]] } }).Encode());
    }

    [Theory]
    [Trait("Rule", "F2")]
    [InlineData(0, 1)]
    [InlineData(3, 1)]
    [InlineData(1, 0)]
    [InlineData(1, 16)]
    [InlineData(1, 255)]
    public async Task An_undefined_change_type_or_kind_is_refused(byte type, byte kind)
    {
        var day = ValidDay();
        await AssertRefusedAsync((day with { Changes = [.. day.Changes, new RawChange(type, kind, "gamma")] }).Encode());
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task Changes_that_do_not_lead_from_the_full_backup_to_the_last_point_are_refused()
    {
        var day = ValidDay();
        await AssertRefusedAsync((day with { Changes = [day.Changes[0]] }).Encode()); // "gamma" appears without being added
        await AssertRefusedAsync((day with { Changes = [.. day.Changes, new RawChange((byte)ItemType.Key, (byte)ChangeKind.Added, "alpha")] }).Encode());
        await AssertRefusedAsync((day with { Changes = [.. day.Changes, new RawChange((byte)ItemType.Secret, (byte)ChangeKind.Rotated, "nowhere")] }).Encode());
        await AssertRefusedAsync((day with { Changes = [.. day.Changes, new RawChange((byte)ItemType.Key, (byte)ChangeKind.Deleted, "beta")] }).Encode());
    }

    /// <summary>
    /// The changes are checked by one walk in name order (issue 13, finding 2: no lookup per change, nothing held
    /// per item), which must keep the meaning of a replay in file order: each name's changes in the order the
    /// file gives them, and a refusal that names the change, by its number in the file, and the item.
    /// </summary>
    [Fact]
    [Trait("Rule", "F2")]
    public async Task Changes_are_replayed_per_name_in_file_order_and_a_refusal_names_the_change()
    {
        var day = ValidDay();
        static RawChange Change(ChangeKind kind, string name, ItemType type = ItemType.Key) => new((byte)type, (byte)kind, name);

        // Added, deleted and added again, interleaved with another name's change: the last point holds "gamma".
        var h = await EngineHarness.CreateAsync();
        await using (h)
        {
            var replayed = day with { Changes = [Change(ChangeKind.Added, "gamma"), Change(ChangeKind.Rotated, "alpha"), Change(ChangeKind.Deleted, "gamma"), Change(ChangeKind.Added, "gamma")] };
            var uploaded = await await UploadAsync(h, replayed.Encode());
            await UploadPropertyTests.AssertViewsEqualAsync(h, uploaded, replayed);
        }

        var twice = await AssertRefusedAsync((day with { Changes = [.. day.Changes, Change(ChangeKind.Added, "gamma")] }).Encode());
        Assert.Contains("change 3 of the day adds the key 'gamma', which is there already at that point of the day", twice.Message, StringComparison.Ordinal);

        var goneFirst = await AssertRefusedAsync((day with { Changes = [Change(ChangeKind.Deleted, "beta"), Change(ChangeKind.Rotated, "beta"), .. day.Changes] }).Encode());
        Assert.Contains("change 2 of the day changes the key 'beta', which is not there at that point of the day", goneFirst.Message, StringComparison.Ordinal);

        var unmentioned = await AssertRefusedAsync((day with { Changes = [day.Changes[0]] }).Encode());
        Assert.Contains("the key 'gamma' is only in the last recovery point, yet no change of the day adds or deletes it", unmentioned.Message, StringComparison.Ordinal);

        var endsGone = await AssertRefusedAsync((day with { Changes = [.. day.Changes, Change(ChangeKind.Deleted, "gamma")] }).Encode());
        Assert.Contains("after the day's changes the key 'gamma' is gone, but the last recovery point holds it", endsGone.Message, StringComparison.Ordinal);

        var secret = await AssertRefusedAsync((day with { Changes = [.. day.Changes, Change(ChangeKind.MetadataChanged, "nowhere", ItemType.Secret)] }).Encode());
        Assert.Contains("change 3 of the day changes the secret 'nowhere', which is not there", secret.Message, StringComparison.Ordinal);
    }

    /// <summary>The changes go into one manifest, which an upload holds whole while sealing it: their count and size are bounded, and checked before anything is held for them.</summary>
    [Fact]
    [Trait("Rule", "F2")]
    public async Task More_changes_than_a_day_may_hold_are_refused_naming_the_limit()
    {
        var layout = new PayloadLayout();
        var payload = ValidDay().Encode(layout);
        var at = layout.Counts[^1]; // the changes' count: 2, one byte
        byte[] tooMany = [0xC1, 0x84, 0x3D]; // 1,000,001
        var error = await AssertRefusedAsync([.. payload[..at], .. tooMany, .. payload[(at + 1)..]]);
        Assert.Contains("1000001 changes, more than the 1,000,000 a download writes", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task A_full_and_last_point_of_different_instances_are_refused()
    {
        var day = ValidDay();
        await AssertRefusedAsync((day with { Last = day.Last with { InstanceId = "kst-other" } }).Encode());
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task A_last_point_taken_before_the_full_is_refused()
    {
        var day = ValidDay();
        await AssertRefusedAsync((day with { Last = day.Last with { TakenTicks = day.Full.TakenTicks - 1 } }).Encode());
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task Points_taken_on_another_date_than_the_day_are_refused()
    {
        var day = ValidDay();
        await AssertRefusedAsync((day with { Full = day.Full with { TakenTicks = DateTimeOffset.MinValue.UtcTicks } }).Encode());
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task An_empty_name_or_version_ID_is_refused()
    {
        var day = ValidDay();
        await AssertRefusedAsync((day with { Last = day.Last with { Keys = [day.Last.Keys[0], day.Last.Keys[1], day.Last.Keys[2] with { Name = " " }] } }).Encode());
        var key = day.Full.Keys[1];
        await AssertRefusedAsync((day with { Full = day.Full with { Keys = [day.Full.Keys[0], key with { Versions = [key.Versions[0] with { VersionId = "" }] }] } }).Encode());
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task An_unknown_time_zone_or_a_date_out_of_range_is_refused()
    {
        await AssertRefusedAsync((ValidDay() with { Zone = "Mars/Olympus_Mons" }).Encode());
        await AssertRefusedAsync((ValidDay() with { DayNumber = -5 }).Encode());
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task A_string_declaring_more_bytes_than_the_file_holds_is_refused()
    {
        var layout = new PayloadLayout();
        var payload = ValidDay().Encode(layout);
        var at = layout.Lengths[0]; // the source backup ID
        byte[] huge = [0xff, 0xff, 0xff, 0xff, 0x0f];
        await AssertRefusedAsync([.. payload[..at], .. huge, .. payload[(at + 1)..]]);
    }

    /// <summary>
    /// Not an attack: a real instance keeps a secret whose key was deleted (its values cannot be read until
    /// the key is restored), so a downloaded day can hold one. It imports whole, and a restore plan reports
    /// the missing key.
    /// </summary>
    [Fact]
    [Trait("Rule", "F2")]
    public async Task A_secret_whose_key_is_not_in_the_day_imports_and_its_restore_reports_the_key_missing()
    {
        var h = await HarnessWithABackupAsync();
        await using var _ = h;
        var day = ValidDay();
        day = day with
        {
            Last = day.Last with { Secrets = [.. day.Last.Secrets, Secret("orphan", "key-deleted", "s1")] },
            Changes = [.. day.Changes, new RawChange((byte)ItemType.Secret, (byte)ChangeKind.Added, "orphan")],
        };

        var uploaded = await await UploadAsync(h, day.Encode());

        var secrets = new List<string>();
        await foreach (var item in h.Client.GetDataAsync(EngineHarness.Owner, uploaded.Id, Day, BackupDataType.FullyBackedUpSecrets))
        {
            secrets.Add(item.Name);
        }

        Assert.Equal(["db"], secrets);
        var state = await h.Client.GetStateAtAsync(EngineHarness.Owner, uploaded.Id, h.Clock.GetUtcNow());
        Assert.Equal(["db", "orphan"], state.Snapshot.Secrets.Select(s => s.Name));
        await h.CreateInstanceAsync("kst-target");
        var plan = await h.Client.PlanRestoreAsync(new RestoreRequest
        {
            CallerAccount = EngineHarness.Owner,
            BackupId = uploaded.Id,
            PointInTime = h.Clock.GetUtcNow(),
            SecretNames = ["orphan"],
            TargetInstanceId = "kst-target",
        });
        Assert.Contains(plan.AllRefusals, r => r.Code == BackupErrorCode.EncryptionKeyMissing);
        await UploadChecks.AssertStoreWorksAsync(h);
    }
}

/// <summary>What every upload test checks afterwards.</summary>
public static class UploadChecks
{
    /// <summary>Every object key of the store (leases are not objects: their records are kept under <c>objects/leases/</c>).</summary>
    public static List<string> ObjectKeys(EngineHarness h) =>
        h.StoreFilesContent().Select(f => f.Path)
            .Where(p => p.StartsWith($"{EngineHarness.StoreRoot}/objects/", StringComparison.Ordinal) && !p.StartsWith($"{EngineHarness.StoreRoot}/objects/leases/", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).ToList();

    /// <summary>Listing, prune and verify work for everyone, and every listed backup's views open.</summary>
    public static async Task AssertStoreWorksAsync(EngineHarness h)
    {
        var listed = new List<BackupDetails>();
        await foreach (var b in h.Client.ListBackupsAsync(EngineHarness.Owner))
        {
            listed.Add(b);
        }

        foreach (var b in listed.Where(b => b.QueryableRange is not null && b.LatestPoint is not null))
        {
            foreach (var type in Enum.GetValues<BackupDataType>())
            {
                await h.Client.GetDataPageAsync(EngineHarness.Owner, b.Id, b.LatestPoint!.Date, type);
            }
        }

        var prune = await h.Client.PruneAsync();
        Assert.Null(prune.CollectionBlocked);
        var verify = await h.Client.VerifyAsync();
        Assert.True(verify.IsClean, string.Join("; ", verify.Problems));
    }
}
