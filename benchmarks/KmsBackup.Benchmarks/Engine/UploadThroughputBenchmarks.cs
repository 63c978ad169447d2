using System.IO.Abstractions.TestingHelpers;
using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using KmsBackup.Benchmarks.Workload;
using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Benchmarks.Engine;

/// <summary>
/// Issue 15, item 5 (throughput): an upload of a whole day's file through the public <see cref="BackupClient.UploadAsync"/>
/// against AES-GCM over the same number of bytes, in the same 64 KiB segments (the baseline of
/// <see cref="DownloadThroughputBenchmarks"/>), on the benchmarks' synthetic instance and memory store (budget: ≥ 50% of
/// AES-GCM's throughput, a ratio ≤ 2). The file is a download of the workload's day. An upload decrypts the file,
/// checks every field of the day, spills its items to an encrypted temporary file, and writes two recovery points
/// (the day's full and its last point) as item trees: each leaf's ID is a MAC of its plaintext, and only leaves the
/// repository does not hold yet are sealed and written. Into the repository the file came from, every leaf is
/// already there (nothing is sealed); into an empty repository, every leaf is sealed and packed once.
/// </summary>
[MemoryDiagnoser]
[WarmupCount(2)]
[IterationCount(8)]
public class UploadThroughputBenchmarks
{
    private const int Segment = 64 * 1024;

    private EngineWorkload _workload = null!;
    private byte[] _file = null!;
    private byte[] _dataKey = null!;
    private byte[] _plain = null!;
    private byte[] _cipher = null!;
    private byte[] _key = null!;
    private int _uploads;

    /// <summary>Items in the instance.</summary>
    [Params(100_000)]
    public int Items { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _workload = EngineWorkload.StartAsync(Items).GetAwaiter().GetResult();
        var date = DateOnly.FromDateTime(EngineWorkload.Start.UtcDateTime);
        using var file = new MemoryStream();
        using (var download = _workload.Client.DownloadAsync(SyntheticInstanceGateway.Owner, _workload.BackupId, date, file).GetAwaiter().GetResult())
        {
            _dataKey = download.DataKey.Span.ToArray();
        }

        _file = file.ToArray();
        _plain = new byte[_file.Length];
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

    /// <summary>Into the repository the file was downloaded from: every leaf is already stored.</summary>
    [Benchmark]
    public async Task<string> UploadIntoTheSameRepository()
    {
        using var file = new MemoryStream(_file, writable: false);
        var details = await _workload.Client.UploadAsync(SyntheticInstanceGateway.Owner, file, _dataKey, $"upload-{++_uploads}");
        return details.Id;
    }

    /// <summary>
    /// Into a new, empty repository (a new key file and config, made in the timed call): every leaf is sealed and
    /// packed.
    /// </summary>
    [Benchmark]
    public async Task<string> UploadIntoAnEmptyRepository()
    {
        var time = new FakeTimeProvider(EngineWorkload.Start);
        using var keys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(new MockFileSystem(), "/keys/repository.key");
        using var client = await BackupClient.OpenAsync(new CountingMemoryStore(time), keys, _workload.Instance, hsmClusters: null, new BackupClientOptions
        {
            TimeProvider = time,
            LeaseHolder = "benchmarks",
        });
        using var file = new MemoryStream(_file, writable: false);
        var details = await client.UploadAsync(SyntheticInstanceGateway.Owner, file, _dataKey, "upload");
        return details.Id;
    }
}
