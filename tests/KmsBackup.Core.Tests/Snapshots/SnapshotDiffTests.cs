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

/// <summary>Two indexes to merge: names (sorted, unique) and stamps of each side.</summary>
public sealed record MergeCase(string[] BeforeNames, long[] BeforeStamps, string[] AfterNames, long[] AfterStamps)
{
    internal ItemIndex Before => ItemIndex.Build(BeforeNames, BeforeStamps);

    internal ItemIndex After => ItemIndex.Build(AfterNames, AfterStamps);

    public override string ToString() =>
        $"{BeforeNames.Length} -> {AfterNames.Length} items; first differences: " +
        string.Join(", ", BeforeNames.Except(AfterNames).Concat(AfterNames.Except(BeforeNames)).Take(6));
}

/// <summary>
/// Cases aimed at the block skipping of <see cref="ItemIndex.Merge"/>: long equal runs over several blocks,
/// differences at and around block boundaries (also counted from the previous difference, where a new run
/// starts), and neighbours whose concatenated name bytes and stamps are equal while their boundaries differ.
/// </summary>
public static class MergeArbitraries
{
    private const int Block = ItemIndex.MergeBlock;

    // Gaps between edits: mostly exactly at, just before or just after a block boundary from the previous edit.
    private static readonly Gen<int> Gap = Gen.Frequency(
        (4, Gen.Elements(Block - 1, Block, Block + 1, 2 * Block, 2 * Block + 1)),
        (2, Gen.Choose(1, 3)),
        (2, Gen.Choose(1, 3 * Block)));

    public static Arbitrary<MergeCase> Cases() => Gen.OneOf(LongRuns(), SameBytesOtherBoundaries()).ToArbitrary();

    private static string BaseName(int k) => $"key-{2 * k:D6}";

    private static long BaseStamp(int k) => (k * 7919L) + 1;

    /// <summary>n items; edits (0 delete, 1 new stamp, 2 insert before) at cumulative gaps.</summary>
    private static Gen<MergeCase> LongRuns() =>
        from n in Gen.Choose(0, 5 * Block)
        from first in Gen.Frequency((3, Gen.Constant(0)), (1, Gen.Choose(0, Block + 1)))
        from gaps in Gap.ListOf()
        from ops in Gen.Choose(0, 2).ArrayOf(gaps.Count + 1)
        select BuildEdited(n, first, gaps, ops);

    private static MergeCase BuildEdited(int n, int first, List<int> gaps, int[] ops)
    {
        var edits = new Dictionary<int, int>();
        var position = first;
        for (var e = 0; e <= gaps.Count && position < n; e++)
        {
            edits.TryAdd(position, ops[e]);
            position += e < gaps.Count ? gaps[e] : n;
        }

        var beforeNames = Enumerable.Range(0, n).Select(BaseName).ToArray();
        var beforeStamps = Enumerable.Range(0, n).Select(BaseStamp).ToArray();
        var afterNames = new List<string>(n + edits.Count);
        var afterStamps = new List<long>(n + edits.Count);
        for (var k = 0; k < n; k++)
        {
            switch (edits.GetValueOrDefault(k, -1))
            {
                case 0:
                    continue;
                case 1:
                    afterNames.Add(beforeNames[k]);
                    afterStamps.Add(-beforeStamps[k]);
                    continue;
                case 2:
                    afterNames.Add(k == 0 ? "key-" : $"key-{(2 * k) - 1:D6}");
                    afterStamps.Add(BaseStamp(k)); // the stamp of the item it precedes: only the name tells them apart
                    break;
            }

            afterNames.Add(beforeNames[k]);
            afterStamps.Add(beforeStamps[k]);
        }

        return new MergeCase(beforeNames, beforeStamps, [.. afterNames], [.. afterStamps]);
    }

    /// <summary>
    /// Prefix ++ [u+v, w] ++ suffix against prefix ++ [u, v+w] ++ suffix, with positional stamps: both sides
    /// have the same count, the same bytes and the same stamps at every position ("ab","c" against "a","bc").
    /// </summary>
    private static Gen<MergeCase> SameBytesOtherBoundaries() =>
        from prefix in Gen.Choose(0, 3 * Block)
        from suffix in Gen.Choose(0, Block + 2)
        from r1 in Gen.Elements('a', 'b', 'c', 'd', 'e').ArrayOf().Where(a => a.Length < 4)
        from r2Head in Gen.Elements('f', 'g', 'h', 'l')
        from r2 in Gen.Elements('a', 'f', 'l').ArrayOf().Where(a => a.Length < 4)
        from r3 in Gen.Elements('a', 'm', 'z').ArrayOf().Where(a => a.Length < 4)
        select BuildSameBytes(prefix, suffix, "m" + new string(r1), "m" + r2Head + new string(r2), "n" + new string(r3));

