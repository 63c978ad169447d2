using System.Globalization;
using System.Text.Json;

namespace KmsBackup.Storage.AzureBlob;

/// <summary>
/// The state of a lease of the <see cref="AzureBlobBackupStore"/>, as its record blob holds it: who holds it, the
/// random token that tells this holder's acquisition from any other (even one with the same holder name), and
/// until when.
/// </summary>
internal sealed record AzureLeaseRecord(string LeaseName, string Holder, string Token, DateTimeOffset ExpiresAt, bool Released)
{
    /// <summary>Whether the lease is free to take at <paramref name="now"/>.</summary>
    public bool IsFreeAt(DateTimeOffset now) => Released || now >= ExpiresAt;

    /// <summary>The record as UTF-8 JSON.</summary>
    public byte[] ToJson()
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            writer.WriteString("lease", LeaseName);
            writer.WriteString("holder", Holder);
            writer.WriteString("token", Token);
            writer.WriteString("expiresAt", ExpiresAt.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture));
            writer.WriteBoolean("released", Released);
            writer.WriteEndObject();
        }

        return buffer.ToArray();
    }

    /// <summary>Reads a record written by <see cref="ToJson"/>; <see langword="null"/> if the bytes are not one.</summary>
    public static AzureLeaseRecord? TryParse(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            using var document = JsonDocument.ParseValue(ref reader);
            var root = document.RootElement;
            var expiresAt = DateTimeOffset.Parse(root.GetProperty("expiresAt").GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
            return new AzureLeaseRecord(
                root.GetProperty("lease").GetString()!,
                root.GetProperty("holder").GetString()!,
                root.GetProperty("token").GetString()!,
                expiresAt,
                root.GetProperty("released").GetBoolean());
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or ArgumentNullException)
        {
            return null;
        }
    }
}
