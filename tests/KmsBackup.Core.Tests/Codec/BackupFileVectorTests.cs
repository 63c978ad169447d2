using System.Globalization;
using System.Text;

namespace KmsBackup.Tests.Codec;

/// <summary>The test vectors of docs/backup-file-format.md, parsed from the document itself.</summary>
public class BackupFileVectorTests
{
    public sealed record Vector(string Name, int SegmentSize, byte[] DataKey, byte[] Salt, byte[] NoncePrefix, byte[] Plaintext, byte[] File);

    public static IReadOnlyList<Vector> Vectors { get; } = Parse(System.IO.File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Codec", "backup-file-format.md")));

    public static TheoryData<string> VectorNames()
    {
        var data = new TheoryData<string>();
        foreach (var vector in Vectors)
        {
            data.Add(vector.Name);
        }

        return data;
    }

    [Fact]
    [Trait("Rule", "F3")]
    public void The_document_holds_the_vectors_it_promises()
    {
        Assert.True(Vectors.Count >= 3);
        Assert.Contains(Vectors, v => v.Plaintext.Length == 0);
        Assert.Contains(Vectors, v => v.Plaintext.Length == 1);
        Assert.Contains(Vectors, v => v.Plaintext.Length == (2 * v.SegmentSize) + 1);
        Assert.Contains(Vectors, v => v.Plaintext.Length == 2 * v.SegmentSize);
    }

    [Theory]
    [Trait("Rule", "F3")]
    [MemberData(nameof(VectorNames))]
    public async Task Encrypting_with_the_vectors_salt_and_nonce_prefix_gives_the_documented_file_byte_for_byte(string name)
    {
        var v = Vectors.Single(x => x.Name == name);
        using var output = new MemoryStream();
        await BackupFileWriter.EncryptAsync(new MemoryStream(v.Plaintext), output, v.DataKey, v.SegmentSize, v.Salt, v.NoncePrefix, BackupFileCodec.MaximumSegmentCount, CancellationToken.None);
        Assert.Equal(Convert.ToHexStringLower(v.File), Convert.ToHexStringLower(output.ToArray()));
    }

    [Theory]
    [Trait("Rule", "F3")]
    [Trait("Rule", "F4")]
    [MemberData(nameof(VectorNames))]
    public async Task The_documented_file_decrypts_and_verifies_to_the_documented_plaintext(string name)
    {
        var v = Vectors.Single(x => x.Name == name);
        using var output = new MemoryStream();
        Assert.Equal(v.Plaintext.Length, await BackupFileCodec.DecryptAsync(new MemoryStream(v.File), output, v.DataKey));
        Assert.Equal(v.Plaintext, output.ToArray());
        Assert.Equal(v.Plaintext.Length, await BackupFileCodec.VerifyAsync(new MemoryStream(v.File), v.DataKey));
    }

    /// <summary>
    /// The document's rule for cut files: 16 bytes or more left after the last whole segment are read as the final
    /// segment and fail (<c>FileCorrupt</c>); 0 to 15 left are <c>FileTruncated</c>. So a one-byte cut is
    /// <c>FileCorrupt</c> unless the final segment is the empty one.
    /// </summary>
    [Theory]
    [Trait("Rule", "F2")]
    [Trait("Rule", "F3")]
    [MemberData(nameof(VectorNames))]
    public async Task A_cut_file_is_FileTruncated_only_when_fewer_than_16_bytes_follow_its_last_whole_segment(string name)
    {
        var v = Vectors.Single(x => x.Name == name);
        var fullSegment = v.SegmentSize + SegmentCipher.TagSize;
        for (var cut = 1; cut <= fullSegment + SegmentCipher.TagSize && cut <= v.File.Length - BackupFileHeader.Size; cut++)
        {
            var left = (v.File.Length - cut - BackupFileHeader.Size) % fullSegment;
            var expected = left < SegmentCipher.TagSize ? BackupErrorCode.FileTruncated : BackupErrorCode.FileCorrupt;
            var error = await Assert.ThrowsAsync<BackupFileException>(() => BackupFileCodec.VerifyAsync(new MemoryStream(v.File[..^cut]), v.DataKey));
            Assert.True(expected == error.Code, $"cut by {cut} ({left} bytes after the last whole segment): {error.Code}, expected {expected}");
        }

        var oneByte = await Assert.ThrowsAsync<BackupFileException>(() => BackupFileCodec.VerifyAsync(new MemoryStream(v.File[..^1]), v.DataKey));
        Assert.Equal(v.Plaintext.Length % v.SegmentSize == 0 ? BackupErrorCode.FileTruncated : BackupErrorCode.FileCorrupt, oneByte.Code);
    }

    [Fact]
    [Trait("Rule", "F3")]
    public void The_documented_header_layout_matches_the_vectors()
    {
        var v = Vectors[0];
        Assert.Equal("KMSBKF"u8.ToArray(), v.File[..6]);
        Assert.Equal(1, v.File[6]);
        Assert.Equal(new byte[] { 0, 0, 0, 64 }, v.File[7..11]);
        Assert.Equal(v.Salt, v.File[11..43]);
        Assert.Equal(v.NoncePrefix, v.File[43..50]);
        Assert.Equal(BackupFileHeader.Size + SegmentCipher.TagSize, v.File.Length);
    }

    private static List<Vector> Parse(string markdown)
    {
        var vectors = new List<Vector>();
        var blocks = markdown.Split("```vector", StringSplitOptions.None).Skip(1);
        var names = markdown.Split('\n').Where(l => l.StartsWith("### Vector ", StringComparison.Ordinal)).Select(l => l.Trim()).ToList();
        var n = 0;
        foreach (var block in blocks)
        {
            var body = block[..block.IndexOf("```", StringComparison.Ordinal)];
            var fields = new Dictionary<string, StringBuilder>(StringComparer.Ordinal);
            string? current = null;
            foreach (var rawLine in body.Split('\n'))
            {
                var line = rawLine.TrimEnd('\r');
                if (line.Length == 0)
                {
                    continue;
                }

                if (char.IsWhiteSpace(line[0]) && current is not null)
                {
                    fields[current].Append(line.Trim());
                    continue;
                }

                var colon = line.IndexOf(':', StringComparison.Ordinal);
                current = line[..colon].Trim();
                fields[current] = new StringBuilder(line[(colon + 1)..].Trim());
            }

            byte[] Hex(string field)
            {
                var text = fields[field].ToString();
                return text == "(empty)" ? [] : Convert.FromHexString(text);
            }

            vectors.Add(new Vector(
                names[n++],
                int.Parse(fields["segment size"].ToString(), CultureInfo.InvariantCulture),
                Hex("data key"),
                Hex("salt"),
                Hex("nonce prefix"),
                Hex("plaintext"),
                Hex("file")));
        }

        return vectors;
    }
}
