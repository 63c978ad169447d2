using System.Collections.Concurrent;
using System.Text;
using KmsBackup.Tests.Engine;

namespace KmsBackup.Tests.Restore;

/// <summary>How <see cref="FailingGateway"/> fails the chosen create call.</summary>
public enum CreateFailure
{
    /// <summary>Throw before the create reaches the instance.</summary>
    Before,

    /// <summary>Let the create land, then throw (a reply lost on the way back).</summary>
    After,

    /// <summary>Throw a typed refusal, as a target that changed since the plan would.</summary>
    Refusal,
}

/// <summary>An instance gateway over another that fails the k-th create call and, optionally, every rollback deletion.</summary>
internal sealed class FailingGateway(InstanceGateway inner) : InstanceGateway
{
    private int _creates;

    public int FailCreateAt { get; set; }

    public CreateFailure Failure { get; set; } = CreateFailure.Before;

    public bool FailDeletes { get; set; }

    public int Creates => _creates;

    public ConcurrentQueue<string> Calls { get; } = new();

    public override bool SupportsChangeFeed => inner.SupportsChangeFeed;

    public override Task<InstanceDescription?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken = default) => inner.GetInstanceAsync(instanceId, cancellationToken);

    /// <summary>Whether listing the instances fails (a gateway that cannot list just now).</summary>
    public bool FailListing { get; set; }

    /// <summary>How many listings were asked for, failed or not.</summary>
    public int Listings { get; private set; }

    public override IAsyncEnumerable<InstanceDescription> ListInstancesAsync(string? region = null, CancellationToken cancellationToken = default)
    {
        Listings++;
        return FailListing ? throw new IOException("The instance listing is unavailable.") : inner.ListInstancesAsync(region, cancellationToken);
    }

    public override Task<SnapshotRead> ReadSnapshotAsync(string instanceId, CancellationToken cancellationToken = default) => inner.ReadSnapshotAsync(instanceId, cancellationToken);

    public override Task<InstanceChanges> ReadChangesAsync(string instanceId, string cursor, CancellationToken cancellationToken = default) => inner.ReadChangesAsync(instanceId, cursor, cancellationToken);

    public override Task<IReadOnlyList<NameInUse>> FindNamesInUseAsync(string region, ItemType type, IReadOnlyCollection<string> names, CancellationToken cancellationToken = default) =>
        inner.FindNamesInUseAsync(region, type, names, cancellationToken);

    public override Task<IReadOnlySet<string>> FindKeyIdsAsync(string instanceId, IReadOnlyCollection<string> keyIds, CancellationToken cancellationToken = default) =>
        inner.FindKeyIdsAsync(instanceId, keyIds, cancellationToken);

    public override Task<bool> CreateKeyAsync(string instanceId, KeyRecord key, string operationId, CancellationToken cancellationToken = default) =>
        CreateAsync($"create key {key.Name}", () => inner.CreateKeyAsync(instanceId, key, operationId, cancellationToken));

    public override Task<bool> CreateSecretAsync(string instanceId, SecretRecord secret, string operationId, CancellationToken cancellationToken = default) =>
        CreateAsync($"create secret {secret.Name}", () => inner.CreateSecretAsync(instanceId, secret, operationId, cancellationToken));

    public override Task<bool> DeleteRestoredItemAsync(string instanceId, ItemType type, string name, string operationId, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue($"delete {type.ToString().ToLowerInvariant()} {name}");
        return FailDeletes
            ? throw new IOException("The target instance cannot be reached (injected).")
            : inner.DeleteRestoredItemAsync(instanceId, type, name, operationId, cancellationToken);
    }

    private async Task<bool> CreateAsync(string call, Func<Task<bool>> create)
    {
        Calls.Enqueue(call);
        if (Interlocked.Increment(ref _creates) != FailCreateAt)
        {
            return await create();
        }

        switch (Failure)
        {
            case CreateFailure.After:
                await create();
                throw new IOException("The reply was lost (injected).");
            case CreateFailure.Refusal:
                throw new BackupException(new Refusal(BackupErrorCode.InsufficientQuota, "instance 'injected'", "The instance's quota changed (injected).", "Free up quota."));
            default:
                throw new IOException("The target instance cannot be reached (injected).");
        }
    }
}

