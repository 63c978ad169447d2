using System.Text.Json;

namespace KmsBackup.Cli.Tests;

/// <summary>
/// Issue 16, finding 8: a refused restore prints one JSON document, <c>{"error": ..., "plan": ...}</c>, whether it was
/// planned or run, and the same refusal in text. The tool runs as a process.
/// </summary>
public sealed class RefusedRestoreJsonTests : CliProcessTests
{
    [Theory]
    [InlineData("kst-src", ExitCodes.Refused)]   // a rule: the secret's key is not in the target (and billing's name is)
    [InlineData("kst-nope", ExitCodes.NotFound)] // a target that does not exist
    public async Task A_refused_restore_plan_and_restore_run_print_the_same_json_document(string target, int exitCode)
    {
        string[] request = [Folder.BackupId, "--date", "2026-05-02", "--key", "billing", "--secret", "db-password", "--target", target, "--operation-id", "op-refused", "--json"];
        var before = Unleased(Folder.Root);

        var plan = await RunAtAsync(StoreTime, ["restore", "plan", .. request]);
        var run = await RunAtAsync(StoreTime, ["restore", "run", .. request]);

        AssertExit(exitCode, plan);
        AssertExit(exitCode, run);
        var planJson = plan.Json();
        var runJson = run.Json();
        Assert.Equal(Shape(runJson), Shape(planJson));
        Assert.Equal(["error", "plan"], planJson.EnumerateObject().Select(p => p.Name).ToArray());

        // The same refusal, with the plan's code, item, message and remedy, and the same plan.
        Assert.Equal(runJson.GetProperty("error").GetRawText(), planJson.GetProperty("error").GetRawText());
        Assert.Equal(runJson.GetProperty("plan").GetRawText(), planJson.GetProperty("plan").GetRawText());
        var error = planJson.GetProperty("error");
        Assert.Equal(exitCode, error.GetProperty("exitCode").GetInt32());
        var refusals = planJson.GetProperty("plan").GetProperty("batchRefusals").EnumerateArray()
            .Concat(planJson.GetProperty("plan").GetProperty("items").EnumerateArray().SelectMany(i => i.GetProperty("refusals").EnumerateArray()))
            .ToList();
        Assert.NotEmpty(refusals);
        Assert.Equal(refusals[0].GetProperty("code").GetString(), error.GetProperty("code").GetString());
        Assert.Equal(refusals[0].GetProperty("remedy").GetString(), error.GetProperty("remedy").GetString());
        Assert.False(planJson.GetProperty("plan").GetProperty("canExecute").GetBoolean());
        Assert.Equal(before, Unleased(Folder.Root));
    }

    [Fact]
    public async Task A_refused_restore_plan_in_text_names_the_refusal_and_its_remedy_as_a_refused_run_does()
    {
        string[] request = [Folder.BackupId, "--date", "2026-05-02", "--secret", "db-password", "--target", "kst-src"];

        var plan = await RunAtAsync(StoreTime, ["restore", "plan", .. request]);
        var run = await RunAtAsync(StoreTime, ["restore", "run", .. request]);

        AssertExit(ExitCodes.Refused, plan);
        AssertExit(ExitCodes.Refused, run);
        Assert.StartsWith("EncryptionKeyMissing: ", plan.Error, StringComparison.Ordinal);
        Assert.Equal(run.Error, plan.Error);
        Assert.Contains("Refused: 1 violation", plan.Output, StringComparison.Ordinal);
    }

    /// <summary>The folder's image without the store's leases (a restore run takes its operation's lease before it plans).</summary>
    private static string[] Unleased(string root) =>
        [.. CliProcess.Image(root).Where(e => !e.StartsWith(Path.Combine("store", "objects", "leases"), StringComparison.Ordinal))];

    /// <summary>A JSON document's structure: every property path with its value's kind (array elements under <c>[]</c>).</summary>
    private static SortedSet<string> Shape(JsonElement element)
    {
        var paths = new SortedSet<string>(StringComparer.Ordinal);
        void Walk(JsonElement e, string path)
        {
            paths.Add($"{path}: {e.ValueKind}");
            if (e.ValueKind == JsonValueKind.Object)
            {
                foreach (var property in e.EnumerateObject())
                {
                    Walk(property.Value, $"{path}.{property.Name}");
                }
            }
            else if (e.ValueKind == JsonValueKind.Array)
            {
                foreach (var item in e.EnumerateArray())
                {
                    Walk(item, $"{path}[]");
                }
            }
        }

        Walk(element, "$");
        return paths;
    }
}
