using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace KmsBackup.Samples.Tests;

/// <summary>Where the repository and this build's outputs are, and how to run a process with a deadline.</summary>
internal static class Repository
{
    public static string Root { get; } = FindRoot();

    /// <summary>The configuration this test assembly was built in; the samples and packages were built in it too.</summary>
    public static string Configuration { get; } =
        typeof(Repository).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";

    public static string OutputOf(string projectFolder, string assemblyName) =>
        Path.Combine(Root, projectFolder, "bin", Configuration, "net10.0", assemblyName);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "KmsBackup.Sdk.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("The repository root (KmsBackup.Sdk.sln) is not above the test's folder.");
    }

    public sealed record ProcessResult(int ExitCode, string Output, string Error, TimeSpan Elapsed)
    {
        public override string ToString() => $"exit {ExitCode} after {Elapsed.TotalSeconds:F1} s\n--- stdout\n{Output}\n--- stderr\n{Error}";
    }

    /// <summary>Runs <c>dotnet</c> with arguments; kills the process tree at the deadline.</summary>
    public static async Task<ProcessResult> DotnetAsync(string workingDirectory, TimeSpan deadline, params string[] args) =>
        await RunAsync("dotnet", workingDirectory, deadline, args);

    public static async Task<ProcessResult> RunAsync(string fileName, string workingDirectory, TimeSpan deadline, params string[] args) =>
        await RunAsync(fileName, workingDirectory, deadline, new Dictionary<string, string>(), args);

    /// <summary>Runs a program with arguments and extra environment variables; kills the process tree at the deadline.</summary>
    public static async Task<ProcessResult> RunAsync(string fileName, string workingDirectory, TimeSpan deadline, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        var stopwatch = Stopwatch.StartNew();
        using var process = Process.Start(start)!;
        var output = new StringBuilder();
        var error = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (output) { output.AppendLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (error) { error.AppendLine(e.Data); } } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var timeout = new CancellationTokenSource(deadline);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"'{fileName} {string.Join(' ', args)}' did not finish within {deadline}.\n{output}\n{error}");
        }

        process.WaitForExit(); // drains the output events
        return new ProcessResult(process.ExitCode, output.ToString(), error.ToString(), stopwatch.Elapsed);
    }
}
