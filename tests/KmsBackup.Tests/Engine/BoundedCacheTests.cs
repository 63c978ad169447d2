using System.Diagnostics.Metrics;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using KmsBackup.Diagnostics;
using KmsBackup.Repository;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// Issue 15, item 3: every cache is bounded by bytes, holds no key material, and is observable in metrics. The
/// client's one cache (point lists, manifests, last points) drops its least recently used entries to stay within
/// <see cref="BackupClientOptions.CacheSize"/>, and a client whose cache is tiny or off reads the same data.
/// </summary>
public class BoundedCacheTests
{
    [Fact]
    public void The_least_recently_used_entries_go_first_and_the_bytes_never_pass_the_capacity()
    {
        using var meters = new Meters();
        var cache = new BoundedCache(1000, meters.Telemetry);

        cache.Set("manifest", "a", "A", 400);
        cache.Set("manifest", "b", "B", 400);
        Assert.True(cache.TryGet("manifest", "a", out string _)); // a is now the most recently used
        cache.Set("manifest", "c", "C", 400);                      // b goes

        Assert.False(cache.TryGet("manifest", "b", out string _));
        Assert.True(cache.TryGet("manifest", "a", out string a));
        Assert.Equal("A", a);
        Assert.True(cache.TryGet("manifest", "c", out string _));
        Assert.Equal(800, cache.Bytes);
        Assert.Equal(1, meters.Sum(KmsBackupDiagnostics.CacheEvictionsInstrument));
        Assert.Equal(3, meters.Sum(KmsBackupDiagnostics.CacheHitsInstrument));
        Assert.Equal(1, meters.Sum(KmsBackupDiagnostics.CacheMissesInstrument));
        Assert.Equal(800, meters.Sum(KmsBackupDiagnostics.CacheSizeInstrument));
    }

    [Fact]
    public void An_entry_larger_than_the_capacity_is_not_kept_and_replaces_nothing_else()
    {
        using var meters = new Meters();
        var cache = new BoundedCache(1000, meters.Telemetry);
        cache.Set("point_list", "x", "small", 100);

        cache.Set("last_point", "y", "huge", 1001);

        Assert.False(cache.TryGet("last_point", "y", out string _));
        Assert.True(cache.TryGet("point_list", "x", out string _));
        Assert.Equal(100, cache.Bytes);
    }

    [Fact]
    public void Replacing_and_removing_entries_keeps_the_byte_count_and_the_size_metric_exact()
    {
        using var meters = new Meters();
        var cache = new BoundedCache(10_000, meters.Telemetry);
        cache.Set("manifest", new PointKey("b-1", new DateOnly(2026, 5, 1), 1), "m1", 300);
        cache.Set("manifest", new PointKey("b-1", new DateOnly(2026, 5, 1), 2), "m2", 300);
        cache.Set("manifest", new PointKey("b-2", new DateOnly(2026, 5, 1), 1), "m3", 300);
        cache.Set("manifest", new PointKey("b-2", new DateOnly(2026, 5, 1), 1), "m3'", 500); // replaces

        cache.RemoveWhere<PointKey>("manifest", k => k.BackupId == "b-1");

        Assert.Equal(500, cache.Bytes);
        Assert.Equal(1, cache.Count);
        Assert.True(cache.TryGet("manifest", new PointKey("b-2", new DateOnly(2026, 5, 1), 1), out string m));
        Assert.Equal("m3'", m);
        Assert.Equal(500, meters.Sum(KmsBackupDiagnostics.CacheSizeInstrument));
        Assert.Equal(0, meters.Sum(KmsBackupDiagnostics.CacheEvictionsInstrument));
    }

    [Fact]
    public void Peeking_and_removing_for_bookkeeping_count_neither_a_hit_nor_a_miss_nor_change_the_eviction_order()
    {
        using var meters = new Meters();
        var cache = new BoundedCache(1000, meters.Telemetry);
        cache.Set("point_list", "a", "A", 400);
        cache.Set("point_list", "b", "B", 400);

        Assert.True(cache.TryPeek("point_list", "a", out string peeked)); // a stays the least recently used
        Assert.False(cache.TryPeek("point_list", "z", out string _));
        Assert.True(cache.TryRemove("point_list", "b", out string removed));
        cache.Set("point_list", "b", "B", 400);
        cache.Set("point_list", "c", "C", 400); // a goes, not b

        Assert.Equal(("A", "B"), (peeked, removed));
        Assert.False(cache.TryPeek("point_list", "a", out string _));
        Assert.True(cache.TryPeek("point_list", "b", out string _));
        Assert.Equal(0, meters.Sum(KmsBackupDiagnostics.CacheHitsInstrument));
        Assert.Equal(0, meters.Sum(KmsBackupDiagnostics.CacheMissesInstrument));
        Assert.Equal(800, meters.Sum(KmsBackupDiagnostics.CacheSizeInstrument));
    }

