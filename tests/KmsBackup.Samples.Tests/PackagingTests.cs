using System.IO.Compression;
using System.Xml.Linq;

namespace KmsBackup.Samples.Tests;

/// <summary>
/// Packs the packages into a local folder feed, checks what they hold, and builds and runs a small
/// consumer project against them, as a user who installs them from a feed would; then installs the
/// tool from the same feed and points it at the consumer's folder. The packing is <see cref="PackedPackages"/>'s.
/// </summary>
[Collection(UsesPackedPackages.Name)]
public sealed class PackagingTests(PackedPackages packages)
{
    [Fact]
    public async Task Packed_packages_restore_from_a_local_feed_into_a_consumer_that_backs_up_an_embedded_instance()
    {
        AssertLibraryPackage("KmsBackup.Core");
        AssertLibraryPackage("KmsBackup");
        AssertLibraryPackage("KmsBackup.Hosting");
        AssertLibraryPackage("KmsBackup.DevelopmentKms");
        AssertLibraryPackage("KmsBackup.Storage.AzureBlob");
        AssertLibraryPackage("KmsBackup.Hsm.Pkcs11");
        using (var tool = ZipFile.OpenRead(packages.PackagePath("KmsBackup.Cli")))
        {
            Assert.Contains(tool.Entries, e => e.FullName == "tools/net10.0/any/DotnetToolSettings.xml");
            Assert.Contains(tool.Entries, e => e.FullName == "README.md");
        }

        var consumer = WriteConsumer();
        var run = await Repository.DotnetAsync(consumer, PackedPackages.Deadline, "run", "-c", "Release");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("consumer: backup System Created enabled, fully backed up keys: orders, store clean", run.Output, StringComparison.Ordinal);

        // The tool from the same feed reads the folder the consumer wrote.
        var tools = Path.Combine(packages.Work, "tools");
        var install = await Repository.DotnetAsync(consumer, PackedPackages.Deadline, "tool", "install", "KmsBackup.Cli", "--version", packages.Version, "--tool-path", tools);
        Assert.True(install.ExitCode == 0, install.ToString());
        var list = await Repository.RunAsync(Path.Combine(tools, OperatingSystem.IsWindows() ? "kmsbackup.exe" : "kmsbackup"), consumer, PackedPackages.Deadline,
            "backups", "list", "--root", Path.Combine(consumer, "data"), "--account", "acct-consumer", "--json");
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Contains("\"type\": \"System Created\"", list.Output, StringComparison.Ordinal);
    }

    /// <summary>A library package: README, license, XML docs, the commit it was built from, and a symbols package beside it.</summary>
    private void AssertLibraryPackage(string id)
    {
        using var package = ZipFile.OpenRead(packages.PackagePath(id));
        Assert.Contains(package.Entries, e => e.FullName == "README.md");
        Assert.Contains(package.Entries, e => e.FullName == $"lib/net10.0/{id}.dll");
        Assert.Contains(package.Entries, e => e.FullName == $"lib/net10.0/{id}.xml");

        using var nuspecStream = package.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open();
        var metadata = XDocument.Load(nuspecStream).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
        string? Field(string name) => metadata.Elements().SingleOrDefault(e => e.Name.LocalName == name)?.Value;
        Assert.Equal("MIT", Field("license"));
        Assert.Equal("README.md", Field("readme"));
        Assert.False(string.IsNullOrWhiteSpace(Field("description")));

        // SourceLink: the SDK records the commit; the URL comes from the git remote, when there is one.
        var repository = metadata.Elements().Single(e => e.Name.LocalName == "repository");
        Assert.Matches("^[0-9a-f]{40}$", repository.Attribute("commit")?.Value ?? "");

        using var symbols = ZipFile.OpenRead(Path.ChangeExtension(packages.PackagePath(id), ".snupkg"));
        Assert.Contains(symbols.Entries, e => e.FullName == $"lib/net10.0/{id}.pdb");
    }

    /// <summary>A console project outside the repository, restoring KmsBackup from the local feed and the machine's own sources.</summary>
    private string WriteConsumer()
    {
        var folder = packages.NewConsumerFolder("consumer");
        File.WriteAllText(Path.Combine(folder, "Consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
                <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="KmsBackup" Version="{packages.Version}" />
                <PackageReference Include="KmsBackup.DevelopmentKms" Version="{packages.Version}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(folder, "Program.cs"), """
            using System.IO.Abstractions;
            using KmsBackup;
            using KmsBackup.DevelopmentKms;
            using KmsBackup.Storage;

            // The layout the kmsbackup tool reads: data/store, data/kms, data/keys/repository.key.
            var files = new FileSystem();
            var root = Path.GetFullPath(Path.Combine(Directory.GetCurrentDirectory(), "data"));
            using var kms = new EmbeddedKeyManagementService(files, Path.Combine(root, "kms"), TimeProvider.System);
            await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-consumer", InstanceKind.Software, "cn-hangzhou", "acct-consumer"));
            await kms.GenerateKeyAsync("kst-consumer", "orders", "acct-consumer");
            using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, Path.Combine(root, "keys", "repository.key"));
            using var client = await BackupClient.OpenAsync(new FileSystemBackupStore(files, Path.Combine(root, "store"), TimeProvider.System), keys, kms);

            var backup = (await client.OnInstanceEnabledAsync("kst-consumer"))!;
            var names = new List<string>();
            var today = backup.QueryableRange!.Value.End;
            await foreach (var item in client.GetDataAsync("acct-consumer", backup.Id, today, BackupDataType.FullyBackedUpKeys))
            {
                names.Add(item.Name);
            }

            var verification = await client.VerifyAsync();
            Console.WriteLine($"consumer: backup {backup.Label} {backup.Status.ToString().ToLowerInvariant()}, fully backed up keys: {string.Join(", ", names)}, store {(verification.IsClean ? "clean" : "DAMAGED")}");
            """);
        return folder;
    }
}
