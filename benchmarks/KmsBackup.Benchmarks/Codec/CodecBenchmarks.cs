using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;

namespace KmsBackup.Benchmarks.Codec;

/// <summary>
/// The codec budget (DESIGN.md §3): encrypting and decrypting backup files of 64 KiB segments runs at
/// ≥ 80% of raw <see cref="AesGcm"/> throughput on the same data in the same run, and allocates nothing
/// per segment. 64 MiB of random plaintext (1,024 segments plus the empty final one).
/// </summary>
/// <remarks>
/// Every stream is a <see cref="MemoryStream"/> over a byte array allocated in setup (fixed capacity,
/// position reset per call), so what the methods allocate is the codec's own. The baseline encrypts the
/// same bytes in the same 64 KiB chunks with one <see cref="AesGcm"/>, a 12-byte nonce per chunk, into a
/// preallocated output laid out like the file's segments (ciphertext, then the 16-byte tag).
/// <see cref="RawAesGcmDecrypt"/> is the raw figure for decryption, for reference. The <c>Span</c> methods run
/// the in-memory API on the same bytes: from the plaintext array into a preallocated file array and back,
/// without the two stream copies (see <see cref="CodecCostBenchmarks"/> for what each copy costs).
/// </remarks>
[MemoryDiagnoser]
[WarmupCount(5)]
[IterationCount(30)] // more than the other suites: the machine is shared and the ratios sit near the budget
[SuppressMessage("Design", "CA1001:Types that own disposable fields should be disposable", Justification = "BenchmarkDotNet disposes them in [GlobalCleanup]; benchmark classes must not be sealed.")]
public class CodecBenchmarks
{
    public const int PlaintextSize = 64 * 1024 * 1024;
    public const int SegmentSize = BackupFileCodec.DefaultSegmentSize;

    private const int Segments = PlaintextSize / SegmentSize;
    private const int NonceSize = 12;
    private const int TagSize = SegmentCipher.TagSize;

    private byte[] _plaintext = [];
    private byte[] _dataKey = [];
    private byte[] _rawKey = [];
    private byte[] _nonce = new byte[NonceSize];
    private byte[] _rawCiphertext = [];
    private byte[] _rawPlainOutput = [];
    private AesGcm _aes = null!;
    private MemoryStream _plaintextStream = null!;
    private MemoryStream _encryptOutput = null!;
    private MemoryStream _encryptedFile = null!;
    private MemoryStream _decryptOutput = null!;
    private byte[] _decryptOutputBuffer = [];
    private byte[] _file = [];
    private byte[] _spanFile = [];
    private long _fileLength;