    [Property(MaxTest = 200)]
    public Property Whatever_is_set_the_bytes_stay_within_the_capacity_and_equal_the_sum_of_the_entries_kept(PositiveInt capacity, (byte Key, PositiveInt Size)[] sets)
    {
        using var meters = new Meters();
        var cache = new BoundedCache(capacity.Get, meters.Telemetry);
        var kept = new Dictionary<byte, long>();
        foreach (var (key, size) in sets)
        {
            cache.Set("manifest", key, key, size.Get);
        }

        foreach (var key in sets.Select(s => s.Key).Distinct())
        {
            if (cache.TryGet("manifest", key, out byte _))
            {
                kept[key] = sets.Last(s => s.Key == key).Size.Get;
            }
        }

        var last = sets.Length == 0 ? ((byte)0, 0) : (sets[^1].Key, sets[^1].Size.Get);
        return (cache.Bytes <= capacity.Get).Label("within capacity")
            .And(cache.Bytes == kept.Values.Sum()).Label("bytes are the entries'")
            .And(meters.Sum(KmsBackupDiagnostics.CacheSizeInstrument) == cache.Bytes).Label("the size metric agrees")
            .And(sets.Length == 0 || last.Item2 > capacity.Get || kept.ContainsKey(last.Item1)).Label("the last entry set is kept when it fits");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4096)]
    public async Task A_client_with_a_tiny_cache_or_none_reads_what_a_client_with_the_default_cache_reads(long cacheSize)
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.CreateInstanceAsync("kst-b");
        for (var i = 0; i < 20; i++)
        {
            await h.Kms.GenerateKeyAsync(i % 2 == 0 ? "kst-a" : "kst-b", $"key-{i:D2}", EngineHarness.Owner);
        }

        var a = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;
        var b = (await h.Client.OnInstanceEnabledAsync("kst-b"))!;
        using var small = await h.OpenAnotherClientAsync("small-cache", configure: o => o.CacheSize = cacheSize);
        for (var step = 1; step <= 12; step++)
        {
            await h.Kms.GenerateKeyAsync(step % 2 == 0 ? "kst-a" : "kst-b", $"later-{step:D2}", EngineHarness.Owner);
            h.Clock.Advance(TimeSpan.FromMinutes(5));
            (await small.RunDueBackupsAsync()).ThrowIfAnyFailed();
        }

        foreach (var backup in new[] { a, b })
        {
            foreach (var type in new[] { BackupDataType.FullyBackedUpKeys, BackupDataType.IncrementallyBackedUpKeys })
            {
                var expected = await NamesAsync(h.Client, backup.Id, type);
                Assert.Equal(expected, await NamesAsync(small, backup.Id, type));
                Assert.NotEmpty(expected);
            }

            Assert.Equal(
                (await h.Client.ListRecoveryPointsAsync(EngineHarness.Owner, backup.Id, new DateOnly(2026, 5, 1))).Select(p => p.Sequence),
                (await small.ListRecoveryPointsAsync(EngineHarness.Owner, backup.Id, new DateOnly(2026, 5, 1))).Select(p => p.Sequence));
        }
    }

    private static async Task<List<string>> NamesAsync(BackupClient client, string backupId, BackupDataType type)
    {
        var names = new List<string>();
        await foreach (var item in client.GetDataAsync(EngineHarness.Owner, backupId, new DateOnly(2026, 5, 1), type))
        {
            names.Add(item.Name);
        }

        return names;
    }

    /// <summary>A meter of this test's own, and the sums of what its cache instruments measured.</summary>
    private sealed class Meters : IDisposable
    {
        private readonly Factory _factory = new();
        private readonly MeterListener _listener = new();
        private readonly Dictionary<string, long> _sums = [];

        public Meters()
        {
            Telemetry = BackupTelemetry.For(_factory);
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (_factory.Created.Contains(instrument.Meter))
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
            {
                lock (_sums)
                {
                    _sums[instrument.Name] = _sums.GetValueOrDefault(instrument.Name) + value;
                }
            });
            _listener.Start();
        }

        public BackupTelemetry Telemetry { get; }

        public long Sum(string instrument)
        {
            lock (_sums)
            {
                return _sums.GetValueOrDefault(instrument);
            }
        }

        public void Dispose()
        {
            _listener.Dispose();
            _factory.Dispose();
        }

        private sealed class Factory : IMeterFactory
        {
            public List<Meter> Created { get; } = [];

            public Meter Create(MeterOptions options)
            {
                var meter = new Meter(options);
                Created.Add(meter);
                return meter;
            }

            public void Dispose()
            {
                foreach (var meter in Created)
                {
                    meter.Dispose();
                }
            }
        }
    }
}
