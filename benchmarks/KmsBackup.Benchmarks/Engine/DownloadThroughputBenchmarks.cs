using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using KmsBackup.Benchmarks.Workload;

namespace KmsBackup.Benchmarks.Engine;

/// <summary>
/// Issue 15, item 5 (throughput): a download of a whole day through the public <see cref="BackupClient.DownloadAsync"/>
/// against AES-GCM over the same number of bytes, in the same 64 KiB segments, on the benchmarks' synthetic instance
/// and memory store (budget: the download at ≥ 50% of AES-GCM's throughput, a ratio ≤ 2). The download reads the
/// day's trees from the store (opening each object under its pack's key), makes the payload, and encrypts it.
/// </summary>
[MemoryDiagnoser]
[WarmupCount(2)]
[IterationCount(8)]
public class DownloadThroughputBenchmarks
{
    private const int Segment = 64 * 1024;

    private EngineWorkload _workload = null!;
    private DateOnly _date;
    private byte[] _plain = null!;
    private byte[] _cipher = null!;
    private byte[] _key = null!;

    /// <summary>Items in the instance.</summary>
    [Params(100_000)]
    public int Items { get; set; }

    /// <summary>Bytes of the downloaded file, which the baseline encrypts.</summary>
    public long FileLength { get; private set; }

    [GlobalSetup]
    public void Setup()
    {
        _workload = EngineWorkload.StartAsync(Items).GetAwaiter().GetResult();
        _date = DateOnly.FromDateTime(EngineWorkload.Start.UtcDateTime);
        FileLength = Download().GetAwaiter().GetResult();
        _plain = new byte[FileLength];
        RandomNumberGenerator.Fill(_plain);
        _cipher = new byte[Segment];
        _key = RandomNumberGenerator.GetBytes(32);
    }

    [GlobalCleanup]
    public void Cleanup() => _workload.Dispose();

    [Benchmark(Baseline = true)]
    public long AesGcmOverTheSameBytes()
    {
        using var aes = new AesGcm(_key, 16);
        Span<byte> nonce = stackalloc byte[12];
        Span<byte> tag = stackalloc byte[16];
        for (var offset = 0; offset < _plain.Length; offset += Segment)
        {
            var length = Math.Min(Segment, _plain.Length - offset);
            nonce[0]++;
            aes.Encrypt(nonce, _plain.AsSpan(offset, length), _cipher.AsSpan(0, length), tag);
        }

        return _plain.Length;
    }

    [Benchmark]
    public async Task<long> Download()
    {
        using var download = await _workload.Client.DownloadAsync(SyntheticInstanceGateway.Owner, _workload.BackupId, _date, Stream.Null);
        return download.Length;
    }
}
