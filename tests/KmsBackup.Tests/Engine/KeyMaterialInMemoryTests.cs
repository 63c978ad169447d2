using System.Security.Cryptography;
using KmsBackup.DevelopmentKms;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// Key material and secret values live only as long as an operation needs them (DESIGN.md §4; issue 13, finding 6):
/// markers are planted in the key material of 50 keys, in the stored values (ciphertexts) of 50 secrets and in the
/// plaintext values of 50 more, then this process's memory is scanned after each operation, once the GC has
/// compacted everything. The only copies allowed are the gateway's own (one per item per instance that holds it),
/// and the one copy of each marker the test keeps alive on purpose, which shows that the scan finds what is there.
/// </summary>
public class KeyMaterialInMemoryTests
{
    private const string Source = "kst-memory";
    private const string Target = "kst-memory-far";
    private const string FarRegion = "cn-shanghai";
    private const int Planted = 50;
    private static readonly DateOnly May1 = new(2026, 5, 1);

    [Fact]
    public async Task The_gateway_holding_the_items_leaves_no_copy_beyond_its_own()
    {
        await using var scene = await Scene.PlantedAsync();
        scene.Scan("the items were created in the gateway");
        scene.AssertNoCopyBeyondTheGateway();
    }

    [Fact]
    public async Task A_backup_leaves_no_copy_of_key_material_or_secret_values_beyond_the_gateways()
    {
        await using var scene = await Scene.BackedUpAsync();
        scene.Scan("the first full backup");

        // An incremental that follows the change feed, one that records a change, and a full of the next day.
        await scene.H.RunUntilAsync(EngineHarness.Start.AddMinutes(5), TimeSpan.FromMinutes(5));
        scene.Scan("an incremental backup");
        await scene.H.Kms.SetDescriptionAsync(Source, ItemType.Key, "key-07", "changed");
        await scene.H.RunUntilAsync(EngineHarness.Start.AddMinutes(10), TimeSpan.FromMinutes(5));
        scene.Scan("an incremental backup with a change");
        await scene.H.RunUntilAsync(new DateTimeOffset(2026, 5, 2, 0, 5, 0, TimeSpan.Zero), TimeSpan.FromHours(1));
        scene.Scan("the next day's full backup");

        // A client that has not seen the backup yet (another process, a restart) reads its last point first.
        await scene.H.ReopenClientAsync();
        await scene.H.RunUntilAsync(new DateTimeOffset(2026, 5, 2, 0, 10, 0, TimeSpan.Zero), TimeSpan.FromMinutes(5));
        scene.Scan("an incremental backup by a new client");
        scene.AssertNoCopyBeyondTheGateway();
    }

    [Fact]
    public async Task A_view_leaves_no_copy_of_key_material_or_secret_values_beyond_the_gateways()
    {
        await using var scene = await Scene.BackedUpAsync();
        var client = scene.H.Client;

        var keys = await client.GetDataPageAsync(EngineHarness.Owner, scene.Backup.Id, May1, BackupDataType.FullyBackedUpKeys);
        var noSecrets = await client.GetDataPageAsync(EngineHarness.Owner, scene.Backup.Id, May1, BackupDataType.FullyBackedUpSecrets, new BackupDataQuery { NameContains = "no-such-secret" });
        var added = await client.GetDataPageAsync(EngineHarness.Owner, scene.Backup.Id, May1, BackupDataType.IncrementallyBackedUpSecrets);

        Assert.Equal(Planted, keys.Items.Count);
        Assert.Empty(noSecrets.Items);
        Assert.Empty(added.Items);
        scene.Scan("views of the keys and of an empty list of secrets");
        scene.AssertNoCopyBeyondTheGateway();
    }

    [Fact]
    public async Task A_restore_leaves_no_copy_of_key_material_or_secret_values_beyond_the_gateways()
    {
        await using var scene = await Scene.BackedUpAsync();
        await scene.H.CreateInstanceAsync(Target, region: FarRegion);
        var request = new RestoreRequest
        {
            CallerAccount = EngineHarness.Owner,
            BackupId = scene.Backup.Id,
            TargetInstanceId = Target,
            BackupDate = May1,
            AllItems = true,
        };

        var plan = await scene.H.Client.PlanRestoreAsync(request);
        Assert.True(plan.CanExecute);
        scene.Scan("a restore plan");

        var result = await scene.H.Client.RestoreAsync(request with { OperationId = plan.OperationId });
        Assert.Equal(3 * Planted, result.Restored.Count);

        // The target instance holds its own copy of every item now.
        scene.GatewayInstances = 2;
        scene.Scan("a restore into another instance");
        scene.AssertNoCopyBeyondTheGateway();
    }

    [Fact]
    public async Task A_download_leaves_no_copy_of_key_material_or_secret_values_beyond_the_gateways()
    {
        await using var scene = await Scene.BackedUpAsync();
        using var file = new MemoryStream();

        using (await scene.H.Client.DownloadAsync(EngineHarness.Owner, scene.Backup.Id, May1, file))
        {
        }

        Assert.True(file.Length > 0);
        scene.Scan("a download");
        scene.AssertNoCopyBeyondTheGateway();
    }

    [Fact]
    public async Task An_upload_leaves_no_copy_of_key_material_or_secret_values_beyond_the_gateways()
    {
        await using var scene = await Scene.BackedUpAsync();
        using var file = new MemoryStream();
        var dataKey = GC.AllocateArray<byte>(32, pinned: true);
        using (var download = await scene.H.Client.DownloadAsync(EngineHarness.Owner, scene.Backup.Id, May1, file))
        {
            download.DataKey.Span.CopyTo(dataKey);
        }

        scene.Scan("the download to upload");
        file.Position = 0;
        var uploaded = await scene.H.Client.UploadAsync(EngineHarness.Owner, file, dataKey, "copy of May 1");
        CryptographicOperations.ZeroMemory(dataKey);

        Assert.Equal(BackupKind.Uploaded, uploaded.Kind);
        scene.Scan("an upload");
        scene.AssertNoCopyBeyondTheGateway();
    }

