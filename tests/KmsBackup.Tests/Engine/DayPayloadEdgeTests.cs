using System.Security.Cryptography;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// The edges docs/backup-file-format.md ("The payload") states for an upload: bounds are inclusive, a blank required
/// string is one of Unicode white space only, an optional description may be empty and stays apart from an absent
/// one, a software key's version may carry no material, values are never empty, zone IDs are names and not paths,
/// and a varuint longer than its shortest form is read. Built on <see cref="UploadAttackTests.ValidDay"/>.
/// </summary>
public class DayPayloadEdgeTests
{
    private static async Task<(EngineHarness Harness, Exception? Error, BackupDetails? Uploaded)> UploadAsync(byte[] payload)
    {
        var h = await EngineHarness.CreateAsync();
        var key = RandomNumberGenerator.GetBytes(32);
        var file = await CraftedFile.EncryptAsync(payload, key);
        try
        {
            return (h, null, await h.Client.UploadAsync(EngineHarness.Owner, new MemoryStream(file), key, "edge"));
        }
        catch (BackupFileException e)
        {
            return (h, e, null);
        }
    }

    private static async Task AssertAcceptedAsync(RawDay day)
    {
        var (h, error, uploaded) = await UploadAsync(day.Encode());
        await using var _ = h;
        Assert.Null(error);
        Assert.Equal(BackupKind.Uploaded, uploaded!.Kind);
    }

    private static async Task AssertRefusedAsync(RawDay day)
    {
        var (h, error, _) = await UploadAsync(day.Encode());
        await using var _h = h;
        Assert.Equal(BackupErrorCode.FileCorrupt, Assert.IsType<BackupFileException>(error).Code);
    }

    private static RawDay WithFullKey(int index, Func<RawKey, RawKey> change)
    {
        var day = UploadAttackTests.ValidDay();
        var keys = day.Full.Keys.ToList();
        keys[index] = change(keys[index]);
        return day with { Full = day.Full with { Keys = keys } };
    }

    [Theory]
    [Trait("Rule", "F2")]
    [InlineData("name", 4096, true)]
    [InlineData("name", 4097, false)]
    [InlineData("description", 65_536, true)]
    [InlineData("description", 65_537, false)]
    [InlineData("material", 262_144, true)]
    [InlineData("material", 262_145, false)]
    [InlineData("material", 0, false)]
    public async Task Bounds_are_inclusive_and_values_are_never_empty(string field, int length, bool accepted)
    {
        // The full backup's "beta": a longer name that starts with 'b' still sorts between "alpha" and "gamma".
        var day = WithFullKey(1, key => field switch
        {
            "name" => key with { Name = "b" + new string('x', length - 1) },
            "description" => key with { Description = new string('d', length) },
            _ => key with { Versions = [key.Versions[0] with { MaterialTag = 1, Material = new byte[length] }] },
        });
        if (field == "name")
        {
            // The last point holds "beta" too: rename it there as well, so that no change is missing.
            day = day with { Last = day.Last with { Keys = [day.Last.Keys[0], day.Full.Keys[1], day.Last.Keys[2]] } };
        }

        await (accepted ? AssertAcceptedAsync(day) : AssertRefusedAsync(day));
    }

    [Theory]
    [Trait("Rule", "F2")]
    [InlineData("\u3000")]
    [InlineData("\u2028")]
    [InlineData("\t\r\n")]
    [InlineData("")]
    public async Task A_required_string_of_white_space_only_is_refused(string blank)
    {
        await AssertRefusedAsync(WithFullKey(0, key => key with { Spec = blank }));
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task An_empty_description_is_kept_apart_from_an_absent_one_and_a_software_key_may_carry_no_material()
    {
        var day = UploadAttackTests.ValidDay();
        var alpha = day.Full.Keys[0] with { Description = "" };
        var beta = day.Full.Keys[1] with { Description = null, Versions = [day.Full.Keys[1].Versions[0] with { MaterialTag = 0, Material = null }] };
        day = day with { Full = day.Full with { Keys = [alpha, beta] } };
        var (h, error, uploaded) = await UploadAsync(day.Encode());
        await using var _ = h;
        Assert.Null(error);

        using var state = await h.Client.GetStateAtAsync(EngineHarness.Owner, uploaded!.Id, new DateTimeOffset(day.Full.TakenTicks, TimeSpan.Zero));
        Assert.Equal(string.Empty, state.Snapshot.Keys[0].Description);
        Assert.Null(state.Snapshot.Keys[1].Description);
        Assert.Null(state.Snapshot.Keys[1].Versions[0].Material);
    }

    [Theory]
    [Trait("Rule", "F2")]
    [InlineData("/UTC", false)]
    [InlineData("Asia/../UTC", false)]
    [InlineData("Etc/UTC?", false)]
    [InlineData("Etc/UTC", true)]
    public async Task A_zone_ID_is_a_name_of_the_documented_characters_not_a_path(string zone, bool accepted)
    {
        var day = UploadAttackTests.ValidDay() with { Zone = zone };
        await (accepted ? AssertAcceptedAsync(day) : AssertRefusedAsync(day));
    }

    [Fact]
    [Trait("Rule", "F2")]
    public async Task A_varuint_longer_than_its_shortest_form_is_read()
    {
        var layout = new PayloadLayout();
        var payload = UploadAttackTests.ValidDay().Encode(layout);
        var at = layout.Counts[0]; // the full backup's key count, 2
        var (h, error, _) = await UploadAsync([.. payload[..at], 0x82, 0x80, 0x00, .. payload[(at + 1)..]]);
        await using var _h = h;
        Assert.Null(error);
    }
}
