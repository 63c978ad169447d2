using System.IO.Abstractions.TestingHelpers;
using System.Text;

using KmsBackup.DevelopmentKms;

using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Testing.Engine;

/// <summary>
/// A whole cycle through the engine on the store under test: backup runs on the schedule, views of a date,
/// restore into an instance in another region, download of a date and upload of the file, verify, and a second writer held off by the lease. Every store runs
/// it; subclass it and implement <see cref="CreateStore"/>.
/// </summary>
/// <remarks>
/// The embedded key management service and the repository key file live on an in-memory file system; only the
/// backup store is the one under test.
/// </remarks>
public abstract class EngineCycleContractTests
{
    /// <summary>The owner account of the instances.</summary>
    protected const string Owner = "acct-owner";

    /// <summary>The fake clock's start.</summary>
    protected static readonly DateTimeOffset Start = new(2026, 5, 1, 9, 0, 0, TimeSpan.Zero);

    private static readonly DateOnly s_may1 = new(2026, 5, 1);

    /// <summary>The clock of the engine and the store.</summary>
    protected FakeTimeProvider Clock { get; } = new(Start);

    /// <summary>Holds the embedded instances and the repository key file.</summary>
    protected MockFileSystem Files { get; } = new();

    /// <summary>A client of this test's store, using <paramref name="clock"/>; each call another client over the same data. Each test starts with an empty store.</summary>
    protected abstract BackupStore CreateStore(TimeProvider clock);

    private async Task<(EmbeddedKeyManagementService Kms, BackupClient Client)> OpenAsync(string holder)
    {
        var kms = new EmbeddedKeyManagementService(Files, "/kms", Clock);
        var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(Files, "/keys/repository.key");
        var client = await BackupClient.OpenAsync(CreateStore(Clock), keys, kms, hsmClusters: null, new BackupClientOptions { TimeProvider = Clock, LeaseHolder = holder });
        return (kms, client);
    }

    private async Task<BackupClient> OpenAnotherAsync(EmbeddedKeyManagementService kms, string holder)
    {
        var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(Files, "/keys/repository.key");
        return await BackupClient.OpenAsync(CreateStore(Clock), keys, kms, hsmClusters: null, new BackupClientOptions { TimeProvider = Clock, LeaseHolder = holder });
    }

