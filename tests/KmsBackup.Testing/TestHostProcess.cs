using System.Diagnostics;

namespace KmsBackup.Testing;

/// <summary>Starts tests/KmsBackup.TestHost as a separate process: a second writer, or a process to kill.</summary>
public static class TestHostProcess
{
    /// <summary>Starts the test host with <paramref name="arguments"/>; its standard input, output and error are redirected.</summary>
    public static Process Start(params string[] arguments) => Start(environment: null, arguments);

    /// <summary>Starts the test host with <paramref name="arguments"/> and extra environment variables.</summary>
    public static Process Start(IReadOnlyDictionary<string, string>? environment, params string[] arguments)
    {
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(TestHostAssembly());
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        return Process.Start(start) ?? throw new InvalidOperationException("The test host did not start.");
    }

    /// <summary>The dotnet host that runs this test (dotnet test sets DOTNET_HOST_PATH), or the one on PATH.</summary>
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

    /// <summary>
    /// tests/KmsBackup.TestHost's build output, in the same configuration as the running test assembly's
    /// (the solution build builds it; test projects do not reference it).
    /// </summary>
    private static string TestHostAssembly()
    {
        var output = new DirectoryInfo(AppContext.BaseDirectory);
        var relative = new Stack<string>();
        for (var folder = output; folder is not null; folder = folder.Parent)
        {
            if (folder.Parent is { Name: "tests" } tests)
            {
                var path = Path.Combine([tests.FullName, "KmsBackup.TestHost", .. relative, "KmsBackup.TestHost.dll"]);
                Assert.True(File.Exists(path), $"{path} is missing: build the solution (dotnet build -c Release) before running the tests.");
                return path;
            }

            relative.Push(folder.Name);
        }

        Assert.Fail($"This test runs from the build output of a project under tests/; {AppContext.BaseDirectory} is not one.");
        return string.Empty;
    }
}
