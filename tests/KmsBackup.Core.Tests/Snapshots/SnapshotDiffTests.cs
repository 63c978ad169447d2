using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace KmsBackup.Tests.Snapshots;

/// <summary>A pair of snapshots of one instance: a random "before" and an "after" made from it by random edits.</summary>
public sealed record SnapshotPair(InstanceSnapshot Before, InstanceSnapshot After)
{
    public override string ToString() => $"{Before} -> {After}";
}

public static class SnapshotArbitraries
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly SnapshotSource Source = new("kst-1", InstanceKind.Software, "cn-hangzhou", "owner");

    // Names from a small alphabet so that edits collide with existing names; includes non-ASCII and supplementary characters.
    private static readonly Gen<string> NameGen =
        Gen.Elements("a", "b", "k", "z", "é", "ǅ", "\uE000", "😀", "-", "_")
            .ArrayOf().Where(a => a.Length is > 0 and < 4).Select(a => string.Concat(a));

    public static KeyRecord Key(string name, int versions, string? description = null) =>
        new($"id-{name}", name, "Aliyun_AES_256", "owner", T0,
            Enumerable.Range(1, versions).Select(v => new KeyVersion($"v{v}", T0.AddDays(v), SensitiveBytes.Copy([(byte)v, (byte)name.Length]))))
        { Description = description };

    public static SecretRecord Secret(string name, int versions, string? description = null) =>
        new(name, "id-k", "owner", T0, Enumerable.Range(1, versions).Select(v => new SecretVersion($"s{v}", T0.AddDays(v), SensitiveBytes.Copy([(byte)v]))))
        { Description = description };

    public static Arbitrary<SnapshotPair> Pairs() =>
        (from keyNames in NameGen.ArrayOf()
         from secretNames in NameGen.ArrayOf()
         from edits in Gen.Choose(0, 5).Zip(NameGen).ArrayOf()
         select Build(keyNames.Distinct().ToArray(), secretNames.Distinct().ToArray(), edits))
        .ToArbitrary();

    private static SnapshotPair Build(string[] keyNames, string[] secretNames, (int Op, string Name)[] edits)
    {
        var keys = keyNames.ToDictionary(n => n, n => Key(n, 1), StringComparer.Ordinal);
        var secrets = secretNames.ToDictionary(n => n, n => Secret(n, 1), StringComparer.Ordinal);
        var before = InstanceSnapshot.Create(Source, T0, keys.Values, secrets.Values);
        foreach (var (op, name) in edits)
        {
            switch (op)
            {
                case 0: keys[name] = keys.TryGetValue(name, out var k) ? Key(name, k.Versions.Length + 1, k.Description) : Key(name, 1); break;
                case 1: keys.Remove(name); break;
                case 2: if (keys.TryGetValue(name, out var m)) { keys[name] = Key(name, m.Versions.Length, (m.Description ?? "") + "x"); } break;
                case 3: secrets[name] = secrets.TryGetValue(name, out var s) ? Secret(name, s.Versions.Length + 1, s.Description) : Secret(name, 1); break;
                case 4: secrets.Remove(name); break;
                default: if (secrets.TryGetValue(name, out var t)) { secrets[name] = Secret(name, t.Versions.Length, (t.Description ?? "") + "y"); } break;
            }
        }

        return new SnapshotPair(before, InstanceSnapshot.Create(Source, T0.AddHours(1), keys.Values, secrets.Values));
    }
}

