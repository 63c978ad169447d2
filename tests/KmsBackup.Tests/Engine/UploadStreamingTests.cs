using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Xunit.Abstractions;

namespace KmsBackup.Tests.Engine;

/// <summary>A large valid day written straight to a stream, item by item, so that a test never holds it.</summary>
public static class LargeDay
{
    /// <summary>
    /// Writes a day whose full backup and last recovery point both hold <paramref name="count"/> items of
    /// <paramref name="valueBytes"/> bytes of value each: keys with that much material, or secrets with that much
    /// ciphertext. Returns the payload's length.
    /// </summary>
    public static long Write(Stream output, int count, int valueBytes, bool secrets)
    {
        var w = new StreamEncoder(output);
        var day = new DateOnly(2026, 4, 28);
        var taken = new DateTimeOffset(2026, 4, 28, 0, 5, 0, TimeSpan.Zero).UtcTicks;
        w.Raw("KBDAY001"u8);
        w.String("bka-large");
        w.Int32(day.DayNumber);
        w.String("UTC");
        for (var point = 0; point < 2; point++)
        {
            w.Int64(taken + (point * TimeSpan.TicksPerHour));
            w.String("kst-large");
            w.Raw([(byte)InstanceKind.Software]);
            w.String(EngineHarness.Region);
            w.String(EngineHarness.Owner);
            w.VarUInt(secrets ? 0UL : (ulong)count);
            var value = new byte[valueBytes];
            for (var i = 0; !secrets && i < count; i++)
            {
                Fill(value, i);
                w.String(string.Create(CultureInfo.InvariantCulture, $"key-{i:D9}"));
                w.String(string.Create(CultureInfo.InvariantCulture, $"id-{i:D9}"));
                w.String("Aliyun_AES_256");
                w.String(EngineHarness.Owner);
                w.Int64(taken);
                w.String(null);
                w.VarUInt(1);
                w.String("v1");
                w.Int64(taken);
                w.Raw([1]);
                w.Bytes(value);
            }

            w.VarUInt(secrets ? (ulong)count : 0UL);
            for (var i = 0; secrets && i < count; i++)
            {
                Fill(value, i);
                w.String(string.Create(CultureInfo.InvariantCulture, $"secret-{i:D9}"));
                w.String("id-000000000");
                w.String(EngineHarness.Owner);
                w.Int64(taken);
                w.String(null);
                w.VarUInt(1);
                w.String("s1");
                w.Int64(taken);
                w.Bytes(value);
            }
        }

        w.VarUInt(0);
        return w.Length;
    }

    private static void Fill(byte[] value, int seed)
    {
        for (var j = 0; j < value.Length; j++)
        {
            value[j] = (byte)((seed * 31) + j);
        }
    }

    private sealed class StreamEncoder(Stream output)
    {
        public long Length { get; private set; }

        public void Raw(ReadOnlySpan<byte> bytes)
        {
            output.Write(bytes);
            Length += bytes.Length;
        }

        public void Int32(int value)
        {
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(b, value);
            Raw(b);
        }

        public void Int64(long value)
        {
            Span<byte> b = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(b, value);
            Raw(b);
        }

        public void VarUInt(ulong value)
        {
            while (value >= 0x80)
            {
                Raw([(byte)(value | 0x80)]);
                value >>= 7;
            }

            Raw([(byte)value]);
        }

        public void String(string? value)
        {
            if (value is null)
            {
                VarUInt(0);
                return;
            }

            var utf8 = Encoding.UTF8.GetBytes(value);
            VarUInt((ulong)utf8.Length + 1);
            Raw(utf8);
        }

        public void Bytes(byte[] value)
        {
            VarUInt((ulong)value.Length);
            Raw(value);
        }
    }
}