    /// <summary>An engine over an instance with the planted markers, backed up once, and a scanner for the markers.</summary>
    private sealed class Scene : IAsyncDisposable
    {
        private readonly MemoryMarker _material = new("key material");
        private readonly MemoryMarker _ciphertext = new("stored secret value");
        private readonly MemoryMarker _value = new("plaintext secret value");
        private readonly MemoryMarker _heap = new("heap control");
        private readonly ProcessMemoryScanner _scanner;
        private readonly byte[] _pinnedControl;
        private readonly byte[] _heapControl;
        private readonly List<(string Step, bool Clean, string Report)> _steps = [];

        private Scene(EngineHarness h)
        {
            H = h;
            _scanner = new ProcessMemoryScanner(_material, _ciphertext, _value, _heap);

            // What the scan must find: one copy of each marker in a pinned array, and one (or more, if the GC moved
            // it) in an ordinary array on the GC heap, where unpinned buffers live.
            _pinnedControl = GC.AllocateArray<byte>(3 * 32, pinned: true);
            _material.WriteTo(_pinnedControl);
            _ciphertext.WriteTo(_pinnedControl.AsSpan(32));
            _value.WriteTo(_pinnedControl.AsSpan(64));
            _heapControl = new byte[48];
            _heap.WriteTo(_heapControl.AsSpan(8));
        }

        public EngineHarness H { get; }

        public BackupDetails Backup { get; private set; } = null!;

        /// <summary>How many instances of the gateway hold the planted items (each keeps one copy of each).</summary>
        public int GatewayInstances { get; set; } = 1;

        public static async Task<Scene> PlantedAsync()
        {
            var scene = new Scene(await EngineHarness.CreateAsync());
            await scene.PlantAsync();
            return scene;
        }

        public static async Task<Scene> BackedUpAsync()
        {
            var scene = new Scene(await EngineHarness.CreateAsync());
            await scene.PlantAsync();
            scene.Backup = (await scene.H.Client.OnInstanceEnabledAsync(Source))!;
            return scene;
        }

        /// <summary>
        /// Scans the process's memory once the GC has compacted it, after <paramref name="step"/>: every marker must be
        /// found exactly as often as the gateway holds it, plus the test's own copy. The scan must have read a plausible
        /// amount of memory and found the control on the GC heap, or it proves nothing.
        /// </summary>
        public void Scan(string step)
        {
            ProcessMemoryScanner.CollectEverything();
            var scan = _scanner.Scan();
            GC.KeepAlive(_pinnedControl);
            GC.KeepAlive(_heapControl);

            Assert.True(scan.BytesScanned > 16L * 1024 * 1024, $"The scan read only {scan}: too little to be this process's memory.");
            Assert.True(scan[_heap] >= 1, $"The scan missed the array the test keeps on the GC heap ({scan}).");
            var expected = (GatewayInstances * Planted) + 1;
            var found = (scan[_material], scan[_ciphertext], scan[_value]);
            _steps.Add((step, found == (expected, expected, 1), $"after {step}: {scan} (expected {expected}, {expected}, 1)"));
        }

        /// <summary>Fails, naming every step and what its scan found, unless every scan found only the gateway's copies and the control.</summary>
        public void AssertNoCopyBeyondTheGateway()
        {
            Assert.NotEmpty(_steps);
            Assert.True(
                _steps.All(s => s.Clean),
                "Copies of planted key material or secret values beyond the gateway's own (one per item per instance) and the test's one control copy:\n" +
                string.Join("\n", _steps.Select(s => (s.Clean ? "  ok    " : "  LEAK  ") + s.Report)));
        }

        public ValueTask DisposeAsync()
        {
            _scanner.Dispose();
            CryptographicOperations.ZeroMemory(_pinnedControl);
            CryptographicOperations.ZeroMemory(_heapControl);
            return H.DisposeAsync();
        }

        private async Task PlantAsync()
        {
            await H.CreateInstanceAsync(Source);
            var at = H.Clock.GetUtcNow().AddHours(-1);
            for (var i = 0; i < Planted; i++)
            {
                var material = _material.Planted(32);
                var key = new KeyRecord($"key-id-{i:D2}", $"key-{i:D2}", EmbeddedKeyManagementService.KeySpec, EngineHarness.Owner, at,
                    [new KeyVersion("v1", at, SensitiveBytes.Own(material))]);
                await H.Kms.CreateKeyAsync(Source, key, "planting");
                key.CurrentVersion.Material!.Clear();
                CryptographicOperations.ZeroMemory(material);
            }

            for (var i = 0; i < Planted; i++)
            {
                var ciphertext = _ciphertext.Planted(48);
                var secret = new SecretRecord($"stored-{i:D2}", $"key-id-{i:D2}", EngineHarness.Owner, at, [new SecretVersion("v1", at, SensitiveBytes.Own(ciphertext))]);
                await H.Kms.CreateSecretAsync(Source, secret, "planting");
                secret.CurrentVersion.Ciphertext.Clear();
                CryptographicOperations.ZeroMemory(ciphertext);

                var value = _value.Planted(32);
                await H.Kms.StoreSecretAsync(Source, $"value-{i:D2}", $"key-{i:D2}", value, EngineHarness.Owner);
                CryptographicOperations.ZeroMemory(value);
            }
        }
    }
}