[Properties(Arbitrary = [typeof(SnapshotArbitraries)], MaxTest = 300)]
public class SnapshotDiffTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly SnapshotSource Source = new("kst-1", InstanceKind.Software, "cn-hangzhou", "owner");

    /// <summary>The reference: a dictionary-based diff, obviously right and slow.</summary>
    private static List<ItemChange> ReferenceDiff(InstanceSnapshot before, InstanceSnapshot after)
    {
        var result = new List<ItemChange>();
        Compare(ItemType.Key, before.Keys.ToDictionary(k => k.Name), after.Keys.ToDictionary(k => k.Name), (a, b) => a.SameVersions(b), (a, b) => a.SameMetadata(b), result);
        Compare(ItemType.Secret, before.Secrets.ToDictionary(s => s.Name), after.Secrets.ToDictionary(s => s.Name), (a, b) => a.SameVersions(b), (a, b) => a.SameMetadata(b), result);
        return result;

        static void Compare<T>(ItemType type, Dictionary<string, T> a, Dictionary<string, T> b, Func<T, T, bool> sameVersions, Func<T, T, bool> sameMetadata, List<ItemChange> into)
        {
            var changes = new List<ItemChange>();
            foreach (var (name, item) in a)
            {
                if (!b.TryGetValue(name, out var other))
                {
                    changes.Add(new ItemChange(type, name, ChangeKind.Deleted));
                    continue;
                }

                var kind = (sameVersions(item, other) ? ChangeKind.None : ChangeKind.Rotated) | (sameMetadata(item, other) ? ChangeKind.None : ChangeKind.MetadataChanged);
                if (kind != ChangeKind.None)
                {
                    changes.Add(new ItemChange(type, name, kind));
                }
            }

            changes.AddRange(b.Keys.Where(n => !a.ContainsKey(n)).Select(n => new ItemChange(type, n, ChangeKind.Added)));
            into.AddRange(changes.OrderBy(c => c.Name, ItemNameComparer.Instance));
        }
    }

    [Property]
    [Trait("Rule", "D5")]
    public bool The_merge_diff_equals_the_dictionary_diff(SnapshotPair pair) =>
        SnapshotDiff.Compare(pair.Before, pair.After).Changes.SequenceEqual(ReferenceDiff(pair.Before, pair.After));

    [Property]
    [Trait("Rule", "D5")]
    public bool A_snapshot_has_no_difference_from_itself(SnapshotPair pair) =>
        SnapshotDiff.Compare(pair.After, pair.After).IsEmpty && SnapshotDiff.Compare(pair.Before, pair.Before).IsEmpty;

    [Property]
    [Trait("Rule", "D5")]
    public bool Reversing_the_diff_swaps_added_and_deleted(SnapshotPair pair)
    {
        var forward = SnapshotDiff.Compare(pair.Before, pair.After).Changes;
        var backward = SnapshotDiff.Compare(pair.After, pair.Before).Changes;
        static ChangeKind Flip(ChangeKind k) => k switch { ChangeKind.Added => ChangeKind.Deleted, ChangeKind.Deleted => ChangeKind.Added, _ => k };
        return forward.Select(c => c with { Kind = Flip(c.Kind) }).SequenceEqual(backward);
    }

    [Fact]
    [Trait("Rule", "D5")]
    public void Added_rotated_deleted_and_metadata_changes_are_told_apart()
    {
        var before = InstanceSnapshot.Create(Source, T0,
            [SnapshotArbitraries.Key("orders", 1), SnapshotArbitraries.Key("payments", 1), SnapshotArbitraries.Key("old", 1), SnapshotArbitraries.Key("same", 2)],
            [SnapshotArbitraries.Secret("db-password", 1)]);
        var after = InstanceSnapshot.Create(Source, T0.AddHours(1),
            [SnapshotArbitraries.Key("orders", 2), SnapshotArbitraries.Key("payments", 1, "now described"), SnapshotArbitraries.Key("new", 1), SnapshotArbitraries.Key("same", 2)],
            [SnapshotArbitraries.Secret("db-password", 2, "rotated and described")]);

        var diff = SnapshotDiff.Compare(before, after);

        Assert.Equal(
            [
                new ItemChange(ItemType.Key, "new", ChangeKind.Added),
                new ItemChange(ItemType.Key, "old", ChangeKind.Deleted),
                new ItemChange(ItemType.Key, "orders", ChangeKind.Rotated),
                new ItemChange(ItemType.Key, "payments", ChangeKind.MetadataChanged),
                new ItemChange(ItemType.Secret, "db-password", ChangeKind.Rotated | ChangeKind.MetadataChanged),
            ],
            diff.Changes);
        Assert.Equal(["orders"], diff.Of(ItemType.Key, ChangeKind.Rotated).Select(c => c.Name));
    }

    [Fact]
    [Trait("Rule", "D5")]
    public void Names_sort_by_code_point_so_the_merge_matches_utf8_order()
    {
        // U+E000 is below U+1F600 as a code point but above its UTF-16 surrogates: ordinal order would disagree.
        var comparer = ItemNameComparer.Instance;
        Assert.True(comparer.Compare("\uE000", "😀") < 0);
        Assert.True(string.CompareOrdinal("\uE000", "😀") > 0);
        Assert.True(comparer.Compare("a", "ab") < 0);
        Assert.Equal(0, comparer.Compare("é", "é"));
        var snapshot = InstanceSnapshot.Create(Source, T0, [SnapshotArbitraries.Key("😀", 1), SnapshotArbitraries.Key("\uE000", 1), SnapshotArbitraries.Key("a", 1)], []);
        Assert.Equal(["a", "\uE000", "😀"], snapshot.Keys.Select(k => k.Name));
        Assert.Equal("\uE000", snapshot.KeyIndex.Name(1));
    }

    [Fact]
    [Trait("Rule", "D1")]
    public void A_hardware_snapshot_refuses_key_material()
    {
        var hardware = Source with { Kind = InstanceKind.Hardware };
        var withMaterial = SnapshotArbitraries.Key("hsm-key", 1);
        var error = Assert.Throws<ArgumentException>(() => InstanceSnapshot.Create(hardware, T0, [withMaterial], []));
        Assert.Contains("HSM", error.Message, StringComparison.Ordinal);

        var metadataOnly = new KeyRecord("id", "hsm-key", "AES_256", "owner", T0, [new KeyVersion("v1", T0, null)]);
        Assert.False(InstanceSnapshot.Create(hardware, T0, [metadataOnly], []).Keys[0].HasMaterial);
    }

    [Fact]
    public void Duplicate_names_and_bad_versions_are_refused()
    {
        Assert.Throws<ArgumentException>(() => InstanceSnapshot.Create(Source, T0, [SnapshotArbitraries.Key("a", 1), SnapshotArbitraries.Key("a", 2)], []));
        Assert.Throws<ArgumentException>(() => new KeyRecord("id", "n", "s", "o", T0, []));
        Assert.Throws<ArgumentException>(() => new SecretRecord("n", "k", "o", T0, [new SecretVersion("v", T0, SensitiveBytes.Copy([1])), new SecretVersion("v", T0, SensitiveBytes.Copy([2]))]));
    }

    [Fact]
    public void Sensitive_bytes_never_show_and_compare_in_constant_time()
    {
        var material = SensitiveBytes.Copy([1, 2, 3, 4]);
        Assert.Equal("[sensitive, 4 bytes]", material.ToString());
        Assert.Equal(SensitiveBytes.Copy([1, 2, 3, 4]), material);
        Assert.NotEqual(SensitiveBytes.Copy([1, 2, 3, 5]), material);
        var key = SnapshotArbitraries.Key("k", 1);
        Assert.DoesNotContain("1, 2", key.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("KeyVersion", key.ToString(), StringComparison.Ordinal);
        material.Clear();
        Assert.True(material.Span.ToArray().All(b => b == 0));
    }
}