/// <summary>Issue 13, finding 2: an upload is read as a stream, in memory bounded by a constant, and size refusals are typed.</summary>
public sealed class UploadStreamingTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), $"kmsbackup-upload-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_folder))
        {
            Directory.Delete(_folder, recursive: true);
        }
    }

    /// <summary>A stream that cannot seek, as a network upload is.</summary>
    private sealed class ForwardOnly(Stream inner) : Stream
    {
        public long BytesRead { get; private set; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var read = inner.Read(buffer, offset, count);
            BytesRead += read;
            return read;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task A_file_larger_than_the_maximum_is_refused_as_FileTooLarge_before_anything_is_written()
    {
        var h = await EngineHarness.CreateAsync(o => o.MaximumUploadSize = 2048);
        await using var _ = h;
        var key = RandomNumberGenerator.GetBytes(32);
        var day = UploadAttackTests.ValidDay();
        var large = day with { Full = day.Full with { Secrets = [.. day.Full.Secrets, new RawSecret("zz", "key-a", EngineHarness.Owner, day.Full.TakenTicks, new string('d', 3000), [new RawSecretVersion("s1", day.Full.TakenTicks, [1])])] } };
        large = large with { Last = large.Last with { Secrets = large.Full.Secrets } };
        var file = await CraftedFile.EncryptAsync(large.Encode(), key);
        var before = UploadChecks.ObjectKeys(h);

        // A stream that knows its length is refused before it is read.
        var seekable = new MemoryStream(file);
        var known = await Assert.ThrowsAsync<BackupFileException>(() => h.Client.UploadAsync(EngineHarness.Owner, seekable, key, "too large"));
        Assert.Equal(BackupErrorCode.FileTooLarge, known.Code);
        Assert.Contains("too large", known.Message, StringComparison.Ordinal);
        Assert.Contains("2,048", known.Message, StringComparison.Ordinal);
        Assert.Equal(0, seekable.Position);

        // One that does not is refused as soon as it has given more than the limit.
        var forward = new ForwardOnly(new MemoryStream(file));
        var unknown = await Assert.ThrowsAsync<BackupFileException>(() => h.Client.UploadAsync(EngineHarness.Owner, forward, key, "too large"));
        Assert.Equal(BackupErrorCode.FileTooLarge, unknown.Code);
        Assert.InRange(forward.BytesRead, 2049, file.Length);

        Assert.Equal(before, UploadChecks.ObjectKeys(h));

        // Within the limit, the same client takes a file from a stream that cannot seek.
        var small = await CraftedFile.EncryptAsync(day.Encode(), key);
        Assert.True(small.Length < 2048);
        var uploaded = await h.Client.UploadAsync(EngineHarness.Owner, new ForwardOnly(new MemoryStream(small)), key, "small enough");
        await UploadPropertyTests.AssertViewsEqualAsync(h, uploaded, day);
    }

    [Fact]
    [Trait("Rule", "F2")]
    public void The_maximum_upload_size_is_validated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new BackupClientOptions { MaximumUploadSize = 1023 }.Validate());
        Assert.Equal(4L << 30, new BackupClientOptions().MaximumUploadSize);
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task An_item_whose_key_material_alone_changed_between_the_full_and_the_last_point_keeps_each_points_material()
    {
        var h = await EngineHarness.CreateAsync();
        await using var _ = h;
        var key = RandomNumberGenerator.GetBytes(32);
        var day = UploadAttackTests.ValidDay();

        // "beta" keeps its ID, metadata and versions but not its material: not the same item, so not shared.
        var beta = day.Last.Keys[1];
        var changed = day with { Last = day.Last with { Keys = [day.Last.Keys[0], beta with { Versions = [beta.Versions[0] with { Material = [4, 5, 7] }] }, day.Last.Keys[2]] } };
        changed = changed with { Changes = [.. changed.Changes, new RawChange((byte)ItemType.Key, (byte)ChangeKind.Rotated, "beta")] };
        var uploaded = await h.Client.UploadAsync(EngineHarness.Owner, new MemoryStream(await CraftedFile.EncryptAsync(changed.Encode(), key)), key, "material changed");
        await UploadPropertyTests.AssertViewsEqualAsync(h, uploaded, changed);
    }

    /// <summary>
    /// Memory of an upload, measured in a separate process (its peak working set, and the managed heap sampled
    /// every 2 ms), for a file of a few large items and one of many small items, each at two sizes: 120 MiB and
    /// 480 MiB in CI (KMSBACKUP_UPLOAD_MEMORY_MB sets the larger, e.g. 2000). The peak must stay under the bound
    /// the README states, whatever the size, and the larger upload's working set must be the smaller one's.
    /// </summary>
    [Fact]
    [Trait("Rule", "F2")]
    [Trait("Category", "Slow")]
    public async Task Upload_memory_is_bounded_by_a_constant_not_by_the_file()
    {
        var largeMegabytes = int.TryParse(Environment.GetEnvironmentVariable("KMSBACKUP_UPLOAD_MEMORY_MB"), CultureInfo.InvariantCulture, out var mb) ? mb : 480;
        var results = new List<Measurement>();
        foreach (var megabytes in new[] { SmallMegabytes, largeMegabytes })
        {
            var fileBytes = (long)megabytes << 20;

            // Few items: secrets of 256 KiB (the largest value a file may hold). Many items: keys of 64 bytes of
            // material (137 bytes in the file).
            results.Add(await MeasureAsync($"few-{megabytes}", (int)(fileBytes / 2 / (256 << 10)), 256 << 10, secrets: true));
            results.Add(await MeasureAsync($"many-{megabytes}", (int)(fileBytes / 2 / 137), 64, secrets: false));
        }

        foreach (var m in results)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{m.Shape}: {m.Items:N0} items, file {Mib(m.FileBytes)} MiB, {m.Seconds:F1} s; working set {Mib(m.StartWorkingSet)} -> peak {Mib(m.PeakWorkingSet)} MiB (+{Mib(m.PeakWorkingSet - m.StartWorkingSet)}); managed heap {Mib(m.BaselineManaged)} -> peak {Mib(m.PeakManaged)} MiB (+{Mib(m.PeakManaged - m.BaselineManaged)}), of which kept after the upload {Mib(m.Retained)} MiB and the upload's own {Mib(m.Transient)} MiB; {Mib(m.Allocated)} MiB allocated in all, {m.Gen2} full collections"));
        }

        foreach (var m in results)
        {
            Assert.True(m.Transient < UploadMemoryBound, $"{m.Shape}: the upload's own managed peak +{Mib(m.Transient)} MiB, over the bound of {Mib(UploadMemoryBound)} MiB");

            // What the client keeps is the repository's object index, grown by the objects written: one leaf per
            // 32 items on average, and a few hundred bytes per object at most (many-2000 measured 124 bytes).
            Assert.True(m.Retained < (m.Items / 32 * 512L) + (8L << 20), $"{m.Shape}: {Mib(m.Retained)} MiB kept after the upload");
        }

        // Four times the file (or more), not four times the memory: the larger upload's working set is the smaller's
        // (less the object index it grows, which the client keeps), within what the collector's timing moves it.
        foreach (var shape in new[] { "few", "many" })
        {
            var small = results.Single(m => m.Shape == $"{shape}-{SmallMegabytes}");
            var large = results.Single(m => m.Shape == $"{shape}-{largeMegabytes}");
            Assert.True(
                large.PeakWorkingSet - large.StartWorkingSet - Math.Max(0, large.Retained) < small.PeakWorkingSet - small.StartWorkingSet + (24L << 20),
                $"{shape}: {Mib(large.FileBytes)} MiB file +{Mib(large.PeakWorkingSet - large.StartWorkingSet)} MiB working set ({Mib(large.Retained)} MiB kept), {Mib(small.FileBytes)} MiB file +{Mib(small.PeakWorkingSet - small.StartWorkingSet)} MiB");
        }
    }

    /// <summary>
    /// The smaller file: large enough that the upload's buffers have all reached their size (the pack writer's
    /// buffer its 8 MiB and more, the key-ID run its 128 Ki entries), so that a larger file can only add what grows with it.
    /// </summary>
    private const int SmallMegabytes = 120;

    /// <summary>
    /// The bound the README states for an upload's managed heap above what the client held before it: the tree
    /// writer's leaf (at most 8 MiB of items plus one item of at most 1 MiB, in a buffer that grows by doubling:
    /// 16 MiB) and its pack (8 MiB plus one object, 32 MiB by doubling), the key-ID sort's run (3 MiB, and 3 MiB of pages when it merges), the
    /// decrypting stream's segments, the spill file's pages and the parse buffers (about 2 MiB), and the
    /// collector's slack. The day's changes add their own encoded size twice over (at most 32 MiB each way); these
    /// files have none.
    /// </summary>
    private const long UploadMemoryBound = 96L << 20;

    private static long Mib(long bytes) => bytes >> 20;

    private sealed record Measurement(string Shape, int Items, long FileBytes, double Seconds, long StartWorkingSet, long PeakWorkingSet, long BaselineManaged, long PeakManaged, long Allocated, int Gen2, long RetainedManaged)
    {
        /// <summary>What the client keeps after the upload: the repository's object index, grown by the objects the upload wrote.</summary>
        public long Retained => RetainedManaged - BaselineManaged;

        /// <summary>The upload's own peak: the managed peak above the baseline, less what the client keeps.</summary>
        public long Transient => PeakManaged - BaselineManaged - Math.Max(0, Retained);
    }

    private async Task<Measurement> MeasureAsync(string shape, int items, int valueBytes, bool secrets)
    {
        var folder = Path.Combine(_folder, shape);
        Directory.CreateDirectory(folder);
        var payload = Path.Combine(folder, "payload");
        var file = Path.Combine(folder, "day.kbf");
        var keyFile = Path.Combine(folder, "data.key");
        var key = RandomNumberGenerator.GetBytes(32);
        await File.WriteAllBytesAsync(keyFile, key);
        await using (var plain = new FileStream(payload, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            LargeDay.Write(plain, items, valueBytes, secrets);
        }

        await using (var plain = File.OpenRead(payload))
        await using (var encrypted = new FileStream(file, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            await BackupFileCodec.EncryptAsync(plain, encrypted, key);
        }

        File.Delete(payload);
        using var process = TestHostProcess.Start("upload", Path.Combine(folder, "store"), Path.Combine(folder, "kms"), Path.Combine(folder, "repository.key"), file, keyFile);
        var stdout = await process.StandardOutput.ReadToEndAsync();
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"{shape}: exit {process.ExitCode}: {stdout} {stderr}");
        var f = stdout.Trim().Split(' ');
        Assert.Equal("uploaded", f[0]);
        static long L(string s) => long.Parse(s, CultureInfo.InvariantCulture);
        return new Measurement(shape, items, L(f[2]), double.Parse(f[3], CultureInfo.InvariantCulture), L(f[4]), L(f[5]), L(f[6]), L(f[7]), L(f[8]), int.Parse(f[9], CultureInfo.InvariantCulture), L(f[10]));
    }
}
