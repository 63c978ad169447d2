using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;

namespace KmsBackup.Benchmarks.Codec;

/// <summary>
/// Where the codec's time goes, piece by piece, against the same raw <see cref="AesGcm"/> baseline as
/// <see cref="CodecBenchmarks"/> (64 MiB, 64 KiB segments): the work the format adds (header as
/// associated data, the final segment), the two stream copies on their own, the copies together with
/// the encryption, and encryption between two small cache-resident buffers.
/// </summary>
[MemoryDiagnoser]
[WarmupCount(5)]
[IterationCount(20)]
[SuppressMessage("Design", "CA1001:Types that own disposable fields should be disposable", Justification = "BenchmarkDotNet disposes them in [GlobalCleanup]; benchmark classes must not be sealed.")]
public class CodecCostBenchmarks
{
    private const int PlaintextSize = CodecBenchmarks.PlaintextSize;
    private const int SegmentSize = CodecBenchmarks.SegmentSize;
    private const int Segments = PlaintextSize / SegmentSize;
    private const int NonceSize = 12;
    private const int TagSize = SegmentCipher.TagSize;

    private byte[] _plaintext = [];
    private byte[] _nonce = [];
    private byte[] _header = [];
    private byte[] _rawCiphertext = [];
    private byte[] _plainSegment = [];
    private byte[] _cipherSegment = [];
    private AesGcm _aes = null!;
    private MemoryStream _plaintextStream = null!;
    private MemoryStream _output = null!;

    [GlobalSetup]
    public void Setup()
    {
        _plaintext = RandomNumberGenerator.GetBytes(PlaintextSize);
        _nonce = RandomNumberGenerator.GetBytes(NonceSize);
        _header = RandomNumberGenerator.GetBytes(BackupFileHeader.Size);
        _aes = new AesGcm(RandomNumberGenerator.GetBytes(BackupFileCodec.DataKeySize), TagSize);
        _rawCiphertext = new byte[(Segments + 1) * (SegmentSize + TagSize)];
        _plainSegment = RandomNumberGenerator.GetBytes(SegmentSize);
        _cipherSegment = new byte[SegmentSize + TagSize];
        _plaintextStream = new MemoryStream(_plaintext, writable: false);
        _output = new MemoryStream(new byte[_rawCiphertext.Length + BackupFileHeader.Size], writable: true);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _aes.Dispose();
        _plaintextStream.Dispose();
        _output.Dispose();
    }

    /// <summary>The baseline of <see cref="CodecBenchmarks"/>: 1,024 chunks, no associated data, array to array.</summary>
    [Benchmark(Baseline = true)]
    public long RawAesGcmEncrypt()
    {
        CodecBenchmarks.EncryptRaw(_aes, _nonce, _plaintext, _rawCiphertext);
        return PlaintextSize;
    }

    /// <summary>The baseline plus what the format adds: the 98-byte header as associated data and the empty final segment.</summary>
    [Benchmark]
    public long RawAesGcmEncryptFormatWork()
    {
        var nonce = _nonce.AsSpan();
        for (var i = 0; i <= Segments; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(nonce[(NonceSize - sizeof(int) - 1)..], i);
            var length = i < Segments ? SegmentSize : 0;
            var output = _rawCiphertext.AsSpan(i * (SegmentSize + TagSize), length + TagSize);
            _aes.Encrypt(nonce, _plaintext.AsSpan(Math.Min(i * SegmentSize, PlaintextSize), length), output[..length], output[length..], _header);
        }

        return PlaintextSize;
    }

    /// <summary>Encryption only, between two 64 KiB buffers that stay in cache: what AES-GCM costs without memory traffic.</summary>
    [Benchmark]
    public long AesGcmCacheResident()
    {
        var nonce = _nonce.AsSpan();
        for (var i = 0; i < Segments; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(nonce[(NonceSize - sizeof(int))..], i);
            _aes.Encrypt(nonce, _plainSegment, _cipherSegment.AsSpan(0, SegmentSize), _cipherSegment.AsSpan(SegmentSize), _header);
        }

        return PlaintextSize;
    }

    /// <summary>The first stream copy alone: the 64 MiB plaintext stream read into one 64 KiB buffer.</summary>
    [Benchmark]
    public long StreamReadCopy()
    {
        _plaintextStream.Position = 0;
        long total = 0;
        int read;
        while ((read = _plaintextStream.Read(_plainSegment, 0, SegmentSize)) > 0)
        {
            total += read;
        }

        return total;
    }

    /// <summary>The second stream copy alone: one 64 KiB + 16 buffer written 1,024 times into a preallocated stream.</summary>
    [Benchmark]
    public long StreamWriteCopy()
    {
        _output.Position = 0;
        for (var i = 0; i < Segments; i++)
        {
            _output.Write(_cipherSegment, 0, SegmentSize + TagSize);
        }

        return _output.Position;
    }

    /// <summary>The stream codec's loop without its format or async machinery: read a segment, encrypt it, write it.</summary>
    [Benchmark]
    public long ReadEncryptWrite()
    {
        _plaintextStream.Position = 0;
        _output.Position = 0;
        var nonce = _nonce.AsSpan();
        for (var i = 0; i < Segments; i++)
        {
            _plaintextStream.ReadExactly(_plainSegment, 0, SegmentSize);
            BinaryPrimitives.WriteInt32BigEndian(nonce[(NonceSize - sizeof(int))..], i);
            _aes.Encrypt(nonce, _plainSegment, _cipherSegment.AsSpan(0, SegmentSize), _cipherSegment.AsSpan(SegmentSize), _header);
            _output.Write(_cipherSegment, 0, SegmentSize + TagSize);
        }

        return PlaintextSize;
    }

    /// <summary>The per-file fixed cost: encrypting an empty plaintext (salt, HKDF twice, header checksum, cipher state).</summary>
    [Benchmark]
    public long CodecEncryptEmpty()
    {
        _output.Position = 0;
        return BackupFileCodec.EncryptAsync(Stream.Null, _output, _header.AsMemory(0, BackupFileCodec.DataKeySize)).GetAwaiter().GetResult();
    }
}
