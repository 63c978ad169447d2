

namespace KmsBackup.Storage;

// The typed errors the store throws, each naming the object or folder and the remedy.
public sealed partial class FileSystemBackupStore
{
    private static string ObjectItem(string key) => $"store object '{key}'";

    private BackupException Unavailable(string item, string action, Exception cause) =>
        new(
            new Refusal(
                BackupErrorCode.StoreUnavailable,
                item,
                $"The file-system store at '{RootPath}' could not {action}: {cause.Message}",
                "Check that the store's folder exists, is writable by this process and has free space (for a network share, that it is mounted and reachable), then retry."),
            cause);

    private BackupException ObjectIsFolder(string key) =>
        new Refusal(
            BackupErrorCode.StoreUnavailable,
            ObjectItem(key),
            $"The file-system store at '{RootPath}' cannot hold the object '{key}': objects with keys under '{key}/' exist, and on a file system a path is a folder or a file, not both.",
            "Use keys where no object's key is also a folder of other keys (for example 'a/index' and 'a/b' rather than 'a' and 'a/b').")
        .ToException();

    /// <summary>Why the folder of the object <paramref name="key"/> cannot be opened: segment <paramref name="fileAt"/> of <paramref name="segments"/> is a file.</summary>
    private Exception FolderIsFile(string key, string[] segments, int fileAt) =>
        fileAt >= 1 ? FolderIsObject(key, string.Join('/', segments, 1, fileAt)) : FolderNotOpened(segments, fileAt);

    /// <summary>Why a folder the store writes in could not be opened: segment <paramref name="fileAt"/> of <paramref name="segments"/> is a file, or (-1) the root vanished.</summary>
    private IOException FolderNotOpened(string[] segments, int fileAt) =>
        fileAt >= 0
            ? new IOException($"'{string.Join('/', segments, 0, fileAt + 1)}' in the store's folder is a file, where the store keeps a folder.")
            : new IOException($"The store's folder '{RootPath}' disappeared while it was opened.");

    private BackupException FolderIsObject(string key, string ancestor) =>
        new Refusal(
            BackupErrorCode.StoreUnavailable,
            ObjectItem(key),
            $"The file-system store at '{RootPath}' cannot hold the object '{key}': '{ancestor}' is an object, and on a file system a path is a file or a folder, not both.",
            "Use keys where no object's key is also a folder of other keys (for example 'a/index' and 'a/b' rather than 'a' and 'a/b').")
        .ToException();
}
