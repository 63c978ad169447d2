using static KmsBackup.Tests.Codec.CodecTestSupport;

namespace KmsBackup.Tests.Codec;

/// <summary>Every way a backup file can be wrong is refused with a typed error, and the right one (F2, F3).</summary>
public class BackupFileTamperTests
{
    private static readonly byte[] DataKey = Key(1);
    private static readonly byte[] OtherKey = Key(2);

    // Three segments: two full, one final of 10 bytes.
    private static readonly byte[] SmallFile = Encrypt(Plaintext((2 * SmallSegment) + 10), DataKey);

    [Fact]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F3")]
    public async Task A_wrong_key_is_told_apart_from_corruption()
    {
        Assert.Equal(BackupErrorCode.WrongFileKey, Refusal(SmallFile, OtherKey));
        Assert.Equal(BackupErrorCode.WrongFileKey, Refusal(Encrypt([], DataKey), OtherKey));
        var e = await Assert.ThrowsAsync<BackupFileException>(() => BackupFileCodec.VerifyAsync(new MemoryStream(SmallFile), OtherKey));
        Assert.Contains("data key that was returned when this file was downloaded", e.Remedy, StringComparison.Ordinal);
        Assert.Null(e.Segment);
    }

    [Fact]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F3")]
    public void Every_single_bit_flip_in_the_header_is_refused_and_never_reported_as_a_wrong_key()
    {
        for (var bit = 0; bit < BackupFileHeader.Size * 8; bit++)
        {
            var flipped = Flip(SmallFile, bit);
            var expected = (bit / 8) == 6 ? BackupErrorCode.UnsupportedFileVersion : BackupErrorCode.FileCorrupt;
            Assert.True(expected == Refusal(flipped, DataKey), $"bit {bit} of the header");
        }
    }

