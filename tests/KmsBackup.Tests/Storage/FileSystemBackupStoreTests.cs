using System.IO.Abstractions;
using System.IO.Abstractions.TestingHelpers;

using KmsBackup.Storage;

namespace KmsBackup.Tests.Storage;

/// <summary>The store contract, plus what is particular to a file system, for <see cref="FileSystemBackupStore"/>.</summary>
public abstract class FileSystemBackupStoreTests : BackupStoreContractTests
{
    /// <summary>The file system under test.</summary>
    protected abstract IFileSystem FileSystem { get; }

    /// <summary>The store's folder in <see cref="FileSystem"/>.</summary>
    protected abstract string RootPath { get; }

    protected override BackupStore CreateStore() => new FileSystemBackupStore(FileSystem, RootPath, Time);

    private string InRoot(params string[] parts) => FileSystem.Path.Combine([FileSystem.Path.GetFullPath(RootPath), .. parts]);

    protected override Task PutPastTheApiAsync(string key, byte[] content)
    {
        var path = InRoot(["objects", .. key.Split('/')]);
        FileSystem.Directory.CreateDirectory(FileSystem.Path.GetDirectoryName(path)!);
        FileSystem.File.WriteAllBytes(path, content);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Objects_are_files_under_objects_and_lease_records_are_files_under_objects_leases()
    {
        Assert.True(await Store.TryCreateAsync("data/ab/object-1", Content(10, seed: 1)));
        await using var lease = await Store.AcquireLeaseAsync("backups/b-1", "writer", TimeSpan.FromSeconds(10));

        Assert.Equal(Content(10, seed: 1), FileSystem.File.ReadAllBytes(InRoot("objects", "data", "ab", "object-1")));
        Assert.Equal("00000000000000000001", FileSystem.Path.GetFileName(Assert.Single(FileSystem.Directory.GetFiles(InRoot("objects", "leases", "backups__b-1")))));
        Assert.Equal(FileSystem.Path.GetFullPath(RootPath), ((FileSystemBackupStore)Store).RootPath);
    }

    [Fact]
    public async Task Leftover_temporary_files_are_never_listed_and_are_removed_once_old()
    {
        Assert.True(await Store.TryCreateAsync("data/ab/object-1", Content(10, seed: 1)));
        var twoHoursAgo = (Start - TimeSpan.FromHours(2)).ToUnixTimeSeconds();
        var now = Start.ToUnixTimeSeconds();
        string[] oldLeftovers =
        [
            InRoot("objects", "data", "ab", $".~tmp-{twoHoursAgo}-0123456789abcdef"),
            InRoot("objects", "data", $".~del-{twoHoursAgo}-0123456789abcdef"),
            InRoot("objects", "leases", "backups__b-1", $".~tmp-{twoHoursAgo}-0123456789abcdef"),
        ];
        var recent = InRoot("objects", "data", "ab", $".~tmp-{now}-fedcba9876543210");
        foreach (var path in oldLeftovers.Append(recent))
        {
            FileSystem.Directory.CreateDirectory(FileSystem.Path.GetDirectoryName(path)!);
            FileSystem.File.WriteAllBytes(path, Content(5, seed: 9));
        }

        Assert.Equal([new StoreObject("data/ab/object-1", 10)], await ListAsync(Store, string.Empty));

        Assert.Equal(3, await ((FileSystemBackupStore)Store).CleanUpAsync(TimeSpan.FromHours(1)));
        Assert.All(oldLeftovers, path => Assert.False(FileSystem.File.Exists(path)));
        Assert.True(FileSystem.File.Exists(recent));

        Time.Advance(TimeSpan.FromHours(1));
        Assert.Equal(1, await ((FileSystemBackupStore)Store).CleanUpAsync(TimeSpan.FromHours(1)));
        Assert.Equal(Content(10, seed: 1), await Store.TryReadAsync("data/ab/object-1"));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => ((FileSystemBackupStore)Store).CleanUpAsync(TimeSpan.FromSeconds(-1)));
    }

    [Fact]
    public async Task A_key_cannot_be_both_an_object_and_a_folder_of_other_keys()
    {
        Assert.True(await Store.TryCreateAsync("a/b", Content(3, seed: 1)));
        Assert.True(await Store.TryCreateAsync("x", Content(3, seed: 2)));

        var folderFirst = await Assert.ThrowsAsync<BackupException>(() => Store.TryCreateAsync("a", Content(3, seed: 3)));
        var objectFirst = await Assert.ThrowsAsync<BackupException>(() => Store.TryCreateAsync("x/y/z", Content(3, seed: 4)));

        Assert.Equal(BackupErrorCode.StoreUnavailable, folderFirst.Code);
        Assert.Contains("'a'", folderFirst.Message, StringComparison.Ordinal);
        Assert.Equal(BackupErrorCode.StoreUnavailable, objectFirst.Code);
        Assert.Contains("'x/y/z'", objectFirst.Message, StringComparison.Ordinal);
        Assert.Contains("'x' is an object", objectFirst.Message, StringComparison.Ordinal);
        Assert.False(string.IsNullOrWhiteSpace(objectFirst.Remedy));
        Assert.Null(await Store.TryReadAsync("x/y/z"));
        Assert.False(await Store.DeleteAsync("a"));
        Assert.Equal(["a/b", "x"], (await ListAsync(Store, string.Empty)).Select(o => o.Key));
    }

