using System.IO.Abstractions.TestingHelpers;

namespace KmsBackup.Tests.Storage;

/// <summary>The crash-test helper fails what it says it fails, and nothing else.</summary>
public sealed class FaultyFileSystemTests
{
    [Fact]
    public void It_counts_write_operations_and_fails_only_the_kth_one_with_a_torn_write()
    {
        var faulty = new FaultyFileSystem(new MockFileSystem(), failAt: 3, stickyFailure: false);

        faulty.Directory.CreateDirectory("/d");                                   // #1
        using (var stream = faulty.FileStream.New("/d/f", FileMode.CreateNew))     // #2
        {
            Assert.Throws<IOException>(() => stream.Write([1, 2, 3, 4]));          // #3: torn, half written
            stream.Write([5]);                                                     // #4
            stream.Flush(flushToDisk: true);                                       // #5
        }

        Assert.True(faulty.File.Exists("/d/f"));                                   // reads are not counted
        Assert.Equal([1, 2, 5], faulty.File.ReadAllBytes("/d/f"));
        faulty.File.Move("/d/f", "/d/g");                                          // #6
        Assert.Equal(6, faulty.WriteCount);
        Assert.Contains(faulty.Log, line => line.StartsWith("#3 Stream.Write", StringComparison.Ordinal) && line.EndsWith("injected fault", StringComparison.Ordinal));
    }

    [Fact]
    public void A_sticky_failure_fails_every_later_write_like_a_crash()
    {
        var inner = new MockFileSystem();
        inner.AddFile("/d/existing", new MockFileData([7]));
        var faulty = new FaultyFileSystem(inner, failAt: 2);

        faulty.Directory.CreateDirectory("/d/e");
        Assert.Throws<IOException>(() => faulty.File.WriteAllText("/d/f", "x"));
        Assert.Throws<IOException>(() => faulty.FileStream.New("/d/g", FileMode.CreateNew));
        Assert.Throws<IOException>(() => faulty.File.Delete("/d/existing"));

        Assert.True(faulty.HasFailed);
        Assert.False(inner.File.Exists("/d/f"));
        Assert.False(inner.File.Exists("/d/g"));
        Assert.Equal([7], faulty.File.ReadAllBytes("/d/existing"));
        using var read = faulty.FileStream.New("/d/existing", FileMode.Open, FileAccess.Read);
        Assert.Equal(7, read.ReadByte());
    }
}
