using System.Globalization;
using System.Xml.Linq;

namespace KmsBackup.Samples.Tests;

/// <summary>
/// The repository's packages, packed once per test run into a local folder feed in a temporary folder, for the tests
/// of <see cref="UsesPackedPackages"/>: a consumer project restores them from the feed, as a user who installs
/// them from a feed would, and everything else from the machine's configured sources.
/// </summary>
public sealed class PackedPackages : IAsyncLifetime
{
    /// <summary>The packable projects under src/, each a package of the same name.</summary>
    public static IReadOnlyList<string> Projects { get; } =
        ["KmsBackup.Core", "KmsBackup", "KmsBackup.Hosting", "KmsBackup.DevelopmentKms", "KmsBackup.Storage.AzureBlob", "KmsBackup.Hsm.Pkcs11", "KmsBackup.Cli"];

    /// <summary>How long one dotnet command (pack, restore and build, install) may take.</summary>
    public static TimeSpan Deadline { get; } = TimeSpan.FromMinutes(4);

    /// <summary>
    /// A fresh version each run: the machine's global packages folder would otherwise serve an older package of the
    /// same version from a previous run.
    /// </summary>
    public string Version { get; } = string.Create(CultureInfo.InvariantCulture, $"0.1.0-packtest.{Environment.TickCount64}");

    /// <summary>The temporary folder that holds the feed and the consumers; deleted when the collection's tests are done.</summary>
    public string Work { get; } = Directory.CreateTempSubdirectory("kmsbackup-pack-").FullName;

    public string Feed => Path.Combine(Work, "feed");

    public async Task InitializeAsync()
    {
        foreach (var project in Projects)
        {
            await PackAsync(project);
        }
    }

    public Task DisposeAsync()
    {
        Directory.Delete(Work, recursive: true);
        return Task.CompletedTask;
    }

    /// <summary>The package file of <paramref name="id"/> in the feed.</summary>
    public string PackagePath(string id) => Path.Combine(Feed, $"{id}.{Version}.nupkg");

    /// <summary>A new folder under <see cref="Work"/> with the repository's NuGet settings plus the feed.</summary>
    public string NewConsumerFolder(string name)
    {
        var folder = Path.Combine(Work, name);
        Directory.CreateDirectory(folder);

        // No <clear/>: the machine's configured sources still serve the dependencies.
        var config = XDocument.Load(Path.Combine(Repository.Root, "nuget.config"));
        var sources = config.Root!.Element("packageSources") ?? new XElement("packageSources");
        if (sources.Parent is null)
        {
            config.Root.Add(sources);
        }

        sources.Add(new XElement("add", new XAttribute("key", "kmsbackup-local-feed"), new XAttribute("value", Feed)));
        config.Save(Path.Combine(folder, "nuget.config"));
        return folder;
    }

    /// <summary>The version Directory.Packages.props pins for a third-party package, for consumers outside the repository.</summary>
    public static string CentralVersion(string id) =>
        XDocument.Load(Path.Combine(Repository.Root, "Directory.Packages.props")).Descendants("PackageVersion")
            .SingleOrDefault(p => (string?)p.Attribute("Include") == id)?.Attribute("Version")?.Value
        ?? throw new InvalidOperationException($"Directory.Packages.props pins no version of {id}.");

    private async Task PackAsync(string project)
    {
        var path = Path.Combine(Repository.Root, "src", project, $"{project}.csproj");
        var built = File.Exists(Repository.OutputOf(Path.Combine("src", project), $"{project}.dll"));
        string[] args = ["pack", path, "-c", Repository.Configuration, "-o", Feed, $"-p:PackageVersion={Version}", .. built ? new[] { "--no-build" } : []];
        var pack = await Repository.DotnetAsync(Repository.Root, Deadline, args);
        if (pack.ExitCode != 0)
        {
            throw new InvalidOperationException($"Packing {project} failed: {pack}");
        }
    }
}

/// <summary>The tests that use the packed packages: they share one pack and run one after another.</summary>
[CollectionDefinition(Name)]
public sealed class UsesPackedPackages : ICollectionFixture<PackedPackages>
{
    public const string Name = "Packed packages";
}
