using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

using KmsBackup.DevelopmentKms;

using static KmsBackup.Tests.Instances.EmbeddedServiceHarness;

namespace KmsBackup.Tests.Instances;

public sealed class EmbeddedChangeFeedTests : IDisposable
{
    private readonly EmbeddedServiceHarness _h = new(new EmbeddedKeyManagementServiceOptions { ChangeLogCapacity = 4 });

    private EmbeddedKeyManagementService Kms => _h.Service;

    public void Dispose() => _h.Dispose();

    [Fact]
    public async Task The_feed_returns_what_changed_since_the_cursor_whole_and_the_names_deleted()
    {
        await _h.CreateAsync("kst-1");
        await Kms.GenerateKeyAsync("kst-1", "kept", Owner);
        await Kms.GenerateKeyAsync("kst-1", "rotated", Owner);
        await Kms.GenerateKeyAsync("kst-1", "deleted", Owner);
        var start = await Kms.ReadSnapshotAsync("kst-1");

        await Kms.RotateKeyAsync("kst-1", "rotated");
        await Kms.DeleteKeyAsync("kst-1", "deleted");
        await Kms.StoreSecretAsync("kst-1", "new-secret", "kept", Utf8("v"), Owner);
        _h.Time.Advance(TimeSpan.FromMinutes(5));
        var changes = await Kms.ReadChangesAsync("kst-1", start.Cursor!);

        Assert.True(Kms.SupportsChangeFeed);
        Assert.False(changes.CursorExpired);
        Assert.Equal(Start.AddMinutes(5), changes.ReadAt);
        Assert.Equal((await Kms.GetKeyAsync("kst-1", "rotated"))!, Assert.Single(changes.UpsertedKeys));
        Assert.Equal(["deleted"], changes.DeletedKeys);
        Assert.Equal(["new-secret"], changes.UpsertedSecrets.Select(s => s.Name));
        Assert.Empty(changes.DeletedSecrets);

        var none = await Kms.ReadChangesAsync("kst-1", changes.Cursor);
        Assert.False(none.CursorExpired);
        Assert.Empty(none.UpsertedKeys);
        Assert.Equal(changes.Cursor, none.Cursor);
    }

    [Fact]
    public async Task An_item_added_and_removed_since_the_cursor_is_not_reported()
    {
        await _h.CreateAsync("kst-1");
        var start = await Kms.ReadSnapshotAsync("kst-1");
        await Kms.GenerateKeyAsync("kst-1", "brief", Owner);
        await Kms.DeleteKeyAsync("kst-1", "brief");

        var changes = await Kms.ReadChangesAsync("kst-1", start.Cursor!);

        Assert.False(changes.CursorExpired);
        Assert.Empty(changes.UpsertedKeys);
        Assert.Empty(changes.DeletedKeys);
    }

    [Fact]
    public async Task A_cursor_older_than_the_kept_log_or_not_of_this_instance_reads_as_expired()
    {
        await _h.CreateAsync("kst-1");
        await _h.CreateAsync("kst-2");
        var start = await Kms.ReadSnapshotAsync("kst-1");
        var other = await Kms.ReadSnapshotAsync("kst-2");
        for (var i = 0; i < 4; i++)
        {
            await Kms.GenerateKeyAsync("kst-1", $"k{i}", Owner);
        }

        var stillKept = await Kms.ReadChangesAsync("kst-1", start.Cursor!);
        await Kms.GenerateKeyAsync("kst-1", "k4", Owner);
        var trimmed = await Kms.ReadChangesAsync("kst-1", start.Cursor!);
        var foreign = await Kms.ReadChangesAsync("kst-1", other.Cursor!);
        var malformed = await Kms.ReadChangesAsync("kst-1", "not a cursor");
        var ahead = await Kms.ReadChangesAsync("kst-1", start.Cursor!.Split('.')[0] + ".99");

        Assert.False(stillKept.CursorExpired);
        Assert.Equal(4, stillKept.UpsertedKeys.Count);
        Assert.All(new[] { trimmed, foreign, malformed, ahead }, c =>
        {
            Assert.True(c.CursorExpired);
            Assert.Empty(c.UpsertedKeys);
        });
        Assert.Equal(start.Cursor, trimmed.Cursor);
    }

