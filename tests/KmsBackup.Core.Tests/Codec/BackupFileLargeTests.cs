using Xunit.Abstractions;

namespace KmsBackup.Tests.Codec;

/// <summary>Runs alone so that the allocation count is the codec's and not other tests'.</summary>
[CollectionDefinition(nameof(AllocationMeasurement), DisableParallelization = true)]
public sealed class AllocationMeasurement;

[Collection(nameof(AllocationMeasurement))]
public class BackupFileLargeTests(ITestOutputHelper output)
{
    private const long OneGiB = 1L << 30;

    [Fact]
    [Trait("Rule", "F3")]
    [Trait("Category", "Slow")]
    public async Task A_1_GiB_file_round_trips_in_bounded_memory()
    {
        var key = CodecTestSupport.Key(9);
        var pipe = new BoundedPipe(1 << 20);
        var sink = new CheckingSink();

        GC.Collect();
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        var started = System.Diagnostics.Stopwatch.StartNew();

        var encrypt = Task.Run(async () =>
        {
            await BackupFileCodec.EncryptAsync(new PatternSource(OneGiB), pipe, key, CancellationToken.None);
            pipe.CompleteWriting();
        });
        var decrypt = Task.Run(async () =>
        {
            return await BackupFileCodec.DecryptAsync(pipe, sink, key);
        });
        await encrypt;
        var length = await decrypt;

        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        output.WriteLine($"1 GiB round trip: {started.Elapsed.TotalSeconds:F1} s, {allocated:N0} bytes allocated in all (codec and test streams; the pipe's 1 MiB ring is allocated before).");

        Assert.Equal(OneGiB, length);
        Assert.Equal(OneGiB, sink.Position);
        Assert.True(allocated < 32L << 20, $"{allocated:N0} bytes allocated for a 1 GiB round trip; the budget is 32 MiB.");
    }

    [Fact]
    [Trait("Rule", "F3")]
    public async Task Encrypting_and_verifying_allocate_nothing_per_segment()
    {
        // What one call allocates (buffers, cipher, state machine) does not grow with the number of segments.
        var key = CodecTestSupport.Key(9);
        await BackupFileCodec.EncryptAsync(new PatternSource(1 << 20), Stream.Null, key, CancellationToken.None); // warm up
        var file = new MemoryStream();
        await BackupFileCodec.EncryptAsync(new PatternSource(64L << 20), file, key, CancellationToken.None);
        var smallFile = new MemoryStream();
        await BackupFileCodec.EncryptAsync(new PatternSource(1L << 20), smallFile, key, CancellationToken.None);
        await BackupFileCodec.VerifyAsync(new MemoryStream(smallFile.ToArray()), key); // warm up
        var smallBytes = smallFile.ToArray();
        var verifySmall = await Allocated(() => BackupFileCodec.VerifyAsync(new MemoryStream(smallBytes), key));
        var verifyLarge = await Allocated(() => BackupFileCodec.VerifyAsync(new MemoryStream(file.GetBuffer(), 0, (int)file.Length), key));
        output.WriteLine($"verify 1 MiB: {verifySmall:N0} bytes allocated; 64 MiB: {verifyLarge:N0} bytes.");
        Assert.True(Math.Abs(verifyLarge - verifySmall) < 8 * 1024, $"{verifyLarge - verifySmall:N0} more bytes allocated to verify 1,008 more segments.");
        var small = await Allocated(() => BackupFileCodec.EncryptAsync(new PatternSource(1L << 20), Stream.Null, key, CancellationToken.None));
        var large = await Allocated(() => BackupFileCodec.EncryptAsync(new PatternSource(256L << 20), Stream.Null, key, CancellationToken.None));
        output.WriteLine($"1 MiB encrypted: {small:N0} bytes allocated; 256 MiB: {large:N0} bytes.");
        Assert.True(large - small < 16 * 1024, $"{large - small:N0} more bytes allocated for 4,080 more segments.");
    }

