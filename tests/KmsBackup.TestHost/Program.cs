// Over 400 lines: every helper-process mode the tests spawn, behind one entry point.
using System.Diagnostics;
using System.Globalization;

using System.IO.Abstractions;
using KmsBackup;
using KmsBackup.DevelopmentKms;
using KmsBackup.Storage;
using KmsBackup.Storage.AzureBlob;

using Azure.Storage.Blobs;

// Helper processes for the tests (run by tests/KmsBackup.Tests and tests/KmsBackup.Storage.AzureBlob.Tests;
// not a tool for users).
//
// <store> is a folder of the real disk (a FileSystemBackupStore), or "azure:<container>" for an
// AzureBlobBackupStore in that container of the account whose connection string is in the environment
// variable KMSBACKUP_AZURITE_CONNECTION_STRING (never on the command line: it holds the account key).
//
//   hold-lease <store-folder> <lease-name> <holder> <duration-seconds> <hold-seconds>
//     Acquires the lease in a FileSystemBackupStore over the real disk, prints "held <expiry>",
//     renews it every third of its duration for <hold-seconds>, then releases it and prints "released".
//     If the lease is held, prints "lease-held <message>" and exits with 3.
//
//   backup-loop <store> <kms-folder> <key-file> <instance-id> <start-unix-seconds> <runs> [quiet | shared <wall-start-unix-ms> <speed>]
//     Backs up one instance of an embedded key management service (created on first use with 300
//     keys) into <store>, back to back: each step moves a stepping clock 5 minutes
//     on, rotates, adds and deletes a few keys and runs what is due. Prints "run <sequence>" after
//     each committed recovery point and "done" at the end (nothing with a trailing "quiet"). Made to be
//     killed at any moment. With "shared", the clock is start + (wall clock - wall-start) * speed, shared by
//     every process given the same values, and each step waits for it to move 5 minutes on.
//
//   watch <store> <kms-folder> <key-file> <owner> <writer-start-unix-seconds> <seconds>
//     A second engine process beside a backup-loop writer: for <seconds>, reads every backup of <owner> as of
//     a day after the writer's start, printing "view <backup> <sequence> <keys>" whenever a newer point
//     appears, and tries the backup's lease until a writer holds it, printing "held-off <message>" once (or
//     "lease-free" each time it got the lease, which it releases at once). Once a backup has 3 points, restores
//     the newest it read into kst-target, an instance in another region (cn-shanghai) of its own instance
//     service (<kms-folder>), and prints
//     "restored <backup> <sequence> <items> <keys-in-point> <keys-in-target>". Its lease clock stays at the
//     writer's start: the writer's stepping clock runs hours ahead of real time, and a lease clock ahead of the
//     writer's would judge the writer's live lease expired (hosts sharing a store need clocks in sync).
//     Prints "done" at the end.
//
//   scheduler <store> <kms-folder> <key-file> <host> <epoch-unix-seconds> <wall-start-unix-ms> <speed> <lease-seconds> <until-unix-seconds>
//     One host of a scaled-out scheduler: runs what is due, over and over, on a clock shared by every host:
//     epoch + (wall clock - wall-start) * speed. Prints "run <backup> <sequence> <kind> <taken-at> <host>" after
//     each committed point and "done" when the shared clock reaches <until>. Made to be killed.
//
//   open-key <key-file>
//     A first start racing another: opens the key file once in a private temp folder (so that loading and
//     compiling the code does not decide which process comes first), prints "ready", reads a start instant
//     (Unix milliseconds) from standard input, waits for it, then opens or creates <key-file> with
//     KeyFileRepositoryKeyProvider and prints "key <key-id> <microseconds-after-the-start-instant>".
//
//   upload <store-folder> <kms-folder> <key-file> <file> <data-key-file>
//     Uploads a backup file into a FileSystemBackupStore over the real disk, sampling memory every 2 ms, and prints
//     "uploaded <backup> <file-bytes> <seconds> <start-working-set> <peak-working-set> <baseline-managed> <peak-managed>
//     <allocated> <gen2-collections> <retained-managed>" (bytes; the peak working set is the process's high-water mark; allocated counts every
//     managed allocation during the upload; retained-managed is the heap after a full collection once the upload is done), or "refused <code> <message>" and exits with 3.
switch (args)
{
    case ["open-key", var keyFile]:
        return await OpenKeyAsync(keyFile);
    case ["upload", var storeFolder, var kmsFolder, var keyFile, var filePath, var dataKeyFile]:
        return await UploadAsync(storeFolder, kmsFolder, keyFile, filePath, dataKeyFile);
    case ["hold-lease", var folder, var leaseName, var holder, var durationText, var holdText]:
        return await HoldLeaseAsync(folder, leaseName, holder, Seconds(durationText), Seconds(holdText));
    case ["backup-loop", var storeFolder, var kmsFolder, var keyFile, var instanceId, var startText, var runsText, .. var rest]:
        return await BackupLoopAsync(storeFolder, kmsFolder, keyFile, instanceId,
            DateTimeOffset.FromUnixTimeSeconds(long.Parse(startText, CultureInfo.InvariantCulture)), int.Parse(runsText, CultureInfo.InvariantCulture),
            quiet: rest is ["quiet"],
            shared: rest is ["shared", var loopWallStart, var loopSpeed]
                ? (DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(loopWallStart, CultureInfo.InvariantCulture)), double.Parse(loopSpeed, CultureInfo.InvariantCulture))
                : null);
    case ["watch", var store, var kmsFolder, var keyFile, var owner, var startText, var secondsText]:
        return await WatchAsync(store, kmsFolder, keyFile, owner, DateTimeOffset.FromUnixTimeSeconds(long.Parse(startText, CultureInfo.InvariantCulture)), Seconds(secondsText));
    case ["scheduler", var store, var kmsFolder, var keyFile, var host, var epochText, var wallStartText, var speedText, var leaseText, var untilText]:
        return await SchedulerAsync(
            store, kmsFolder, keyFile, host,
            new SharedFastClock(
                DateTimeOffset.FromUnixTimeSeconds(long.Parse(epochText, CultureInfo.InvariantCulture)),
                DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(wallStartText, CultureInfo.InvariantCulture)),
                double.Parse(speedText, CultureInfo.InvariantCulture)),
            Seconds(leaseText),
            DateTimeOffset.FromUnixTimeSeconds(long.Parse(untilText, CultureInfo.InvariantCulture)));
    default:
        await Console.Error.WriteLineAsync("usage: KmsBackup.TestHost hold-lease <store-folder> <lease-name> <holder> <duration-seconds> <hold-seconds>");
        await Console.Error.WriteLineAsync("       KmsBackup.TestHost backup-loop <store> <kms-folder> <key-file> <instance-id> <start-unix-seconds> <runs>");
        await Console.Error.WriteLineAsync("       KmsBackup.TestHost watch <store> <kms-folder> <key-file> <owner> <writer-start-unix-seconds> <seconds>");
        await Console.Error.WriteLineAsync("       KmsBackup.TestHost open-key <key-file>");
        await Console.Error.WriteLineAsync("       KmsBackup.TestHost upload <store-folder> <kms-folder> <key-file> <file> <data-key-file>");
        await Console.Error.WriteLineAsync("       KmsBackup.TestHost scheduler <store> <kms-folder> <key-file> <host> <epoch-unix-seconds> <wall-start-unix-ms> <speed> <lease-seconds> <until-unix-seconds>");
        return 2;
}

