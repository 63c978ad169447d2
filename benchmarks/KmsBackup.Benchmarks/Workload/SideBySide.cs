using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace KmsBackup.Benchmarks.Workload;

/// <summary>
/// The two halves of the side-by-side with restic (<c>benchmarks/side-by-side-restic.sh</c>), issue 15: what a user
/// would do instead of this SDK (dump the instance to a JSONL file and back the file up with restic) against the
/// engine's incremental run, on the same synthetic instance and the same changes.
/// </summary>
/// <remarks>
/// <c>--export PATH --items N [--changes C]</c> writes the synthetic instance of N items, after C changes (a third each
/// added, rotated, deleted; the same seeded changes the engine half makes), as JSON lines in name order: one object per
/// key or secret with its versions, material and secret ciphertexts base64-encoded, as a dump of a key management service would
/// hold them. <c>--engine-incremental --items N [--changes C] [--rounds R]</c> backs the instance up (the full, not
/// timed), then R times makes C changes and times the incremental run through the public client on the benchmarks'
/// memory store, and prints the times and the bytes each run stored.
/// </remarks>
internal static class SideBySide
{
    public static async Task<int> ExportAsync(string[] args, TextWriter output)
    {
        var path = Option(args, "--export") ?? throw new ArgumentException("--export needs a path.");
        var items = int.Parse(Option(args, "--items") ?? "1000000", CultureInfo.InvariantCulture);
        var changes = int.Parse(Option(args, "--changes") ?? "0", CultureInfo.InvariantCulture);
        var instance = new SyntheticInstanceGateway(items, new Microsoft.Extensions.Time.Testing.FakeTimeProvider(EngineWorkload.Start));
        if (changes > 0)
        {
            instance.MakeChanges(changes);
        }

        await using var file = File.Create(path);
        var json = new Utf8JsonWriter(file);
        var newline = "\n"u8.ToArray();
        foreach (var key in instance.KeysByName)
        {
            json.WriteStartObject();
            json.WriteString("type", "key");
            json.WriteString("id", key.Id);
            json.WriteString("name", key.Name);
            json.WriteString("spec", key.Spec);
            json.WriteString("creator", key.CreatorAccount);
            json.WriteString("createdAt", key.CreatedAt);
            json.WriteStartArray("versions");
            foreach (var version in key.Versions)
            {
                json.WriteStartObject();
                json.WriteString("id", version.VersionId);
                json.WriteString("createdAt", version.CreatedAt);
                json.WriteBase64String("material", version.Material!.Span);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
            await EndLineAsync(json, file, newline);
        }

        foreach (var secret in instance.SecretsByName)
        {
            json.WriteStartObject();
            json.WriteString("type", "secret");
            json.WriteString("name", secret.Name);
            json.WriteString("encryptionKeyId", secret.EncryptionKeyId);
            json.WriteString("creator", secret.CreatorAccount);
            json.WriteString("createdAt", secret.CreatedAt);
            json.WriteStartArray("versions");
            foreach (var version in secret.Versions)
            {
                json.WriteStartObject();
                json.WriteString("id", version.VersionId);
                json.WriteString("createdAt", version.CreatedAt);
                json.WriteBase64String("ciphertext", version.Ciphertext.Span);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
            await EndLineAsync(json, file, newline);
        }

        await json.FlushAsync();
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"exported {instance.ItemCount} items after {changes} changes to {path}: {file.Length} bytes"));
        return 0;
    }

    public static async Task<int> EngineIncrementalAsync(string[] args, TextWriter output)
    {
        var items = int.Parse(Option(args, "--items") ?? "1000000", CultureInfo.InvariantCulture);
        var changes = int.Parse(Option(args, "--changes") ?? "100", CultureInfo.InvariantCulture);
        var rounds = int.Parse(Option(args, "--rounds") ?? "3", CultureInfo.InvariantCulture);
        using var workload = await EngineWorkload.StartAsync(items);
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"engine full of {items} items: {workload.FirstFullBytes} bytes stored"));
        for (var round = 1; round <= rounds; round++)
        {
            workload.Instance.MakeChanges(changes);
            var started = Stopwatch.GetTimestamp();
            var (_, bytes) = await workload.RunAtAsync(EngineWorkload.Start.AddMinutes(5 * round), BackupRunKind.Incremental);
            var elapsed = Stopwatch.GetElapsedTime(started);
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"engine incremental {round} of {changes} changes: {elapsed.TotalMilliseconds:F0} ms, {bytes} bytes stored"));
        }

        return 0;
    }

    private static async Task EndLineAsync(Utf8JsonWriter json, Stream file, byte[] newline)
    {
        await json.FlushAsync();
        await file.WriteAsync(newline);
        json.Reset();
    }

    private static string? Option(string[] args, string name)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
    }
}
