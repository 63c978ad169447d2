using System.CommandLine;
using System.Security.Cryptography;
using System.Text;
using KmsBackup.Cli.Output;
using Spectre.Console;

namespace KmsBackup.Cli.Commands;

internal static partial class CommandTree
{
    public const string DataKeyVariable = "KMSBACKUP_DATA_KEY";

    private static Command DownloadCommand(CliHost host, GlobalOptions globals)
    {
        var id = BackupIdArgument();
        var date = DateOption(required: true);
        var output = new Option<string>("--out") { Description = "The backup file to write.", Required = true };
        var keyOut = new Option<string?>("--data-key-out") { Description = "Write the data key (base64) to this file (mode 0600) instead of printing it." };
        var force = new Option<bool>("--force") { Description = "Overwrite the backup file if it exists." };
        var command = new Command("download", "Download a date's backup data as a file encrypted under a fresh data key. The key is printed once (or written to --data-key-out) and stored nowhere: keep it apart from the file; upload needs it.")
        {
            id, date, output, keyOut, force,
        };
        Handle(command, host, globals, async (inv, ct) =>
        {
            var files = inv.Host.FileSystem;
            var path = files.Path.GetFullPath(inv.Value(output));
            var keyPath = inv.Result.GetValue(keyOut) is { } k ? files.Path.GetFullPath(k) : null;
            if (files.File.Exists(path) && !inv.Value(force))
            {
                throw new UsageException($"The file '{path}' exists; choose another --out or add --force.");
            }

            // The folder first: a mistyped store or service is refused before any file is written.
            var client = await inv.ClientAsync(ct).ConfigureAwait(false);

            // The key file is created before anything is downloaded, exclusively and owner-only: a check now and a
            // create later would leave a moment to plant a file or a link there and receive the key.
            var keyFile = keyPath is null ? null : CreateKeyFile(files, keyPath);
            BackupFileDownload download;
            try
            {
                download = await DownloadToFileAsync(inv, files, client, path, inv.Value(id), inv.Value(date), ct).ConfigureAwait(false);
            }
            catch
            {
                if (keyFile is not null)
                {
                    // Ours alone (created exclusively) and still empty: no key to keep.
                    await keyFile.DisposeAsync().ConfigureAwait(false);
                    files.File.Delete(keyPath!);
                }

                throw;
            }

            using (download)
            {
                var key = Convert.ToBase64String(download.DataKey.Span);
                if (keyFile is not null)
                {
                    await using (keyFile.ConfigureAwait(false))
                    {
                        await keyFile.WriteAsync(Encoding.ASCII.GetBytes(key + "\n"), ct).ConfigureAwait(false);
                        await keyFile.FlushAsync(ct).ConfigureAwait(false);
                    }
                }

                inv.Write(
                    new JsonDownload(download.BackupId, Names.Date(download.Date), path, download.Length, keyPath is null ? key : null, keyPath),
                    c =>
                    {
                        c.MarkupLine($"Downloaded backup {Markup.Escape(download.BackupId)} {Names.Date(download.Date)} to {Markup.Escape(path)} ({download.Length:N0} bytes).");
                        if (keyPath is null)
                        {
                            c.MarkupLine("[bold yellow]DATA KEY (base64), shown once and stored nowhere; keep it apart from the file, upload needs it:[/]");
                            c.WriteLine(key);
                        }
                        else
                        {
                            c.MarkupLine($"Data key written to {Markup.Escape(keyPath)} (mode 0600); it is stored nowhere else: keep it apart from the file, upload needs it.");
                        }
                    });
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Downloads the date into a new file at <paramref name="path"/>; a partial file is deleted.</summary>
    private static async Task<BackupFileDownload> DownloadToFileAsync(
        Invocation inv, System.IO.Abstractions.IFileSystem files, BackupClient client, string path, string backupId, DateOnly backupDate, CancellationToken ct)
    {
        try
        {
            var stream = files.File.Create(path);
            await using (stream.ConfigureAwait(false))
            {
                if (inv.Json || !inv.Host.Interactive)
                {
                    return await client.DownloadAsync(inv.Account, backupId, backupDate, stream, ct).ConfigureAwait(false);
                }

                return await inv.Console.Progress().StartAsync(async ctx =>
                {
                    var task = ctx.AddTask("Downloading", autoStart: true);
                    task.IsIndeterminate = true;
                    var counting = new CountingStream(stream, written => task.Description = $"Downloading ({written:N0} bytes)");
                    await using (counting.ConfigureAwait(false))
                    {
                        var result = await client.DownloadAsync(inv.Account, backupId, backupDate, counting, ct).ConfigureAwait(false);
                        task.IsIndeterminate = false;
                        task.MaxValue = result.Length;
                        task.Value = result.Length;
                        return result;
                    }
                }).ConfigureAwait(false);
            }
        }
        catch
        {
            // A partial file is of no use and would be mistaken for a backup.
            files.File.Delete(path);
            throw;
        }
    }

    private static Command UploadCommand(CliHost host, GlobalOptions globals)
    {
        var file = new Argument<string>("file") { Description = "The backup file downloaded earlier." };
        var name = new Option<string>("--name") { Description = "The new backup's name.", Required = true };
        var (dataKey, dataKeyFile) = DataKeyOptions();
        var command = new Command("upload", "Upload a backup file as a backup of type Upload. The whole file is authenticated before anything is imported; a wrong key or a damaged file exits 5.")
        {
            file, name, dataKey, dataKeyFile,
        };
        Handle(command, host, globals, async (inv, ct) =>
        {
            var key = ReadDataKey(inv, dataKey, dataKeyFile);
            try
            {
                var client = await inv.ClientAsync(ct).ConfigureAwait(false);
                var stream = OpenExisting(inv, inv.Value(file));
                await using (stream.ConfigureAwait(false))
                {
                    var backup = await client.UploadAsync(inv.Account, stream, key, inv.Value(name), ct).ConfigureAwait(false);
                    inv.Write(JsonBackup.From(backup), c =>
                    {
                        c.MarkupLine($"Uploaded as backup {Markup.Escape(backup.Id)} ({Markup.Escape(backup.Label)}).");
                        Render.Backup(c, backup);
                    });
                }
            }
            finally
            {
                CryptographicOperations.ZeroMemory(key);
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command VerifyFileCommand(CliHost host, GlobalOptions globals)
    {
        var file = new Argument<string>("file") { Description = "The backup file." };
        var (dataKey, dataKeyFile) = DataKeyOptions();
        var command = new Command("verify-file", "Verify a backup file with its data key without importing it: exits 0 when every segment authenticates, 5 otherwise.")
        {
            file, dataKey, dataKeyFile,
        };
        Handle(command, host, globals, async (inv, ct) =>
        {
            var key = ReadDataKey(inv, dataKey, dataKeyFile);
            try
            {
                var path = inv.Host.FileSystem.Path.GetFullPath(inv.Value(file));
                var stream = OpenExisting(inv, path);
                await using (stream.ConfigureAwait(false))
                {
                    var length = await BackupFileCodec.VerifyAsync(stream, key, ct).ConfigureAwait(false);
                    inv.Write(new JsonFileVerification(path, length, true), c => c.MarkupLine($"[green]Authentic[/]: {Markup.Escape(path)} decrypts and authenticates ({length:N0} bytes of backup data)."));
                }
            }
            finally
            {
                CryptographicOperations.ZeroMemory(key);
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static (Option<string?> Key, Option<string?> KeyFile) DataKeyOptions() => (
        new Option<string?>("--data-key") { Description = $"The data key (base64) printed by download. Visible to other users in the process list: prefer --data-key-file or ${DataKeyVariable}." },
        new Option<string?>("--data-key-file") { Description = "A file holding the data key (base64), such as the one download wrote with --data-key-out." });

    private static byte[] ReadDataKey(Invocation inv, Option<string?> keyOption, Option<string?> keyFileOption)
    {
        var text = inv.Result.GetValue(keyOption);
        if (inv.Result.GetValue(keyFileOption) is { } keyFile)
        {
            if (text is not null)
            {
                throw new UsageException("Give the data key once: --data-key or --data-key-file, not both.");
            }

            var path = inv.Host.FileSystem.Path.GetFullPath(keyFile);
            if (!inv.Host.FileSystem.File.Exists(path))
            {
                throw new BackupException(new Refusal(BackupErrorCode.NotFound, $"file '{path}'", $"There is no data key file '{path}'.", "Check the path given to --data-key-file."));
            }

            text = inv.Host.FileSystem.File.ReadAllText(path, Encoding.ASCII);
        }

        text ??= inv.Host.Environment(DataKeyVariable);
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new UsageException($"Give the data key with --data-key-file, --data-key or ${DataKeyVariable}.");
        }

        var buffer = new byte[(text.Length * 3 / 4) + 3];
        if (!Convert.TryFromBase64String(text.Trim(), buffer, out var written))
        {
            throw new UsageException("The data key is not base64 text (download prints it as base64).");
        }

        // A key of the wrong length is the codec's to refuse (InvalidDataKey), with its own code.
        var key = buffer.AsSpan(0, written).ToArray();
        CryptographicOperations.ZeroMemory(buffer);
        return key;
    }

    private static System.IO.Abstractions.FileSystemStream OpenExisting(Invocation inv, string file)
    {
        var path = inv.Host.FileSystem.Path.GetFullPath(file);
        if (!inv.Host.FileSystem.File.Exists(path))
        {
            throw new BackupException(new Refusal(BackupErrorCode.NotFound, $"file '{path}'", $"There is no file '{path}'.", "Check the path."));
        }

        return inv.Host.FileSystem.File.OpenRead(path);
    }

    /// <summary>Writes a data key where only the owner can read it: the file is created empty with mode 0600 before the key goes in.</summary>
    /// <summary>
    /// Creates the data key's file: exclusively (it fails if anything, a link included, is at the path, so no file or
    /// link planted there receives the key), and, on Unix, with mode 0600 from the start.
    /// </summary>
    private static System.IO.Abstractions.FileSystemStream CreateKeyFile(System.IO.Abstractions.IFileSystem files, string path)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            return files.FileStream.New(path, options);
        }
        catch (IOException) when (files.File.Exists(path) || files.Directory.Exists(path) || files.FileInfo.New(path).LinkTarget is not null)
        {
            throw new UsageException($"The key file '{path}' exists; the tool never overwrites a data key. Choose another --data-key-out.");
        }
    }
}

/// <summary>A write-only pass-through that reports how many bytes went through it (for the download's progress).</summary>
internal sealed class CountingStream(Stream inner, Action<long> onWrite) : Stream
{
    private long _written;

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => _written;

    public override long Position { get => _written; set => throw new NotSupportedException(); }

    public override void Flush() => inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count)
    {
        inner.Write(buffer, offset, count);
        onWrite(_written += count);
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
        onWrite(_written += buffer.Length);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    // The inner stream belongs to the caller.
    protected override void Dispose(bool disposing) => base.Dispose(disposing);
}
