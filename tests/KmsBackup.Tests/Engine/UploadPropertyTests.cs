using System.Security.Cryptography;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace KmsBackup.Tests.Engine;

/// <summary>Random valid days: a full backup, then adds, deletes, rotations and metadata changes up to the last point.</summary>
public static class DayGenerator
{
    // Names whose code point order differs from UTF-16 order (U+E000 against a supplementary character) among plain ones.
    private static readonly string[] s_names =
        ["alpha", "beta", "Gamma", "delta", "a", "aa", "a b", "orders/2026", "x-y_z.1", "κλειδί", "ключ", "\uE000-private", "\U0001F511-key", "中文名"];

    private static readonly string[] s_zones = ["UTC", "Asia/Shanghai", "America/New_York"];

    public static RawDay Generate(int seed)
    {
        var rng = new Random(seed);
        var zone = BackupTimeZone.FromId(s_zones[rng.Next(s_zones.Length)]);
        var date = new DateOnly(2026, 4, 30).AddDays(-rng.Next(0, 400));
        var hardware = rng.Next(4) == 0;
        var fullAt = zone.StartOf(date).AddMinutes(rng.Next(0, 600));
        var lastAt = rng.Next(4) == 0 ? fullAt : fullAt.AddMinutes(rng.Next(1, 600));
        var nextId = 0;
        var keys = new Dictionary<string, RawKey>(StringComparer.Ordinal);
        var secrets = new Dictionary<string, RawSecret>(StringComparer.Ordinal);

        RawKeyVersion KeyVersion(int n) =>
            hardware ? new RawKeyVersion($"v{n}", fullAt.UtcTicks, 0, null) : new RawKeyVersion($"v{n}", fullAt.UtcTicks, 1, RandomNumberGenerator.GetBytes(rng.Next(1, 48)));
        RawSecretVersion SecretVersion(int n) => new($"s{n}", fullAt.UtcTicks, RandomNumberGenerator.GetBytes(rng.Next(1, 64)));
        RawKey NewKey(string name) => new(name, $"key-{nextId++}", "Aliyun_AES_256", rng.Next(5) == 0 ? "acct-consumer" : EngineHarness.Owner,
            fullAt.AddDays(-rng.Next(0, 30)).UtcTicks, rng.Next(3) == 0 ? "described" : null, [.. Enumerable.Range(1, rng.Next(1, 4)).Select(KeyVersion)]);
        RawSecret NewSecret(string name) => new(name, keys.Count > 0 && rng.Next(4) > 0 ? keys.Values.ElementAt(rng.Next(keys.Count)).Id : "key-deleted",
            EngineHarness.Owner, fullAt.AddDays(-rng.Next(0, 30)).UtcTicks, null, [.. Enumerable.Range(1, rng.Next(1, 3)).Select(SecretVersion)]);

        foreach (var name in s_names.Where(_ => rng.Next(3) == 0))
        {
            keys[name] = NewKey(name);
        }

        foreach (var name in s_names.Where(_ => rng.Next(4) == 0))
        {
            secrets[name] = NewSecret(name);
        }

        var full = Snapshot(fullAt, hardware, keys, secrets);
        var changes = new List<RawChange>();
        for (var step = rng.Next(0, 10); step > 0; step--)
        {
            var isKey = rng.Next(2) == 0;
            var name = s_names[rng.Next(s_names.Length)];
            var type = (byte)(isKey ? ItemType.Key : ItemType.Secret);
            var present = isKey ? keys.ContainsKey(name) : secrets.ContainsKey(name);
            if (!present)
            {
                if (isKey)
                {
                    keys[name] = NewKey(name);
                }
                else
                {
                    secrets[name] = NewSecret(name);
                }

                changes.Add(new RawChange(type, (byte)ChangeKind.Added, name));
                continue;
            }

            switch (rng.Next(4))
            {
                case 0:
                    _ = isKey ? keys.Remove(name) : secrets.Remove(name);
                    changes.Add(new RawChange(type, (byte)ChangeKind.Deleted, name));
                    break;
                case 1:
                    if (isKey)
                    {
                        keys[name] = keys[name] with { Versions = [.. keys[name].Versions, KeyVersion(keys[name].Versions.Count + 1)] };
                    }
                    else
                    {
                        secrets[name] = secrets[name] with { Versions = [.. secrets[name].Versions, SecretVersion(secrets[name].Versions.Count + 1)] };
                    }

                    changes.Add(new RawChange(type, (byte)ChangeKind.Rotated, name));
                    break;
                case 2:
                    if (isKey)
                    {
                        keys[name] = keys[name] with { Description = $"changed {step}" };
                    }
                    else
                    {
                        secrets[name] = secrets[name] with { Description = $"changed {step}" };
                    }

                    changes.Add(new RawChange(type, (byte)ChangeKind.MetadataChanged, name));
                    break;
                default:
                    if (isKey)
                    {
                        keys[name] = keys[name] with { Description = $"both {step}", Versions = [.. keys[name].Versions, KeyVersion(keys[name].Versions.Count + 1)] };
                    }
                    else
                    {
                        secrets[name] = secrets[name] with { Description = $"both {step}", Versions = [.. secrets[name].Versions, SecretVersion(secrets[name].Versions.Count + 1)] };
                    }

                    changes.Add(new RawChange(type, (byte)(ChangeKind.Rotated | ChangeKind.MetadataChanged), name));
                    break;
            }
        }

        var last = Snapshot(lastAt, hardware, keys, secrets);
        if (lastAt == fullAt && changes.Count > 0)
        {
            last = last with { TakenTicks = fullAt.AddMinutes(5).UtcTicks };
        }

        return new RawDay($"bka-{seed:x8}", date.DayNumber, zone.Id, full, last, changes);
    }

