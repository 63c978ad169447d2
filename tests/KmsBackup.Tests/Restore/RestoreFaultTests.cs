using KmsBackup.Tests.Engine;
using static KmsBackup.Tests.Restore.RestoreSetup;

namespace KmsBackup.Tests.Restore;

/// <summary>All or nothing (rule R7): a target that fails at any item, a cancelled restore, a rollback that cannot finish.</summary>
public class RestoreFaultTests
{
    public static TheoryData<int, CreateFailure> EveryItemAndFailure()
    {
        var data = new TheoryData<int, CreateFailure>();
        foreach (var failure in Enum.GetValues<CreateFailure>())
        {
            for (var k = 1; k <= 4; k++)
            {
                data.Add(k, failure);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(EveryItemAndFailure))]
    [Trait("Rule", "R7")]
    public async Task A_target_that_fails_at_item_k_is_left_exactly_as_before(int k, CreateFailure failure)
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, values) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync("kst-far", region: OtherRegion);
        await h.Kms.GenerateKeyAsync("kst-far", "already-there", EngineHarness.Owner);
        var before = await ContentOfAsync(h, "kst-far");
        var gateway = new FailingGateway(h.Kms) { FailCreateAt = k, Failure = failure };
        using var client = await h.OpenAnotherClientAsync("restorer", gateway);

        var thrown = await Assert.ThrowsAsync<RestoreException>(() => client.RestoreAsync(Request(backup.Id, "kst-far", operationId: "op-k")));

        Assert.False(thrown.RefusedByPlan);
        Assert.Empty(thrown.LeftInTarget);
        Assert.Equal(failure == CreateFailure.Refusal ? BackupErrorCode.InsufficientQuota : BackupErrorCode.RestoreFailed, thrown.Code);
        Assert.Contains("the target is as it was", thrown.Message, StringComparison.Ordinal);
        Assert.Equal(k, gateway.Creates);
        await AssertUnchangedAsync(h, "kst-far", before);

        // The same operation, rerun against a healthy target, completes.
        var rerun = await h.Client.RestoreAsync(Request(backup.Id, "kst-far", operationId: "op-k"));
        Assert.Equal(4, rerun.Restored.Count);
        var value = await h.Kms.GetSecretValueAsync("kst-far", "db-password");
        Assert.Equal(values["db-password"], value.Span.ToArray());
    }

    [Fact]
    [Trait("Rule", "R7")]
    public async Task A_cancelled_restore_removes_what_it_wrote_before_the_cancellation_surfaces()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync("kst-far", region: OtherRegion);
        var before = await ContentOfAsync(h, "kst-far");
        using var cancel = new CancellationTokenSource();
        var reports = new List<RestoreProgress>();
        var progress = new SynchronousProgress<RestoreProgress>(p =>
        {
            reports.Add(p);
            if (p.Phase == RestorePhase.Restoring && p.Completed == 3)
            {
                cancel.Cancel();
            }
        });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => h.Client.RestoreAsync(Request(backup.Id, "kst-far"), progress, cancel.Token));

        await AssertUnchangedAsync(h, "kst-far", before);
        Assert.Equal(3, reports.Count(r => r.Phase == RestorePhase.RollingBack));
    }

    [Fact]
    [Trait("Rule", "R7")]
    public async Task A_rollback_that_cannot_finish_names_what_it_left_and_a_rerun_of_the_operation_completes_it()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync("kst-far", region: OtherRegion);
        var gateway = new FailingGateway(h.Kms) { FailCreateAt = 3, FailDeletes = true };
        using var client = await h.OpenAnotherClientAsync("restorer", gateway);

        var thrown = await Assert.ThrowsAsync<RestoreException>(() => client.RestoreAsync(Request(backup.Id, "kst-far", operationId: "op-left")));

        Assert.Equal(BackupErrorCode.RestoreFailed, thrown.Code);
        Assert.Equal(["orders", "billing"], thrown.LeftInTarget.Select(i => i.Name).ToList());
        Assert.Contains("op-left", thrown.Remedy, StringComparison.Ordinal);
        Assert.Equal(2, (await ContentOfAsync(h, "kst-far")).Keys.Count);

        var rerun = await h.Client.RestoreAsync(Request(backup.Id, "kst-far", operationId: "op-left"));
        Assert.Equal(["billing", "orders"], rerun.AlreadyRestored.Select(i => i.Name).ToList());
        Assert.Equal(["api-token", "db-password"], rerun.Restored.Select(i => i.Name).ToList());
        Assert.Equal(4, (await ContentOfAsync(h, "kst-far")).Keys.Count + (await ContentOfAsync(h, "kst-far")).Secrets.Count);
    }

    [Fact]
    [Trait("Rule", "R6")]
    public async Task Planning_never_writes_to_any_instance()
    {
        await using var h = await EngineHarness.CreateAsync();
        var (backup, _) = await BackUpSourceAsync(h);
        await h.CreateInstanceAsync("kst-far", region: OtherRegion);
        var gateway = new FailingGateway(h.Kms);
        using var client = await h.OpenAnotherClientAsync("planner", gateway);

        await client.PlanRestoreAsync(Request(backup.Id, "kst-far"));
        await client.PlanRestoreAsync(Request(backup.Id, Source));

        Assert.DoesNotContain(gateway.Calls, c => c.StartsWith("create", StringComparison.Ordinal) || c.StartsWith("delete", StringComparison.Ordinal));
    }
}
