using FsCheck.Xunit;
using KmsBackup.Repository;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// An upload holds each item in the encoding its tree leaf takes, written field by field as the payload is read
/// (no key material ever lands in an array of its own). It must be exactly the encoding a backup run writes for
/// the same item, or an uploaded day would not share objects with the runs that backed it up, and would not read
/// back as the same records.
/// </summary>
public class DayPayloadEncodingTests
{
    private static BackupFileException Refused(string why) => new(new Refusal(BackupErrorCode.FileCorrupt, "test payload", why, "none"));

    private static byte[] Encoded(Action<RecordWriter> write)
    {
        var w = new RecordWriter();
        write(w);
        return w.ToArray();
    }

    [Property(MaxTest = 100)]
    [Trait("Rule", "F2")]
    public async Task<bool> An_uploaded_item_is_held_in_exactly_the_encoding_a_backup_run_writes(int seed)
    {
        var day = DayGenerator.Generate(seed);
        using var parsed = await DayPayload.ReadAsync(new MemoryStream(day.Encode()), Refused, CancellationToken.None);
        foreach (var (raw, held) in new[] { (day.Full, parsed.Full), (day.Last, parsed.Last) })
        {
            Assert.Equal(raw.Keys.Count, held.Keys.Count);
            Assert.Equal(raw.Secrets.Count, held.Secrets.Count);
            for (var i = 0; i < raw.Keys.Count; i++)
            {
                Assert.Equal(Encoded(w => ItemCodec.Write(w, UploadPropertyTests.ToRecord(raw.Keys[i]))), parsed.Items[held.Keys[i]].ToArray());
            }

            for (var i = 0; i < raw.Secrets.Count; i++)
            {
                Assert.Equal(Encoded(w => ItemCodec.Write(w, UploadPropertyTests.ToRecord(raw.Secrets[i]))), parsed.Items[held.Secrets[i]].ToArray());
            }
        }

        // An item the last point holds unchanged is held once.
        foreach (var item in parsed.Last.Keys.Where(k => day.Full.Keys.Any(f => Encoded(w => ItemCodec.Write(w, UploadPropertyTests.ToRecord(f))).AsSpan().SequenceEqual(parsed.Items[k]))))
        {
            Assert.Contains(item, parsed.Full.Keys);
        }

        return true;
    }
}
