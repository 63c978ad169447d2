using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using KmsBackup.Tests.Engine;

namespace KmsBackup.Tests.Restore;

/// <summary>One backed-up source instance (6 keys, 6 secrets) that every case of the properties restores from.</summary>
public sealed class RestorePropertySource : IAsyncLifetime
{
    public const string SourceId = "kst-prop-src";

    private int _cases;

    public EngineHarness H { get; private set; } = null!;

    public string BackupId { get; private set; } = null!;

    public (List<KeyRecord> Keys, List<SecretRecord> Secrets) Backed { get; private set; }

    public async Task InitializeAsync()
    {
        H = await EngineHarness.CreateAsync();
        await H.CreateInstanceAsync(SourceId);
        for (var i = 0; i < 6; i++)
        {
            await H.Kms.GenerateKeyAsync(SourceId, $"k{i}", EngineHarness.Owner);
        }

        for (var i = 0; i < 6; i++)
        {
            await H.Kms.StoreSecretAsync(SourceId, $"s{i}", $"k{(i * 5) % 6}", new byte[] { (byte)i, 1, 2, 3 }, EngineHarness.Owner);
        }

        BackupId = (await H.Client.OnInstanceEnabledAsync(SourceId))!.Id;
        await H.RunUntilAsync(new DateTimeOffset(2026, 5, 2, 1, 0, 0, TimeSpan.Zero), TimeSpan.FromHours(1));
        Backed = await RestoreSetup.ContentOfAsync(H, SourceId);
    }

    /// <summary>A fresh region for each case, so that cases never see each other's names.</summary>
    public int NextCase() => Interlocked.Increment(ref _cases);

    public async Task DisposeAsync() => await H.DisposeAsync();
}

/// <summary>A random restore: which items, what the target and its region already hold, how much quota, where it fails.</summary>
public sealed record RestoreCase(int KeyMask, int SecretMask, int[] TargetNames, int[] NeighbourNames, int QuotaSlack, int FailAt)
{
    public static readonly string[] NamePool = ["k0", "k1", "k2", "k3", "k4", "k5", "other-a", "other-b"];

    public override string ToString() =>
        $"keys {KeyMask:b6} secrets {SecretMask:b6} target [{string.Join(",", TargetNames.Select(i => NamePool[i]))}] neighbour [{string.Join(",", NeighbourNames.Select(i => NamePool[i]))}] slack {QuotaSlack} failAt {FailAt}";
}

public static class RestoreCases
{
    public static Arbitrary<RestoreCase> Cases() =>
        (from keys in Gen.Choose(0, 63)
         from secrets in Gen.Choose(0, 63)
         from target in Gen.Frequency((3, Gen.Constant(Array.Empty<int>())), (2, Gen.ArrayOf(Gen.Choose(0, 7)).Select(a => a.Distinct().Take(4).ToArray())))
         from neighbour in Gen.Frequency((3, Gen.Constant(Array.Empty<int>())), (1, Gen.ArrayOf(Gen.Choose(0, 7)).Select(a => a.Distinct().Take(2).ToArray())))
         from slack in Gen.Frequency((4, Gen.Constant(100)), (1, Gen.Choose(0, 8)))
         from failAt in Gen.Choose(1, 12)
         select new RestoreCase(keys, secrets, target, neighbour, slack, failAt))
        .ToArbitrary();
}

/// <summary>Properties of restore through the engine (rules R4, R6, R7, R9): planning changes nothing; a clean plan restores exactly its items; a failure leaves the target as it was.</summary>
[Properties(Arbitrary = [typeof(RestoreCases)], MaxTest = 25)]
public class RestorePropertyTests(RestorePropertySource source) : IClassFixture<RestorePropertySource>
{
    private async Task<(string Target, string Neighbour, RestoreRequest Request)> ArrangeAsync(RestoreCase c)
    {
        var n = source.NextCase();
        var region = $"prop-region-{n}";
        var target = $"kst-prop-{n}";
        var neighbour = $"kst-prop-{n}-neighbour";
        await source.H.CreateInstanceAsync(target, region: region, keyQuota: c.TargetNames.Length + c.QuotaSlack);
        await source.H.CreateInstanceAsync(neighbour, region: region);
        foreach (var i in c.TargetNames)
        {
            await source.H.Kms.GenerateKeyAsync(target, RestoreCase.NamePool[i], EngineHarness.Owner);
        }

        // Names are unique in a region: the neighbour holds only names the target does not.
        foreach (var i in c.NeighbourNames.Except(c.TargetNames))
        {
            await source.H.Kms.GenerateKeyAsync(neighbour, RestoreCase.NamePool[i], EngineHarness.Owner);
        }

        var keys = Enumerable.Range(0, 6).Where(i => (c.KeyMask & (1 << i)) != 0).Select(i => $"k{i}").ToArray();
        var secrets = Enumerable.Range(0, 6).Where(i => (c.SecretMask & (1 << i)) != 0).Select(i => $"s{i}").ToArray();
        var request = new RestoreRequest
        {
            CallerAccount = EngineHarness.Owner,
            BackupId = source.BackupId,
            TargetInstanceId = target,
            BackupDate = RestoreSetup.Day2,
            KeyNames = keys,
            SecretNames = secrets,
            AllItems = keys.Length + secrets.Length == 0,
            OperationId = $"op-{n}",
        };
        return (target, neighbour, request);
    }

