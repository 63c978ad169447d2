namespace KmsBackup.Samples.Tests;

/// <summary>The samples run as users run them, from their built output, and end as the README says.</summary>
public class SampleTests
{
    [Fact]
    public async Task The_quick_start_runs_the_whole_lifecycle_and_ends_with_its_summary()
    {
        var dll = Repository.OutputOf(Path.Combine("samples", "Sample1_QuickStart"), "Sample1_QuickStart.dll");
        Assert.True(File.Exists(dll), $"Build the solution first: {dll} is missing.");

        var run = await Repository.DotnetAsync(Repository.Root, TimeSpan.FromMinutes(3), dll);

        Assert.True(run.ExitCode == 0, run.ToString());
        var lines = run.Output.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var summary = lines[^1];
        Assert.StartsWith("Summary: 4 backups (System Created, Default, Paid, Upload)", summary, StringComparison.Ordinal);
        Assert.Contains("store verified clean", summary, StringComparison.Ordinal);

        // The seed's May example and the refusals on the way to the restore are in the timeline.
        Assert.Contains(lines, l => l.Contains("REFUSED DateOutsideWindow", StringComparison.Ordinal) && l.Contains("needs 16 viewable days", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("queryable range 2024-05-05..2024-05-20", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("REFUSED EncryptionKeyMissing", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("REFUSED NameConflict", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("REFUSED InsufficientQuota", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("decrypts to its value of May 5: yes", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("REFUSED BackupExpired", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("Released", StringComparison.Ordinal));
        Assert.Empty(run.Error);
    }
}