    [Fact]
    public async Task A_crash_after_publishing_leaves_the_object_whole_and_the_leftover_unlisted()
    {
        // What a crash between link(2) and removing the temporary name leaves: two names for one file.
        Assert.True(await Store.TryCreateAsync("data/ab/object-1", Content(100, seed: 1)));
        var leftover = InRoot("objects", "data", "ab", $".~tmp-{Start.ToUnixTimeSeconds()}-0123456789abcdef");
        FileSystem.File.Copy(InRoot("objects", "data", "ab", "object-1"), leftover);

        Assert.Equal([new StoreObject("data/ab/object-1", 100)], await ListAsync(CreateStore(), string.Empty));
        Time.Advance(TimeSpan.FromHours(2));
        Assert.Equal(1, await ((FileSystemBackupStore)CreateStore()).CleanUpAsync(TimeSpan.FromHours(1)));
        Assert.Equal(Content(100, seed: 1), await Store.TryReadAsync("data/ab/object-1"));
    }

    [Fact]
    public async Task A_lease_keeps_only_its_last_two_generations()
    {
        await using var lease = await Store.AcquireLeaseAsync("backups/b-1", "writer", TimeSpan.FromSeconds(10));
        for (var i = 0; i < 20; i++)
        {
            Time.Advance(TimeSpan.FromSeconds(5));
            await lease.RenewAsync();
        }

        await lease.EnsureHeldAsync();
        var generations = FileSystem.Directory.GetFiles(InRoot("objects", "leases", "backups__b-1")).Select(path => FileSystem.Path.GetFileName(path) ?? string.Empty).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["00000000000000000020", "00000000000000000021"], generations);
    }

    [Fact]
    public async Task A_lease_folder_altered_by_hand_is_reported_not_misread()
    {
        await using var lease = await Store.AcquireLeaseAsync("backups/b-1", "writer", TimeSpan.FromSeconds(10));
        FileSystem.File.WriteAllText(InRoot("objects", "leases", "backups__b-1", "00000000000000000009"), "not a lease");

        var ex = await Assert.ThrowsAsync<BackupException>(() => CreateStore().AcquireLeaseAsync("backups/b-1", "other", TimeSpan.FromSeconds(10)));

        Assert.Equal(BackupErrorCode.StoreUnavailable, ex.Code);
        Assert.Contains("backups/b-1", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Very_long_lease_names_get_a_hashed_folder()
    {
        var name = string.Join('/', Enumerable.Repeat("segment-of-forty-characters-long-abcdefg", 10));
        await using var lease = await Store.AcquireLeaseAsync(name, "writer-a", TimeSpan.FromSeconds(10));

        var ex = await Assert.ThrowsAsync<BackupException>(() => CreateStore().AcquireLeaseAsync(name, "writer-b", TimeSpan.FromSeconds(10)));
        Assert.Equal(BackupErrorCode.LeaseHeld, ex.Code);
        Assert.Single(FileSystem.Directory.GetDirectories(InRoot("objects", "leases")), d => FileSystem.Path.GetFileName(d)!.StartsWith("_h", StringComparison.Ordinal));
    }
}

/// <summary>The file-system store on the real disk, in a fresh folder under the temporary folder.</summary>
public sealed class DiskFileSystemBackupStoreTests : FileSystemBackupStoreTests, IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "kmsbackup-tests", Guid.NewGuid().ToString("N"));

    protected override IFileSystem FileSystem { get; } = new FileSystem();

    protected override string RootPath => _root;

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public async Task Publishing_never_replaces_a_file_that_another_program_created_under_the_same_name()
    {
        Directory.CreateDirectory(Path.Combine(_root, "objects", "data"));
        File.WriteAllBytes(Path.Combine(_root, "objects", "data", "object-1"), [1, 2, 3]);

        Assert.False(await Store.TryCreateAsync("data/object-1", Content(10, seed: 1)));

        Assert.Equal([1, 2, 3], await Store.TryReadAsync("data/object-1"));
        Assert.Empty(Directory.GetFiles(Path.Combine(_root, "objects", "data"), ".~*"));
    }

    [Fact]
    public void On_Linux_and_macOS_publishing_is_a_hard_link_that_never_replaces_an_existing_name()
    {
        // The concurrent-create test reaches link(2) only when creators pass the existence check together; this checks it directly.
        Assert.Equal(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS(), PosixFileOperations.IsSupported);
        if (!PosixFileOperations.IsSupported)
        {
            return; // Windows publishes with MoveFileEx, which refuses an existing name itself.
        }

        Directory.CreateDirectory(_root);
        var (first, second, target) = (Path.Combine(_root, "first"), Path.Combine(_root, "second"), Path.Combine(_root, "target"));
        File.WriteAllBytes(first, [1]);
        File.WriteAllBytes(second, [2]);

        Assert.Equal(PosixFileOperations.LinkResult.Linked, PosixFileOperations.TryLink(first, target));
        Assert.Equal(PosixFileOperations.LinkResult.Exists, PosixFileOperations.TryLink(second, target));

        Assert.Equal([1], File.ReadAllBytes(target));
        Assert.Throws<IOException>(() => PosixFileOperations.TryLink(Path.Combine(_root, "missing"), Path.Combine(_root, "other")));
        PosixFileOperations.SyncDirectory(_root);
    }

    [Fact]
    public async Task The_default_constructor_uses_the_real_disk()
    {
        var store = new FileSystemBackupStore(_root);

        Assert.True(await store.TryCreateAsync("data/x", Content(4, seed: 1)));

        Assert.Equal(Content(4, seed: 1), File.ReadAllBytes(Path.Combine(_root, "objects", "data", "x")));
    }
}

/// <summary>The file-system store on <see cref="MockFileSystem"/>.</summary>
public sealed class MockFileSystemBackupStoreTests : FileSystemBackupStoreTests
{
    private readonly MockFileSystem _fileSystem = new();

    protected override IFileSystem FileSystem => _fileSystem;

    protected override string RootPath => _fileSystem.Path.Combine(_fileSystem.Path.GetTempPath(), "store");
}