static async Task<int> BackupLoopAsync(
    string storeFolder, string kmsFolder, string keyFile, string instanceId, DateTimeOffset start, int runs, bool quiet, (DateTimeOffset WallStart, double Speed)? shared)
{
    var output = quiet ? TextWriter.Null : Console.Out;

    // Alone, a process steps its own clock. Beside other writers of the store it runs on a clock shared with
    // them (hosts sharing a store keep their clocks in sync; the store refuses a writer far behind the others).
    var stepping = new SteppingClock(start);
    TimeProvider clock = shared is { } s ? new SharedFastClock(start, s.WallStart, s.Speed) : stepping;
    async Task StepAsync()
    {
        if (shared is null)
        {
            stepping.Advance(TimeSpan.FromMinutes(5));
            return;
        }

        var next = clock.GetUtcNow().AddMinutes(5);
        while (clock.GetUtcNow() < next)
        {
            await Task.Delay(5);
        }
    }

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

    // On a shared fast clock a lease's minutes pass in milliseconds: an hour keeps a run's lease alive through its real time.
    var options = new BackupClientOptions
    {
        TimeProvider = clock,
        LeaseHolder = $"test-host:{Environment.ProcessId}",
        LeaseDuration = shared is null ? TimeSpan.FromMinutes(5) : TimeSpan.FromHours(1),
    };
    using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, keyFile);
    using var client = await BackupClient.OpenAsync(OpenStore(storeFolder, clock), keys, kms, hsmClusters: null, options);
    if (await client.OnInstanceEnabledAsync(instanceId) is { LatestPoint: { } first })
    {
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"run {first.Sequence}"));
    }

    var random = new Random(Environment.ProcessId);
    for (var step = 0; step < runs; step++)
    {
        await StepAsync();
        var name = $"key-{random.Next(300):D4}";
        if (await kms.GetKeyAsync(instanceId, name) is not null)
        {
            await kms.RotateKeyAsync(instanceId, name);
        }

        await kms.GenerateKeyAsync(instanceId, $"added-{step:D5}-{random.Next():x8}", "acct-owner");
        foreach (var result in (await client.RunDueBackupsAsync()).ThrowIfAnyFailed())
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"run {result.Point.Sequence}"));
        }
    }

    output.WriteLine("done");
    return 0;
}

