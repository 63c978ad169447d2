using System.Diagnostics;

namespace KmsBackup.Cli.Tests;

/// <summary>
/// Runs the built tool (KmsBackup.Cli.dll, copied beside the tests) as its own process, the way a user meets it:
/// real arguments, environment, standard output and error, and exit code. Nothing of the test process's
/// KMSBACKUP_* variables or COLUMNS leaks in; the test names every variable the run sees.
/// </summary>
public static class CliProcess
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromMinutes(2);

    public static Task<CliRun> RunAsync(IReadOnlyDictionary<string, string> environment, params string[] args) => RunWithInputAsync(environment, null, args);

    /// <summary>Runs the tool with <paramref name="standardInput"/> written to its standard input (none when <see langword="null"/>).</summary>
    public static async Task<CliRun> RunWithInputAsync(IReadOnlyDictionary<string, string> environment, string? standardInput, params string[] args)
    {
        var tool = Path.Combine(AppContext.BaseDirectory, "KmsBackup.Cli.dll");
        Assert.True(File.Exists(tool), $"the built tool is missing at {tool}");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(tool);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("KMSBACKUP_", StringComparison.OrdinalIgnoreCase) || k == "COLUMNS").ToList())
        {
            start.Environment.Remove(name);
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("The tool did not start.");
        if (standardInput is not null)
        {
            await process.StandardInput.WriteAsync(standardInput);
        }

        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(s_timeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"kmsbackup {string.Join(' ', args)} ran longer than {s_timeout}.");
        }

        return new CliRun(process.ExitCode, await output, await error);
    }

    /// <summary>Every file and folder under <paramref name="root"/> with its length: what a run that writes nothing leaves as it was.</summary>
    public static string[] Image(string root) =>
        [.. new DirectoryInfo(root).EnumerateFileSystemInfos("*", SearchOption.AllDirectories)
            .Select(e => e is FileInfo f ? $"{Path.GetRelativePath(root, f.FullName)} {f.Length}" : Path.GetRelativePath(root, e.FullName) + Path.DirectorySeparatorChar)
            .Order(StringComparer.Ordinal)];
}