/// <summary>
/// An instance gateway over another that records every call and the instance or region it concerns; with
/// <paramref name="withoutOwners"/>, its names in use leave <see cref="NameInUse.OwnerAccount"/> out, as a gateway may.
/// </summary>
internal sealed class RecordingGateway(InstanceGateway inner, bool withoutOwners = false) : InstanceGateway
{
    public ConcurrentQueue<string> Calls { get; } = new();

    public override bool SupportsChangeFeed => inner.SupportsChangeFeed;

    public override Task<InstanceDescription?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken = default) =>
        Record($"get {instanceId}", () => inner.GetInstanceAsync(instanceId, cancellationToken));

    public override IAsyncEnumerable<InstanceDescription> ListInstancesAsync(string? region = null, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue($"list {region ?? "*"}");
        return inner.ListInstancesAsync(region, cancellationToken);
    }

    public override Task<SnapshotRead> ReadSnapshotAsync(string instanceId, CancellationToken cancellationToken = default) =>
        Record($"snapshot {instanceId}", () => inner.ReadSnapshotAsync(instanceId, cancellationToken));

    public override Task<InstanceChanges> ReadChangesAsync(string instanceId, string cursor, CancellationToken cancellationToken = default) =>
        Record($"changes {instanceId}", () => inner.ReadChangesAsync(instanceId, cursor, cancellationToken));

    public override Task<IReadOnlyList<NameInUse>> FindNamesInUseAsync(string region, ItemType type, IReadOnlyCollection<string> names, CancellationToken cancellationToken = default) =>
        Record($"names {region} {type}", async () =>
        {
            var uses = await inner.FindNamesInUseAsync(region, type, names, cancellationToken);
            return withoutOwners ? [.. uses.Select(u => u with { OwnerAccount = null })] : uses;
        });

    public override Task<IReadOnlySet<string>> FindKeyIdsAsync(string instanceId, IReadOnlyCollection<string> keyIds, CancellationToken cancellationToken = default) =>
        Record($"key-ids {instanceId}", () => inner.FindKeyIdsAsync(instanceId, keyIds, cancellationToken));

    public override Task<bool> CreateKeyAsync(string instanceId, KeyRecord key, string operationId, CancellationToken cancellationToken = default) =>
        Record($"create key {instanceId}", () => inner.CreateKeyAsync(instanceId, key, operationId, cancellationToken));

    public override Task<bool> CreateSecretAsync(string instanceId, SecretRecord secret, string operationId, CancellationToken cancellationToken = default) =>
        Record($"create secret {instanceId}", () => inner.CreateSecretAsync(instanceId, secret, operationId, cancellationToken));

    public override Task<bool> DeleteRestoredItemAsync(string instanceId, ItemType type, string name, string operationId, CancellationToken cancellationToken = default) =>
        Record($"delete {instanceId}", () => inner.DeleteRestoredItemAsync(instanceId, type, name, operationId, cancellationToken));

    private Task<T> Record<T>(string call, Func<Task<T>> next)
    {
        Calls.Enqueue(call);
        return next();
    }
}

/// <summary>A store that records every key read through it.</summary>
internal sealed class RecordingStore(BackupStore inner) : BackupStore
{
    public ConcurrentQueue<string> Reads { get; } = new();

