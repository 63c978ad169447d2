using System.IO.Abstractions;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace KmsBackup.DevelopmentKms;

/// <summary>
/// The files of an embedded service folder: the master key file, the lock file, and one encrypted
/// state file per instance, each replaced atomically (temporary file, flush to disk, rename over).
/// </summary>
/// <remarks>
/// State file (version 1): <c>"KMSI"</c>, <c>0x01</c>, a random 12-byte nonce, the AES-256-GCM
/// encryption of the instance's state as UTF-8 JSON under the master key, and the 16-byte tag. The
/// associated data is the 5-byte header followed by the instance ID in UTF-8, so that a state file
/// renamed to another instance's name does not open.
/// Master key file (version 1): <c>"KMSK"</c>, <c>0x01</c>, 32 random bytes.
/// </remarks>
internal sealed class EmbeddedStateFiles : IDisposable
{
    public const string InstancesFolderName = "instances";
    public const string StateFileExtension = ".state";
    public const string MasterKeyFileName = "service.key";
    public const string LockFileName = "service.lock";

    private const string TempMarker = ".tmp-";
    private const int MasterKeySize = 32;
    private const int NonceSize = 12;
    private const int TagSize = 16;
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode OwnerOnlyFolder = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private static readonly byte[] s_stateMagic = "KMSI\u0001"u8.ToArray();
    private static readonly byte[] s_keyMagic = "KMSK\u0001"u8.ToArray();

    private readonly IFileSystem _fileSystem;
    private readonly string _instancesFolder;
    private readonly FileSystemStream _lock;
    private readonly byte[] _masterKey;

    public EmbeddedStateFiles(IFileSystem fileSystem, string rootPath, string masterKeyPath)
    {
        _fileSystem = fileSystem;
        RootPath = rootPath;
        MasterKeyPath = masterKeyPath;
        _instancesFolder = fileSystem.Path.Combine(rootPath, InstancesFolderName);
        CreateFolder(rootPath);
        CreateFolder(_instancesFolder);
        CreateFolder(fileSystem.Path.GetDirectoryName(masterKeyPath) ?? rootPath);

        var lockPath = fileSystem.Path.Combine(rootPath, LockFileName);
        try
        {
            _lock = fileSystem.FileStream.New(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw EmbeddedRefusals.FolderInUse(rootPath, e);
        }

        try
        {
            RemoveTemporaryFiles(_instancesFolder, "*" + TempMarker + "*");
            RemoveTemporaryFiles(fileSystem.Path.GetDirectoryName(masterKeyPath) ?? rootPath, fileSystem.Path.GetFileName(masterKeyPath) + TempMarker + "*");
            _masterKey = LoadOrCreateMasterKey();
        }
        catch
        {
            _lock.Dispose();
            throw;
        }
    }

    public string RootPath { get; }

    public string MasterKeyPath { get; }

    public static bool IsValidInstanceId(string id) =>
        id.Length is > 0 and <= 128 && char.IsAsciiLetterOrDigit(id[0]) &&
        id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') && !id.Contains(TempMarker, StringComparison.Ordinal);

    public string StatePath(string instanceId) => _fileSystem.Path.Combine(_instancesFolder, instanceId + StateFileExtension);

    /// <summary>Reads every instance's state.</summary>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.IntegrityViolation"/>: a state file does not decrypt or parse.</exception>
    public IEnumerable<InstanceState> LoadAll()
    {
        foreach (var path in _fileSystem.Directory.GetFiles(_instancesFolder, "*" + StateFileExtension).Order(StringComparer.Ordinal))
        {
            var id = _fileSystem.Path.GetFileNameWithoutExtension(path);
            var fileName = _fileSystem.Path.GetFileName(path);
            if (!IsValidInstanceId(id))
            {
                throw EmbeddedRefusals.StateUnreadable(fileName, "its name is not an instance ID.");
            }

            yield return Load(id, fileName, _fileSystem.File.ReadAllBytes(path));
        }
    }

    /// <summary>Writes <paramref name="state"/> atomically: the old state file stays whole until the new one is complete on disk.</summary>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.StoreUnavailable"/>: the write failed; the old state file is unchanged.</exception>
    public void Save(InstanceState state)
    {
        byte[] file;
        using (var plaintext = new SensitiveBufferWriter())
        {
            EmbeddedStateSerializer.Write(state, plaintext);
            file = Seal(state.Id, plaintext.WrittenSpan);
        }

        try
        {
            WriteAtomically(StatePath(state.Id), file, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw EmbeddedRefusals.StateNotWritten(state.Id, e);
        }
    }

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_masterKey);
        _lock.Dispose();
    }

