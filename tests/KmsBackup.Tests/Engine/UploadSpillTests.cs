using System.Security.Cryptography;
using System.Text;
using FsCheck;
using FsCheck.Xunit;
using KmsBackup.Repository;
using KmsBackup.Storage;
using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// Issue 13, finding 2: an upload's memory does not grow with the file. Its items wait in an encrypted spill file,
/// its trees are built item by item, its key IDs are checked by an external sort and its changes by one walk in
/// name order. These are the parts; <see cref="UploadStreamingTests"/> measures the whole.
/// </summary>
public sealed class UploadSpillTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), $"kmsbackup-spill-{Guid.NewGuid():N}");

    public UploadSpillTests()
    {
        Directory.CreateDirectory(_folder);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    // --- the tree, item by item ---

    /// <summary>
    /// The tree a builder makes, holding one leaf and one branch per level, is the tree of the level-by-level
    /// definition (every leaf, then every branch of each level over the whole level below, until a level is one
    /// node), for any number of items and any salt: including a level whose first node ends after one child.
    /// </summary>
    [Property(MaxTest = 60)]
    [Trait("Rule", "F2")]
    public async Task<bool> A_tree_built_item_by_item_is_the_tree_defined_level_by_level(PositiveInt seed)
    {
        var random = new System.Random(seed.Get);
        var count = random.Next(4) switch
        {
            0 => random.Next(0, 4),
            1 => random.Next(4, 300),
            _ => random.Next(300, 12_000),
        };
        var salt = (ulong)random.NextInt64();
        var items = Enumerable.Range(0, count).Select(i =>
        {
            var w = new RecordWriter();
            w.WriteString($"item-{i:D6}");
            w.WriteBytes(new byte[random.Next(0, 40)]);
            return w.ToArray();
        }).ToList();

        using var repository = await OpenRepositoryAsync();
        using var writer = new PackWriter(repository.Objects);
        var built = await ItemTree.WriteAsync(items, (w, item) => w.WriteRaw(item), ObjectRole.KeyLeaf, writer, salt, CancellationToken.None);
        var defined = await ReferenceTree.WriteAsync(items, salt, writer);
        Assert.Equal(defined, built);
        return true;
    }

    /// <summary>A leaf ends once its items reach 8 MiB, so that no crafted run of large items makes one object (held whole while sealed) large.</summary>
    [Fact]
    [Trait("Rule", "F2")]
    public async Task A_leaf_ends_once_its_items_reach_its_byte_limit()
    {
        var items = Enumerable.Range(0, 40).Select(i =>
        {
            var w = new RecordWriter();
            w.WriteString($"large-{i:D3}");
            w.WriteBytes(new byte[900 * 1024]);
            return w.ToArray();
        }).ToList();

        using var repository = await OpenRepositoryAsync();
        using var writer = new PackWriter(repository.Objects);
        var sizes = new List<int>();

        // A salt under which no name of these items ends a leaf: only the byte limit can.
        var salt = Enumerable.Range(0, 10_000).Select(s => (ulong)s).First(s => items.All(i => !ReferenceTree.EndsLeaf(s, i)));
        var root = await ReferenceTree.WriteAsync(items, salt, writer, sizes);
        Assert.Equal(40, root.Count);
        Assert.All(sizes, size => Assert.InRange(size, 1, ItemTree.MaximumLeafBytes + (900 * 1024) + 64));
        Assert.Equal(4, sizes.Count); // a leaf takes items of 900 KiB until they reach 8 MiB: 10 of them
        Assert.Equal(root, await ItemTree.WriteAsync(items, (w, i) => w.WriteRaw(i), ObjectRole.KeyLeaf, writer, salt, CancellationToken.None));
    }

    // --- the spill file ---

    [Fact]
    [Trait("Rule", "F2")]
    public void The_spill_file_has_no_name_in_its_folder_and_holds_no_plaintext_on_disk()
    {
        var marker = Encoding.ASCII.GetBytes("key-material-marker-0123456789");
        using var spill = SpillFile.Create(_folder, 4096);
        for (var i = 0; i < 1000; i++)
        {
            spill.Append(marker);
        }

        Assert.Empty(Directory.GetFileSystemEntries(_folder));

        // What the disk holds, read by another process through the open file (this process's own reads would be
        // refused by the lock the spill file holds).
        var onDisk = Run("cat", OpenSpillPath());
        Assert.True(onDisk.Length >= 7 * 4096, $"{onDisk.Length} bytes on disk");
        Assert.False(ByteSearch.Contains(onDisk, marker), "the spill file holds plaintext");

        // And every byte reads back, across pages and from the page still in memory.
        using var cursor = spill.OpenCursor(0);
        var back = new byte[marker.Length * 1000];
        cursor.Read(back);
        for (var i = 0; i < 1000; i++)
        {
            Assert.True(back.AsSpan(i * marker.Length, marker.Length).SequenceEqual(marker), $"copy {i}");
        }
    }

    [Fact]
    [Trait("Rule", "F2")]
    public void A_spill_page_changed_on_disk_is_refused_as_TemporaryFolderUnavailable()
    {
        using var spill = SpillFile.Create(_folder, 4096);
        spill.Append(new byte[3 * 4096]);
        var path = OpenSpillPath();
        var onDisk = Run("cat", path);
        var at = 4096 + 16 + 100; // in page 1
        var changed = Path.Combine(_folder, "byte");
        File.WriteAllBytes(changed, [(byte)(onDisk[at] ^ 1)]);
        Run("dd", $"if={changed}", $"of={path}", "bs=1", $"seek={at}", "conv=notrunc", "status=none");
        File.Delete(changed);

        using var cursor = spill.OpenCursor(0);
        cursor.Read(new byte[4096]); // page 0 is intact
        var e = Assert.Throws<BackupException>(() => cursor.Read(new byte[10]));
        Assert.Equal(BackupErrorCode.TemporaryFolderUnavailable, e.Code);
        Assert.Contains("Page 1", e.Message, StringComparison.Ordinal);
        Assert.Contains(_folder, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Rule", "F2")]
    public void A_missing_temporary_folder_is_refused_naming_it()
    {
        var missing = Path.Combine(_folder, "missing");
        var e = Assert.Throws<BackupException>(() => SpillFile.Create(missing, 4096));
        Assert.Equal(BackupErrorCode.TemporaryFolderUnavailable, e.Code);
        Assert.Contains(missing, e.Message, StringComparison.Ordinal);
        Assert.Contains("UploadTemporaryFolder", e.Remedy, StringComparison.Ordinal);
    }

    // --- key IDs, by external sort ---

    [Property(MaxTest = 40)]
    [Trait("Rule", "F2")]
    public bool Two_keys_with_one_ID_are_found_wherever_they_fall_among_spilled_runs(PositiveInt seed)
    {
        var random = new System.Random(seed.Get);
        var count = random.Next(2, 3000);
        var runLength = random.Next(2, 400);
        var ids = Enumerable.Range(0, count).Select(i => $"id-{i}").ToArray();
        int? first = null, second = null;
        if (random.Next(3) > 0)
        {
            first = random.Next(count - 1);
            second = random.Next(first.Value + 1, count);
            ids[second.Value] = ids[first.Value];
        }

        using var check = new KeyIdCheck(_folder, runLength);
        for (var i = 0; i < count; i++)
        {
            check.Add(Encoding.UTF8.GetBytes(ids[i]), i * 10L);
        }

        var found = check.FindDuplicate((a, b) => ids[a / 10] == ids[b / 10]);
        Assert.Equal(first is null ? null : (first.Value * 10L, second!.Value * 10L), found);
        return true;
    }

    // --- the whole upload ---

    [Fact]
    [Trait("Rule", "F2")]
    public async Task An_upload_whose_temporary_folder_is_missing_is_refused_and_writes_nothing()
    {
        var missing = Path.Combine(_folder, "gone");
        var h = await EngineHarness.CreateAsync(o => o.UploadTemporaryFolder = missing);
        await using var _ = h;
        var key = RandomNumberGenerator.GetBytes(32);
        var file = await CraftedFile.EncryptAsync(UploadAttackTests.ValidDay().Encode(), key);
        var before = UploadChecks.ObjectKeys(h);

        var e = await Assert.ThrowsAsync<BackupException>(() => h.Client.UploadAsync(EngineHarness.Owner, new MemoryStream(file), key, "no room"));
        Assert.Equal(BackupErrorCode.TemporaryFolderUnavailable, e.Code);
        Assert.Contains(missing, e.Message, StringComparison.Ordinal);
        Assert.Equal(before, UploadChecks.ObjectKeys(h));
        Assert.False(Directory.Exists(missing));
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task An_upload_leaves_nothing_in_its_temporary_folder()
    {
        var h = await EngineHarness.CreateAsync(o => o.UploadTemporaryFolder = _folder);
        await using var _ = h;
        var key = RandomNumberGenerator.GetBytes(32);
        var day = UploadAttackTests.ValidDay();
        var uploaded = await h.Client.UploadAsync(EngineHarness.Owner, new MemoryStream(await CraftedFile.EncryptAsync(day.Encode(), key)), key, "clean");
        await UploadPropertyTests.AssertViewsEqualAsync(h, uploaded, day);
        Assert.Empty(Directory.GetFileSystemEntries(_folder));

        // Nor does a refused one.
        var damaged = day with { Changes = [.. day.Changes, new RawChange((byte)ItemType.Key, (byte)ChangeKind.Added, "alpha")] };
        var damagedFile = await CraftedFile.EncryptAsync(damaged.Encode(), key);
        await Assert.ThrowsAsync<BackupFileException>(() => h.Client.UploadAsync(EngineHarness.Owner, new MemoryStream(damagedFile), key, "refused"));
        Assert.Empty(Directory.GetFileSystemEntries(_folder));
    }

    [Fact]
    [Trait("Rule", "F2")]
    public void The_upload_temporary_folder_option_is_validated()
    {
        Assert.Throws<ArgumentException>(() => new BackupClientOptions { UploadTemporaryFolder = " " }.Validate());
        new BackupClientOptions { UploadTemporaryFolder = _folder }.Validate();
        Assert.Null(new BackupClientOptions().UploadTemporaryFolder);
    }

    private static byte[] Run(string program, params string[] arguments)
    {
        var start = new System.Diagnostics.ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = System.Diagnostics.Process.Start(start)!;
        using var output = new MemoryStream();
        process.StandardOutput.BaseStream.CopyTo(output);
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{program}: {error}");
        return output.ToArray();
    }

    /// <summary>The open spill file of this process in <see cref="_folder"/>, through /proc: its name is gone from the folder.</summary>
    private string OpenSpillPath()
    {
        foreach (var fd in Directory.GetFiles("/proc/self/fd"))
        {
            string? target;
            try
            {
                target = new FileInfo(fd).LinkTarget;
            }
            catch (IOException)
            {
                continue;
            }

            if (target is not null && target.StartsWith(_folder, StringComparison.Ordinal) && target.EndsWith("(deleted)", StringComparison.Ordinal))
            {
                return $"/proc/{Environment.ProcessId}/fd/{Path.GetFileName(fd)}";
            }
        }

        throw new InvalidOperationException("No open, unlinked spill file of this test was found.");
    }

    internal static async Task<BackupRepository> OpenRepositoryAsync()
    {
        var files = new System.IO.Abstractions.TestingHelpers.MockFileSystem();
        var clock = new FakeTimeProvider(EngineHarness.Start);
        var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, EngineHarness.KeyFile);
        return await BackupRepository.OpenOrInitializeAsync(
            new FileSystemBackupStore(files, EngineHarness.StoreRoot, clock), keys, new StoreClockPolicy(clock, TimeSpan.FromHours(48), TimeSpan.FromMinutes(2)), CancellationToken.None);
    }

    /// <summary>
    /// The tree as docs/repository-format.md defines it, level by level over whole lists: every leaf first, then
    /// each level of branches over the whole level below, until a level is one node. Written here from the
    /// definition, independently of <see cref="ItemTree.Builder"/>, to check that building item by item gives the same tree.
    /// </summary>
    internal static class ReferenceTree
    {
        public static bool EndsLeaf(ulong salt, byte[] item) => (Hash(salt, ItemCodec.NameOf(item)) & 31) == 0;

        public static async Task<TreeRoot> WriteAsync(List<byte[]> items, ulong salt, PackWriter writer, List<int>? leafSizes = null)
        {
            var children = new List<(ObjectId Id, long Count, byte[] LastName)>();
            var start = 0;
            var bytes = 0;
            for (var i = 0; i < items.Count; i++)
            {
                bytes += items[i].Length;
                if (EndsLeaf(salt, items[i]) || i - start + 1 >= 256 || bytes >= ItemTree.MaximumLeafBytes || i == items.Count - 1)
                {
                    children.Add(await LeafAsync(items, start, i + 1, writer, leafSizes));
                    start = i + 1;
                    bytes = 0;
                }
            }

            if (items.Count == 0)
            {
                children.Add(await LeafAsync(items, 0, 0, writer, leafSizes));
            }

            byte level = 0;
            while (children.Count > 1)
            {
                level++;
                var parents = new List<(ObjectId Id, long Count, byte[] LastName)>();
                start = 0;
                for (var i = 0; i < children.Count; i++)
                {
                    if (((children[i].Id.A ^ salt) & 31) == 0 || i - start + 1 >= 256 || i == children.Count - 1)
                    {
                        var branch = new RecordWriter();
                        branch.WriteByte(level);
                        branch.WriteVarUInt((ulong)(i + 1 - start));
                        var id = new byte[ObjectId.Size];
                        for (var j = start; j <= i; j++)
                        {
                            children[j].Id.Write(id);
                            branch.WriteRaw(id);
                            branch.WriteVarUInt((ulong)children[j].Count);
                            var shared = j == start ? 0 : children[j - 1].LastName.AsSpan().CommonPrefixLength(children[j].LastName);
                            branch.WriteVarUInt((ulong)shared);
                            branch.WriteBytes(children[j].LastName.AsSpan(shared));
                        }

                        parents.Add((await writer.AddAsync(ObjectRole.Branch, branch.ToArray(), CancellationToken.None), children.Skip(start).Take(i + 1 - start).Sum(c => c.Count), children[i].LastName));
                        start = i + 1;
                    }
                }

                children = parents;
            }

            return new TreeRoot(children[0].Id, level, children[0].Count);
        }

        private static async Task<(ObjectId, long, byte[])> LeafAsync(List<byte[]> items, int start, int end, PackWriter writer, List<int>? sizes)
        {
            var leaf = new RecordWriter();
            leaf.WriteVarUInt((ulong)(end - start));
            for (var i = start; i < end; i++)
            {
                leaf.WriteRaw(items[i]);
            }

            sizes?.Add(leaf.Length);
            var lastName = end > start ? ItemCodec.NameOf(items[end - 1]).ToArray() : [];
            return (await writer.AddAsync(ObjectRole.KeyLeaf, leaf.ToArray(), CancellationToken.None), end - start, lastName);
        }

        private static ulong Hash(ulong salt, ReadOnlySpan<byte> name)
        {
            var hash = 14695981039346656037UL ^ salt;
            foreach (var b in name)
            {
                hash = unchecked((hash ^ b) * 1099511628211UL);
            }

            hash ^= hash >> 33;
            hash = unchecked(hash * 0xff51afd7ed558ccdUL);
            return hash ^ (hash >> 33);
        }
    }
}
