namespace KmsBackup.Tests.Engine;

/// <summary>
/// Issue 15, item 5: a download makes its payload as it encrypts it, leaf by leaf, instead of building the whole day in
/// memory first. The file must be the same day: decoded with the test's own reader of the documented format
/// (<see cref="RawDay"/>), it holds every key with its material and every secret with its value, in name order, and
/// re-encodes to the same bytes.
/// </summary>
public sealed class StreamedDownloadTests
{
    [Fact]
    [Trait("Rule", "F1")]
    public async Task A_day_of_many_leaves_downloads_whole_and_in_order()
    {
        await using var h = await EngineHarness.CreateAsync();
        await h.CreateInstanceAsync("kst-a", keyQuota: 5000);
        for (var i = 0; i < 2300; i++)
        {
            // More than 64 leaves of keys: the walk crosses batches of leaves, and branches.
            await h.Kms.GenerateKeyAsync("kst-a", $"key-{i:D4}", EngineHarness.Owner, i % 7 == 0 ? null : $"description {i}");
        }

        for (var i = 0; i < 40; i++)
        {
            await h.Kms.StoreSecretAsync("kst-a", $"secret-{i:D2}", $"key-{i:D4}", new byte[] { 7, (byte)i }, EngineHarness.Owner);
        }

        var backup = (await h.Client.OnInstanceEnabledAsync("kst-a"))!;
        await h.Kms.RotateKeyAsync("kst-a", "key-1000");
        await h.RunUntilAsync(EngineHarness.Start.AddMinutes(5), TimeSpan.FromMinutes(5));

        using var file = new MemoryStream();
        var date = DateOnly.FromDateTime(EngineHarness.Start.UtcDateTime);
        using var download = await h.Client.DownloadAsync(EngineHarness.Owner, backup.Id, date, file);
        var plain = await CraftedFile.DecryptAsync(file.ToArray(), download.DataKey.Span.ToArray());
        var day = RawDay.TryDecode(plain) ?? throw new Xunit.Sdk.XunitException("The payload does not decode.");
        Assert.Equal(plain, day.Encode());

        var live = (await h.Kms.ReadSnapshotAsync("kst-a")).Snapshot;
        Assert.Equal(live.Keys.Select(k => k.Name), day.Last.Keys.Select(k => k.Name));
        foreach (var (expected, actual) in live.Keys.Zip(day.Last.Keys))
        {
            Assert.Equal(expected.Versions.Select(v => v.Material!.Span.ToArray()), actual.Versions.Select(v => v.Material!));
            Assert.Equal(expected.Description, actual.Description);
        }

        Assert.Equal(live.Secrets.Select(s => s.Name), day.Last.Secrets.Select(s => s.Name));
        Assert.Equal(live.Secrets.Select(s => s.CurrentVersion.Ciphertext.Span.ToArray()), day.Last.Secrets.Select(s => s.Versions[^1].Ciphertext));
        Assert.Equal(2300, day.Full.Keys.Count);
        Assert.Single(day.Full.Keys[1000].Versions);
        Assert.Equal(2, day.Last.Keys[1000].Versions.Count);
        Assert.Equal(["key-1000"], day.Changes.Select(c => c.Name));
    }
}
