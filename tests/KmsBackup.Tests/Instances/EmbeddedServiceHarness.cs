using System.IO.Abstractions.TestingHelpers;
using System.Text;

using KmsBackup.DevelopmentKms;

using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Tests.Instances;

/// <summary>An embedded service over an in-memory file system and a fake clock, with a few instances to hand.</summary>
internal sealed class EmbeddedServiceHarness : IDisposable
{
    public const string Root = "/kms";
    public const string Owner = "acct-owner";
    public const string Consumer = "acct-consumer";
    public const string Hangzhou = "cn-hangzhou";
    public const string Shanghai = "cn-shanghai";

    public static readonly DateTimeOffset Start = new(2025, 3, 1, 8, 0, 0, TimeSpan.Zero);

    public EmbeddedServiceHarness(EmbeddedKeyManagementServiceOptions? options = null)
    {
        Options = options ?? new EmbeddedKeyManagementServiceOptions();
        Faults = new FaultyFileSystem(FileSystem);
        Service = Open();
    }

    public MockFileSystem FileSystem { get; } = new();

    /// <summary>The file system the service uses: <see cref="FileSystem"/>, with writes that can be made to fail.</summary>
    public FaultyFileSystem Faults { get; }

    public FakeTimeProvider Time { get; } = new(Start);

    public EmbeddedKeyManagementServiceOptions Options { get; }

    public EmbeddedKeyManagementService Service { get; private set; }

    public static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    public static string Text(SensitiveBytes bytes) => Encoding.UTF8.GetString(bytes.Span);

    public EmbeddedKeyManagementService Open() => new(Faults, Root, Time, Options);

    public EmbeddedKeyManagementService Reopen()
    {
        Service.Dispose();
        Service = Open();
        return Service;
    }

    public Task<InstanceDescription> CreateAsync(string id, string region = Hangzhou, InstanceKind kind = InstanceKind.Software, int keyQuota = 100, int secretQuota = 100) =>
        Service.CreateInstanceAsync(new EmbeddedInstanceSpec(id, kind, region, Owner)
        {
            KeyQuota = keyQuota,
            SecretQuota = secretQuota,
            SharedWith = [Consumer],
            ImageVersion = kind == InstanceKind.Hardware ? new Version(3, 9, 1) : null,
        });

    /// <summary>Every byte of every file the service wrote.</summary>
    public IEnumerable<(string Path, byte[] Bytes)> Files() =>
        FileSystem.AllFiles.Select(path => (path, FileSystem.File.ReadAllBytes(path)));

    public void Dispose() => Service.Dispose();
}