    private static MergeCase BuildSameBytes(int prefix, int suffix, string u, string v, string w)
    {
        var head = Enumerable.Range(0, prefix).Select(k => $"k{k:D5}").ToArray();
        var tail = Enumerable.Range(0, suffix).Select(k => $"z{k:D5}").ToArray();
        string[] before = [.. head, u + v, w, .. tail];
        string[] after = [.. head, u, v + w, .. tail];
        var stamps = Enumerable.Range(0, before.Length).Select(k => (long)k).ToArray();
        return new MergeCase(before, stamps, after, stamps);
    }
}

[Properties(Arbitrary = [typeof(MergeArbitraries)], MaxTest = 300)]
public class ItemIndexMergeTests
{
    private const int Block = ItemIndex.MergeBlock;

    /// <summary>What differs, as (name, '+' added | '-' deleted | '~' changed), by name: from dictionaries, obviously right.</summary>
    private static List<(string Name, char Kind)> ReferenceDiff(string[] beforeNames, long[] beforeStamps, string[] afterNames, long[] afterStamps)
    {
        var before = beforeNames.Zip(beforeStamps).ToDictionary(p => p.First, p => p.Second, StringComparer.Ordinal);
        var after = afterNames.Zip(afterStamps).ToDictionary(p => p.First, p => p.Second, StringComparer.Ordinal);
        return before.Keys.Where(n => !after.ContainsKey(n)).Select(n => (n, '-'))
            .Concat(after.Keys.Where(n => !before.ContainsKey(n)).Select(n => (n, '+')))
            .Concat(before.Keys.Where(n => after.TryGetValue(n, out var s) && s != before[n]).Select(n => (n, '~')))
            .OrderBy(d => d.n, ItemNameComparer.Instance)
            .ToList();
    }

    private static List<(string Name, char Kind)> MergeDiff(ItemIndex before, ItemIndex after)
    {
        var found = new List<(string, char)>();
        ItemIndex.Merge(before, after, (i, j) => found.Add(i < 0 ? (after.Name(j), '+') : j < 0 ? (before.Name(i), '-') : (after.Name(j), '~')));
        return found;
    }

    [Property]
    [Trait("Rule", "D5")]
    public bool The_block_skipping_merge_equals_the_dictionary_diff_both_ways(MergeCase c) =>
        MergeDiff(c.Before, c.After).SequenceEqual(ReferenceDiff(c.BeforeNames, c.BeforeStamps, c.AfterNames, c.AfterStamps)) &&
        MergeDiff(c.After, c.Before).SequenceEqual(ReferenceDiff(c.AfterNames, c.AfterStamps, c.BeforeNames, c.BeforeStamps));

    [Property]
    [Trait("Rule", "D5")]
    public bool An_index_has_no_difference_from_itself_or_its_copy(MergeCase c) =>
        MergeDiff(c.Before, c.Before).Count == 0 &&
        MergeDiff(c.After, ItemIndex.Build(c.AfterNames, c.AfterStamps)).Count == 0;

    [Fact]
    [Trait("Rule", "D5")]
    public void Equal_bytes_with_other_boundaries_are_differences()
    {
        var before = ItemIndex.Build(["ab", "c"], [1, 2]);
        var after = ItemIndex.Build(["a", "bc"], [1, 2]);
        Assert.Equal([("a", '+'), ("ab", '-'), ("bc", '+'), ("c", '-')], MergeDiff(before, after));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(0)]
    [InlineData(1)]
    [Trait("Rule", "D5")]
    public void A_change_at_every_block_boundary_is_found(int offset)
    {
        // Changes at m·Block + offset from the start, and so from each previous change at every distance
        // around a block: each restarts the run, whose blocks then end on the next change.
        var count = (6 * Block) + 3;
        var names = Enumerable.Range(0, count).Select(k => $"app/orders/key-{k:D6}").ToArray();
        var stamps = Enumerable.Range(0, count).Select(k => (long)k).ToArray();
        var changed = stamps.ToArray();
        var positions = Enumerable.Range(1, 6).Select(m => (m * Block) + offset).Where(p => p < count).ToList();
        foreach (var p in positions)
        {
            changed[p] = -1 - p;
        }

        var found = MergeDiff(ItemIndex.Build(names, stamps), ItemIndex.Build(names, changed));

        Assert.Equal(positions.Select(p => (names[p], '~')), found);
        Assert.Empty(MergeDiff(ItemIndex.Build(names, stamps), ItemIndex.Build(names, stamps)));
    }

    [Fact]
    [Trait("Rule", "D5")]
    public void Only_the_last_of_a_long_equal_run_differs()
    {
        var count = (5 * Block) + 7;
        var names = Enumerable.Range(0, count).Select(k => $"n{k:D7}").ToArray();
        var stamps = new long[count];
        var renamed = names.ToArray();
        renamed[^1] += "x";
        Assert.Equal([(names[^1], '-'), (renamed[^1], '+')], MergeDiff(ItemIndex.Build(names, stamps), ItemIndex.Build(renamed, stamps)));
    }
}
