using System.Globalization;
using System.IO.Abstractions;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using KmsBackup.Benchmarks.Workload;
using KmsBackup.Storage;

namespace KmsBackup.Benchmarks.Engine;

/// <summary>
/// Issue 17, item 2, "copy throughput of a 100,000-item repository against copying the same bytes with a plain file copy":
/// <see cref="BackupClient.CopyToAsync"/> of a file-system repository on disk into a new, empty file-system repository on
/// the same disk (its own key), against copying every file of the source store into an empty folder. Same run, so the ratio
/// is what to read.
/// </summary>
/// <remarks>
/// Setup, once: the benchmarks' synthetic instance (keys and secrets, 100,000 items), a default backup, its first full, and
/// three incrementals after 1% of changes each: four recovery points. The copy reads every point whole from the source
/// (authenticating every object) and commits it in the destination, whose dedup writes each new object once; the plain copy
/// moves the source store's bytes, which the copy cannot beat: its destination holds about as many bytes, sealed under
/// another key. Each measured call starts from an empty destination (made outside the measurement).
/// </remarks>
[MemoryDiagnoser]
[Config(typeof(OneCopyPerCall))]
public class CopyBenchmarks
{
    private const string SourceKeyFile = "keys/source.key";
    private const string CopyKeyFile = "keys/copy.key";

    private readonly FileSystem _files = new();
    private string _root = null!;
    private string _sourceStore = null!;
    private string _destination = null!;
    private int _run;
    private KeyFileRepositoryKeyProvider _sourceKeys = null!;
    private BackupClient _source = null!;
    private SyntheticInstanceGateway _instance = null!;
    private BackupClient? _copy;
    private KeyFileRepositoryKeyProvider? _copyKeys;
    private int _points;

    /// <summary>Items in the instance.</summary>
    [Params(100_000)]
    public int Items { get; set; }

    [GlobalSetup]
    public void Setup() => SetupAsync().GetAwaiter().GetResult();

    [GlobalCleanup]
    public void Cleanup()
    {
        CloseCopy();
        _source.Dispose();
        _sourceKeys.Dispose();
        _files.Directory.Delete(_root, recursive: true);
    }

    [IterationSetup(Target = nameof(CopyToSecondRepository))]
    public void OpenEmptyCopy() => OpenEmptyCopyAsync().GetAwaiter().GetResult();

    [IterationCleanup(Target = nameof(CopyToSecondRepository))]
    public void CloseCopyAfter() => CloseCopy();

    [IterationSetup(Target = nameof(PlainFileCopyOfTheStore))]
    public void EmptyFolder() => _destination = NextDestination();

    /// <summary>The baseline: every file of the source store copied into an empty folder.</summary>
    [Benchmark(Baseline = true)]
    public long PlainFileCopyOfTheStore()
    {
        long bytes = 0;
        foreach (var file in _files.Directory.EnumerateFiles(_sourceStore, "*", SearchOption.AllDirectories))
        {
            var target = _files.Path.Combine(_destination, _files.Path.GetRelativePath(_sourceStore, file));
            _files.Directory.CreateDirectory(_files.Path.GetDirectoryName(target)!);
            _files.File.Copy(file, target);
            bytes += _files.FileInfo.New(target).Length;
        }

        return bytes;
    }

    /// <summary>Every backup and recovery point copied into the empty destination repository.</summary>
    [Benchmark]
    public async Task<long> CopyToSecondRepository()
    {
        var report = await _source.CopyToAsync(_copy!);
        if (!report.IsComplete || report.PointsCopied != _points)
        {
            throw new InvalidOperationException($"The copy did not complete: {report}");
        }

        return report.BytesWritten;
    }