    [Fact]
    public async Task An_instance_created_anew_under_the_same_id_does_not_accept_an_old_cursor()
    {
        var fs = new System.IO.Abstractions.TestingHelpers.MockFileSystem();
        string cursor;
        using (var first = new EmbeddedKeyManagementService(fs, "/a", _h.Time))
        {
            await first.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-1", InstanceKind.Software, Hangzhou, Owner));
            cursor = (await first.ReadSnapshotAsync("kst-1")).Cursor!;
        }

        using var second = new EmbeddedKeyManagementService(fs, "/b", _h.Time);
        await second.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-1", InstanceKind.Software, Hangzhou, Owner));

        Assert.True((await second.ReadChangesAsync("kst-1", cursor)).CursorExpired);
    }

    [Fact]
    public async Task Metadata_changes_are_in_the_feed_and_setting_the_same_description_is_not_a_change()
    {
        await _h.CreateAsync("kst-1");
        await Kms.GenerateKeyAsync("kst-1", "k", Owner, "same");
        var start = await Kms.ReadSnapshotAsync("kst-1");

        await Kms.SetDescriptionAsync("kst-1", ItemType.Key, "k", "same");
        var unchanged = await Kms.ReadChangesAsync("kst-1", start.Cursor!);
        await Kms.SetDescriptionAsync("kst-1", ItemType.Key, "k", "different");
        var changed = await Kms.ReadChangesAsync("kst-1", start.Cursor!);

        Assert.Empty(unchanged.UpsertedKeys);
        Assert.Equal("different", Assert.Single(changed.UpsertedKeys).Description);
    }
}

/// <summary>One random operation on the embedded service: what, on which name (of a small pool, so that operations collide), in which instance.</summary>
public sealed record FeedOperation(int Kind, int Name, int Instance)
{
    public override string ToString() => $"{Kind}:{Name}@{Instance}";
}

public static class FeedArbitraries
{
    public static Arbitrary<FeedOperation> Operations() =>
        (from kind in Kinds
         from name in Gen.Choose(0, 2)
         from instance in Gen.Frequency((3, Gen.Constant(0)), (1, Gen.Constant(1)))
         select new FeedOperation(kind, name, instance))
        .ToArbitrary();

    // Creations often enough that rotations, new values and deletions find something to act on.
    private static Gen<int> Kinds { get; } = Gen.Frequency(
        (4, Gen.Constant(0)), (2, Gen.Constant(1)), (1, Gen.Constant(2)), (4, Gen.Constant(3)), (3, Gen.Constant(4)),
        (1, Gen.Constant(5)), (1, Gen.Constant(6)), (2, Gen.Constant(7)), (1, Gen.Constant(8)), (1, Gen.Constant(9)));
}

/// <summary>The change feed against a model: the snapshot diff of the same two moments.</summary>
[Properties(Arbitrary = [typeof(FeedArbitraries)], MaxTest = 100, EndSize = 50)]
public sealed class EmbeddedChangeFeedProperties
{
    private static readonly string[] s_instances = ["kst-a", "kst-b"];

