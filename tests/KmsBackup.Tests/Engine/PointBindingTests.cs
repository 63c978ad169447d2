namespace KmsBackup.Tests.Engine;

/// <summary>
/// Every recovery point is bound to its backup, date and sequence (issue 13, finding 4): a point file
/// copied, moved or renamed within the store is refused by every read and named by verify.
/// </summary>
public class PointBindingTests
{
    private const string Owner = EngineHarness.Owner;

    [Theory]
    [InlineData("copy to another date")]
    [InlineData("move to another date")]
    [InlineData("rename to another sequence")]
    [Trait("Rule", "D4")]
    public async Task A_point_copied_moved_or_renamed_in_the_store_is_refused_by_reads_and_named_by_verify(string tamper)
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a");
        await h.Kms.GenerateKeyAsync("kst-a", "day-one", Owner);
        var backup = await h.Client.CreateDefaultBackupAsync(Owner);
        await h.Client.EnableBackupAsync(Owner, backup.Id, "kst-a", InstanceKind.Software);
        await h.Kms.GenerateKeyAsync("kst-a", "day-two", Owner);
        await h.RunUntilAsync(EngineHarness.Start.AddDays(1).AddHours(1), TimeSpan.FromHours(1));
        var dayOne = new DateOnly(2026, 5, 1);
        var dayTwo = new DateOnly(2026, 5, 2);
        Assert.Equal(["day-one", "day-two"], (await h.Client.GetDataPageAsync(Owner, backup.Id, dayTwo, BackupDataType.FullyBackedUpKeys)).Items.Select(i => i.Name));

        // The first full of day one, placed where day two's points live (or under another sequence).
        var points = $"{EngineHarness.StoreRoot}/objects/points/{backup.Id}";
        var first = $"{points}/2026-05-01/{1:D12}";
        var bytes = h.Files.File.ReadAllBytes(first);
        var planted = tamper == "rename to another sequence" ? $"{points}/2026-05-01/{999:D12}" : $"{points}/2026-05-02/{1:D12}";
        h.Files.File.WriteAllBytes(planted, bytes);
        if (tamper != "copy to another date")
        {
            h.Files.File.Delete(first);
        }

        using var fresh = await h.OpenAnotherClientAsync("reader");
        var verification = await fresh.VerifyAsync();
        Assert.Contains(verification.Problems, p => p.Description.Contains("integrity check", StringComparison.Ordinal));
        var date = tamper == "rename to another sequence" ? dayOne : dayTwo;
        await Assert.ThrowsAsync<BackupIntegrityException>(async () =>
        {
            foreach (var type in Enum.GetValues<BackupDataType>())
            {
                await fresh.GetDataPageAsync(Owner, backup.Id, date, type);
            }

            await fresh.ListRecoveryPointsAsync(Owner, backup.Id, date);
        });
    }

    [Fact]
    public async Task A_repository_of_the_pre_release_format_is_refused_with_a_typed_error_naming_both_versions()
    {
        await using var h = await EngineHarness.CreateAsync();
        var config = $"{EngineHarness.StoreRoot}/objects/config";
        var bytes = h.Files.File.ReadAllBytes(config);
        Assert.Equal(4, bytes[8]); // "KBREPO01", then the format version as a varuint
        bytes[8] = 3; // branches without their children's last names
        h.Files.File.WriteAllBytes(config, bytes);

        var refused = await Assert.ThrowsAsync<BackupException>(() => h.OpenAnotherClientAsync("reopened"));
        Assert.Equal(BackupErrorCode.IntegrityViolation, refused.Code);
        Assert.Contains("format version 3", refused.Message, StringComparison.Ordinal);
        Assert.Contains("version 4", refused.Message, StringComparison.Ordinal);
    }
}