    private static RawSnapshot Snapshot(DateTimeOffset at, bool hardware, Dictionary<string, RawKey> keys, Dictionary<string, RawSecret> secrets) =>
        new(at.UtcTicks, "kst-generated", (byte)(hardware ? InstanceKind.Hardware : InstanceKind.Software), EngineHarness.Region, EngineHarness.Owner,
            [.. keys.Values.OrderBy(k => k.Name!, ItemNameComparer.Instance)],
            [.. secrets.Values.OrderBy(s => s.Name!, ItemNameComparer.Instance)]);
}

/// <summary>How a case damages its payload before it is encrypted under the case's key.</summary>
public enum PayloadMutation
{
    None,
    FlipBit,
    Truncate,
    ChangeCount,
    ChangeEnum,
    ChangeLength,
    InsertByte,
    DeleteByte,
    Append,
}

/// <summary>One upload: a generated day, a mutation of its payload, and the segment size of its file.</summary>
public sealed record UploadCase(int Seed, PayloadMutation Mutation, int Position, byte Value, int SegmentSize)
{
    public byte[] Payload(out RawDay day)
    {
        day = DayGenerator.Generate(Seed);
        var layout = new PayloadLayout();
        var bytes = day.Encode(layout);
        int At(IReadOnlyList<int> offsets) => offsets.Count == 0 ? Position % bytes.Length : offsets[Position % offsets.Count];
        switch (Mutation)
        {
            case PayloadMutation.FlipBit:
                bytes[Position % bytes.Length] ^= (byte)(1 << (Value % 8));
                break;
            case PayloadMutation.Truncate:
                bytes = bytes[..(Position % bytes.Length)];
                break;
            case PayloadMutation.ChangeCount:
                bytes[At(layout.Counts)] = Value % 2 == 0 ? (byte)(bytes[At(layout.Counts)] + 1) : Value;
                break;
            case PayloadMutation.ChangeEnum:
                bytes[At(layout.Enums)] = Value;
                break;
            case PayloadMutation.ChangeLength:
                bytes[At(layout.Lengths)] = (byte)(bytes[At(layout.Lengths)] + (Value % 2 == 0 ? 1 : -1));
                break;
            case PayloadMutation.InsertByte:
                var at = Position % bytes.Length;
                bytes = [.. bytes[..at], Value, .. bytes[at..]];
                break;
            case PayloadMutation.DeleteByte:
                var cut = Position % bytes.Length;
                bytes = [.. bytes[..cut], .. bytes[(cut + 1)..]];
                break;
            case PayloadMutation.Append:
                bytes = [.. bytes, Value];
                break;
        }

        return bytes;
    }

    public override string ToString() => $"seed {Seed}, {Mutation} at {Position} with {Value}, segments of {SegmentSize}";
}

public static class UploadCases
{
    public static Arbitrary<UploadCase> Cases() =>
        (from seed in Gen.Choose(0, int.MaxValue)
         from mutation in Gen.Frequency(
             (6, Gen.Constant(PayloadMutation.None)),
             (2, Gen.Constant(PayloadMutation.FlipBit)),
             (2, Gen.Constant(PayloadMutation.Truncate)),
             (2, Gen.Constant(PayloadMutation.ChangeCount)),
             (3, Gen.Constant(PayloadMutation.ChangeEnum)),
             (2, Gen.Constant(PayloadMutation.ChangeLength)),
             (1, Gen.Constant(PayloadMutation.InsertByte)),
             (1, Gen.Constant(PayloadMutation.DeleteByte)),
             (1, Gen.Constant(PayloadMutation.Append)))
         from position in Gen.Choose(0, int.MaxValue)
         from value in Gen.Choose(0, 255)
         from segment in Gen.Elements(16, 61, 256, 4096, BackupFileCodec.DefaultSegmentSize)
         select new UploadCase(seed, mutation, position, (byte)value, segment))
        .ToArbitrary();
}