    protected override Task<bool> TryCreateCoreAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) => inner.TryCreateAsync(key, content, cancellationToken);

    protected override Task<byte[]?> TryReadCoreAsync(string key, CancellationToken cancellationToken)
    {
        Reads.Enqueue(key);
        return inner.TryReadAsync(key, cancellationToken);
    }

    protected override IAsyncEnumerable<StoreObject> ListCoreAsync(string prefix, CancellationToken cancellationToken)
    {
        Reads.Enqueue($"list:{prefix}");
        return inner.ListAsync(prefix, cancellationToken);
    }

    protected override Task<bool> DeleteCoreAsync(string key, CancellationToken cancellationToken) => inner.DeleteAsync(key, cancellationToken);

    public override Task<StoreLease> AcquireLeaseAsync(string leaseName, string holder, TimeSpan duration, CancellationToken cancellationToken = default) =>
        inner.AcquireLeaseAsync(leaseName, holder, duration, cancellationToken);
}

/// <summary>A backed-up source instance and the helpers restore tests share.</summary>
internal static class RestoreSetup
{
    public const string Source = "kst-src";
    public const string OtherRegion = "cn-shanghai";

    /// <summary>The date whose 00:00 full holds the source's keys and secrets.</summary>
    public static readonly DateOnly Day2 = new(2026, 5, 2);

    /// <summary>
    /// Creates <see cref="Source"/> with keys 'orders' and 'billing' and secrets 'db-password' (under
    /// 'orders') and 'api-token' (under 'billing'), enables its automatic backup and runs the schedule
    /// past 2026-05-02 00:00. Returns the backup and the secrets' values.
    /// </summary>
    public static async Task<(BackupDetails Backup, Dictionary<string, byte[]> Values)> BackUpSourceAsync(EngineHarness h, string region = EngineHarness.Region)
    {
        await h.CreateInstanceAsync(Source, region: region);
        await h.Kms.GenerateKeyAsync(Source, "orders", EngineHarness.Owner, "order signing");
        await h.Kms.GenerateKeyAsync(Source, "billing", EngineHarness.Owner);
        await h.Kms.RotateKeyAsync(Source, "orders");
        var values = new Dictionary<string, byte[]>
        {
            ["db-password"] = Encoding.UTF8.GetBytes("db-password value 0123"),
            ["api-token"] = Encoding.UTF8.GetBytes("api token value 4567"),
        };
        await h.Kms.StoreSecretAsync(Source, "db-password", "orders", values["db-password"], EngineHarness.Owner, "database");
        await h.Kms.StoreSecretAsync(Source, "api-token", "billing", values["api-token"], EngineHarness.Owner);
        await h.Kms.PutSecretValueAsync(Source, "api-token", values["api-token"]);
        var backup = (await h.Client.OnInstanceEnabledAsync(Source))!;
        await h.RunUntilAsync(new DateTimeOffset(2026, 5, 2, 1, 0, 0, TimeSpan.Zero), TimeSpan.FromHours(1));
        return (backup, values);
    }

    public static RestoreRequest Request(string backupId, string target, string[]? keys = null, string[]? secrets = null, BackupDataType? type = null, string? operationId = null) => new()
    {
        CallerAccount = EngineHarness.Owner,
        BackupId = backupId,
        TargetInstanceId = target,
        BackupDate = Day2,
        DataType = type,
        KeyNames = keys ?? [],
        SecretNames = secrets ?? [],
        AllItems = keys is null && secrets is null,
        OperationId = operationId,
    };

    /// <summary>The instance's keys and secrets, as comparable values (material and ciphertexts included).</summary>
    public static async Task<(List<KeyRecord> Keys, List<SecretRecord> Secrets)> ContentOfAsync(EngineHarness h, string instanceId)
    {
        var snapshot = (await h.Kms.ReadSnapshotAsync(instanceId)).Snapshot;
        return ([.. snapshot.Keys], [.. snapshot.Secrets]);
    }

    public static async Task AssertUnchangedAsync(EngineHarness h, string instanceId, (List<KeyRecord> Keys, List<SecretRecord> Secrets) before)
    {
        var after = await ContentOfAsync(h, instanceId);
        Assert.Equal(before.Keys, after.Keys);
        Assert.Equal(before.Secrets, after.Secrets);
    }
}
