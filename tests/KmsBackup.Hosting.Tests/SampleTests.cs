using System.Diagnostics;
using System.Text.RegularExpressions;

namespace KmsBackup.Hosting.Tests;

/// <summary>samples/Sample2_HostApp runs in CI: built with this project, run with --simulate, its exit code and summary checked.</summary>
public partial class SampleTests
{
    [Fact]
    [Trait("Rule", "S2")]
    [Trait("Rule", "S3")]
    public async Task The_host_app_sample_simulates_hours_across_midnight_and_ends_with_a_clean_summary()
    {
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(SampleAssembly());
        start.ArgumentList.Add("--simulate");
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"The sample did not finish in 3 minutes. Output so far:\n{await output}");
        }

        var text = await output;
        Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}\n{text}\n{await errors}");
        var summary = SummaryLine().Match(text);
        Assert.True(summary.Success, text);
        Assert.True(int.Parse(summary.Groups["fulls"].Value, System.Globalization.CultureInfo.InvariantCulture) >= 2, summary.Value);
        Assert.Equal("0", summary.Groups["failed"].Value);
        Assert.Contains("(DailyFull)", text, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"^Summary: (?<fulls>\d+) full backups, (?<incrementals>\d+) incremental backups, (?<failed>\d+) failed runs, 0 failed ticks in \d+ ticks; \d+ bytes written; health Healthy: OK$", RegexOptions.Multiline)]
    private static partial Regex SummaryLine();

    private static string DotnetHost()
    {
        var fromSdk = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(fromSdk) && File.Exists(fromSdk))
        {
            return fromSdk;
        }

        var current = Environment.ProcessPath;
        return current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet" ? current : "dotnet";
    }

    /// <summary>The sample's build output in this test assembly's configuration (this project builds it).</summary>
    private static string SampleAssembly()
    {
        var relative = new Stack<string>();
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (folder.Name == "KmsBackup.Hosting.Tests" && folder.Parent?.Parent is { } root)
            {
                var path = Path.Combine([root.FullName, "samples", "Sample2_HostApp", .. relative, "Sample2_HostApp.dll"]);
                Assert.True(File.Exists(path), $"{path} is missing: build the solution before running the tests.");
                return path;
            }

            relative.Push(folder.Name);
        }

        Assert.Fail($"This test runs from the build output of tests/KmsBackup.Hosting.Tests; {AppContext.BaseDirectory} is not one.");
        return string.Empty;
    }
}
