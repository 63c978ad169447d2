using System.IO.Abstractions;
using System.Text;
using System.Text.Json;
using KmsBackup.Cli.Commands;
using KmsBackup.Cli.Output;
using KmsBackup.Cli.Workspace;
using KmsBackup.DevelopmentKms;
using KmsBackup.Storage;
using KmsBackup.Testing;
using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Cli.Tests;

/// <summary>What one in-process run of the tool printed and returned.</summary>
public sealed record CliRun(int ExitCode, string Output, string Error)
{
    public JsonElement Json() => JsonDocument.Parse(Output).RootElement;

    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Output}\n--- stderr\n{Error}";
}

/// <summary>
/// A temp folder in the tool's layout with a backed-up instance, written through the SDK on a fake clock;
/// the tool then runs in-process over it, on the same clock, with captured output.
/// </summary>
/// <remarks>
/// Source kst-src (cn-hangzhou): keys orders and billing, secret db-password under orders; its automatic
/// backup ran past 2026-05-02 00:00; then db-password and orders were deleted (billing stays, so restoring
/// it into kst-src is a name conflict). kst-small (cn-shanghai) has a key quota of 1; kst-far (cn-shanghai) is empty.
/// </remarks>
public sealed class CliFolder : IAsyncDisposable
{
    public const string Owner = "acct-owner";
    public const string SecretValue = "db-password value 0123";
    public static readonly DateTimeOffset Start = new(2026, 5, 1, 9, 0, 0, TimeSpan.Zero);
    public static readonly DateOnly Day2 = new(2026, 5, 2);

    private CliFolder(string root, FakeTimeProvider clock, string backupId)
    {
        Root = root;
        Clock = clock;
        BackupId = backupId;
    }

    public string Root { get; }

    public FakeTimeProvider Clock { get; }

    public string BackupId { get; }

    public IFileSystem Files { get; } = new FileSystem();

    public static async Task<CliFolder> CreateAsync()
    {
        var root = Directory.CreateTempSubdirectory("kmsbackup-cli-").FullName;
        var clock = new FakeTimeProvider(Start);
        var files = new FileSystem();
        var paths = LocalFolderPaths.Under(root, Path.Combine);
        using var kms = new EmbeddedKeyManagementService(files, paths.Kms, clock);
        using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, paths.KeyFile);
        using var client = await BackupClient.OpenAsync(new FileSystemBackupStore(files, paths.Store, clock), keys, kms, hsmClusters: null, new BackupClientOptions { TimeProvider = clock });

        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-src", InstanceKind.Software, "cn-hangzhou", Owner) { CreatedAt = Start.AddDays(-1) });
        await kms.GenerateKeyAsync("kst-src", "orders", Owner, "order signing");
        await kms.GenerateKeyAsync("kst-src", "billing", Owner);
        await kms.StoreSecretAsync("kst-src", "db-password", "orders", Encoding.UTF8.GetBytes(SecretValue), Owner);
        var backup = (await client.OnInstanceEnabledAsync("kst-src"))!;
        while (clock.GetUtcNow() < new DateTimeOffset(2026, 5, 2, 1, 0, 0, TimeSpan.Zero))
        {
            clock.Advance(TimeSpan.FromHours(1));
            (await client.RunDueBackupsAsync()).ThrowIfAnyFailed();
        }

        await kms.DeleteSecretAsync("kst-src", "db-password");
        await kms.DeleteKeyAsync("kst-src", "orders");
        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-small", InstanceKind.Software, "cn-shanghai", Owner) { KeyQuota = 1 });
        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-far", InstanceKind.Software, "cn-shanghai", Owner));
        return new CliFolder(root, clock, backup.Id);
    }

    /// <summary>
    /// Restores the key orders and the secret db-password into kst-far through the SDK, in a process that dies
    /// right after its first create (its gateway and store fail every later call, so nothing rolls back and its
    /// lease is never released), as a host running the SDK over this folder would. Returns the operation ID
    /// the restore reported before its first write.
    /// </summary>
    public async Task<string> InterruptRestoreAsync(string? operationId = null)
    {
        var files = new FileSystem();
        var paths = LocalFolderPaths.Under(Root, Path.Combine);
        var death = new ProcessDeath();
        string? reported = null;
        using (var kms = new EmbeddedKeyManagementService(files, paths.Kms, Clock))
        using (var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, paths.KeyFile))
        using (var client = await BackupClient.OpenAsync(
            new DyingStore(new FileSystemBackupStore(files, paths.Store, Clock), death), keys, new DyingGateway(kms, death, dieAfterCreate: 1),
            hsmClusters: null, new BackupClientOptions { TimeProvider = Clock, LeaseHolder = "host-that-died" }))
        {
            var request = new RestoreRequest
            {
                CallerAccount = Owner,
                BackupId = BackupId,
                TargetInstanceId = "kst-far",
                BackupDate = Day2,
                KeyNames = ["orders"],
                SecretNames = ["db-password"],
                OperationId = operationId,
            };
            await Assert.ThrowsAsync<RestoreException>(() => client.RestoreAsync(request, new InlineProgress<RestoreProgress>(p => reported ??= p.OperationId)));
        }

        Assert.True(death.IsDead);
        return reported!;
    }

    /// <summary>Runs the tool in-process over this folder as the owner (unless the arguments name another account).</summary>
    public Task<CliRun> RunAsync(params string[] args) => RunWithEnvironmentAsync(new Dictionary<string, string>
    {
        [LocalFolderPaths.RootVariable] = Root,
        [GlobalOptions.AccountVariable] = Owner,
    }, args);

    public Task<CliRun> RunWithEnvironmentAsync(IReadOnlyDictionary<string, string> environment, params string[] args) => RunWithAsync(Files, environment, args);

    /// <summary>Runs the tool in-process as the owner over <paramref name="files"/> (a file system a test wraps, say).</summary>
    public Task<CliRun> RunWithFilesAsync(IFileSystem files, params string[] args) => RunWithAsync(files, new Dictionary<string, string>
    {
        [LocalFolderPaths.RootVariable] = Root,
        [GlobalOptions.AccountVariable] = Owner,
    }, args);

    /// <summary>Runs the tool in-process as the owner with <paramref name="input"/> as its standard input.</summary>
    public Task<CliRun> RunWithInputAsync(string input, params string[] args) => RunWithAsync(Files, new Dictionary<string, string>
    {
        [LocalFolderPaths.RootVariable] = Root,
        [GlobalOptions.AccountVariable] = Owner,
    }, args, input);

    private async Task<CliRun> RunWithAsync(IFileSystem files, IReadOnlyDictionary<string, string> environment, string[] args, string? input = null)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        using var reader = input is null ? null : new StringReader(input);
        var host = new CliHost(files, Clock, output, error, name => environment.TryGetValue(name, out var value) ? value : null, interactive: false, input: reader);
        var exit = await CommandTree.InvokeAsync(args, host);
        return new CliRun(exit, output.ToString(), error.ToString());
    }

    public string PathOf(string name) => Path.Combine(Root, name);

    public ValueTask DisposeAsync()
    {
        Directory.Delete(Root, recursive: true);
        return ValueTask.CompletedTask;
    }
}
