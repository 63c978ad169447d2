namespace KmsBackup.Benchmarks.Snapshots;

/// <summary>
/// Workload generator for the diff benchmarks: two snapshots of one instance of <c>count</c> keys with
/// realistic names (<c>app/orders/key-000123</c>), the second made from the first by 1% churn split
/// evenly between added, deleted and changed (rotated) keys at random positions.
/// </summary>
internal sealed class SnapshotDiffWorkload
{
    private static readonly string[] Services = ["billing", "identity", "inventory", "orders", "payments", "search", "shipping", "users"];
    private static readonly DateTimeOffset CreatedAt = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly SnapshotSource Source = new("kst-bench", InstanceKind.Software, "cn-hangzhou", "owner-1");

    private SnapshotDiffWorkload(InstanceSnapshot before, InstanceSnapshot after, int expectedDifferences)
    {
        Before = before;
        After = after;
        ExpectedDifferences = expectedDifferences;
    }

    public InstanceSnapshot Before { get; }

    public InstanceSnapshot After { get; }

    /// <summary>How many keys differ: added + deleted + changed.</summary>
    public int ExpectedDifferences { get; }

    public static SnapshotDiffWorkload Create(int count, int seed = 20260101)
    {
        var perKind = Math.Max(1, count / 300); // 1% churn: a third each added, deleted, changed
        var universe = count + perKind;
        var random = new Random(seed);

        // Every key shares one material buffer: the diff never reads material of an unchanged key,
        // and a million distinct 32-byte buffers would only measure the allocator.
        var material = SensitiveBytes.Copy(new byte[32]);
        var all = new KeyRecord[universe];
        for (var k = 0; k < universe; k++)
        {
            var name = $"app/{Services[k % Services.Length]}/key-{k / Services.Length:D6}";
            all[k] = new KeyRecord($"key-{k:x8}", name, "Aliyun_AES_256", "owner-1", CreatedAt.AddSeconds(k), [new KeyVersion("v1", CreatedAt.AddSeconds(k), material)]);
        }

        var order = Enumerable.Range(0, universe).OrderBy(_ => random.Next()).ToArray();
        var added = order[..perKind].ToHashSet();
        var deleted = order[perKind..(2 * perKind)].ToHashSet();
        var changed = order[(2 * perKind)..(3 * perKind)].ToHashSet();

        var before = new List<KeyRecord>(count);
        var after = new List<KeyRecord>(count);
        for (var k = 0; k < universe; k++)
        {
            var key = all[k];
            if (!added.Contains(k))
            {
                before.Add(key);
            }

            if (deleted.Contains(k))
            {
                continue;
            }

            after.Add(changed.Contains(k)
                ? new KeyRecord(key.Id, key.Name, key.Spec, key.CreatorAccount, key.CreatedAt, [.. key.Versions, new KeyVersion("v2", CreatedAt.AddDays(30), material)])
                : key);
        }

        var beforeSnapshot = InstanceSnapshot.Create(Source, CreatedAt.AddDays(30), before, []);
        var afterSnapshot = InstanceSnapshot.Create(Source, CreatedAt.AddDays(30).AddMinutes(5), after, []);

        // Build the columnar indexes now: the benchmarks measure the diff, not the index build.
        _ = beforeSnapshot.KeyIndex;
        _ = beforeSnapshot.SecretIndex;
        _ = afterSnapshot.KeyIndex;
        _ = afterSnapshot.SecretIndex;
        return new SnapshotDiffWorkload(beforeSnapshot, afterSnapshot, 3 * perKind);
    }
}
