using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace KmsBackup.Tests.Engine;

// The attacker's side of an upload: the day payload a backup file holds (docs/backup-file-format.md,
// "The payload"), written and read from its public description with no help from the SDK's own code,
// so that tests can craft any payload, valid or not, and encrypt it under a key of their choosing.

public sealed record RawKeyVersion(string? VersionId, long CreatedTicks, byte MaterialTag, byte[]? Material);

public sealed record RawKey(string? Name, string? Id, string? Spec, string? Creator, long CreatedTicks, string? Description, IReadOnlyList<RawKeyVersion> Versions);

public sealed record RawSecretVersion(string? VersionId, long CreatedTicks, byte[] Ciphertext);

public sealed record RawSecret(string? Name, string? KeyId, string? Creator, long CreatedTicks, string? Description, IReadOnlyList<RawSecretVersion> Versions);

public sealed record RawSnapshot(long TakenTicks, string? InstanceId, byte Kind, string? Region, string? Owner, IReadOnlyList<RawKey> Keys, IReadOnlyList<RawSecret> Secrets);

public sealed record RawChange(byte Type, byte Kind, string? Name);

/// <summary>Where a payload's counts and enum bytes are, so that mutations can aim at them.</summary>
public sealed class PayloadLayout
{
    public List<int> Counts { get; } = [];

    public List<int> Enums { get; } = [];

    public List<int> Lengths { get; } = [];
}

/// <summary>One day of backup data as a payload holds it, field by field, with nothing checked.</summary>
public sealed record RawDay(string? SourceBackup, int DayNumber, string? Zone, RawSnapshot Full, RawSnapshot Last, IReadOnlyList<RawChange> Changes)
{
    public static ReadOnlySpan<byte> Magic => "KBDAY001"u8;

    public byte[] Encode(PayloadLayout? layout = null)
    {
        var w = new Writer(layout);
        w.Raw(Magic);
        w.String(SourceBackup);
        w.Int32(DayNumber);
        w.String(Zone);
        w.Snapshot(Full);
        w.Snapshot(Last);
        w.Count(Changes.Count);
        foreach (var change in Changes)
        {
            w.Enum(change.Type);
            w.Enum(change.Kind);
            w.String(change.Name);
        }

        return w.ToArray();
    }

    /// <summary>Reads a payload back, or returns null when its bytes do not follow the layout (no other check).</summary>
    public static RawDay? TryDecode(ReadOnlySpan<byte> bytes)
    {
        var r = new Reader(bytes);
        try
        {
            if (!r.Take(Magic.Length).SequenceEqual(Magic))
            {
                return null;
            }

            var source = r.String();
            var day = r.Int32();
            var zone = r.String();
            var full = r.Snapshot();
            var last = r.Snapshot();
            var changes = new List<RawChange>();
            for (var n = r.Count(); n > 0; n--)
            {
                changes.Add(new RawChange(r.Byte(), r.Byte(), r.String()));
            }

            return r.AtEnd ? new RawDay(source, day, zone, full, last, changes) : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private sealed class Writer(PayloadLayout? layout)
    {
        private readonly ArrayBufferWriter<byte> _bytes = new();

        public byte[] ToArray() => _bytes.WrittenSpan.ToArray();

        public void Raw(ReadOnlySpan<byte> bytes) => _bytes.Write(bytes);

        public void Byte(byte value) => _bytes.Write([value]);

        public void Enum(byte value)
        {
            layout?.Enums.Add(_bytes.WrittenCount);
            Byte(value);
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
                Byte((byte)(value | 0x80));
                value >>= 7;
            }

            Byte((byte)value);
        }

        public void Count(int count)
        {
            layout?.Counts.Add(_bytes.WrittenCount);
            VarUInt((ulong)count);
        }

        public void String(string? value)
        {
            layout?.Lengths.Add(_bytes.WrittenCount);
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
            layout?.Lengths.Add(_bytes.WrittenCount);
            VarUInt((ulong)value.Length);
            Raw(value);
        }

        public void Snapshot(RawSnapshot s)
        {
            Int64(s.TakenTicks);
            String(s.InstanceId);
            Enum(s.Kind);
            String(s.Region);
            String(s.Owner);
            Count(s.Keys.Count);
            foreach (var key in s.Keys)
            {
                String(key.Name);
                String(key.Id);
                String(key.Spec);
                String(key.Creator);
                Int64(key.CreatedTicks);
                String(key.Description);
                Count(key.Versions.Count);
                foreach (var v in key.Versions)
                {
                    String(v.VersionId);
                    Int64(v.CreatedTicks);
                    Enum(v.MaterialTag);
                    if (v.MaterialTag == 1)
                    {
                        Bytes(v.Material ?? []);
                    }
                }
            }

            Count(s.Secrets.Count);
            foreach (var secret in s.Secrets)
            {
                String(secret.Name);
                String(secret.KeyId);
                String(secret.Creator);
                Int64(secret.CreatedTicks);
                String(secret.Description);
                Count(secret.Versions.Count);
                foreach (var v in secret.Versions)
                {
                    String(v.VersionId);
                    Int64(v.CreatedTicks);
                    Bytes(v.Ciphertext);
                }
            }
        }
    }

    private ref struct Reader(ReadOnlySpan<byte> bytes)
    {
        private readonly ReadOnlySpan<byte> _bytes = bytes;
        private int _at;

        public readonly bool AtEnd => _at == _bytes.Length;

        public ReadOnlySpan<byte> Take(int count)
        {
            if (count < 0 || count > _bytes.Length - _at)
            {
                throw new FormatException("past the end");
            }

            var span = _bytes.Slice(_at, count);
            _at += count;
            return span;
        }

        public byte Byte() => Take(1)[0];

        public int Int32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

        public long Int64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

        public ulong VarUInt()
        {
            ulong value = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                var b = Byte();
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80)
                {
                    return value;
                }
            }

            throw new FormatException("varuint too long");
        }

