using KmsBackup.Storage;
using KmsBackup.Testing.Engine;

namespace KmsBackup.Tests.Engine;

/// <summary>The copy contract with a file-system destination (a folder per space of the in-memory file system).</summary>
[Trait("Issue", "17")]
public sealed class FileSystemCopyContractTests : CopyContractTests
{
    protected override BackupStore CreateDestination(TimeProvider clock, string space) => new FileSystemBackupStore(Files, $"/destinations/{space}", clock);
}
