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

    /// <summary>The items of a spilled region, in order, each as the bytes the spill file holds for it.</summary>
    internal static List<byte[]> Spilled(UploadedDay day, SpilledItems region)
    {
        using var cursor = day.Items.OpenCursor(region.Start);
        var items = new List<byte[]>();
        for (long i = 0; i < region.Count; i++)
        {
            var item = new byte[checked((int)cursor.ReadVarUInt())];
            cursor.Read(item);
            items.Add(item);
        }

        return items;
    }

    [Property(MaxTest = 100)]
    [Trait("Rule", "F2")]
    public async Task<bool> An_uploaded_item_is_held_in_exactly_the_encoding_a_backup_run_writes(int seed)
    {
        var day = DayGenerator.Generate(seed);
        using var parsed = await DayPayload.ReadAsync(new MemoryStream(day.Encode()), Refused, Path.GetTempPath(), CancellationToken.None);
        foreach (var (raw, held) in new[] { (day.Full, parsed.Full), (day.Last, parsed.Last) })
        {
            Assert.Equal(
                raw.Keys.Select(k => Encoded(w => ItemCodec.Write(w, UploadPropertyTests.ToRecord(k)))).ToList(),
                Spilled(parsed, held.Keys));
            Assert.Equal(
                raw.Secrets.Select(k => Encoded(w => ItemCodec.Write(w, UploadPropertyTests.ToRecord(k)))).ToList(),
                Spilled(parsed, held.Secrets));
        }

        Assert.Equal(day.Changes.Count, parsed.Changes.Count);
        for (var i = 0; i < day.Changes.Count; i++)
        {
            Assert.Equal(((ItemType)day.Changes[i].Type, day.Changes[i].Name, (ChangeKind)day.Changes[i].Kind), (parsed.Changes[i].Type, parsed.Changes[i].Name, parsed.Changes[i].Kind));
        }

        return true;
    }
}