    private async Task<(EmbeddedKeyManagementService Kms, BackupClient Client, BackupDetails Backup)> BackedUpDayAsync()
    {
        var (kms, client) = await OpenAsync("host-a:1");
        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-a", InstanceKind.Software, "cn-hangzhou", Owner) { CreatedAt = Start.AddDays(-1), KeyQuota = 1000 });
        await kms.GenerateKeyAsync("kst-a", "orders", Owner);
        await kms.GenerateKeyAsync("kst-a", "payments", Owner);
        await kms.StoreSecretAsync("kst-a", "db-password", "orders", Encoding.UTF8.GetBytes("hunter2-the-value"), Owner);
        var backup = (await client.OnInstanceEnabledAsync("kst-a"))!;

        // Three 5-minute incrementals: one adds a key, one rotates a key, one adds a secret.
        Clock.Advance(TimeSpan.FromMinutes(5));
        await kms.GenerateKeyAsync("kst-a", "invoices", Owner);
        Assert.Single((await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        Clock.Advance(TimeSpan.FromMinutes(5));
        await kms.RotateKeyAsync("kst-a", "orders");
        Assert.Single((await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        Clock.Advance(TimeSpan.FromMinutes(5));
        await kms.StoreSecretAsync("kst-a", "api-token", "payments", Encoding.UTF8.GetBytes("token-value-1"), Owner);
        Assert.Single((await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        return (kms, client, backup);
    }

    private static async Task<List<string>> NamesAsync(BackupClient client, string backupId, BackupDataType type)
    {
        var names = new List<string>();
        await foreach (var item in client.GetDataAsync(Owner, backupId, s_may1, type))
        {
            names.Add(item.Name);
        }

        return names;
    }

    [Fact]
    [Trait("Rule", "S1")]
    [Trait("Rule", "S3")]
    [Trait("Rule", "D2")]
    [Trait("Rule", "D4")]
    public async Task Backup_runs_commit_points_whose_views_of_the_date_show_what_was_added_and_rotated()
    {
        var (kms, client, backup) = await BackedUpDayAsync();
        using var _ = kms;
        using var __ = client;

        var points = await client.ListRecoveryPointsAsync(Owner, backup.Id, s_may1);
        Assert.Equal([1L, 2, 3, 4], points.Select(p => p.Sequence));
        Assert.Equal(BackupRunKind.Full, points[0].Kind);
        Assert.All(points.Skip(1), p => Assert.Equal(BackupRunKind.Incremental, p.Kind));

        Assert.Equal(["orders", "payments"], await NamesAsync(client, backup.Id, BackupDataType.FullyBackedUpKeys));
        Assert.Equal(["invoices"], await NamesAsync(client, backup.Id, BackupDataType.IncrementallyBackedUpKeys));
        Assert.Equal(["orders"], await NamesAsync(client, backup.Id, BackupDataType.RotatedKeys));
        Assert.Equal(["db-password"], await NamesAsync(client, backup.Id, BackupDataType.FullyBackedUpSecrets));
        Assert.Equal(["api-token"], await NamesAsync(client, backup.Id, BackupDataType.IncrementallyBackedUpSecrets));

        // Another host's client over the same store reads the same state.
        using var other = await OpenAnotherAsync(kms, "host-b:2");
        var (point, snapshot) = await other.GetStateAtAsync(Owner, backup.Id, Clock.GetUtcNow());
        Assert.Equal(4, point.Sequence);
        var live = (await kms.ReadSnapshotAsync("kst-a")).Snapshot;
        Assert.Equal(live.Keys.ToList(), snapshot.Keys.ToList());
        Assert.Equal(live.Secrets.ToList(), snapshot.Secrets.ToList());
        Assert.True((await other.VerifyAsync()).IsClean);
    }

    [Fact]
    [Trait("Rule", "R1")]
    [Trait("Rule", "R9")]
    [Trait("Rule", "D4")]
    public async Task A_point_restores_into_an_instance_in_another_region_whole_and_as_it_was_backed_up()
    {
        var (kms, client, backup) = await BackedUpDayAsync();
        using var _ = kms;
        using var __ = client;
        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-shanghai", InstanceKind.Software, "cn-shanghai", Owner) { CreatedAt = Start.AddDays(-1), KeyQuota = 1000 });
        var points = await client.ListRecoveryPointsAsync(Owner, backup.Id, s_may1);
        var (third, asOfThird) = await client.GetStateAtAsync(Owner, backup.Id, points[2].CompletedAt);

        // Another host restores, through its own client of the same store.
        using var other = await OpenAnotherAsync(kms, "host-b:2");
        var request = new RestoreRequest { CallerAccount = Owner, BackupId = backup.Id, TargetInstanceId = "kst-shanghai", PointInTime = third.CompletedAt, AllItems = true };
        var plan = await other.PlanRestoreAsync(request);
        Assert.True(plan.CanExecute, string.Join("; ", plan.AllRefusals));
        var result = await other.RestoreAsync(request with { OperationId = plan.OperationId });

        Assert.Equal(asOfThird.Keys.Length + asOfThird.Secrets.Length, result.Restored.Count);
        var restored = (await kms.ReadSnapshotAsync("kst-shanghai")).Snapshot;
        Assert.Equal(asOfThird.Keys.Select(k => (k.Name, k.Versions.Length)), restored.Keys.Select(k => (k.Name, k.Versions.Length)));
        Assert.Equal(asOfThird.Secrets.Select(k => k.Name), restored.Secrets.Select(k => k.Name));
        Assert.Equal("hunter2-the-value"u8.ToArray(), (await kms.GetSecretValueAsync("kst-shanghai", "db-password")).Span.ToArray());

        // Rerunning the operation restores nothing twice.
        var again = await other.RestoreAsync(request with { OperationId = plan.OperationId });
        Assert.Empty(again.Restored);
    }

    [Fact]
    [Trait("Rule", "F1")]
    [Trait("Rule", "F2")]
    public async Task A_downloaded_date_uploads_as_a_backup_of_its_own_with_the_same_views_and_the_data_key_is_stored_nowhere()
    {
        var (kms, client, backup) = await BackedUpDayAsync();
        using var _ = kms;
        using var __ = client;
        using var file = new MemoryStream();
        using var download = await client.DownloadAsync(Owner, backup.Id, s_may1, file);
        var dataKey = download.DataKey.Span.ToArray();

        file.Position = 0;
        var uploaded = await client.UploadAsync(Owner, file, dataKey, "copy of May 1");

        Assert.Equal(BackupKind.Uploaded, uploaded.Kind);
        foreach (var type in Enum.GetValues<BackupDataType>())
        {
            Assert.Equal(await NamesAsync(client, backup.Id, type), await NamesAsync(client, uploaded.Id, type));
        }

        // The store holds neither the data key nor the plaintext secret values.
        var store = CreateStore(Clock);
        await foreach (var o in store.ListAsync(string.Empty))
        {
            var bytes = (await store.TryReadAsync(o.Key))!;
            Assert.True(bytes.AsSpan().IndexOf(dataKey) < 0, $"{o.Key} holds the data key");
            Assert.True(bytes.AsSpan().IndexOf("hunter2-the-value"u8) < 0, $"{o.Key} holds a secret value in plaintext");
        }

        Assert.True((await client.VerifyAsync()).IsClean);
    }

    [Fact]
    public async Task A_second_writer_of_a_backup_is_held_off_by_the_lease_and_told_who_holds_it()
    {
        var (kms, client) = await OpenAsync("host-a:1");
        using var _ = kms;
        using var __ = client;
        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-a", InstanceKind.Software, "cn-hangzhou", Owner) { CreatedAt = Start.AddDays(-1) });
        var backup = (await client.OnInstanceEnabledAsync("kst-a"))!;
        await using (var held = await CreateStore(Clock).AcquireLeaseAsync($"backups/{backup.Id}", "host-7:4242", TimeSpan.FromMinutes(10)))
        {
            Clock.Advance(TimeSpan.FromMinutes(5));
            var error = await Assert.ThrowsAsync<BackupException>(() => client.RunIfDueAsync(backup.Id));
            Assert.Equal(BackupErrorCode.LeaseHeld, error.Code);
            Assert.Contains("host-7:4242", error.Message, StringComparison.Ordinal);
            Assert.Empty((await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        }

        // Released: the run goes ahead, once.
        Assert.Single((await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        using var other = await OpenAnotherAsync(kms, "host-b:2");
        Assert.Empty((await other.RunDueBackupsAsync()).ThrowIfAnyFailed());
        Assert.Equal(2, (await client.ListRecoveryPointsAsync(Owner, backup.Id, s_may1)).Count);
    }

    [Fact]
    public async Task A_crashed_hosts_lapsed_lease_is_taken_over_by_the_scheduler()
    {
        var (kms, client) = await OpenAsync("host-a:1");
        using var _ = kms;
        using var __ = client;
        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-a", InstanceKind.Software, "cn-hangzhou", Owner) { CreatedAt = Start.AddDays(-1) });
        var backup = (await client.OnInstanceEnabledAsync("kst-a"))!;

        // A crashed host's lease lapses, and the scheduler takes the backup over.
        var crashed = await CreateStore(Clock).AcquireLeaseAsync($"backups/{backup.Id}", "crashed-host:9", TimeSpan.FromMinutes(1));
        Clock.Advance(TimeSpan.FromMinutes(5));
        var run = Assert.Single((await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
        Assert.Equal(2, run.Point.Sequence);
        Assert.Equal(BackupErrorCode.LeaseLost, (await Assert.ThrowsAsync<BackupException>(() => crashed.EnsureHeldAsync())).Code);
        Assert.True((await client.VerifyAsync()).IsClean);
    }
}
