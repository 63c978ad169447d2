using KmsBackup.Tests.Engine;
using static KmsBackup.Tests.Restore.RestoreSetup;

namespace KmsBackup.Tests.Restore;

/// <summary>
/// A restore whose process dies between its writes and its rollback (rule R7): the dying client's gateway
/// and store fail every call after the k-th create, and a fresh client over the same store and the same
/// instance service takes over, as a restarted process would.
/// </summary>
public class RestoreCrashTests
{
    [Fact]
    [Trait("Rule", "R7")]
    public async Task A_restore_whose_process_dies_before_its_rollback_is_finished_by_a_restarted_process_without_name_conflicts()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, values) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync("kst-far", region: OtherRegion);
        var death = new ProcessDeath();
        using (var doomed = await h.OpenAnotherClientAsync("doomed", new DyingGateway(h.Kms, death, dieAfterCreate: 2), s => new DyingStore(s, death)))
        {
            // No operation ID given: the restore makes one, and the process dies with it.
            await Assert.ThrowsAnyAsync<Exception>(() => doomed.RestoreAsync(Request(backup.Id, "kst-far")));
        }

        Assert.True(death.IsDead);
        Assert.Equal(2, (await ContentOfAsync(h, "kst-far")).Keys.Count);

        using var restarted = await h.OpenAnotherClientAsync("restarted");
        var rerun = await Record.ExceptionAsync(() => restarted.RestoreAsync(Request(backup.Id, "kst-far")));

        Assert.True(rerun is null, $"The restarted process could not finish the restore: {rerun?.Message}");
        var content = await ContentOfAsync(h, "kst-far");
        Assert.Equal(["billing", "orders"], content.Keys.Select(k => k.Name).ToList());
        Assert.Equal(["api-token", "db-password"], content.Secrets.Select(s => s.Name).ToList());
        Assert.Equal(values["db-password"], (await h.Kms.GetSecretValueAsync("kst-far", "db-password")).Span.ToArray());
    }
}