    [Fact]
    [Trait("Rule", "F3")]
    public void The_span_api_allocates_nothing_per_segment()
    {
        var key = CodecTestSupport.Key(9);
        var small = CodecTestSupport.Plaintext(1 << 20);
        var large = new byte[64 << 20];
        var smallFile = new byte[BackupFileCodec.GetEncryptedLength(small.Length)];
        var largeFile = new byte[BackupFileCodec.GetEncryptedLength(large.Length)];
        var plain = new byte[large.Length];

        // Warm up at both sizes, so that tiering up the loops (on-stack replacement runs on this thread) is not counted.
        for (var round = 0; round < 2; round++)
        {
            BackupFileCodec.Encrypt(small, smallFile, key);
            BackupFileCodec.Encrypt(large, largeFile, key);
            BackupFileCodec.Decrypt(smallFile, plain, key);
            BackupFileCodec.Decrypt(largeFile, plain, key);
            BackupFileCodec.Verify(smallFile, key);
            BackupFileCodec.Verify(largeFile, key);
        }

        var encryptSmall = AllocatedHere(() => BackupFileCodec.Encrypt(small, smallFile, key));
        var encryptLarge = AllocatedHere(() => BackupFileCodec.Encrypt(large, largeFile, key));
        var decryptSmall = AllocatedHere(() => BackupFileCodec.Decrypt(smallFile, plain, key));
        var decryptLarge = AllocatedHere(() => BackupFileCodec.Decrypt(largeFile, plain, key));
        var verifySmall = AllocatedHere(() => BackupFileCodec.Verify(smallFile, key));
        var verifyLarge = AllocatedHere(() => BackupFileCodec.Verify(largeFile, key));
        output.WriteLine($"span API, 1 MiB / 64 MiB: encrypt {encryptSmall:N0} / {encryptLarge:N0} bytes allocated, decrypt {decryptSmall:N0} / {decryptLarge:N0}, verify {verifySmall:N0} / {verifyLarge:N0}.");
        Assert.True(large.AsSpan().SequenceEqual(plain));

        // 1,008 more segments; a byte each would show. (A few hundred bytes come and go with the runtime's own work.)
        Assert.True(Math.Abs(encryptLarge - encryptSmall) < 1_000, $"encrypt: {encryptLarge - encryptSmall:N0} more bytes for 1,008 more segments");
        Assert.True(Math.Abs(decryptLarge - decryptSmall) < 1_000, $"decrypt: {decryptLarge - decryptSmall:N0} more bytes for 1,008 more segments");
        Assert.True(Math.Abs(verifyLarge - verifySmall) < 1_000, $"verify: {verifyLarge - verifySmall:N0} more bytes for 1,008 more segments");
    }

    private static long AllocatedHere(Func<int> action)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        action();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    // The streams complete synchronously, so the whole call runs on this thread; counting this thread's
    // allocations leaves out the JIT's and the test runner's background work.
    private static async Task<long> Allocated(Func<Task> action)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var task = action();
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(task.IsCompletedSuccessfully);
        await task;
        return allocated;
    }

    /// <summary>A repeating pattern with a period that is no multiple of the segment size.</summary>
    private static class Pattern
    {
        public const int Period = 65521;

        public static readonly byte[] Bytes = Make();

        private static byte[] Make()
        {
            var bytes = new byte[Period * 3];
            for (var i = 0; i < bytes.Length; i++)
            {
                var p = i % Period;
                bytes[i] = (byte)((p * 31) ^ (p >> 8));
            }

            return bytes;
        }

        public static ReadOnlySpan<byte> At(long position, int length) => Bytes.AsSpan((int)(position % Period), length);
    }

    /// <summary>Generates the plaintext on the fly.</summary>
    private sealed class PatternSource(long length) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(Span<byte> buffer)
        {
            var n = (int)Math.Min(Math.Min(buffer.Length, Pattern.Period), length - _position);
            Pattern.At(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Checks the plaintext against the pattern and discards it.</summary>
    private sealed class CheckingSink : Stream
    {
        private long _position;

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => _position;

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            while (!buffer.IsEmpty)
            {
                var n = Math.Min(buffer.Length, Pattern.Period);
                if (!buffer[..n].SequenceEqual(Pattern.At(_position, n)))
                {
                    throw new InvalidOperationException($"Plaintext differs near offset {_position}.");
                }

                _position += n;
                buffer = buffer[n..];
            }
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }

    /// <summary>
    /// A pipe over one fixed ring buffer, so that the round trip allocates nothing of its own per byte
    /// (System.IO.Pipelines allocated hundreds of MiB for this test). Both sides block their own thread.
    /// </summary>
    private sealed class BoundedPipe(int capacity) : Stream
    {
        private readonly byte[] _ring = new byte[capacity];
        private readonly object _gate = new();
        private int _start;
        private int _count;
        private bool _completed;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public void CompleteWriting()
        {
            lock (_gate)
            {
                _completed = true;
                Monitor.PulseAll(_gate);
            }
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            lock (_gate)
            {
                while (!buffer.IsEmpty)
                {
                    while (_count == _ring.Length)
                    {
                        Monitor.Wait(_gate);
                    }

                    var end = (_start + _count) % _ring.Length;
                    var n = Math.Min(buffer.Length, Math.Min(_ring.Length - _count, _ring.Length - end));
                    buffer[..n].CopyTo(_ring.AsSpan(end));
                    _count += n;
                    buffer = buffer[n..];
                    Monitor.PulseAll(_gate);
                }
            }
        }

        public override int Read(Span<byte> buffer)
        {
            lock (_gate)
            {
                while (_count == 0 && !_completed)
                {
                    Monitor.Wait(_gate);
                }

                var n = Math.Min(buffer.Length, Math.Min(_count, _ring.Length - _start));
                _ring.AsSpan(_start, n).CopyTo(buffer);
                _start = (_start + n) % _ring.Length;
                _count -= n;
                Monitor.PulseAll(_gate);
                return n;
            }
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