    [GlobalSetup]
    public void Setup()
    {
        _plaintext = RandomNumberGenerator.GetBytes(PlaintextSize);
        _dataKey = BackupFileCodec.GenerateDataKey();
        _rawKey = RandomNumberGenerator.GetBytes(BackupFileCodec.DataKeySize);
        _nonce = RandomNumberGenerator.GetBytes(NonceSize);
        _aes = new AesGcm(_rawKey, TagSize);
        _rawCiphertext = new byte[Segments * (SegmentSize + TagSize)];
        _rawPlainOutput = new byte[PlaintextSize];

        // A full-segment file ends with an empty final segment: the header, 1,024 + 1 tags, the plaintext.
        var fileCapacity = BackupFileHeader.Size + PlaintextSize + ((Segments + 1) * TagSize);
        _plaintextStream = new MemoryStream(_plaintext, writable: false);
        _encryptOutput = new MemoryStream(new byte[fileCapacity], writable: true);
        _decryptOutputBuffer = new byte[PlaintextSize];
        _decryptOutput = new MemoryStream(_decryptOutputBuffer, writable: true);

        // The file that decrypt and verify read, made once with the codec.
        var file = new byte[fileCapacity];
        using (var fileStream = new MemoryStream(file, writable: true))
        {
            _fileLength = BackupFileCodec.EncryptAsync(new MemoryStream(_plaintext, writable: false), fileStream, _dataKey).GetAwaiter().GetResult();
        }

        if (_fileLength != fileCapacity)
        {
            throw new InvalidOperationException($"The codec wrote {_fileLength} bytes where {fileCapacity} were expected.");
        }

        _encryptedFile = new MemoryStream(file, 0, (int)_fileLength, writable: false);
        _file = file;
        _spanFile = new byte[BackupFileCodec.GetEncryptedLength(PlaintextSize)];

        // Each method must do the whole job on these bytes, or the comparison means nothing.
        Check(nameof(CodecEncrypt), CodecEncrypt().GetAwaiter().GetResult(), _fileLength);
        Check(nameof(CodecDecrypt), CodecDecrypt().GetAwaiter().GetResult(), PlaintextSize);
        if (!_decryptOutputBuffer.AsSpan().SequenceEqual(_plaintext))
        {
            throw new InvalidOperationException("CodecDecrypt did not return the plaintext.");
        }

        Check(nameof(CodecVerify), CodecVerify().GetAwaiter().GetResult(), PlaintextSize);
        Check(nameof(SpanEncrypt), SpanEncrypt(), _fileLength);
        Array.Clear(_decryptOutputBuffer);
        Check(nameof(SpanDecrypt), SpanDecrypt(), PlaintextSize);
        if (!_decryptOutputBuffer.AsSpan().SequenceEqual(_plaintext)
            || BackupFileCodec.Decrypt(_spanFile, _decryptOutputBuffer, _dataKey) != PlaintextSize
            || !_decryptOutputBuffer.AsSpan().SequenceEqual(_plaintext))
        {
            throw new InvalidOperationException("SpanDecrypt did not return the plaintext, or SpanEncrypt's file does not decrypt to it.");
        }

        Check(nameof(SpanVerify), SpanVerify(), PlaintextSize);
        Check(nameof(RawAesGcmEncrypt), RawAesGcmEncrypt(), PlaintextSize);
        Check(nameof(RawAesGcmDecrypt), RawAesGcmDecrypt(), PlaintextSize);
        if (!_rawPlainOutput.AsSpan().SequenceEqual(_plaintext))
        {
            throw new InvalidOperationException("RawAesGcmDecrypt did not return the plaintext.");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _aes.Dispose();
        _plaintextStream.Dispose();
        _encryptOutput.Dispose();
        _encryptedFile.Dispose();
        _decryptOutput.Dispose();
    }

    /// <summary>Raw throughput: one <see cref="AesGcm"/>, the plaintext in 64 KiB chunks, a 12-byte nonce per chunk.</summary>
    [Benchmark(Baseline = true)]
    public long RawAesGcmEncrypt()
    {
        EncryptRaw(_aes, _nonce, _plaintext, _rawCiphertext);
        return PlaintextSize;
    }

    /// <summary>
    /// The raw baseline's loop, shared with <see cref="CodecCostBenchmarks"/>: <paramref name="plaintext"/> in
    /// 64 KiB chunks, one <see cref="AesGcm"/>, a 12-byte nonce per chunk, ciphertext and tag back to back.
    /// </summary>
    internal static void EncryptRaw(AesGcm aes, byte[] nonceBuffer, byte[] plaintext, byte[] ciphertext)
    {
        var nonce = nonceBuffer.AsSpan();
        for (var i = 0; i < Segments; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(nonce[(NonceSize - sizeof(int))..], i);
            var output = ciphertext.AsSpan(i * (SegmentSize + TagSize), SegmentSize + TagSize);
            aes.Encrypt(nonce, plaintext.AsSpan(i * SegmentSize, SegmentSize), output[..SegmentSize], output[SegmentSize..]);
        }
    }

    /// <summary>Raw decryption of the baseline's output, chunk by chunk, for reference.</summary>
    [Benchmark]
    public long RawAesGcmDecrypt()
    {
        var nonce = _nonce.AsSpan();
        for (var i = 0; i < Segments; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(nonce[(NonceSize - sizeof(int))..], i);
            var input = _rawCiphertext.AsSpan(i * (SegmentSize + TagSize), SegmentSize + TagSize);
            _aes.Decrypt(nonce, input[..SegmentSize], input[SegmentSize..], _rawPlainOutput.AsSpan(i * SegmentSize, SegmentSize));
        }

        return PlaintextSize;
    }

    /// <summary><see cref="BackupFileCodec.EncryptAsync(Stream, Stream, ReadOnlyMemory{byte}, int, CancellationToken)"/> of the plaintext into a fixed buffer.</summary>
    [Benchmark]
    public Task<long> CodecEncrypt()
    {
        _plaintextStream.Position = 0;
        _encryptOutput.Position = 0;
        return BackupFileCodec.EncryptAsync(_plaintextStream, _encryptOutput, _dataKey);
    }

    /// <summary><see cref="BackupFileCodec.DecryptAsync"/> of the file made in setup into a fixed buffer.</summary>
    [Benchmark]
    public Task<long> CodecDecrypt()
    {
        _encryptedFile.Position = 0;
        _decryptOutput.Position = 0;
        return BackupFileCodec.DecryptAsync(_encryptedFile, _decryptOutput, _dataKey);
    }

    /// <summary><see cref="BackupFileCodec.VerifyAsync"/> of the file made in setup.</summary>
    [Benchmark]
    public Task<long> CodecVerify()
    {
        _encryptedFile.Position = 0;
        return BackupFileCodec.VerifyAsync(_encryptedFile, _dataKey);
    }

    /// <summary><see cref="BackupFileCodec.Encrypt(ReadOnlySpan{byte}, Span{byte}, ReadOnlySpan{byte}, int)"/> of the plaintext array into a preallocated file array.</summary>
    [Benchmark]
    public long SpanEncrypt() => BackupFileCodec.Encrypt(_plaintext, _spanFile, _dataKey);

    /// <summary><see cref="BackupFileCodec.Decrypt(ReadOnlySpan{byte}, Span{byte}, ReadOnlySpan{byte})"/> of the file made in setup into a preallocated array.</summary>
    [Benchmark]
    public long SpanDecrypt() => BackupFileCodec.Decrypt(_file, _decryptOutputBuffer, _dataKey);

    /// <summary><see cref="BackupFileCodec.Verify(ReadOnlySpan{byte}, ReadOnlySpan{byte})"/> of the file made in setup.</summary>
    [Benchmark]
    public long SpanVerify() => BackupFileCodec.Verify(_file, _dataKey);

    private static void Check(string method, long result, long expected)
    {
        if (result != expected)
        {
            throw new InvalidOperationException($"{method} returned {result} where {expected} was expected.");
        }
    }
}
