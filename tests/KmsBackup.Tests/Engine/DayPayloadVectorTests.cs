using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// The day payload's test vectors (docs/vectors/day-payload-v1.json, made by eng/day-payload-vectors.py from
/// docs/backup-file-format.md). The success vector is opened and decoded by <see cref="SpecReader"/>, written from
/// the document alone (it shares no code with the SDK's reader or with the other tests' payload helpers); the SDK
/// must then make the same file from the same inputs, import it as an uploaded backup holding the documented items,
/// and download that day again in the documented encoding. Each failure vector must be refused with its code.
/// </summary>
public class DayPayloadVectorTests
{
    private static readonly JsonObject s_vectors = (JsonObject)JsonNode.Parse(System.IO.File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Vectors", "day-payload-v1.json")))!;

    private static JsonObject Success => s_vectors["success"]!.AsObject();

    private static JsonObject Day => Success["day"]!.AsObject();

    private static byte[] Hex(JsonNode? node) => Convert.FromHexString(node!.GetValue<string>());

    public static TheoryData<string> FailureNames()
    {
        var data = new TheoryData<string>();
        foreach (var failure in s_vectors["failures"]!.AsArray())
        {
            data.Add(failure!["name"]!.GetValue<string>());
        }

        return data;
    }

    [Fact]
    [Trait("Rule", "F3")]
    public void The_vector_set_covers_what_the_document_promises()
    {
        Assert.Equal(256, Success["segmentSize"]!.GetValue<int>());
        var codes = s_vectors["failures"]!.AsArray().Select(f => f!["code"]!.GetValue<string>()).ToHashSet();
        Assert.Superset(new HashSet<string> { "WrongFileKey", "InvalidDataKey", "FileCorrupt", "FileTruncated" }, codes);
        Assert.Equal(2, Day["full"]!["keys"]!.AsArray().Count);
        Assert.NotEmpty(Day["last"]!["secrets"]!.AsArray());
        Assert.NotEmpty(Day["changes"]!.AsArray());
    }

    [Fact]
    [Trait("Rule", "F1")]
    [Trait("Rule", "F3")]
    public void A_reader_written_from_the_document_opens_the_file_and_decodes_the_documented_day()
    {
        var payload = SpecReader.OpenFile(Hex(Success["file"]), Hex(Success["dataKey"]));

        Assert.Equal(Convert.ToHexStringLower(Hex(Success["payload"])), Convert.ToHexStringLower(payload));
        var decoded = SpecReader.ReadDay(payload);
        Assert.True(JsonNode.DeepEquals(Day, decoded), $"decoded: {decoded.ToJsonString()}");
    }

    [Fact]
    [Trait("Rule", "F1")]
    [Trait("Rule", "F3")]
    public async Task The_SDK_encrypts_the_documented_payload_to_the_documented_file_byte_for_byte()
    {
        using var output = new MemoryStream();
        await BackupFileWriter.EncryptAsync(
            new MemoryStream(Hex(Success["payload"])), output, Hex(Success["dataKey"]), Success["segmentSize"]!.GetValue<int>(),
            Hex(Success["salt"]), Hex(Success["noncePrefix"]), BackupFileCodec.MaximumSegmentCount, CancellationToken.None);

        Assert.Equal(Convert.ToHexStringLower(Hex(Success["file"])), Convert.ToHexStringLower(output.ToArray()));
    }

    [Fact]
    [Trait("Rule", "F1")]
    [Trait("Rule", "F2")]
    public async Task The_SDK_imports_the_file_with_the_documented_items_and_downloads_the_day_in_the_documented_encoding()
    {
        await using var h = await EngineHarness.CreateAsync();
        var date = DateOnly.ParseExact(Day["date"]!.GetValue<string>(), "yyyy-MM-dd", CultureInfo.InvariantCulture);

        var uploaded = await h.Client.UploadAsync(EngineHarness.Owner, new MemoryStream(Hex(Success["file"])), Hex(Success["dataKey"]), "vector");

        Assert.Equal(BackupKind.Uploaded, uploaded.Kind);
        Assert.Equal(Day["timeZone"]!.GetValue<string>(), uploaded.TimeZone.Id);
        foreach (var which in new[] { "full", "last" })
        {
            var expected = Day[which]!.AsObject();
            using var state = await h.Client.GetStateAtAsync(EngineHarness.Owner, uploaded.Id, DateTimeOffset.Parse(expected["takenAt"]!.GetValue<string>(), CultureInfo.InvariantCulture));
            Assert.True(JsonNode.DeepEquals(expected, SnapshotAsJson(state.Snapshot)), $"{which}: {SnapshotAsJson(state.Snapshot).ToJsonString()}");
        }

        // Downloaded again, the day is the vector's payload byte for byte, but for the source backup ID (now the uploaded backup's).
        using var file = new MemoryStream();
        using var download = await h.Client.DownloadAsync(EngineHarness.Owner, uploaded.Id, date, file);
        using var plain = new MemoryStream();
        await BackupFileCodec.DecryptAsync(new MemoryStream(file.ToArray()), plain, download.DataKey.Span.ToArray());
        var again = SpecReader.ReadDay(plain.ToArray());
        Assert.Equal(uploaded.Id, again["sourceBackupId"]!.GetValue<string>());
        var vectorPayload = Hex(Success["payload"]);
        var afterSource = "KBDAY001"u8.Length + 1 + Encoding.UTF8.GetByteCount(Day["sourceBackupId"]!.GetValue<string>());
        var afterUploadedSource = "KBDAY001"u8.Length + 1 + Encoding.UTF8.GetByteCount(uploaded.Id);
        Assert.Equal(Convert.ToHexStringLower(vectorPayload.AsSpan(afterSource)), Convert.ToHexStringLower(plain.ToArray().AsSpan(afterUploadedSource)));
    }

    [Theory]
    [Trait("Rule", "F2")]
    [MemberData(nameof(FailureNames))]
    public async Task Each_failure_vector_is_refused_by_the_upload_with_its_documented_code(string name)
    {
        var failure = s_vectors["failures"]!.AsArray().Single(f => f!["name"]!.GetValue<string>() == name)!;
        await using var h = await EngineHarness.CreateAsync();
        var before = UploadChecks.ObjectKeys(h);

        var error = await Assert.ThrowsAnyAsync<BackupException>(() =>
            h.Client.UploadAsync(EngineHarness.Owner, new MemoryStream(Hex(failure["file"])), Hex(failure["dataKey"]), "vector"));

        Assert.Equal(failure["code"]!.GetValue<string>(), error.Code.ToString());
        Assert.Equal(before, UploadChecks.ObjectKeys(h));
        Assert.Empty(await h.Client.ListBackupsAsync(EngineHarness.Owner).ToListAsync());
    }

    [Theory]
    [Trait("Rule", "F3")]
    [MemberData(nameof(FailureNames))]
    public async Task Each_failure_vector_of_the_container_gets_its_code_from_the_codec_and_from_the_document_reader(string name)
    {
        var failure = s_vectors["failures"]!.AsArray().Single(f => f!["name"]!.GetValue<string>() == name)!;
        var code = failure["code"]!.GetValue<string>();
        var file = Hex(failure["file"]);
        var key = Hex(failure["dataKey"]);

        // A payload refusal comes from the upload's checks of the day, not from the container: the file itself opens.
        var payloadRefusal = name == "invalid payload";
        var specCode = Record.Exception(() => SpecReader.OpenFile(file, key)) is SpecReader.Refused refused ? refused.Code : null;
        Assert.Equal(payloadRefusal ? null : code, specCode);
        var error = await Record.ExceptionAsync(() => BackupFileCodec.VerifyAsync(new MemoryStream(file), key));
        Assert.Equal(payloadRefusal ? null : code, (error as BackupException)?.Code.ToString());
    }

    /// <summary>An SDK snapshot in the vector's JSON shape (docs/vectors/day-payload-v1.json), for comparison.</summary>
    private static JsonObject SnapshotAsJson(InstanceSnapshot snapshot) => new()
    {
        ["takenAt"] = SpecReader.Iso(snapshot.TakenAt.UtcTicks),
        ["instanceId"] = snapshot.Source.InstanceId,
        ["instanceKind"] = snapshot.Source.Kind == InstanceKind.Hardware ? "hardware" : "software",
        ["region"] = snapshot.Source.Region,
        ["ownerAccount"] = snapshot.Source.OwnerAccount,
        ["keys"] = new JsonArray([.. snapshot.Keys.Select(k => (JsonNode)new JsonObject
        {
            ["name"] = k.Name,
            ["id"] = k.Id,
            ["spec"] = k.Spec,
            ["creator"] = k.CreatorAccount,
            ["createdAt"] = SpecReader.Iso(k.CreatedAt.UtcTicks),
            ["description"] = k.Description,
            ["versions"] = new JsonArray([.. k.Versions.Select(v => (JsonNode)new JsonObject
            {
                ["id"] = v.VersionId,
                ["createdAt"] = SpecReader.Iso(v.CreatedAt.UtcTicks),
                ["material"] = v.Material is null ? null : Convert.ToHexStringLower(v.Material.Span),
            })]),
        })]),
        ["secrets"] = new JsonArray([.. snapshot.Secrets.Select(s => (JsonNode)new JsonObject
        {
            ["name"] = s.Name,
            ["encryptingKeyId"] = s.EncryptionKeyId,
            ["creator"] = s.CreatorAccount,
            ["createdAt"] = SpecReader.Iso(s.CreatedAt.UtcTicks),
            ["description"] = s.Description,
            ["versions"] = new JsonArray([.. s.Versions.Select(v => (JsonNode)new JsonObject
            {
                ["id"] = v.VersionId,
                ["createdAt"] = SpecReader.Iso(v.CreatedAt.UtcTicks),
                ["ciphertext"] = Convert.ToHexStringLower(v.Ciphertext.Span),
            })]),
        })]),
    };

    /// <summary>
    /// A reader of backup files and their day payloads written from docs/backup-file-format.md alone, with the BCL's
    /// HKDF and AES-GCM: "Layout", "Derivations" and "Reading" for the file, "The payload" for the day. It decodes
    /// into the vector file's JSON shape and checks only what it needs to decode; the upload's checks of the day are
    /// the SDK's.
    /// </summary>
    private static class SpecReader
    {
        private const int HeaderSize = 98;
        private const int TagSize = 16;

        public sealed class Refused(string code) : Exception(code)
        {
            public string Code { get; } = code;
        }

        public static byte[] OpenFile(byte[] file, byte[] dataKey)
        {
            if (dataKey.Length != 32)
            {
                throw new Refused("InvalidDataKey");
            }

            if (file.Length < HeaderSize)
            {
                throw new Refused("FileTruncated");
            }

            var header = file.AsSpan(0, HeaderSize);
            if (!header[..6].SequenceEqual("KMSBKF"u8) || !SHA256.HashData(header[..82])[..16].AsSpan().SequenceEqual(header[82..98]))
            {
                throw new Refused("FileCorrupt");
            }

            var segmentSize = (int)BinaryPrimitives.ReadUInt32BigEndian(header[7..11]);
            var salt = header[11..43].ToArray();
            var commitment = HKDF.DeriveKey(HashAlgorithmName.SHA256, dataKey, 32, salt, "KmsBackup backup file v1 key commitment"u8.ToArray());
            if (!CryptographicOperations.FixedTimeEquals(commitment, header[50..82]))
            {
                throw new Refused("WrongFileKey");
            }

            using var aes = new AesGcm(HKDF.DeriveKey(HashAlgorithmName.SHA256, dataKey, 32, salt, "KmsBackup backup file v1 segment key"u8.ToArray()), TagSize);
            var plaintext = new List<byte>();
            var rest = file.AsSpan(HeaderSize);
            for (uint index = 0; ; index++)
            {
                var segment = rest[..Math.Min(segmentSize + TagSize, rest.Length)];
                if (segment.Length < TagSize)
                {
                    throw new Refused("FileTruncated");
                }

                var final = segment.Length < segmentSize + TagSize;
                var nonce = new byte[12];
                header[43..50].CopyTo(nonce);
                BinaryPrimitives.WriteUInt32BigEndian(nonce.AsSpan(7), index);
                nonce[11] = final ? (byte)1 : (byte)0;
                var plain = new byte[segment.Length - TagSize];
                try
                {
                    aes.Decrypt(nonce, segment[..^TagSize], segment[^TagSize..], plain, header);
                }
                catch (AuthenticationTagMismatchException)
                {
                    throw new Refused("FileCorrupt");
                }

                plaintext.AddRange(plain);
                rest = rest[segment.Length..];
                if (final)
                {
                    return [.. plaintext];
                }
            }
        }

        public static JsonObject ReadDay(byte[] payload)
        {
            var r = new Cursor(payload);
            Assert.Equal("KBDAY001"u8.ToArray(), r.Take(8).ToArray());
            var day = new JsonObject
            {
                ["sourceBackupId"] = r.String(),
                ["date"] = DateOnly.FromDayNumber(r.Int32()).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                ["timeZone"] = r.String(),
                ["full"] = Point(r),
                ["last"] = Point(r),
            };
            var changes = new JsonArray();
            for (var n = r.VarUInt(); n > 0; n--)
            {
                changes.Add(new JsonObject
                {
                    ["type"] = r.Byte() switch { 1 => "key", 2 => "secret", var b => throw new FormatException($"item type {b}") },
                    ["kind"] = r.Byte() switch
                    {
                        1 => "added",
                        2 => "deleted",
                        4 => "rotated",
                        8 => "metadata changed",
                        12 => "rotated and metadata changed",
                        var b => throw new FormatException($"change kind {b}"),
                    },
                    ["name"] = r.String(),
                });
            }

            day["changes"] = changes;
            Assert.True(r.AtEnd, "bytes follow the changes");
            return day;
        }

        public static string Iso(long ticks) =>
            new DateTime(ticks, DateTimeKind.Utc).ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture);

        private static JsonObject Point(Cursor r)
        {
            var point = new JsonObject
            {
                ["takenAt"] = Iso(r.Int64()),
                ["instanceId"] = r.String(),
                ["instanceKind"] = r.Byte() switch { 1 => "software", 2 => "hardware", var b => throw new FormatException($"instance kind {b}") },
                ["region"] = r.String(),
                ["ownerAccount"] = r.String(),
            };
            var keys = new JsonArray();
            for (var n = r.VarUInt(); n > 0; n--)
            {
                var key = new JsonObject
                {
                    ["name"] = r.String(),
                    ["id"] = r.String(),
                    ["spec"] = r.String(),
                    ["creator"] = r.String(),
                    ["createdAt"] = Iso(r.Int64()),
                    ["description"] = r.String(),
                };
                var versions = new JsonArray();
                for (var v = r.VarUInt(); v > 0; v--)
                {
                    versions.Add(new JsonObject
                    {
                        ["id"] = r.String(),
                        ["createdAt"] = Iso(r.Int64()),
                        ["material"] = r.Byte() switch { 0 => null, 1 => Convert.ToHexStringLower(r.Bytes()), var b => throw new FormatException($"material tag {b}") },
                    });
                }

                key["versions"] = versions;
                keys.Add(key);
            }

            point["keys"] = keys;
            var secrets = new JsonArray();
            for (var n = r.VarUInt(); n > 0; n--)
            {
                var secret = new JsonObject
                {
                    ["name"] = r.String(),
                    ["encryptingKeyId"] = r.String(),
                    ["creator"] = r.String(),
                    ["createdAt"] = Iso(r.Int64()),
                    ["description"] = r.String(),
                };
                var versions = new JsonArray();
                for (var v = r.VarUInt(); v > 0; v--)
                {
                    versions.Add(new JsonObject
                    {
                        ["id"] = r.String(),
                        ["createdAt"] = Iso(r.Int64()),
                        ["ciphertext"] = Convert.ToHexStringLower(r.Bytes()),
                    });
                }

                secret["versions"] = versions;
                secrets.Add(secret);
            }

            point["secrets"] = secrets;
            return point;
        }

        private sealed class Cursor(byte[] bytes)
        {
            private int _at;

            public bool AtEnd => _at == bytes.Length;

            public ReadOnlySpan<byte> Take(int count)
            {
                var span = bytes.AsSpan(_at, count);
                _at += count;
                return span;
            }

            public byte Byte() => Take(1)[0];

            public int Int32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

            public long Int64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

            public ulong VarUInt()
            {
                ulong value = 0;
                for (var shift = 0; ; shift += 7)
                {
                    var b = Byte();
                    value |= (ulong)(b & 0x7F) << shift;
                    if (b < 0x80)
                    {
                        return value;
                    }
                }
            }

            public string? String()
            {
                var tagged = VarUInt();
                return tagged == 0 ? null : Encoding.UTF8.GetString(Take(checked((int)(tagged - 1))));
            }

            public byte[] Bytes() => Take(checked((int)VarUInt())).ToArray();
        }
    }
}