    private InstanceState Load(string id, string fileName, byte[] file)
    {
        var headerLength = s_stateMagic.Length;
        if (file.Length < headerLength + NonceSize + TagSize || !file.AsSpan(0, headerLength).SequenceEqual(s_stateMagic))
        {
            throw EmbeddedRefusals.StateUnreadable(fileName, "it is not an embedded instance state file of version 1.");
        }

        var plaintext = GC.AllocateUninitializedArray<byte>(file.Length - headerLength - NonceSize - TagSize, pinned: true); // the state's key material, in Base64
        try
        {
            using (var aes = new AesGcm(_masterKey, TagSize))
            {
                aes.Decrypt(file.AsSpan(headerLength, NonceSize), file.AsSpan(headerLength + NonceSize, plaintext.Length), file.AsSpan(file.Length - TagSize),
                    plaintext, Associated(id));
            }

            var state = EmbeddedStateSerializer.Read(plaintext);
            if (!string.Equals(state.Id, id, StringComparison.Ordinal))
            {
                throw EmbeddedRefusals.StateUnreadable(fileName, "it holds another instance.");
            }

            return state;
        }
        catch (AuthenticationTagMismatchException e)
        {
            throw EmbeddedRefusals.StateUnreadable(fileName, "it failed authentication under the master key (altered, truncated, or written under another master key).", e);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or KeyNotFoundException or ArgumentException or OverflowException)
        {
            throw EmbeddedRefusals.StateUnreadable(fileName, "its content is not a valid instance state.", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    private byte[] Seal(string instanceId, ReadOnlySpan<byte> plaintext)
    {
        var headerLength = s_stateMagic.Length;
        var file = new byte[headerLength + NonceSize + plaintext.Length + TagSize];
        s_stateMagic.CopyTo(file, 0);
        var nonce = file.AsSpan(headerLength, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(_masterKey, TagSize);
        aes.Encrypt(nonce, plaintext, file.AsSpan(headerLength + NonceSize, plaintext.Length), file.AsSpan(file.Length - TagSize), Associated(instanceId));
        return file;
    }

    private static byte[] Associated(string instanceId) => [.. s_stateMagic, .. Encoding.UTF8.GetBytes(instanceId)];

    private byte[] LoadOrCreateMasterKey()
    {
        var name = _fileSystem.Path.GetFileName(MasterKeyPath);
        if (!_fileSystem.File.Exists(MasterKeyPath))
        {
            if (_fileSystem.Directory.EnumerateFiles(_instancesFolder, "*" + StateFileExtension).Any())
            {
                throw EmbeddedRefusals.MasterKeyUnreadable(name, "it is missing, but the folder holds instance state files encrypted under it.");
            }

            var created = new byte[s_keyMagic.Length + MasterKeySize];
            s_keyMagic.CopyTo(created, 0);
            RandomNumberGenerator.Fill(created.AsSpan(s_keyMagic.Length));
            try
            {
                // overwrite: false, so that of two services creating a folder at once, one key wins
                // and the other service reads it below.
                WriteAtomically(MasterKeyPath, created, overwrite: false);
            }
            catch (IOException) when (_fileSystem.File.Exists(MasterKeyPath))
            {
            }
            finally
            {
                CryptographicOperations.ZeroMemory(created);
            }
        }

        byte[] file;
        try
        {
            file = _fileSystem.File.ReadAllBytes(MasterKeyPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw EmbeddedRefusals.MasterKeyUnreadable(name, "it cannot be read.", e);
        }

        try
        {
            if (file.Length != s_keyMagic.Length + MasterKeySize || !file.AsSpan(0, s_keyMagic.Length).SequenceEqual(s_keyMagic))
            {
                throw EmbeddedRefusals.MasterKeyUnreadable(name, "it is not an embedded service master key file of version 1.");
            }

            return file.AsSpan(s_keyMagic.Length).ToArray();
        }
        finally
        {
            CryptographicOperations.ZeroMemory(file);
        }
    }

    private void WriteAtomically(string path, ReadOnlySpan<byte> content, bool overwrite)
    {
        var temp = path + TempMarker + RandomNumberGenerator.GetHexString(16, lowercase: true);
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = OwnerOnly;
            }

            using (var stream = _fileSystem.FileStream.New(temp, options))
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }

            RestrictToOwner(temp);
            _fileSystem.File.Move(temp, path, overwrite);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    // File systems that ignore UnixCreateMode (or files made before it applied) get 0600 set explicitly.
    private void RestrictToOwner(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        try
        {
            _fileSystem.File.SetUnixFileMode(path, OwnerOnly);
        }
        catch (PlatformNotSupportedException)
        {
        }
    }

    private void CreateFolder(string path)
    {
        if (_fileSystem.Directory.Exists(path))
        {
            return;
        }

        // Created, then restricted to its owner before anything is written into it. (Not through
        // CreateDirectory(path, mode), which not every IFileSystem implements.) A folder that exists
        // already keeps the mode its owner gave it.
        _fileSystem.Directory.CreateDirectory(path);
        if (!OperatingSystem.IsWindows())
        {
            _fileSystem.File.SetUnixFileMode(path, OwnerOnlyFolder);
        }
    }

    // A crash between creating a temporary file and renaming it leaves the temporary file behind; the
    // state file it was to replace is whole, so the leftover is simply removed.
    private void RemoveTemporaryFiles(string folder, string pattern)
    {
        if (!_fileSystem.Directory.Exists(folder))
        {
            return;
        }

        foreach (var path in _fileSystem.Directory.GetFiles(folder, pattern))
        {
            TryDelete(path);
        }
    }

    private void TryDelete(string path)
    {
        try
        {
            _fileSystem.File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left for the next open to remove.
        }
    }
}
