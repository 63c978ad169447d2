using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using static KmsBackup.Tests.Codec.CodecTestSupport;

namespace KmsBackup.Tests.Codec;

/// <summary>
/// The decrypting stream (<see cref="BackupFileCodec.CreateDecryptingStream(Stream, ReadOnlyMemory{byte}, bool)"/>):
/// the plaintext of any file, read in pieces of any size, sync or async; the same refusals as the other readers
/// (every tamper test goes through <see cref="CodecTestSupport.Refusal"/>, which checks the stream too); and an end
/// of stream only after the final segment authenticated.
/// </summary>
public class BackupFileDecryptingStreamTests
{
    private static readonly byte[] DataKey = Key(7);

    private static byte[] ReadAll(Stream stream, int chunk, bool async)
    {
        using var output = new MemoryStream();
        var buffer = new byte[chunk];
        while (true)
        {
            var read = async ? stream.ReadAsync(buffer.AsMemory()).AsTask().GetAwaiter().GetResult() : stream.Read(buffer, 0, chunk);
            if (read == 0)
            {
                return output.ToArray();
            }

            output.Write(buffer, 0, read);
        }
    }

    [Property(MaxTest = 200)]
    [Trait("Rule", "F3")]
    public Property Any_plaintext_reads_back_in_pieces_of_any_size() =>
        Prop.ForAll(Gen.Choose(0, 8 * SmallSegment).ToArbitrary(), Gen.Choose(16, 100).ToArbitrary(), Gen.Choose(1, 300).ToArbitrary(), (length, segmentSize, chunk) =>
        {
            var plaintext = Plaintext(length, seed: length);
            var file = Encrypt(plaintext, DataKey, segmentSize);
            using var sync = BackupFileCodec.CreateDecryptingStream(new MemoryStream(file), DataKey);
            using var async = BackupFileCodec.CreateDecryptingStream(new MemoryStream(file), DataKey);
            return ReadAll(sync, chunk, async: false).AsSpan().SequenceEqual(plaintext) && ReadAll(async, chunk, async: true).AsSpan().SequenceEqual(plaintext)
                && sync.Read(new byte[4]) == 0;
        });

    [Fact]
    [Trait("Rule", "F2")]
    public void The_stream_ends_only_after_the_final_segment_authenticated()
    {
        var plaintext = Plaintext(3 * SmallSegment);
        var file = Encrypt(plaintext, DataKey);

        // The final (empty) segment damaged: every byte of the three full segments is read, then the refusal.
        var damaged = (byte[])file.Clone();
        damaged[^1] ^= 1;
        using var stream = BackupFileCodec.CreateDecryptingStream(new MemoryStream(damaged), DataKey);
        var read = new byte[3 * SmallSegment];
        var total = 0;
        while (total < read.Length)
        {
            total += stream.Read(read, total, read.Length - total);
        }

        Assert.Equal(plaintext, read);
        var refusal = Assert.Throws<BackupFileException>(() => stream.ReadByte());
        Assert.Equal(BackupErrorCode.FileCorrupt, refusal.Code);
        Assert.Equal(3, refusal.Segment);
    }

    [Fact]
    [Trait("Rule", "F3")]
    public void A_wrong_key_is_refused_at_the_first_read_and_a_bad_key_length_at_once()
    {
        using var stream = BackupFileCodec.CreateDecryptingStream(new MemoryStream(Encrypt(Plaintext(10), DataKey)), Key(8));
        Assert.Equal(BackupErrorCode.WrongFileKey, Assert.Throws<BackupFileException>(() => stream.ReadByte()).Code);
        Assert.Equal(BackupErrorCode.InvalidDataKey, Assert.Throws<BackupException>(() => BackupFileCodec.CreateDecryptingStream(Stream.Null, new byte[31])).Code);
    }

    [Fact]
    [Trait("Rule", "F3")]
    public void The_stream_stops_before_the_segment_counter_could_run_out()
    {
        var big = Encrypt(Plaintext(3 * SmallSegment), DataKey);
        using var stream = BackupFileDecryptingStream.Create(new MemoryStream(big), DataKey, leaveOpen: false, maximumSegmentCount: 3);
        var refusal = Assert.Throws<BackupFileException>(() => stream.CopyTo(Stream.Null));
        Assert.Equal(BackupErrorCode.FileTooLarge, refusal.Code);
        Assert.Equal(2, refusal.Segment);
    }

    [Fact]
    [Trait("Rule", "F3")]
    public async Task Disposing_leaves_the_file_open_when_asked_and_the_stream_refuses_writes_and_seeks()
    {
        var file = new MemoryStream(Encrypt(Plaintext(100), DataKey));
        var stream = BackupFileCodec.CreateDecryptingStream(file, DataKey, leaveOpen: true);
        Assert.False(stream.CanSeek);
        Assert.False(stream.CanWrite);
        Assert.Throws<NotSupportedException>(() => stream.Write([1], 0, 1));
        Assert.Throws<NotSupportedException>(() => stream.Position);
        await stream.DisposeAsync();
        Assert.True(file.CanRead);
        Assert.Throws<ObjectDisposedException>(() => stream.ReadByte());

        using var closing = BackupFileCodec.CreateDecryptingStream(file, DataKey);
        closing.Dispose();
        Assert.False(file.CanRead);
    }
}