static BackupStore OpenStore(string store, TimeProvider clock)
{
    if (store.StartsWith("azure:", StringComparison.Ordinal))
    {
        var connectionString = Environment.GetEnvironmentVariable("KMSBACKUP_AZURITE_CONNECTION_STRING");
        if (string.IsNullOrEmpty(connectionString))
        {
            throw new InvalidOperationException("An azure:<container> store needs KMSBACKUP_AZURITE_CONNECTION_STRING.");
        }

        var clientOptions = new BlobClientOptions();
        clientOptions.Retry.Delay = TimeSpan.FromMilliseconds(50);
        return new AzureBlobBackupStore(new BlobContainerClient(connectionString, store["azure:".Length..], clientOptions), timeProvider: clock);
    }

    return new FileSystemBackupStore(new FileSystem(), store, clock);
}

static async Task<int> WatchAsync(string store, string kmsFolder, string keyFile, string owner, DateTimeOffset writerStart, TimeSpan duration)
{
    var now = writerStart.AddDays(1);
    var clock = new SteppingClock(now);
    var files = new FileSystem();
    using var kms = new EmbeddedKeyManagementService(files, kmsFolder, clock);
    if (await kms.GetInstanceAsync("kst-target") is null)
    {
        await kms.CreateInstanceAsync(new EmbeddedInstanceSpec("kst-target", InstanceKind.Software, "cn-shanghai", owner) { CreatedAt = now.AddDays(-1), KeyQuota = 1_000_000 });
    }

    var holder = $"watcher:{Environment.ProcessId}";
    using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, keyFile);
    var leaseStore = OpenStore(store, new SteppingClock(writerStart));
    using var client = await BackupClient.OpenAsync(OpenStore(store, clock), keys, kms, hsmClusters: null, new BackupClientOptions { TimeProvider = clock, LeaseHolder = holder });
    var seen = new Dictionary<string, long>(StringComparer.Ordinal);
    var heldOff = false;
    var restored = false;
    var watched = Stopwatch.StartNew();
    while (watched.Elapsed < duration)
    {
        await foreach (var backup in client.ListBackupsAsync(owner))
        {
            if (backup.LatestPoint is null)
            {
                continue;
            }

            var (point, snapshot) = await client.GetStateAtAsync(owner, backup.Id, now);
            if (!seen.TryGetValue(backup.Id, out var last) || point.Sequence > last)
            {
                seen[backup.Id] = point.Sequence;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"view {backup.Id} {point.Sequence} {snapshot.Keys.Length}"));
            }

            if (!heldOff)
            {
                try
                {
                    await using var lease = await leaseStore.AcquireLeaseAsync($"backups/{backup.Id}", holder, TimeSpan.FromSeconds(1));
                    Console.WriteLine("lease-free");
                }
                catch (BackupException ex) when (ex.Code == BackupErrorCode.LeaseHeld)
                {
                    Console.WriteLine($"held-off {ex.Message}");
                    heldOff = true;
                }
            }

            // Once the writer has committed a few points, restore the newest into the instance in the other region, once.
            if (!restored && point.Sequence >= 3)
            {
                var result = await client.RestoreAsync(new RestoreRequest
                {
                    CallerAccount = owner, BackupId = backup.Id, TargetInstanceId = "kst-target", PointInTime = point.CompletedAt, AllItems = true,
                });
                var target = (await kms.ReadSnapshotAsync("kst-target")).Snapshot;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"restored {backup.Id} {point.Sequence} {result.Restored.Count} {snapshot.Keys.Length} {target.Keys.Length}"));
                restored = true;
            }
        }

        await Task.Delay(20);
    }

    Console.WriteLine("done");
    return 0;
}

