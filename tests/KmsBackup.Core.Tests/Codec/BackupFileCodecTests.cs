using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using static KmsBackup.Tests.Codec.CodecTestSupport;

namespace KmsBackup.Tests.Codec;

public class BackupFileCodecTests
{
    private static readonly byte[] DataKey = Key(1);
    private static readonly byte[] OtherKey = Key(2);

    // --- round trips ---

    public static Arbitrary<int> LengthsAroundSegments() =>
        Gen.OneOf(
            Gen.Choose(0, 3),
            Gen.Choose(1, 8).SelectMany(n => Gen.Elements((n * SmallSegment) - 1, n * SmallSegment, (n * SmallSegment) + 1)),
            Gen.Choose(0, 10 * SmallSegment)).ToArbitrary();

    [Property(MaxTest = 200)]
    [Trait("Rule", "F3")]
    public Property Any_plaintext_round_trips_and_verifies() =>
        Prop.ForAll(LengthsAroundSegments(), Gen.Choose(16, 200).ToArbitrary(), (length, segmentSize) =>
        {
            var plaintext = Plaintext(length, seed: length);
            var file = Encrypt(plaintext, DataKey, segmentSize);
            var segments = (length / segmentSize) + 1;
            Assert.Equal(BackupFileHeader.Size + length + (segments * SegmentCipher.TagSize), file.Length);
            Assert.Equal(plaintext, Decrypt(file, DataKey));
            Assert.Equal(length, BackupFileCodec.VerifyAsync(new MemoryStream(file), DataKey).GetAwaiter().GetResult());
        });

