using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using static KmsBackup.Tests.Codec.CodecTestSupport;

namespace KmsBackup.Tests.Codec;

/// <summary>
/// The in-memory API (<see cref="BackupFileCodec.Encrypt(ReadOnlySpan{byte}, Span{byte}, ReadOnlySpan{byte}, int)"/>,
/// <see cref="BackupFileCodec.Decrypt(ReadOnlySpan{byte}, Span{byte}, ReadOnlySpan{byte})"/>,
/// <see cref="BackupFileCodec.Verify(ReadOnlySpan{byte}, ReadOnlySpan{byte})"/>): the same format as the stream API,
/// byte for byte. Its refusals of bad files are checked by every test that calls <see cref="CodecTestSupport.Refusal"/>.
/// </summary>
public class BackupFileSpanTests
{
    private static readonly byte[] DataKey = Key(1);
    private static readonly byte[] Salt = [.. Enumerable.Range(0x40, 32).Select(i => (byte)i)];
    private static readonly byte[] NoncePrefix = [.. Enumerable.Range(0xa0, 7).Select(i => (byte)i)];

    public static Arbitrary<int> LengthsAroundSegments() =>
        Gen.OneOf(
            Gen.Choose(0, 3),
            Gen.Choose(1, 8).SelectMany(n => Gen.Elements((n * SmallSegment) - 1, n * SmallSegment, (n * SmallSegment) + 1)),
            Gen.Choose(0, 10 * SmallSegment)).ToArbitrary();

    [Property(MaxTest = 200)]
    [Trait("Rule", "F3")]
    public Property Encrypt_then_decrypt_is_the_identity_and_matches_the_stream_api() =>
        Prop.ForAll(LengthsAroundSegments(), Gen.Choose(16, 200).ToArbitrary(), (length, segmentSize) =>
        {
            var plaintext = Plaintext(length, seed: length);
            var file = new byte[BackupFileCodec.GetEncryptedLength(length, segmentSize)];
            Assert.Equal(file.Length, BackupFileCodec.Encrypt(plaintext, file, DataKey, segmentSize));

            var output = new byte[BackupFileCodec.GetMaximumPlaintextLength(file.Length)];
            Assert.Equal(length, BackupFileCodec.Decrypt(file, output, DataKey));
            Assert.Equal(plaintext, output[..length]);
            Assert.Equal(length, BackupFileCodec.Verify(file, DataKey));

            // Either API reads what the other wrote, and with the same salt and nonce prefix both write the same bytes.
            Assert.Equal(plaintext, Decrypt(file, DataKey));
            var streamFile = Encrypt(plaintext, DataKey, segmentSize);
            Assert.Equal(length, BackupFileCodec.Decrypt(streamFile, output, DataKey));
            Assert.Equal(plaintext, output[..length]);
            Assert.Equal(streamFile.Length, BackupFileCodec.GetEncryptedLength(length, segmentSize));
            Assert.Equal(StreamEncrypt(plaintext, segmentSize), SpanEncrypt(plaintext, segmentSize));
        });

