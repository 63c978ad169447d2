using System.Collections.Concurrent;
using System.IO.Abstractions.TestingHelpers;

using KmsBackup.Storage;
using KmsBackup.Testing.Engine;

using Xunit.Abstractions;

namespace KmsBackup.Tests.Engine;

/// <summary>The interleaving test on the file-system store, each schedule over an in-memory file system of its own: the fast store, so it runs the most schedules.</summary>
public sealed class FileSystemInterleavingTests(ITestOutputHelper output) : InterleavingContractTests(output)
{
    private readonly ConcurrentDictionary<string, MockFileSystem> _files = new(StringComparer.Ordinal);

    protected override string TestProject => "tests/KmsBackup.Tests";

    protected override BackupStore CreateStore(TimeProvider clock, string space) =>
        new FileSystemBackupStore(_files.GetOrAdd(space, _ => new MockFileSystem()), "/backups", clock);

    protected override Task DeleteStoreAsync(string space)
    {
        _files.TryRemove(space, out _);
        return Task.CompletedTask;
    }
}