    [Theory]
    [Trait("Rule", "F3")]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(BackupFileCodec.DefaultSegmentSize - 1)]
    [InlineData(BackupFileCodec.DefaultSegmentSize)]
    [InlineData(BackupFileCodec.DefaultSegmentSize + 1)]
    [InlineData((3 * BackupFileCodec.DefaultSegmentSize) + 17)]
    public async Task Default_segment_size_round_trips(int length)
    {
        var plaintext = Plaintext(length);
        using var file = new MemoryStream();
        await BackupFileCodec.EncryptAsync(new MemoryStream(plaintext), file, DataKey, CancellationToken.None);
        Assert.Equal((uint)BackupFileCodec.DefaultSegmentSize, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(file.GetBuffer().AsSpan(7)));
        using var output = new MemoryStream();
        await BackupFileCodec.DecryptAsync(new MemoryStream(file.ToArray()), output, DataKey);
        Assert.Equal(plaintext, output.ToArray());
    }

    [Fact]
    [Trait("Rule", "F3")]
    public void Two_encryptions_of_the_same_plaintext_under_the_same_key_differ()
    {
        var plaintext = Plaintext(100);
        var a = Encrypt(plaintext, DataKey);
        var b = Encrypt(plaintext, DataKey);
        Assert.NotEqual(a[11..50], b[11..50]); // salt and nonce prefix
        Assert.NotEqual(a[BackupFileHeader.Size..], b[BackupFileHeader.Size..]);
    }

    [Fact]
    [Trait("Rule", "F3")]
    public void Data_keys_are_32_random_bytes()
    {
        var a = BackupFileCodec.GenerateDataKey();
        var b = BackupFileCodec.GenerateDataKey();
        Assert.Equal(32, a.Length);
        Assert.NotEqual(a, b);
    }

    [Fact]
    [Trait("Rule", "F3")]
    public async Task Reads_from_streams_that_return_one_byte_at_a_time()
    {
        var plaintext = Plaintext(300);
        using var file = new MemoryStream();
        await BackupFileCodec.EncryptAsync(new TrickleStream(plaintext), file, DataKey, SmallSegment, CancellationToken.None);
        using var output = new MemoryStream();
        await BackupFileCodec.DecryptAsync(new TrickleStream(file.ToArray()), output, DataKey);
        Assert.Equal(plaintext, output.ToArray());
    }

    [Theory]
    [Trait("Rule", "F3")]
    [InlineData(0)]
    [InlineData(15)]
    [InlineData(BackupFileCodec.MaximumSegmentSize + 1)]
    public async Task Encrypting_with_a_segment_size_out_of_range_is_refused(int segmentSize)
    {
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => BackupFileCodec.EncryptAsync(new MemoryStream(), Stream.Null, DataKey, segmentSize));
    }

    [Theory]
    [Trait("Rule", "F2")]
    [InlineData(0)]
    [InlineData(16)]
    [InlineData(31)]
    [InlineData(33)]
    public async Task A_data_key_of_the_wrong_length_is_refused_with_a_typed_error(int length)
    {
        var key = new byte[length];
        var e = await Assert.ThrowsAsync<BackupException>(() => BackupFileCodec.EncryptAsync(new MemoryStream(), Stream.Null, key));
        Assert.Equal(BackupErrorCode.InvalidDataKey, e.Code);
        e = await Assert.ThrowsAsync<BackupException>(() => BackupFileCodec.VerifyAsync(new MemoryStream(Encrypt([], DataKey)), key));
        Assert.Equal(BackupErrorCode.InvalidDataKey, e.Code);
    }

    // --- the segment counter never wraps ---

    [Fact]
    [Trait("Rule", "F3")]
    public async Task The_writer_stops_before_the_segment_counter_could_run_out()
    {
        // With a limit of 3 segments, 2 full segments and a final one fit; a third full segment does not.
        var salt = new byte[32];
        var prefix = new byte[7];
        using var ok = new MemoryStream();
        await BackupFileWriter.EncryptAsync(new MemoryStream(Plaintext((2 * SmallSegment) + 5)), ok, DataKey, SmallSegment, salt, prefix, 3, CancellationToken.None);
        var e = await Assert.ThrowsAsync<BackupException>(() => BackupFileWriter.EncryptAsync(new MemoryStream(Plaintext(3 * SmallSegment)), Stream.Null, DataKey, SmallSegment, salt, prefix, 3, CancellationToken.None));
        Assert.Equal(BackupErrorCode.FileTooLarge, e.Code);

        Assert.Equal((2 * SmallSegment) + 5, await BackupFileReader.OpenAsync(new MemoryStream(ok.ToArray()), null, DataKey, 3, CancellationToken.None));
        var big = Encrypt(Plaintext(3 * SmallSegment), DataKey);
        var r = await Assert.ThrowsAsync<BackupFileException>(() => BackupFileReader.OpenAsync(new MemoryStream(big), null, DataKey, 3, CancellationToken.None));
        Assert.Equal(BackupErrorCode.FileTooLarge, r.Code);
        Assert.Equal(2, r.Segment);
    }

    [Fact]
    [Trait("Rule", "F3")]
    public void The_segment_limit_is_2_to_the_32_minus_1()
    {
        Assert.Equal((1L << 32) - 1, BackupFileCodec.MaximumSegmentCount);
    }

    // --- cancellation ---

    [Fact]
    [Trait("Rule", "F3")]
    public async Task Cancellation_passes_through()
    {
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => BackupFileCodec.EncryptAsync(new MemoryStream(Plaintext(10)), new MemoryStream(), DataKey, cts.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => BackupFileCodec.VerifyAsync(new MemoryStream(Encrypt(Plaintext(10), DataKey)), DataKey, cts.Token));
    }

    // --- garbage in, typed errors out ---

    [Property(MaxTest = 300)]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F4")]
    public void Random_bytes_only_ever_produce_typed_errors(byte[] bytes)
    {
        bytes ??= [];
        var code = Refusal(bytes, DataKey);
        Assert.Contains(code, new[] { BackupErrorCode.FileCorrupt, BackupErrorCode.FileTruncated, BackupErrorCode.UnsupportedFileVersion });
    }

    [Property(MaxTest = 300)]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F4")]
    public void Random_bytes_after_a_valid_header_only_ever_produce_typed_errors(byte[] tail, bool sameKey)
    {
        tail ??= [];
        var header = Encrypt([], DataKey)[..BackupFileHeader.Size];
        var code = Refusal([.. header, .. tail], sameKey ? DataKey : OtherKey);
        Assert.Contains(code, sameKey
            ? new[] { BackupErrorCode.FileCorrupt, BackupErrorCode.FileTruncated }
            : new[] { BackupErrorCode.WrongFileKey });
    }

    [Property(MaxTest = 300)]
    [Trait("Rule", "F2")]
    public Property Random_edits_of_a_valid_file_only_ever_produce_typed_errors() =>
        Prop.ForAll(
            Gen.Choose(0, 4 * SmallSegment).ToArbitrary(),
            ArbMap.Default.ArbFor<int>(),
            ArbMap.Default.ArbFor<byte[]>(),
            (length, where, insert) =>
            {
                var file = Encrypt(Plaintext(length), DataKey);
                var at = Math.Abs(where % file.Length);
                var edited = insert.Length == 0
                    ? [.. file[..at], (byte)(file[at] ^ 0x80), .. file[(at + 1)..]]
                    : (byte[])[.. file[..at], .. insert, .. file[at..]];
                Refusal(edited, DataKey);
            });

    /// <summary>A stream that hands out at most one byte per read, to check that short reads are handled.</summary>
    private sealed class TrickleStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(count, 1));

        public override int Read(Span<byte> buffer) => base.Read(buffer[..Math.Min(buffer.Length, 1)]);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, 1)], cancellationToken);
    }
}