    [Property]
    [Trait("Rule", "R6")]
    public async Task<bool> A_plan_never_changes_the_target_or_its_region(RestoreCase c)
    {
        var (target, neighbour, request) = await ArrangeAsync(c);
        var before = await RestoreSetup.ContentOfAsync(source.H, target);
        var neighbourBefore = await RestoreSetup.ContentOfAsync(source.H, neighbour);
        var gateway = new FailingGateway(source.H.Kms);
        using var client = await source.H.OpenAnotherClientAsync("planner", gateway);

        var plan = await client.PlanRestoreAsync(request);

        await RestoreSetup.AssertUnchangedAsync(source.H, target, before);
        await RestoreSetup.AssertUnchangedAsync(source.H, neighbour, neighbourBefore);
        return !gateway.Calls.Any(call => call.StartsWith("create", StringComparison.Ordinal) || call.StartsWith("delete", StringComparison.Ordinal))
               && plan.Items.Length == (request.AllItems ? 12 : request.KeyNames.Count + request.SecretNames.Count);
    }

    [Property]
    [Trait("Rule", "R7")]
    [Trait("Rule", "R9")]
    public async Task<bool> Executing_a_plan_without_violations_restores_exactly_the_planned_items(RestoreCase c)
    {
        var (target, _, request) = await ArrangeAsync(c);
        var before = await RestoreSetup.ContentOfAsync(source.H, target);
        var plan = await source.H.Client.PlanRestoreAsync(request);
        if (!plan.CanExecute)
        {
            // A plan with violations is refused as a whole, with its first violation, and writes nothing.
            var refused = await Assert.ThrowsAsync<RestoreException>(() => source.H.Client.RestoreAsync(request));
            Assert.Equal(plan.AllRefusals.First().Code, refused.Code);
            await RestoreSetup.AssertUnchangedAsync(source.H, target, before);
            return true;
        }

        var result = await source.H.Client.RestoreAsync(request);

        var after = await RestoreSetup.ContentOfAsync(source.H, target);
        var plannedKeys = plan.Items.Where(i => i.Type == ItemType.Key).Select(i => i.Name).ToHashSet();
        var plannedSecrets = plan.Items.Where(i => i.Type == ItemType.Secret).Select(i => i.Name).ToHashSet();
        var expectedKeys = before.Keys.Concat(source.Backed.Keys.Where(k => plannedKeys.Contains(k.Name))).OrderBy(k => k.Name, ItemNameComparer.Instance).ToList();
        var expectedSecrets = before.Secrets.Concat(source.Backed.Secrets.Where(s => plannedSecrets.Contains(s.Name))).OrderBy(s => s.Name, ItemNameComparer.Instance).ToList();
        Assert.Equal(expectedKeys, after.Keys);
        Assert.Equal(expectedSecrets, after.Secrets);
        return result.Restored.Count == plan.Items.Length;
    }

    [Property]
    [Trait("Rule", "R7")]
    public async Task<bool> A_failed_execution_leaves_the_targets_snapshot_identical(RestoreCase c)
    {
        var (target, _, request) = await ArrangeAsync(c);
        var before = await RestoreSetup.ContentOfAsync(source.H, target);
        var plan = await source.H.Client.PlanRestoreAsync(request);
        var gateway = new FailingGateway(source.H.Kms) { FailCreateAt = c.FailAt, Failure = (CreateFailure)(c.FailAt % 3) };
        using var client = await source.H.OpenAnotherClientAsync("restorer", gateway);

        try
        {
            await client.RestoreAsync(request);
        }
        catch (RestoreException e)
        {
            Assert.Empty(e.LeftInTarget);
            await RestoreSetup.AssertUnchangedAsync(source.H, target, before);
            return plan.CanExecute ? c.FailAt <= plan.Items.Length : e.RefusedByPlan;
        }

        // No failure: the plan was clean and had fewer items than the failing position.
        return plan.CanExecute && plan.Items.Length < c.FailAt;
    }
}
