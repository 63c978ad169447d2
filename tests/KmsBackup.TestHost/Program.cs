using System.Diagnostics;
using System.Globalization;

using System.IO.Abstractions;
using KmsBackup;
using KmsBackup.Instances;
using KmsBackup.Storage;

// Helper processes for the tests (run by tests/KmsBackup.Tests; not a tool for users).
//
//   hold-lease <store-folder> <lease-name> <holder> <duration-seconds> <hold-seconds>
//     Acquires the lease in a FileSystemBackupStore over the real disk, prints "held <expiry>",
//     renews it every third of its duration for <hold-seconds>, then releases it and prints "released".
//     If the lease is held, prints "lease-held <message>" and exits with 3.
//
//   backup-loop <store-folder> <kms-folder> <key-file> <instance-id> <start-unix-seconds> <runs>
//     Backs up one instance of an embedded key management service (created on first use with 300
//     keys) into a FileSystemBackupStore, back to back: each step moves a stepping clock 5 minutes
//     on, rotates, adds and deletes a few keys and runs what is due. Prints "run <sequence>" after
//     each committed recovery point and "done" at the end (nothing with a trailing "quiet"). Made to be
//     killed at any moment.
switch (args)
{
    case ["hold-lease", var folder, var leaseName, var holder, var durationText, var holdText]:
        return await HoldLeaseAsync(folder, leaseName, holder, Seconds(durationText), Seconds(holdText));
    case ["backup-loop", var storeFolder, var kmsFolder, var keyFile, var instanceId, var startText, var runsText, .. var rest]:
        return await BackupLoopAsync(storeFolder, kmsFolder, keyFile, instanceId,
            DateTimeOffset.FromUnixTimeSeconds(long.Parse(startText, CultureInfo.InvariantCulture)), int.Parse(runsText, CultureInfo.InvariantCulture),
            quiet: rest is ["quiet"]);
    default:
        await Console.Error.WriteLineAsync("usage: KmsBackup.TestHost hold-lease <store-folder> <lease-name> <holder> <duration-seconds> <hold-seconds>");
        await Console.Error.WriteLineAsync("       KmsBackup.TestHost backup-loop <store-folder> <kms-folder> <key-file> <instance-id> <start-unix-seconds> <runs>");
        return 2;
}

static async Task<int> BackupLoopAsync(string storeFolder, string kmsFolder, string keyFile, string instanceId, DateTimeOffset start, int runs, bool quiet)
{
    var output = quiet ? TextWriter.Null : Console.Out;
    var clock = new SteppingClock(start);
    var files = new FileSystem();
    using var kms = new EmbeddedKeyManagementService(files, kmsFolder, clock);
    if (await kms.GetInstanceAsync(instanceId) is null)
    {
        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec(instanceId, InstanceKind.Software, "cn-hangzhou", "acct-owner") { CreatedAt = start.AddDays(-1), KeyQuota = 1_000_000 });
        for (var i = 0; i < 300; i++)
        {
            await kms.GenerateKeyAsync(instanceId, $"key-{i:D4}", "acct-owner");
        }
    }

    var options = new BackupClientOptions { TimeProvider = clock, LeaseHolder = $"test-host:{Environment.ProcessId}" };
    using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, keyFile);
    using var client = await BackupClient.OpenAsync(new FileSystemBackupStore(files, storeFolder, clock), keys, kms, options);
    if (await client.OnInstanceEnabledAsync(instanceId) is { LatestPoint: { } first })
    {
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"run {first.Sequence}"));
    }

    var random = new Random(Environment.ProcessId);
    for (var step = 0; step < runs; step++)
    {
        clock.Advance(TimeSpan.FromMinutes(5));
        var name = $"key-{random.Next(300):D4}";
        if (await kms.GetKeyAsync(instanceId, name) is not null)
        {
            await kms.RotateKeyAsync(instanceId, name);
        }

        await kms.GenerateKeyAsync(instanceId, $"added-{step:D5}-{random.Next():x8}", "acct-owner");
        foreach (var result in await client.RunDueBackupsAsync())
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"run {result.Point.Sequence}"));
        }
    }

    output.WriteLine("done");
    return 0;
}

static TimeSpan Seconds(string text) => TimeSpan.FromSeconds(double.Parse(text, CultureInfo.InvariantCulture));

static async Task<int> HoldLeaseAsync(string folder, string leaseName, string holder, TimeSpan duration, TimeSpan hold)
{
    var store = new FileSystemBackupStore(folder);
    StoreLease lease;
    try
    {
        lease = await store.AcquireLeaseAsync(leaseName, holder, duration);
    }
    catch (BackupException ex) when (ex.Code == BackupErrorCode.LeaseHeld)
    {
        Console.WriteLine($"lease-held {ex.Message}");
        return 3;
    }

    await using (lease)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"held {lease.ExpiresAt:O}"));
        var held = Stopwatch.StartNew();
        while (held.Elapsed < hold)
        {
            await Task.Delay(duration / 3);
            await lease.RenewAsync();
        }
    }

    Console.WriteLine("released");
    return 0;
}

/// <summary>A clock that moves only when told: weeks of schedule run in seconds.</summary>
internal sealed class SteppingClock(DateTimeOffset start) : TimeProvider
{
    private long _ticks = start.UtcTicks;

    public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}