    [Theory]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F3")]
    [InlineData(0)]
    [InlineData(2)]
    public async Task Every_single_bit_flip_in_the_first_and_last_segments_is_refused_as_corruption_of_that_segment(int segment)
    {
        var (offset, length) = Segment(SmallFile, segment);
        for (var bit = offset * 8; bit < (offset + length) * 8; bit++)
        {
            var flipped = Flip(SmallFile, bit);
            var e = await Assert.ThrowsAsync<BackupFileException>(() => BackupFileCodec.VerifyAsync(new MemoryStream(flipped), DataKey));
            Assert.Equal(BackupErrorCode.FileCorrupt, e.Code);
            Assert.Equal(segment, e.Segment);
            Assert.Equal($"segment {segment} of the backup file", e.Item);
            Assert.Contains($"Segment {segment} of the backup file", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F3")]
    public void Salt_or_commitment_changed_with_a_recomputed_checksum_is_a_file_that_no_key_opens()
    {
        foreach (var at in new[] { 11, 42, 50, 81 })
        {
            Assert.Equal(BackupErrorCode.WrongFileKey, Refusal(WithChecksum(Flip(SmallFile, at * 8)), DataKey));
        }

        // Nonce prefix or segment size changed with a recomputed checksum: the header is bound to every segment.
        Assert.Equal(BackupErrorCode.FileCorrupt, Refusal(WithChecksum(Flip(SmallFile, 43 * 8)), DataKey));
        Assert.Equal(BackupErrorCode.FileCorrupt, Refusal(WithChecksum(Flip(SmallFile, (10 * 8) + 1)), DataKey));
    }

    [Fact]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F3")]
    public void Truncation_at_every_segment_boundary_is_refused_as_truncation()
    {
        var file = Encrypt(Plaintext(3 * SmallSegment), DataKey); // three full segments and an empty final one
        var count = SegmentCount(file);
        Assert.Equal(4, count);
        for (var keep = 0; keep < count; keep++)
        {
            var cut = file[..Segment(file, keep).Offset];
            Assert.True(BackupErrorCode.FileTruncated == Refusal(cut, DataKey), $"cut before segment {keep}");
        }
    }

    [Fact]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F3")]
    public void Truncation_at_every_offset_is_refused()
    {
        for (var length = 0; length < SmallFile.Length; length++)
        {
            var code = Refusal(SmallFile[..length], DataKey);
            Assert.True(code == BackupErrorCode.FileTruncated || code == BackupErrorCode.FileCorrupt, $"cut at {length}: {code}");
        }
    }

    [Fact]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F3")]
    public void Swapped_segments_are_refused()
    {
        var file = Encrypt(Plaintext((3 * SmallSegment) + 3), DataKey);
        var (a, len) = Segment(file, 0);
        var (b, _) = Segment(file, 1);
        var swapped = (byte[])file.Clone();
        file.AsSpan(b, len).CopyTo(swapped.AsSpan(a));
        file.AsSpan(a, len).CopyTo(swapped.AsSpan(b));
        Assert.Equal(BackupErrorCode.FileCorrupt, Refusal(swapped, DataKey));
    }

    [Fact]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F3")]
    public void Duplicated_and_dropped_segments_are_refused()
    {
        var file = Encrypt(Plaintext((3 * SmallSegment) + 3), DataKey);
        var (offset, length) = Segment(file, 1);
        byte[] duplicated = [.. file[..(offset + length)], .. file[offset..(offset + length)], .. file[(offset + length)..]];
        Assert.Equal(BackupErrorCode.FileCorrupt, Refusal(duplicated, DataKey));
        byte[] dropped = [.. file[..offset], .. file[(offset + length)..]];
        Assert.Equal(BackupErrorCode.FileCorrupt, Refusal(dropped, DataKey));
    }

    [Fact]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F3")]
    public void A_segment_spliced_from_another_file_under_the_same_key_is_refused()
    {
        var other = Encrypt(Plaintext((2 * SmallSegment) + 10, seed: 7), DataKey);
        for (var segment = 0; segment < 3; segment++)
        {
            var (offset, length) = Segment(SmallFile, segment);
            var spliced = (byte[])SmallFile.Clone();
            other.AsSpan(offset, length).CopyTo(spliced.AsSpan(offset));
            Assert.Equal(BackupErrorCode.FileCorrupt, Refusal(spliced, DataKey));
        }
    }

    [Fact]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F3")]
    public void A_final_segment_sealed_as_non_final_cannot_end_the_file()
    {
        // Drop the final segment of a file whose last full segment would then look final by position:
        // it was sealed with flag 0, so it fails as a final segment.
        var file = Encrypt(Plaintext((2 * SmallSegment) + 10), DataKey);
        var (offset, _) = Segment(file, 2);
        var lastFullTrimmed = file[..(offset - 1)];
        Assert.Equal(BackupErrorCode.FileCorrupt, Refusal(lastFullTrimmed, DataKey));
    }

    [Theory]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F3")]
    [InlineData(1)]
    [InlineData(16)]
    [InlineData(SmallSegment + 16)]
    public void Trailing_bytes_after_the_final_segment_are_refused(int extra)
    {
        // The final segment is the one the file ends in: appended bytes make it fail authentication.
        Assert.Equal(BackupErrorCode.FileCorrupt, Refusal([.. SmallFile, .. new byte[extra]], DataKey));
        Assert.Equal(BackupErrorCode.FileCorrupt, Refusal([.. SmallFile, .. SmallFile], DataKey));
        var empty = Encrypt([], DataKey);
        Assert.Equal(BackupErrorCode.FileCorrupt, Refusal([.. empty, .. new byte[extra]], DataKey));
        Assert.Equal(BackupErrorCode.FileCorrupt, Refusal([.. empty, .. empty], DataKey));
    }

    [Theory]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F3")]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(255)]
    public void An_unknown_version_is_refused_by_name(byte version)
    {
        var file = (byte[])SmallFile.Clone();
        file[6] = version;
        Assert.Equal(BackupErrorCode.UnsupportedFileVersion, Refusal(file, DataKey));
        Assert.Equal(BackupErrorCode.UnsupportedFileVersion, Refusal(file[..7], DataKey));
    }

    [Fact]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F3")]
    public void An_empty_file_or_a_cut_header_is_refused_as_truncation_and_other_data_as_not_a_backup_file()
    {
        Assert.Equal(BackupErrorCode.FileTruncated, Refusal([], DataKey));
        Assert.Equal(BackupErrorCode.FileTruncated, Refusal("KMS"u8.ToArray(), DataKey));
        Assert.Equal(BackupErrorCode.FileTruncated, Refusal(SmallFile[..(BackupFileHeader.Size - 1)], DataKey));
        Assert.Equal(BackupErrorCode.FileTruncated, Refusal(SmallFile[..BackupFileHeader.Size], DataKey));
        Assert.Equal(BackupErrorCode.FileCorrupt, Refusal("PK\u0003\u0004 a zip file"u8.ToArray(), DataKey));
    }

    [Fact]
    [Trait("Rule", "F3")]
    public void A_header_declaring_a_segment_size_out_of_bounds_is_refused_even_with_a_valid_checksum()
    {
        var file = (byte[])SmallFile.Clone();
        file[7] = 0x7f; // about 2 GiB
        Assert.Equal(BackupErrorCode.FileCorrupt, Refusal(WithChecksum(file), DataKey));
        file[7] = 0;
        file[10] = 15;
        Assert.Equal(BackupErrorCode.FileCorrupt, Refusal(WithChecksum(file), DataKey));
    }

    [Fact]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F4")]
    public async Task Decrypt_writes_only_segments_that_authenticated_and_verify_writes_nothing()
    {
        var plaintext = Plaintext((2 * SmallSegment) + 10);
        var bad = Flip(SmallFile, Segment(SmallFile, 1).Offset * 8);
        using var output = new MemoryStream();
        var e = await Assert.ThrowsAsync<BackupFileException>(() => BackupFileCodec.DecryptAsync(new MemoryStream(bad), output, DataKey));
        Assert.Equal(1, e.Segment);
        Assert.Equal(plaintext[..SmallSegment], output.ToArray());
    }

    private static byte[] Flip(byte[] file, int bit)
    {
        var copy = (byte[])file.Clone();
        copy[bit / 8] ^= (byte)(1 << (bit % 8));
        return copy;
    }

    private static byte[] WithChecksum(byte[] file)
    {
        var copy = (byte[])file.Clone();
        System.Security.Cryptography.SHA256.HashData(copy.AsSpan(0, 82)).AsSpan(0, 16).CopyTo(copy.AsSpan(82));
        return copy;
    }
}