        public int Count()
        {
            var n = VarUInt();
            return n > (ulong)(_bytes.Length - _at) ? throw new FormatException("count past the end") : (int)n;
        }

        public string? String()
        {
            var tagged = VarUInt();
            if (tagged == 0)
            {
                return null;
            }

            if (tagged - 1 > (ulong)(_bytes.Length - _at))
            {
                throw new FormatException("string past the end");
            }

            try
            {
                return new UTF8Encoding(false, true).GetString(Take((int)(tagged - 1)));
            }
            catch (DecoderFallbackException)
            {
                throw new FormatException("bad UTF-8");
            }
        }

        public byte[] Bytes()
        {
            var n = VarUInt();
            return n > (ulong)(_bytes.Length - _at) ? throw new FormatException("bytes past the end") : Take((int)n).ToArray();
        }

        public RawSnapshot Snapshot()
        {
            var taken = Int64();
            var id = String();
            var kind = Byte();
            var region = String();
            var owner = String();
            var keys = new List<RawKey>();
            for (var n = Count(); n > 0; n--)
            {
                var name = String();
                var keyId = String();
                var spec = String();
                var creator = String();
                var created = Int64();
                var description = String();
                var versions = new List<RawKeyVersion>();
                for (var m = Count(); m > 0; m--)
                {
                    var versionId = String();
                    var at = Int64();
                    var tag = Byte();
                    versions.Add(new RawKeyVersion(versionId, at, tag, tag == 1 ? Bytes() : null));
                }

                keys.Add(new RawKey(name, keyId, spec, creator, created, description, versions));
            }

            var secrets = new List<RawSecret>();
            for (var n = Count(); n > 0; n--)
            {
                var name = String();
                var keyId = String();
                var creator = String();
                var created = Int64();
                var description = String();
                var versions = new List<RawSecretVersion>();
                for (var m = Count(); m > 0; m--)
                {
                    versions.Add(new RawSecretVersion(String(), Int64(), Bytes()));
                }

                secrets.Add(new RawSecret(name, keyId, creator, created, description, versions));
            }

            return new RawSnapshot(taken, id, kind, region, owner, keys, secrets);
        }
    }
}

/// <summary>Turns payloads into uploads: encrypted with the public codec under a key the test chooses.</summary>
public static class CraftedFile
{
    public static async Task<byte[]> EncryptAsync(byte[] payload, byte[] dataKey, int segmentSize = BackupFileCodec.DefaultSegmentSize)
    {
        using var file = new MemoryStream();
        await BackupFileCodec.EncryptAsync(new MemoryStream(payload), file, dataKey, segmentSize);
        return file.ToArray();
    }

    public static async Task<byte[]> DecryptAsync(byte[] file, byte[] dataKey)
    {
        using var plain = new MemoryStream();
        await BackupFileCodec.DecryptAsync(new MemoryStream(file), plain, dataKey);
        return plain.ToArray();
    }
}
