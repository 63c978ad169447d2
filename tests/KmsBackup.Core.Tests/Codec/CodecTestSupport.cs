namespace KmsBackup.Tests.Codec;

internal static class CodecTestSupport
{
    /// <summary>A small segment size so that multi-segment files stay small and tests fast.</summary>
    public const int SmallSegment = 64;

    public static byte[] Key(byte seed)
    {
        var key = new byte[BackupFileCodec.DataKeySize];
        for (var i = 0; i < key.Length; i++)
        {
            key[i] = (byte)(seed + i);
        }

        return key;
    }

    public static byte[] Plaintext(int length, int seed = 0)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static byte[] Encrypt(byte[] plaintext, byte[] key, int segmentSize = SmallSegment)
    {
        using var output = new MemoryStream();
        var written = BackupFileCodec.EncryptAsync(new MemoryStream(plaintext), output, key, segmentSize).GetAwaiter().GetResult();
        Assert.Equal(output.Length, written);
        return output.ToArray();
    }

    public static byte[] Decrypt(byte[] file, byte[] key)
    {
        using var output = new MemoryStream();
        var length = BackupFileCodec.DecryptAsync(new MemoryStream(file), output, key).GetAwaiter().GetResult();
        Assert.Equal(output.Length, length);
        return output.ToArray();
    }

    /// <summary>
    /// The file is refused by DecryptAsync, VerifyAsync, the decrypting stream and the in-memory Decrypt and Verify with the same typed error
    /// (code, message and segment), and the in-memory Decrypt leaves no plaintext in its destination; returns the code.
    /// </summary>
    public static BackupErrorCode Refusal(byte[] file, byte[] key)
    {
        var decrypt = Assert.ThrowsAsync<BackupFileException>(() => BackupFileCodec.DecryptAsync(new MemoryStream(file), Stream.Null, key)).GetAwaiter().GetResult();
        var verify = Assert.ThrowsAsync<BackupFileException>(() => BackupFileCodec.VerifyAsync(new MemoryStream(file), key)).GetAwaiter().GetResult();
        var destination = new byte[BackupFileCodec.GetMaximumPlaintextLength(file.Length)];
        destination.AsSpan().Fill(0xA5);
        var spanDecrypt = Assert.Throws<BackupFileException>(() => BackupFileCodec.Decrypt(file, destination, key));
        var spanVerify = Assert.Throws<BackupFileException>(() => BackupFileCodec.Verify(file, key));
        using var stream = BackupFileCodec.CreateDecryptingStream(new MemoryStream(file), key);
        var streamed = Assert.Throws<BackupFileException>(() => stream.CopyTo(Stream.Null));
        Assert.Same(streamed, Assert.Throws<BackupFileException>(() => stream.ReadByte()));
        foreach (var other in new[] { verify, spanDecrypt, spanVerify, streamed })
        {
            Assert.Equal(decrypt.Code, other.Code);
            Assert.Equal(decrypt.Message, other.Message);
            Assert.Equal(decrypt.Segment, other.Segment);
        }

        // A header refusal comes before anything is written; a segment refusal zeroes what the call wrote, so the
        // destination is zeros (what was wiped) followed by the fill bytes (what was never touched).
        var wiped = destination.AsSpan().IndexOfAnyExcept((byte)0);
        if (decrypt.Segment is null)
        {
            Assert.Equal(destination.Length == 0 ? -1 : 0, wiped);
        }

        Assert.True(wiped < 0 || !destination.AsSpan(wiped).ContainsAnyExcept((byte)0xA5), "plaintext left in the destination after a refusal");
        Assert.False(string.IsNullOrWhiteSpace(decrypt.Remedy));
        Assert.DoesNotContain(Convert.ToHexString(key), decrypt.Message, StringComparison.OrdinalIgnoreCase);
        return decrypt.Code;
    }

    /// <summary>Segment <paramref name="index"/> of a file of small segments: its offset and stored length.</summary>
    public static (int Offset, int Length) Segment(byte[] file, int index, int segmentSize = SmallSegment)
    {
        var stored = segmentSize + SegmentCipher.TagSize;
        var offset = BackupFileHeader.Size + (index * stored);
        return (offset, Math.Min(stored, file.Length - offset));
    }

    public static int SegmentCount(byte[] file, int segmentSize = SmallSegment) =>
        ((file.Length - BackupFileHeader.Size) / (segmentSize + SegmentCipher.TagSize)) + 1;
}