static async Task<int> SchedulerAsync(string store, string kmsFolder, string keyFile, string host, SharedFastClock clock, TimeSpan lease, DateTimeOffset until)
{
    var files = new FileSystem();
    using var kms = new EmbeddedKeyManagementService(files, kmsFolder, clock);
    using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, keyFile);
    var options = new BackupClientOptions { TimeProvider = clock, LeaseHolder = host, LeaseDuration = lease };
    using var client = await BackupClient.OpenAsync(OpenStore(store, clock), keys, kms, hsmClusters: null, options);
    Console.WriteLine("ready");
    while (clock.GetUtcNow() < until)
    {
        // Every committed point of a pass is printed, also when another backup's run in the same pass failed (a lease lost
        // to a slow run, say): the host goes on, and the tests count the failures.
        BackupRunReport report;
        try
        {
            report = await client.RunDueBackupsAsync();
        }
        catch (BackupException ex)
        {
            // The pass itself failed before any run (the store's clock, say).
            Console.WriteLine($"error {ex.Code} {ex.Message}");
            await Task.Delay(25);
            continue;
        }

        foreach (var result in report)
        {
            var point = result.Point;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"run {point.BackupId} {point.Sequence} {point.Kind} {point.TakenAt:O} {host}"));
        }

        foreach (var failure in report.Failures)
        {
            Console.WriteLine(failure.Error is BackupException ex ? $"error {ex.Code} {ex.Message}" : $"error {failure.Error.GetType().Name} {failure.Error.Message}");
        }

        await Task.Delay(25);
    }

    Console.WriteLine("done");
    return 0;
}

