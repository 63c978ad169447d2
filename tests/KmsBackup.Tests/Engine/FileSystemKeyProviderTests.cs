using KmsBackup.Storage;
using KmsBackup.Testing.Engine;

namespace KmsBackup.Tests.Engine;

/// <summary>Several key providers per repository (issue 17), on the file-system store (over an in-memory file system).</summary>
public sealed class FileSystemKeyProviderTests : KeyProviderContractTests
{
    protected override BackupStore CreateStore(TimeProvider clock) => new FileSystemBackupStore(Files, "/backups", clock);
}