/// <summary>
/// Issue 13, finding 1, as a property: random valid days and mutations of them (bit flips, truncations, counts,
/// enum bytes, lengths, inserted, deleted and appended bytes), encrypted under a key the test chooses and
/// uploaded, are either imported whole, with views equal to the payload, or refused with a typed error and no
/// change in the store's objects; listing, views, prune and verify work afterwards either way. 300 cases.
/// </summary>
public class UploadPropertyTests
{
    private const string Neighbour = "acct-neighbour";

    [Property(MaxTest = 300, Arbitrary = [typeof(UploadCases)])]
    [Trait("Rule", "F2")]
    public async Task<bool> An_upload_imports_whole_or_changes_nothing(UploadCase c)
    {
        var h = await EngineHarness.CreateAsync();
        await using var _ = h;

        // Another tenant's upload, already there: nothing the case does may hurt it.
        var neighbourKey = RandomNumberGenerator.GetBytes(32);
        var neighbour = await h.Client.UploadAsync(Neighbour, new MemoryStream(await CraftedFile.EncryptAsync(UploadAttackTests.ValidDay().Encode(), neighbourKey)), neighbourKey, "neighbour");
        var neighbourView = await ItemsAsync(h, Neighbour, neighbour.Id, neighbour.LatestPoint!.Date, BackupDataType.FullyBackedUpKeys);

        var payload = c.Payload(out var generated);
        var key = RandomNumberGenerator.GetBytes(32);
        var file = await CraftedFile.EncryptAsync(payload, key, c.SegmentSize);
        var before = UploadChecks.ObjectKeys(h);

        BackupDetails? uploaded = null;
        try
        {
            uploaded = await h.Client.UploadAsync(EngineHarness.Owner, new MemoryStream(file), key, "property case");
        }
        catch (BackupException e)
        {
            Assert.True(e is BackupFileException, $"{e.GetType().Name}: {e.Message}");
            Assert.Contains("property case", e.Message, StringComparison.Ordinal);
            Assert.Equal(before, UploadChecks.ObjectKeys(h));
        }

        if (c.Mutation == PayloadMutation.None)
        {
            Assert.NotNull(uploaded);
        }

        if (uploaded is not null)
        {
            var model = RawDay.TryDecode(payload);
            Assert.NotNull(model);
            await AssertViewsEqualAsync(h, uploaded, model);
        }
        else
        {
            Assert.NotEqual(PayloadMutation.None, c.Mutation);
        }

        await UploadChecks.AssertStoreWorksAsync(h);
        Assert.Equal(neighbourView, await ItemsAsync(h, Neighbour, neighbour.Id, neighbour.LatestPoint!.Date, BackupDataType.FullyBackedUpKeys));
        return generated.DayNumber > 0;
    }

    /// <summary>The six views, the recovery points and the point-in-time states of an uploaded day are the payload's.</summary>
    public static async Task AssertViewsEqualAsync(EngineHarness h, BackupDetails uploaded, RawDay day)
    {
        var date = DateOnly.FromDayNumber(day.DayNumber);
        Assert.Equal(BackupKind.Uploaded, uploaded.Kind);
        Assert.Equal(new ViewableWindow(date, date), uploaded.QueryableRange);
        Assert.Equal(Items(day.Full.Keys), await ItemsAsync(h, EngineHarness.Owner, uploaded.Id, date, BackupDataType.FullyBackedUpKeys));
        Assert.Equal(Items(day.Full.Secrets), await ItemsAsync(h, EngineHarness.Owner, uploaded.Id, date, BackupDataType.FullyBackedUpSecrets));
        Assert.Equal(Items(Changed(day, day.Last.Keys, ItemType.Key, ChangeKind.Added)), await ItemsAsync(h, EngineHarness.Owner, uploaded.Id, date, BackupDataType.IncrementallyBackedUpKeys));
        Assert.Equal(Items(Changed(day, day.Last.Keys, ItemType.Key, ChangeKind.Rotated)), await ItemsAsync(h, EngineHarness.Owner, uploaded.Id, date, BackupDataType.RotatedKeys));
        Assert.Equal(Items(Changed(day, day.Last.Secrets, ItemType.Secret, ChangeKind.Added)), await ItemsAsync(h, EngineHarness.Owner, uploaded.Id, date, BackupDataType.IncrementallyBackedUpSecrets));
        Assert.Equal(Items(Changed(day, day.Last.Secrets, ItemType.Secret, ChangeKind.Rotated)), await ItemsAsync(h, EngineHarness.Owner, uploaded.Id, date, BackupDataType.RotatedSecrets));

        var points = await h.Client.ListRecoveryPointsAsync(EngineHarness.Owner, uploaded.Id, date);
        Assert.Equal([BackupRunKind.Full, BackupRunKind.Incremental], points.Select(p => p.Kind));
        Assert.Equal([day.Full.TakenTicks, day.Last.TakenTicks], points.Select(p => p.TakenAt.UtcTicks));
        Assert.Equal(day.Changes.Count, points[1].ChangeCount);

        var last = await h.Client.GetStateAtAsync(EngineHarness.Owner, uploaded.Id, new DateTimeOffset(day.Last.TakenTicks, TimeSpan.Zero));
        AssertSnapshot(day.Last, last.Snapshot);
        if (day.Last.TakenTicks > day.Full.TakenTicks)
        {
            var full = await h.Client.GetStateAtAsync(EngineHarness.Owner, uploaded.Id, new DateTimeOffset(day.Full.TakenTicks, TimeSpan.Zero));
            AssertSnapshot(day.Full, full.Snapshot);
        }
    }

