using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// Issue 15, item 3: a small read does not fetch a whole pack. The engine reads the objects it needs with ranged
/// reads (the pack's header and each object, near ones together), so a view of two keys costs kilobytes even when
/// the keys share their pack with megabytes of secrets.
/// </summary>
public class RangedReadTests
{
    private static readonly DateOnly May1 = new(2026, 5, 1);

    [Fact]
    public async Task A_view_of_a_few_keys_reads_a_small_part_of_the_pack_that_holds_them_beside_large_secrets()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-big");
        await h.Kms.GenerateKeyAsync("kst-big", "orders", EngineHarness.Owner);
        await h.Kms.GenerateKeyAsync("kst-big", "billing", EngineHarness.Owner);
        await h.Kms.StoreSecretAsync("kst-big", "blob-1", "orders", RandomNumberGenerator.GetBytes(3 << 20), EngineHarness.Owner);
        await h.Kms.StoreSecretAsync("kst-big", "blob-2", "orders", RandomNumberGenerator.GetBytes(3 << 20), EngineHarness.Owner);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-big"))!;
        var packs = h.StoreFilesContent().Where(f => f.Path.Contains("/packs/", StringComparison.Ordinal)).ToList();
        var largest = packs.Max(p => p.Bytes.Length);
        Assert.True(largest > 6 << 20, $"the largest pack has {largest} bytes; the test needs the secrets in one pack beside the keys");

        CountingStore? counting = null;
        using var reader = await h.OpenAnotherClientAsync("reader", wrapStore: s => counting = new CountingStore(s));
        var page = await reader.GetDataPageAsync(EngineHarness.Owner, backup.Id, May1, BackupDataType.FullyBackedUpKeys);

        Assert.Equal(["billing", "orders"], page.Items.Select(i => i.Name).Order(StringComparer.Ordinal));
        var packBytesRead = counting!.BytesRead.Where(r => r.Key.StartsWith("packs/", StringComparison.Ordinal)).Sum(r => (long)r.Value);
        Assert.True(packBytesRead < 512 * 1024, $"the view read {packBytesRead} bytes of packs, whose largest has {largest}");
        Assert.DoesNotContain(counting.WholeReads, key => key.StartsWith("packs/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Objects_read_by_ranges_are_the_objects_written_and_a_restore_of_a_large_secret_reads_it_whole()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-big");
        await h.CreateInstanceAsync("kst-target", region: "cn-shanghai"); // names are unique per region (rule R1)
        await h.Kms.GenerateKeyAsync("kst-big", "orders", EngineHarness.Owner);
        var value = RandomNumberGenerator.GetBytes(3 << 20);
        await h.Kms.StoreSecretAsync("kst-big", "blob-1", "orders", value, EngineHarness.Owner);
        await h.Kms.StoreSecretAsync("kst-big", "blob-2", "orders", RandomNumberGenerator.GetBytes(3 << 20), EngineHarness.Owner);
        var backup = (await h.Client.OnInstanceEnabledAsync("kst-big"))!;

        using var reader = await h.OpenAnotherClientAsync("reader", wrapStore: s => new CountingStore(s));
        await reader.RestoreAsync(new RestoreRequest
        {
            CallerAccount = EngineHarness.Owner, BackupId = backup.Id, TargetInstanceId = "kst-target", BackupDate = May1,
            KeyNames = ["orders"], SecretNames = ["blob-1"],
        });

        Assert.Equal(value, (await h.Kms.GetSecretValueAsync("kst-target", "blob-1")).Span.ToArray());
    }

    /// <summary>Counts the bytes each read returns; forwards ranged reads as ranged reads (a decorator that did not would read whole objects).</summary>
    internal sealed class CountingStore(BackupStore inner) : BackupStore
    {
        public ConcurrentQueue<KeyValuePair<string, int>> BytesRead { get; } = new();

        public long BytesWritten => Interlocked.Read(ref _bytesWritten);

        private long _bytesWritten;

        public ConcurrentQueue<string> WholeReads { get; } = new();

        protected override Task<bool> TryCreateCoreAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
        {
            Interlocked.Add(ref _bytesWritten, content.Length);
            return inner.TryCreateAsync(key, content, cancellationToken);
        }

        protected override async Task<byte[]?> TryReadCoreAsync(string key, CancellationToken cancellationToken)
        {
            var bytes = await inner.TryReadAsync(key, cancellationToken);
            WholeReads.Enqueue(key);
            BytesRead.Enqueue(new(key, bytes?.Length ?? 0));
            return bytes;
        }

        protected override async Task<byte[]?> TryReadRangeCoreAsync(string key, long offset, int length, CancellationToken cancellationToken)
        {
            var bytes = await inner.TryReadRangeAsync(key, offset, length, cancellationToken);
            BytesRead.Enqueue(new(key, bytes?.Length ?? 0));
            return bytes;
        }

        protected override IAsyncEnumerable<StoreObject> ListCoreAsync(string prefix, CancellationToken cancellationToken) => inner.ListAsync(prefix, cancellationToken);

        protected override Task<bool> DeleteCoreAsync(string key, CancellationToken cancellationToken) => inner.DeleteAsync(key, cancellationToken);

        public override Task<StoreLease> AcquireLeaseAsync(string leaseName, string holder, TimeSpan duration, CancellationToken cancellationToken = default) =>
            inner.AcquireLeaseAsync(leaseName, holder, duration, cancellationToken);
    }
}