    [Theory]
    [Trait("Rule", "F3")]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(BackupFileCodec.DefaultSegmentSize - 1)]
    [InlineData(BackupFileCodec.DefaultSegmentSize)]
    [InlineData(BackupFileCodec.DefaultSegmentSize + 1)]
    [InlineData((3 * BackupFileCodec.DefaultSegmentSize) - 1)]
    [InlineData(3 * BackupFileCodec.DefaultSegmentSize)]
    [InlineData((3 * BackupFileCodec.DefaultSegmentSize) + 1)]
    public void Default_segment_size_round_trips(int length)
    {
        var plaintext = Plaintext(length);
        var file = new byte[BackupFileCodec.GetEncryptedLength(length)];
        Assert.Equal(file.Length, BackupFileCodec.Encrypt(plaintext, file, DataKey));
        Assert.Equal((uint)BackupFileCodec.DefaultSegmentSize, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(7)));
        Assert.Equal((length / BackupFileCodec.DefaultSegmentSize) + 1, SegmentCount(file, BackupFileCodec.DefaultSegmentSize));

        var output = new byte[length];
        Assert.Equal(length, BackupFileCodec.Decrypt(file, output, DataKey));
        Assert.Equal(plaintext, output);
        Assert.Equal(length, BackupFileCodec.Verify(file, DataKey));
        Assert.Equal(plaintext, Decrypt(file, DataKey));
    }

    [Theory]
    [Trait("Rule", "F3")]
    [MemberData(nameof(BackupFileVectorTests.VectorNames), MemberType = typeof(BackupFileVectorTests))]
    public void The_documented_vectors_hold_for_the_span_api(string name)
    {
        var v = BackupFileVectorTests.Vectors.Single(x => x.Name == name);
        var file = new byte[BackupFileCodec.GetEncryptedLength(v.Plaintext.Length, v.SegmentSize)];
        Assert.Equal(v.File.Length, BackupFileWriter.Encrypt(v.Plaintext, file, v.DataKey, v.SegmentSize, v.Salt, v.NoncePrefix));
        Assert.Equal(Convert.ToHexStringLower(v.File), Convert.ToHexStringLower(file));

        var output = new byte[v.Plaintext.Length];
        Assert.Equal(v.Plaintext.Length, BackupFileCodec.Decrypt(v.File, output, v.DataKey));
        Assert.Equal(v.Plaintext, output);
        Assert.Equal(v.Plaintext.Length, BackupFileCodec.Verify(v.File, v.DataKey));
    }

    [Fact]
    [Trait("Rule", "F3")]
    public void Two_encryptions_of_the_same_plaintext_under_the_same_key_differ()
    {
        var plaintext = Plaintext(100);
        var a = new byte[BackupFileCodec.GetEncryptedLength(100)];
        var b = new byte[a.Length];
        BackupFileCodec.Encrypt(plaintext, a, DataKey);
        BackupFileCodec.Encrypt(plaintext, b, DataKey);
        Assert.NotEqual(a[11..50], b[11..50]); // salt and nonce prefix
        Assert.NotEqual(a[BackupFileHeader.Size..], b[BackupFileHeader.Size..]);
    }

    // --- lengths ---

    [Theory]
    [Trait("Rule", "F3")]
    [InlineData(0L, 16, 98L + 16)]
    [InlineData(15L, 16, 98L + 15 + 16)]
    [InlineData(16L, 16, 98L + 16 + 32)]
    [InlineData(65_536L, 65_536, 98L + 65_536 + 32)]
    [InlineData(64L << 20, 65_536, 98L + (64L << 20) + (1_025 * 16))]
    [InlineData(1L << 40, BackupFileCodec.MaximumSegmentSize, 98L + (1L << 40) + (65_537 * 16))]
    public void The_encrypted_length_is_the_header_the_plaintext_and_a_tag_per_segment(long plaintextLength, int segmentSize, long expected)
    {
        Assert.Equal(expected, BackupFileCodec.GetEncryptedLength(plaintextLength, segmentSize));
        Assert.Equal(expected - 98 - 16, BackupFileCodec.GetMaximumPlaintextLength(expected));
    }

    [Fact]
    [Trait("Rule", "F3")]
    public void The_encrypted_length_refuses_what_the_counter_cannot_number()
    {
        // 2^32 - 1 segments of 16 bytes: 2^32 - 2 full ones and a final one of 0..15 bytes.
        var largest = ((BackupFileCodec.MaximumSegmentCount - 1) * 16) + 15;
        Assert.Equal(98 + largest + (BackupFileCodec.MaximumSegmentCount * 16), BackupFileCodec.GetEncryptedLength(largest, 16));
        var e = Assert.Throws<BackupException>(() => BackupFileCodec.GetEncryptedLength(largest + 1, 16));
        Assert.Equal(BackupErrorCode.FileTooLarge, e.Code);
    }

    [Fact]
    [Trait("Rule", "F3")]
    public void Lengths_out_of_range_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => BackupFileCodec.GetEncryptedLength(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => BackupFileCodec.GetEncryptedLength(0, 15));
        Assert.Throws<ArgumentOutOfRangeException>(() => BackupFileCodec.GetEncryptedLength(0, BackupFileCodec.MaximumSegmentSize + 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => BackupFileCodec.GetMaximumPlaintextLength(-1));
        Assert.Equal(0, BackupFileCodec.GetMaximumPlaintextLength(0));
        Assert.Equal(0, BackupFileCodec.GetMaximumPlaintextLength(BackupFileHeader.Size + SegmentCipher.TagSize - 1));
    }

    // --- bad arguments ---

    [Theory]
    [Trait("Rule", "F3")]
    [InlineData(0)]
    [InlineData(15)]
    [InlineData(BackupFileCodec.MaximumSegmentSize + 1)]
    public void Encrypting_with_a_segment_size_out_of_range_is_refused(int segmentSize)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => BackupFileCodec.Encrypt([], new byte[1024], DataKey, segmentSize));
    }

    [Theory]
    [Trait("Rule", "F2")]
    [InlineData(0)]
    [InlineData(16)]
    [InlineData(31)]
    [InlineData(33)]
    public void A_data_key_of_the_wrong_length_is_refused_with_a_typed_error(int length)
    {
        var key = new byte[length];
        var file = Encrypt([], DataKey);
        foreach (var call in new Action[]
        {
            () => BackupFileCodec.Encrypt([], new byte[1024], key),
            () => BackupFileCodec.Decrypt(file, new byte[1024], key),
            () => BackupFileCodec.Verify(file, key),
        })
        {
            Assert.Equal(BackupErrorCode.InvalidDataKey, Assert.Throws<BackupException>(call).Code);
        }
    }

    [Fact]
    [Trait("Rule", "F3")]
    public void A_destination_too_short_is_refused_before_anything_is_written()
    {
        var plaintext = Plaintext((2 * SmallSegment) + 5);
        var length = (int)BackupFileCodec.GetEncryptedLength(plaintext.Length, SmallSegment);
        var shortFile = new byte[length - 1];
        var e = Assert.Throws<ArgumentException>(() => BackupFileCodec.Encrypt(plaintext, shortFile, DataKey, SmallSegment));
        Assert.Equal("destination", e.ParamName);
        Assert.All(shortFile, b => Assert.Equal(0, b));

        var file = Encrypt(plaintext, DataKey);
        var shortPlain = new byte[plaintext.Length - 1];
        e = Assert.Throws<ArgumentException>(() => BackupFileCodec.Decrypt(file, shortPlain, DataKey));
        Assert.Equal("destination", e.ParamName);
        Assert.All(shortPlain, b => Assert.Equal(0, b));

        // The exact length is enough; more is left as it was.
        var roomy = new byte[plaintext.Length + 10];
        roomy.AsSpan().Fill(0xEE);
        Assert.Equal(plaintext.Length, BackupFileCodec.Decrypt(file, roomy, DataKey));
        Assert.Equal(plaintext, roomy[..plaintext.Length]);
        Assert.All(roomy[plaintext.Length..], b => Assert.Equal(0xEE, b));
        var roomyFile = new byte[length + 10];
        roomyFile.AsSpan().Fill(0xEE);
        Assert.Equal(length, BackupFileCodec.Encrypt(plaintext, roomyFile, DataKey, SmallSegment));
        Assert.All(roomyFile[length..], b => Assert.Equal(0xEE, b));
        Assert.Equal(plaintext, Decrypt(roomyFile[..length], DataKey));
    }

    [Fact]
    [Trait("Rule", "F3")]
    public void Overlapping_source_and_destination_are_refused()
    {
        var buffer = new byte[4096];
        Plaintext(1000).CopyTo(buffer, 0);
        var e = Assert.Throws<ArgumentException>(() => BackupFileCodec.Encrypt(buffer.AsSpan(0, 1000), buffer.AsSpan(500), DataKey, SmallSegment));
        Assert.Equal("destination", e.ParamName);

        var file = Encrypt(Plaintext(1000), DataKey);
        file.CopyTo(buffer, 0);
        e = Assert.Throws<ArgumentException>(() => BackupFileCodec.Decrypt(buffer.AsSpan(0, file.Length), buffer.AsSpan(10), DataKey));
        Assert.Equal("destination", e.ParamName);
    }

    // --- bad files: the typed errors of the stream API, and nothing left behind ---

    [Fact]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F3")]
    public void A_refused_file_leaves_no_plaintext_in_the_destination()
    {
        // The last segment is damaged: the first ones authenticate and are written, then wiped when the last fails.
        var plaintext = Plaintext(5 * SmallSegment);
        var file = Encrypt(plaintext, DataKey);
        file[^1] ^= 1;
        var destination = new byte[plaintext.Length];
        var e = Assert.Throws<BackupFileException>(() => BackupFileCodec.Decrypt(file, destination, DataKey));
        Assert.Equal(BackupErrorCode.FileCorrupt, e.Code);
        Assert.Equal(5, e.Segment);
        Assert.All(destination, b => Assert.Equal(0, b));

        // Cut at a segment boundary: four segments authenticate, then the missing final one is reported.
        var cut = Encrypt(plaintext, DataKey)[..(BackupFileHeader.Size + (4 * (SmallSegment + SegmentCipher.TagSize)))];
        destination.AsSpan().Fill(0xA5);
        e = Assert.Throws<BackupFileException>(() => BackupFileCodec.Decrypt(cut, destination, DataKey));
        Assert.Equal(BackupErrorCode.FileTruncated, e.Code);
        Assert.All(destination[..(4 * SmallSegment)], b => Assert.Equal(0, b));
    }

    [Fact]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F3")]
    public void Empty_files_wrong_keys_and_unknown_versions_are_refused_like_the_stream_api()
    {
        Assert.Equal(BackupErrorCode.FileTruncated, Refusal([], DataKey));
        Assert.Equal(BackupErrorCode.WrongFileKey, Refusal(Encrypt(Plaintext(300), DataKey), Key(2)));
        var newer = Encrypt(Plaintext(10), DataKey);
        newer[6] = 2;
        Assert.Equal(BackupErrorCode.UnsupportedFileVersion, Refusal(newer, DataKey));
        var file = Encrypt(Plaintext(10), DataKey);
        Assert.Equal(BackupErrorCode.FileCorrupt, Refusal([.. file, 0], DataKey));
    }

    [Fact]
    [Trait("Rule", "F3")]
    public void The_reader_stops_before_the_segment_counter_could_run_out()
    {
        // With a limit of 3 segments, 2 full segments and a final one fit; a third full segment does not.
        var ok = Encrypt(Plaintext((2 * SmallSegment) + 5), DataKey);
        Assert.Equal((2 * SmallSegment) + 5, BackupFileReader.Open(ok, new byte[ok.Length], DataKey, 3, verifyOnly: false));
        var big = Encrypt(Plaintext(3 * SmallSegment), DataKey);
        var destination = new byte[big.Length];
        var e = Assert.Throws<BackupFileException>(() => BackupFileReader.Open(big, destination, DataKey, 3, verifyOnly: false));
        Assert.Equal(BackupErrorCode.FileTooLarge, e.Code);
        Assert.Equal(2, e.Segment);
        Assert.All(destination, b => Assert.Equal(0, b));
        e = Assert.Throws<BackupFileException>(() => BackupFileReader.Open(big, [], DataKey, 3, verifyOnly: true));
        Assert.Equal(BackupErrorCode.FileTooLarge, e.Code);
    }

    [Property(MaxTest = 300)]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F4")]
    public void Random_bytes_only_ever_produce_typed_errors(byte[] bytes)
    {
        bytes ??= [];
        var destination = new byte[BackupFileCodec.GetMaximumPlaintextLength(bytes.Length)];
        var e = Assert.Throws<BackupFileException>(() => BackupFileCodec.Decrypt(bytes, destination, DataKey));
        Assert.Contains(e.Code, new[] { BackupErrorCode.FileCorrupt, BackupErrorCode.FileTruncated, BackupErrorCode.UnsupportedFileVersion });
        Assert.Equal(e.Code, Assert.Throws<BackupFileException>(() => BackupFileCodec.Verify(bytes, DataKey)).Code);
    }

    private static byte[] StreamEncrypt(byte[] plaintext, int segmentSize)
    {
        using var output = new MemoryStream();
        BackupFileWriter.EncryptAsync(new MemoryStream(plaintext), output, DataKey, segmentSize, Salt, NoncePrefix, BackupFileCodec.MaximumSegmentCount, CancellationToken.None).GetAwaiter().GetResult();
        return output.ToArray();
    }

    private static byte[] SpanEncrypt(byte[] plaintext, int segmentSize)
    {
        var file = new byte[BackupFileCodec.GetEncryptedLength(plaintext.Length, segmentSize)];
        BackupFileWriter.Encrypt(plaintext, file, DataKey, segmentSize, Salt, NoncePrefix);
        return file;
    }
}
