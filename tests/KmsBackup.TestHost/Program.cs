using System.Diagnostics;
using System.Globalization;

using KmsBackup;
using KmsBackup.Storage;

// Helper processes for the tests (run by tests/KmsBackup.Tests; not a tool for users).
//
//   hold-lease <store-folder> <lease-name> <holder> <duration-seconds> <hold-seconds>
//     Acquires the lease in a FileSystemBackupStore over the real disk, prints "held <expiry>",
//     renews it every third of its duration for <hold-seconds>, then releases it and prints "released".
//     If the lease is held, prints "lease-held <message>" and exits with 3.
switch (args)
{
    case ["hold-lease", var folder, var leaseName, var holder, var durationText, var holdText]:
        return await HoldLeaseAsync(folder, leaseName, holder, Seconds(durationText), Seconds(holdText));
    default:
        await Console.Error.WriteLineAsync("usage: KmsBackup.TestHost hold-lease <store-folder> <lease-name> <holder> <duration-seconds> <hold-seconds>");
        return 2;
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