static async Task<int> OpenKeyAsync(string keyFile)
{
    var files = new FileSystem();
    var warmUp = Path.Combine(Path.GetTempPath(), $"kmsbackup-open-key-{Environment.ProcessId}-{Guid.NewGuid():N}");
    try
    {
        using (await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, Path.Combine(warmUp, "warm-up.key")))
        using (await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, Path.Combine(warmUp, "warm-up.key")))
        {
        }
    }
    finally
    {
        Directory.Delete(warmUp, recursive: true);
    }

    Console.WriteLine("ready");
    var startText = Console.ReadLine();
    if (startText is null)
    {
        return 2;
    }

    // Sleep until just before the instant, then spin, so that both processes leave the line within microseconds.
    var startAt = DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(startText, CultureInfo.InvariantCulture));
    var untilStart = startAt - TimeProvider.System.GetUtcNow() - TimeSpan.FromMilliseconds(2);
    if (untilStart > TimeSpan.Zero)
    {
        Thread.Sleep(untilStart);
    }

    while (TimeProvider.System.GetUtcNow() < startAt)
    {
        Thread.SpinWait(16);
    }

    var late = TimeProvider.System.GetUtcNow() - startAt;
    using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, keyFile);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"key {keys.KeyId} {late.TotalMicroseconds:F0}"));
    return 0;
}

static async Task<int> UploadAsync(string storeFolder, string kmsFolder, string keyFile, string filePath, string dataKeyFile)
{
    var files = new FileSystem();
    var dataKey = await File.ReadAllBytesAsync(dataKeyFile);
    using var kms = new EmbeddedKeyManagementService(files, kmsFolder, TimeProvider.System);
    using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(files, keyFile);
    using var client = await BackupClient.OpenAsync(new FileSystemBackupStore(files, storeFolder), keys, kms);

    GC.Collect();
    GC.WaitForPendingFinalizers();
    GC.Collect();
    var baselineManaged = GC.GetTotalMemory(forceFullCollection: true);
    using var process = Process.GetCurrentProcess();
    process.Refresh();
    var startWorkingSet = process.WorkingSet64;
    var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
    var gen2Before = GC.CollectionCount(2);
    var peakManaged = baselineManaged;
    using var sampling = new CancellationTokenSource();
    var sampler = Task.Run(async () =>
    {
        while (!sampling.IsCancellationRequested)
        {
            peakManaged = Math.Max(peakManaged, GC.GetTotalMemory(forceFullCollection: false));
            await Task.Delay(2);
        }
    });

    var watch = Stopwatch.StartNew();
    try
    {
        await using var file = new FileStream(filePath, FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024, FileOptions.SequentialScan | FileOptions.Asynchronous);
        var uploaded = await client.UploadAsync("acct-owner", file, dataKey, "measured upload");
        watch.Stop();
        await sampling.CancelAsync();
        await sampler;
        peakManaged = Math.Max(peakManaged, GC.GetTotalMemory(forceFullCollection: false));
        process.Refresh();
        var peakWorkingSet = process.PeakWorkingSet64;
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        var gen2 = GC.CollectionCount(2) - gen2Before;

        // What the client keeps once the upload is done: above all the repository's object index, which now also
        // lists the objects the upload wrote.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var retainedManaged = GC.GetTotalMemory(forceFullCollection: true);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"uploaded {uploaded.Id} {new FileInfo(filePath).Length} {watch.Elapsed.TotalSeconds:F1} {startWorkingSet} {peakWorkingSet} {baselineManaged} {peakManaged} {allocated} {gen2} {retainedManaged}"));
        return 0;
    }
    catch (BackupException e)
    {
        Console.WriteLine($"refused {e.Code} {e.Message}");
        return 3;
    }
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

/// <summary>
/// A clock that several processes share without talking to each other: <c>epoch + (wall clock - wallStart) * speed</c>
/// (never before the epoch). Hosts on one machine read one wall clock, so their leases' expiries agree.
/// </summary>
internal sealed class SharedFastClock(DateTimeOffset epoch, DateTimeOffset wallStart, double speed) : TimeProvider
{
    public override DateTimeOffset GetUtcNow()
    {
        var elapsed = System.GetUtcNow() - wallStart;
        return elapsed <= TimeSpan.Zero ? epoch : epoch + (elapsed * speed);
    }
}