    private static void AssertSnapshot(RawSnapshot expected, InstanceSnapshot actual)
    {
        Assert.Equal(new SnapshotSource(expected.InstanceId!, (InstanceKind)expected.Kind, expected.Region!, expected.Owner!), actual.Source);
        Assert.Equal(expected.Keys.Select(ToRecord).ToList(), actual.Keys.ToList());
        Assert.Equal(expected.Secrets.Select(ToRecord).ToList(), actual.Secrets.ToList());
    }

    internal static KeyRecord ToRecord(RawKey k) =>
        new(k.Id!, k.Name!, k.Spec!, k.Creator!, new DateTimeOffset(k.CreatedTicks, TimeSpan.Zero),
            k.Versions.Select(v => new KeyVersion(v.VersionId!, new DateTimeOffset(v.CreatedTicks, TimeSpan.Zero), v.MaterialTag == 1 ? SensitiveBytes.Copy(v.Material) : null)))
        { Description = k.Description };

    internal static SecretRecord ToRecord(RawSecret s) =>
        new(s.Name!, s.KeyId!, s.Creator!, new DateTimeOffset(s.CreatedTicks, TimeSpan.Zero),
            s.Versions.Select(v => new SecretVersion(v.VersionId!, new DateTimeOffset(v.CreatedTicks, TimeSpan.Zero), SensitiveBytes.Copy(v.Ciphertext))))
        { Description = s.Description };

    /// <summary>The items of the last point that a change of the day added (or rotated): what the day's view shows.</summary>
    private static IEnumerable<T> Changed<T>(RawDay day, IReadOnlyList<T> last, ItemType type, ChangeKind flag)
    {
        var names = day.Changes.Where(c => c.Type == (byte)type && ((ChangeKind)c.Kind & flag) == flag).Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
        return last.Where(item => names.Contains(item switch { RawKey k => k.Name, RawSecret s => s.Name, _ => null }));
    }

    private static List<BackupDataItem> Items<T>(IEnumerable<T> items) => items.Select(item => item switch
    {
        RawKey k => new BackupDataItem
        {
            Type = ItemType.Key,
            Name = k.Name!,
            KeyId = k.Id,
            Spec = k.Spec,
            CreatorAccount = k.Creator!,
            CreatedAt = new DateTimeOffset(k.CreatedTicks, TimeSpan.Zero),
            LastRotatedAt = k.Versions.Count > 1 ? new DateTimeOffset(k.Versions[^1].CreatedTicks, TimeSpan.Zero) : null,
            VersionCount = k.Versions.Count,
            Description = k.Description,
        },
        RawSecret s => new BackupDataItem
        {
            Type = ItemType.Secret,
            Name = s.Name!,
            EncryptionKeyId = s.KeyId,
            CreatorAccount = s.Creator!,
            CreatedAt = new DateTimeOffset(s.CreatedTicks, TimeSpan.Zero),
            LastRotatedAt = s.Versions.Count > 1 ? new DateTimeOffset(s.Versions[^1].CreatedTicks, TimeSpan.Zero) : null,
            VersionCount = s.Versions.Count,
            Description = s.Description,
        },
        _ => throw new ArgumentException("not an item", nameof(items)),
    }).ToList();

    private static async Task<List<BackupDataItem>> ItemsAsync(EngineHarness h, string account, string backupId, DateOnly date, BackupDataType type)
    {
        var items = new List<BackupDataItem>();
        await foreach (var item in h.Client.GetDataAsync(account, backupId, date, type))
        {
            items.Add(item);
        }

        return items;
    }
}
