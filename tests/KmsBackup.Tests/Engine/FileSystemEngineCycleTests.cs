using KmsBackup.Storage;
using KmsBackup.Testing.Engine;

namespace KmsBackup.Tests.Engine;

/// <summary>The engine cycle shared by every store, on the file-system store (over the same in-memory file system).</summary>
public sealed class FileSystemEngineCycleTests : EngineCycleContractTests
{
    protected override BackupStore CreateStore(TimeProvider clock) => new FileSystemBackupStore(Files, "/backups", clock);
}