    /// <summary>
    /// After a random sequence of operations on two instances of one region, the feed read from the
    /// cursor of every earlier moment equals the diff between that moment's snapshot and the last one.
    /// </summary>
    [Property]
    public void The_feed_since_any_cursor_equals_the_diff_of_the_two_snapshots(FeedOperation[] operations)
    {
        using var h = new EmbeddedServiceHarness();
        foreach (var id in s_instances)
        {
            h.CreateAsync(id, keyQuota: 3, secretQuota: 3).GetAwaiter().GetResult();
        }

        var moments = s_instances.ToDictionary(id => id, id => new List<SnapshotRead> { Read(h, id) });
        var serial = 0;
        foreach (var operation in operations)
        {
            Apply(h, operation, ++serial);
            var id = s_instances[operation.Instance];
            var read = Read(h, id);
            if (read.Cursor != moments[id][^1].Cursor)
            {
                moments[id].Add(read);
            }
        }

        foreach (var id in s_instances)
        {
            var end = Read(h, id);
            foreach (var start in moments[id])
            {
                var changes = h.Service.ReadChangesAsync(id, start.Cursor!).GetAwaiter().GetResult();
                var diff = SnapshotDiff.Compare(start.Snapshot, end.Snapshot);

                Assert.False(changes.CursorExpired);
                Assert.Equal(end.Cursor, changes.Cursor);
                Assert.Equal(Names(diff, ItemType.Key, deleted: true), changes.DeletedKeys);
                Assert.Equal(Names(diff, ItemType.Secret, deleted: true), changes.DeletedSecrets);
                // The feed names every item changed since the cursor; the diff only those that ended up
                // different. An item changed and changed back (a description set to d2, d1, then d2 again)
                // is in the feed as it is now, which equals what it was at the cursor.
                var changedKeys = Names(diff, ItemType.Key, deleted: false);
                var changedSecrets = Names(diff, ItemType.Secret, deleted: false);
                Assert.Subset(changes.UpsertedKeys.Select(k => k.Name).ToHashSet(), changedKeys.ToHashSet());
                Assert.Subset(changes.UpsertedSecrets.Select(k => k.Name).ToHashSet(), changedSecrets.ToHashSet());
                Assert.All(changes.UpsertedKeys.Where(k => !changedKeys.Contains(k.Name)), k => Assert.Equal(start.Snapshot.FindKey(k.Name), k));
                Assert.All(changes.UpsertedSecrets.Where(s => !changedSecrets.Contains(s.Name)), s => Assert.Equal(start.Snapshot.FindSecret(s.Name), s));
                Assert.True(changes.UpsertedKeys.Select(k => k.Name).SequenceEqual(changes.UpsertedKeys.Select(k => k.Name).Order(ItemNameComparer.Instance)), "upserted keys are sorted by name");
                Assert.All(changes.UpsertedKeys, k => Assert.Equal(end.Snapshot.FindKey(k.Name), k));
                Assert.All(changes.UpsertedSecrets, s => Assert.Equal(end.Snapshot.FindSecret(s.Name), s));
            }
        }
    }

    /// <summary>A case FsCheck found: a key's description set to d2, d1 and d2 again is in the feed, not in the diff.</summary>
    [Fact]
    public void An_item_changed_and_changed_back_is_in_the_feed_as_it_is_now() =>
        The_feed_since_any_cursor_equals_the_diff_of_the_two_snapshots(
            [new(7, 1, 0), new(6, 1, 0), new(7, 0, 1), new(6, 1, 0), new(0, 2, 1), new(0, 0, 1), new(5, 1, 0), new(6, 1, 0)]);

    private static SnapshotRead Read(EmbeddedServiceHarness h, string id) => h.Service.ReadSnapshotAsync(id).GetAwaiter().GetResult();

    private static List<string> Names(SnapshotDiff diff, ItemType type, bool deleted) =>
        [.. diff.Changes.Where(c => c.Type == type && (c.Kind == ChangeKind.Deleted) == deleted).Select(c => c.Name)];

    private static void Apply(EmbeddedServiceHarness h, FeedOperation op, int serial)
    {
        var kms = h.Service;
        var id = s_instances[op.Instance];
        var key = $"k{op.Name}";
        var secret = $"s{op.Name}";
        var operationId = $"op-{op.Name % 2}";
        h.Time.Advance(TimeSpan.FromSeconds(1));
        var cursorBefore = Read(h, id).Cursor;
        try
        {
            Task task = op.Kind switch
            {
                0 => kms.GenerateKeyAsync(id, key, Owner),
                1 => kms.RotateKeyAsync(id, key),
                2 => kms.DeleteKeyAsync(id, key),
                3 => kms.StoreSecretAsync(id, secret, key, Utf8($"value-{serial}"), Owner),
                4 => kms.PutSecretValueAsync(id, secret, Utf8($"value-{serial}")),
                5 => kms.DeleteSecretAsync(id, secret),
                6 => kms.SetDescriptionAsync(id, ItemType.Key, key, $"d{serial % 3}"),
                7 => kms.CreateKeyAsync(id, new KeyRecord($"key-r{serial}", key, EmbeddedKeyManagementService.KeySpec, Owner, h.Time.GetUtcNow(),
                    [new KeyVersion($"v{serial}", h.Time.GetUtcNow(), SensitiveBytes.Copy(new byte[32]))]), operationId),
                8 => kms.DeleteRestoredItemAsync(id, op.Name % 2 == 0 ? ItemType.Key : ItemType.Secret, op.Name % 2 == 0 ? key : secret, operationId),
                _ => kms.SetDescriptionAsync(id, ItemType.Secret, secret, $"d{serial % 3}"),
            };
            task.GetAwaiter().GetResult();
        }
        catch (BackupException)
        {
            // A refusal changes nothing, not even the change log.
            Assert.Equal(cursorBefore, Read(h, id).Cursor);
        }
    }
}
