using System.IO.Abstractions.TestingHelpers;

using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Storage.Blobs;

using KmsBackup.DevelopmentKms;

using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Storage.AzureBlob.Tests;

/// <summary>Azurite stopped in the middle of a backup, on an Azurite of the test's own: a typed error, and every committed point intact after it restarts.</summary>
public sealed class AzuriteOutageTests(Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime
{
    private readonly System.Diagnostics.Stopwatch _watch = System.Diagnostics.Stopwatch.StartNew();

    private void Log(string what) => output.WriteLine($"{_watch.Elapsed.TotalSeconds:F1}s {what}");

    private const string Owner = "acct-owner";
    private static readonly DateTimeOffset s_start = new(2026, 5, 1, 9, 0, 0, TimeSpan.Zero);

    private readonly FakeTimeProvider _clock = new(s_start);
    private readonly MockFileSystem _files = new();
    private AzuriteProcess? _azurite;

    public async Task InitializeAsync() => _azurite = await AzuriteProcess.StartAsync(Azurite.RequireBlobExecutable());

    public Task DisposeAsync()
    {
        _azurite?.Dispose();
        return Task.CompletedTask;
    }

    private async Task<BackupClient> OpenAsync(EmbeddedKeyManagementService kms, params HttpPipelinePolicy[] policies)
    {
        var container = new BlobContainerClient(_azurite!.ConnectionString, "backups", Azurite.ClientOptions(maxRetries: 2, policies));
        var store = new AzureBlobBackupStore(container, Azurite.SmallPagesAndBlocks(), _clock);
        var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(_files, "/keys/repository.key");
        return await BackupClient.OpenAsync(store, keys, kms, hsmClusters: null, new BackupClientOptions { TimeProvider = _clock, LeaseHolder = "host-a:1" });
    }

    [Fact]
    public async Task Azurite_stopped_midway_through_a_backup_is_a_typed_error_and_every_committed_point_is_intact_after_it_restarts()
    {
        using var kms = new EmbeddedKeyManagementService(_files, "/kms", _clock);
        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-a", InstanceKind.Software, "cn-hangzhou", Owner) { CreatedAt = s_start.AddDays(-1), KeyQuota = 10_000 });
        for (var i = 0; i < 60; i++)
        {
            await kms.GenerateKeyAsync("kst-a", $"key-{i:D4}", Owner);
        }

        Log("instance ready");
        var outage = new OutagePolicy(_azurite!);
        var backupId = string.Empty;
        var committed = new List<(long Sequence, DateTimeOffset At, List<string> Keys)>();
        using (var client = await OpenAsync(kms, outage))
        {
            backupId = (await client.OnInstanceEnabledAsync("kst-a"))!.Id;
            for (var run = 0; run < 3; run++)
            {
                _clock.Advance(TimeSpan.FromMinutes(5));
                await kms.GenerateKeyAsync("kst-a", $"added-{run}", Owner);
                await kms.RotateKeyAsync("kst-a", $"key-{run:D4}");
                Assert.Single((await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
            }

            foreach (var point in await client.ListRecoveryPointsAsync(Owner, backupId, DateOnly.FromDateTime(s_start.UtcDateTime)))
            {
                var (_, snapshot) = await client.GetStateAtAsync(Owner, backupId, point.CompletedAt);
                committed.Add((point.Sequence, point.CompletedAt, snapshot.Keys.Select(k => $"{k.Name}@{k.Versions.Length}").ToList()));
            }

            Assert.Equal([1L, 2, 3, 4], committed.Select(c => c.Sequence));
            Log("4 points committed");

            // The next run writes its new objects; Azurite is killed before the third of its writes reaches it.
            // (Wait first until Azurite has saved what it acknowledged: it saves its metadata every 5 seconds.)
            await Task.Delay(AzuriteProcess.MetadataSaveInterval);
            _clock.Advance(TimeSpan.FromMinutes(5));
            for (var i = 0; i < 20; i++)
            {
                await kms.RotateKeyAsync("kst-a", $"key-{20 + i:D4}");
            }

            outage.StopAtPut(3);
            var error = await Assert.ThrowsAsync<BackupException>(async () => (await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
            Assert.Equal(BackupErrorCode.StoreUnavailable, error.Code);
            Assert.Contains($"127.0.0.1:{_azurite!.Port}/devstoreaccount1/backups/", error.Message, StringComparison.Ordinal);
            Assert.False(_azurite.IsRunning);
            Log("run failed: " + error.Message);
        }

        await _azurite!.StartAsync();
        Log("restarted");
        using (var client = await OpenAsync(kms))
        {
            var verification = await client.VerifyAsync();
            Assert.True(verification.IsClean, string.Join("; ", verification.Problems));
            var points = await client.ListRecoveryPointsAsync(Owner, backupId, DateOnly.FromDateTime(s_start.UtcDateTime));
            Assert.Equal(committed.Select(c => c.Sequence), points.Select(p => p.Sequence));
            foreach (var (sequence, at, keys) in committed)
            {
                var (point, snapshot) = await client.GetStateAtAsync(Owner, backupId, at);
                Assert.Equal(sequence, point.Sequence);
                Assert.Equal(keys, snapshot.Keys.Select(k => $"{k.Name}@{k.Versions.Length}"));
            }

            // Once the failed run's lease has lapsed, the schedule goes on.
            _clock.Advance(TimeSpan.FromMinutes(5));
            var resumed = Assert.Single((await client.RunDueBackupsAsync()).ThrowIfAnyFailed());
            Assert.Equal(5, resumed.Point.Sequence);
            Log("resumed");
            Assert.True((await client.VerifyAsync()).IsClean);
        }
    }

    /// <summary>Kills Azurite just before the n-th PUT after it is armed reaches it.</summary>
    private sealed class OutagePolicy(AzuriteProcess azurite) : HttpPipelinePolicy
    {
        private int _putsUntilStop = -1;

        public void StopAtPut(int n) => Volatile.Write(ref _putsUntilStop, n);

        public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline) =>
            ProcessAsync(message, pipeline).AsTask().GetAwaiter().GetResult();

        public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            if (message.Request.Method == RequestMethod.Put && Volatile.Read(ref _putsUntilStop) > 0 && Interlocked.Decrement(ref _putsUntilStop) == 0)
            {
                await azurite.KillAsync();
            }

            await ProcessNextAsync(message, pipeline);
        }
    }
}
