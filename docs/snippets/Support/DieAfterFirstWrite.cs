using System.Diagnostics;
using System.Reflection;
using KmsBackup;

/// <summary>
/// A restore's progress that ends the process the moment the restore has written its first item into the target, as a
/// crash would: nothing is rolled back, and the restore's lease and journal stay as they were. The operation ID, from the
/// first report, goes to the file <c>operation-id</c> in the folder, for the process that takes over.
/// </summary>
internal sealed class DieAfterFirstWrite(string folder) : IProgress<RestoreProgress>
{
    /// <summary>The exit code of a process that died this way.</summary>
    public const int ExitCode = 70;

    public void Report(RestoreProgress value)
    {
        if (value.Phase == RestorePhase.Started)
        {
            File.WriteAllText(Path.Combine(folder, "operation-id"), value.OperationId);
        }
        else if (value.Phase == RestorePhase.Restoring && value.Completed >= 1)
        {
            Environment.Exit(ExitCode);
        }
    }

    /// <summary>This program again, running the RestoreResume snippet's dying restore over <paramref name="folder"/>.</summary>
    public static ProcessStartInfo StartInfo(string folder)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath ?? "dotnet") { RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(start.FileName) == "dotnet")
        {
            start.ArgumentList.Add(Assembly.GetEntryAssembly()?.Location ?? throw new InvalidOperationException("No entry assembly."));
        }

        start.ArgumentList.Add("RestoreResume");
        start.ArgumentList.Add("--die-while-restoring");
        start.ArgumentList.Add(folder);
        return start;
    }
}
