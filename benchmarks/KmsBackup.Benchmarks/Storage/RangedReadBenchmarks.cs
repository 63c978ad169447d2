using System.IO.Abstractions;
using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using KmsBackup.Storage;

namespace KmsBackup.Benchmarks.Storage;

/// <summary>
/// Issue 15, item 3: a small read does not fetch an 8 MiB pack. One pack-sized object (8 MiB of random bytes) in a
/// <see cref="FileSystemBackupStore"/> on this machine's disk (a temporary folder); reading one 4 KiB object's worth
/// of it from the middle with <see cref="BackupStore.TryReadRangeAsync"/> against reading the whole object with
/// <see cref="BackupStore.TryReadAsync"/> and slicing it, which is what every object read cost before ranged reads.
/// </summary>
/// <remarks>
/// The file is in the page cache after the first read, so both measure the store's own work (opening the file
/// through its link-refusing folder walk, reading, allocating) rather than the disk; on a remote store (Azure Blob)
/// the bytes saved also cross the network.
/// </remarks>
[MemoryDiagnoser]
[WarmupCount(5)]
[IterationCount(20)]
public class RangedReadBenchmarks
{
    private const string Key = "packs/ab/pack-1";
    private const int PackSize = 8 * 1024 * 1024;
    private const int ObjectSize = 4096;
    private const int ObjectOffset = PackSize / 2;

    private string _root = null!;
    private FileSystemBackupStore _store = null!;

    [GlobalSetup]
    public void Setup()
    {
        _root = Path.Combine(Path.GetTempPath(), "kmsbackup-ranged-" + Guid.NewGuid().ToString("N"));
        _store = new FileSystemBackupStore(new FileSystem(), _root);
        var content = RandomNumberGenerator.GetBytes(PackSize);
        if (!_store.TryCreateAsync(Key, content).GetAwaiter().GetResult())
        {
            throw new InvalidOperationException("The pack was not created.");
        }

        var whole = WholeObjectReadThenSlice().GetAwaiter().GetResult();
        var ranged = RangedRead().GetAwaiter().GetResult();
        if (!whole.AsSpan().SequenceEqual(ranged) || !ranged.AsSpan().SequenceEqual(content.AsSpan(ObjectOffset, ObjectSize)))
        {
            throw new InvalidOperationException("The ranged read and the whole read return different bytes.");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(_root, recursive: true);

    [Benchmark(Baseline = true)]
    public async Task<byte[]> WholeObjectReadThenSlice()
    {
        var pack = await _store.TryReadAsync(Key) ?? throw new InvalidOperationException("The pack is missing.");
        return pack.AsSpan(ObjectOffset, ObjectSize).ToArray();
    }

    [Benchmark]
    public async Task<byte[]> RangedRead() =>
        await _store.TryReadRangeAsync(Key, ObjectOffset, ObjectSize) ?? throw new InvalidOperationException("The pack is missing.");
}