    private async Task SetupAsync()
    {
        _root = _files.Path.Combine(_files.Path.GetTempPath(), "kmsbackup-copy-bench-" + Guid.NewGuid().ToString("N"));
        _sourceStore = _files.Path.Combine(_root, "source");
        var time = new FixedClock(EngineWorkload.Start);
        _instance = new SyntheticInstanceGateway(Items, time);
        _sourceKeys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(_files, _files.Path.Combine(_root, SourceKeyFile));
        _source = await BackupClient.OpenAsync(new FileSystemBackupStore(_files, _sourceStore, time), _sourceKeys, _instance, hsmClusters: null, Options(time, "bench-source"));
        var owner = SyntheticInstanceGateway.Owner;
        var backup = await _source.CreateDefaultBackupAsync(owner);
        await _source.EnableBackupAsync(owner, backup.Id, SyntheticInstanceGateway.InstanceId, InstanceKind.Software);
        for (var i = 1; i <= 3; i++)
        {
            _instance.MakeChanges(Items / 100);
            time.Now = EngineWorkload.Start.AddHours(i);
            _ = await _source.RunIfDueAsync(backup.Id) ?? throw new InvalidOperationException("No incremental was due.");
        }

        _points = 4;
        long storeBytes = 0;
        var files = 0;
        foreach (var file in _files.Directory.EnumerateFiles(_sourceStore, "*", SearchOption.AllDirectories))
        {
            storeBytes += _files.FileInfo.New(file).Length;
            files++;
        }

        // What one copy writes, once, for the report.
        await OpenEmptyCopyAsync();
        var report = await _source.CopyToAsync(_copy!);
        long copyBytes = 0;
        foreach (var file in _files.Directory.EnumerateFiles(_destination, "*", SearchOption.AllDirectories))
        {
            copyBytes += _files.FileInfo.New(file).Length;
        }

        CloseCopy();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"// copy items={Items}: source store {files} files, {storeBytes / 1e6:F1} MB, {_points} points; one copy: {report.PointsCopied} points, {report.ObjectsWritten} objects, {report.BytesWritten / 1e6:F1} MB of packs written, destination store {copyBytes / 1e6:F1} MB"));
    }

    private string NextDestination()
    {
        if (_destination is not null && _files.Directory.Exists(_destination))
        {
            _files.Directory.Delete(_destination, recursive: true);
        }

        return _files.Path.Combine(_root, string.Create(CultureInfo.InvariantCulture, $"destination-{++_run}"));
    }

    private async Task OpenEmptyCopyAsync()
    {
        _destination = NextDestination();
        var keyFile = _files.Path.Combine(_root, CopyKeyFile);
        if (_files.File.Exists(keyFile))
        {
            _files.File.Delete(keyFile);
        }

        var time = new FixedClock(EngineWorkload.Start.AddHours(4));
        _copyKeys = await KeyFileRepositoryKeyProvider.OpenOrCreateAsync(_files, keyFile);
        _copy = await BackupClient.OpenAsync(new FileSystemBackupStore(_files, _destination, time), _copyKeys, _instance, hsmClusters: null, Options(time, "bench-copy"));
    }

    private void CloseCopy()
    {
        _copy?.Dispose();
        _copyKeys?.Dispose();
        (_copy, _copyKeys) = (null, null);
    }

    private static BackupClientOptions Options(TimeProvider time, string holder) => new()
    {
        TimeProvider = time,
        LeaseHolder = holder,
        InstanceDiscoveryInterval = null,
    };

    /// <summary>A clock set by the setup; it does not move during a measured call.</summary>
    private sealed class FixedClock(DateTimeOffset start) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = start;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    /// <summary>
    /// One copy per iteration (each needs an empty destination). In process (no generated project to build, which timed
    /// out on a loaded 2-core machine); the two methods are compared with each other, in one process.
    /// </summary>
    private sealed class OneCopyPerCall : ManualConfig
    {
        public OneCopyPerCall() => AddJob(Job.Default.WithWarmupCount(1).WithIterationCount(6).WithInvocationCount(1).WithUnrollFactor(1)
            .WithToolchain(InProcessEmitToolchain.Instance));
    }
}
