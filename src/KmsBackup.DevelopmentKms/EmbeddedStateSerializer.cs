using System.Buffers;
using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;

namespace KmsBackup.DevelopmentKms;

/// <summary>
/// An instance's state as UTF-8 JSON (the plaintext of a state file). Key material and ciphertexts
/// are written as Base64 straight into the caller's buffer and read straight into new arrays, so that
/// no immutable string ever holds them.
/// </summary>
internal static class EmbeddedStateSerializer
{
    private const int FormatVersion = 1;

    public static void Write(InstanceState state, IBufferWriter<byte> output)
    {
        using var w = new Utf8JsonWriter(output);
        w.WriteStartObject();
        w.WriteNumber("format", FormatVersion);
        w.WriteString("id", state.Id);
        w.WriteString("kind", state.Kind.ToString());
        w.WriteString("region", state.Region);
        w.WriteString("owner", state.OwnerAccount);
        w.WriteStartArray("sharedWith");
        foreach (var account in state.SharedWith)
        {
            w.WriteStringValue(account);
        }

        w.WriteEndArray();
        w.WriteNumber("keyQuota", state.KeyQuota);
        w.WriteNumber("secretQuota", state.SecretQuota);
        w.WriteString("createdAt", state.CreatedAt);
        w.WriteBoolean("enabled", state.IsEnabled);
        WriteOptional(w, "releasedAt", state.ReleasedAt?.ToString("O", CultureInfo.InvariantCulture));
        WriteOptional(w, "imageVersion", state.ImageVersion?.ToString());
        w.WriteString("epoch", state.Epoch);
        w.WriteNumber("sequence", state.Sequence);
        w.WriteNumber("trimmedThrough", state.TrimmedThrough);

        w.WriteStartArray("keys");
        foreach (var (_, stored) in state.Keys)
        {
            var key = stored.Record;
            w.WriteStartObject();
            w.WriteString("id", key.Id);
            w.WriteString("name", key.Name);
            w.WriteString("spec", key.Spec);
            w.WriteString("creator", key.CreatorAccount);
            w.WriteString("createdAt", key.CreatedAt);
            WriteOptional(w, "description", key.Description);
            WriteOptional(w, "restoredBy", stored.RestoredBy);
            w.WriteStartArray("versions");
            foreach (var version in key.Versions)
            {
                w.WriteStartObject();
                w.WriteString("id", version.VersionId);
                w.WriteString("createdAt", version.CreatedAt);
                if (version.Material is { } material)
                {
                    w.WriteBase64String("material", material.Span);
                }
                else
                {
                    w.WriteNull("material");
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        w.WriteEndArray();

        w.WriteStartArray("secrets");
        foreach (var (_, stored) in state.Secrets)
        {
            var secret = stored.Record;
            w.WriteStartObject();
            w.WriteString("name", secret.Name);
            w.WriteString("keyId", secret.EncryptionKeyId);
            w.WriteString("creator", secret.CreatorAccount);
            w.WriteString("createdAt", secret.CreatedAt);
            WriteOptional(w, "description", secret.Description);
            WriteOptional(w, "restoredBy", stored.RestoredBy);
            w.WriteStartArray("versions");
            foreach (var version in secret.Versions)
            {
                w.WriteStartObject();
                w.WriteString("id", version.VersionId);
                w.WriteString("createdAt", version.CreatedAt);
                w.WriteBase64String("ciphertext", version.Ciphertext.Span);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        w.WriteEndArray();

        w.WriteStartArray("log");
        foreach (var entry in state.Log)
        {
            w.WriteStartObject();
            w.WriteNumber("seq", entry.Sequence);
            w.WriteString("type", entry.Type.ToString());
            w.WriteString("name", entry.Name);
            w.WriteBoolean("existed", entry.ExistedBefore);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteEndObject();
        w.Flush();
    }

    /// <exception cref="JsonException">Not valid JSON.</exception>
    /// <exception cref="FormatException">A value has the wrong form.</exception>
    /// <exception cref="KeyNotFoundException">A property is missing.</exception>
    public static InstanceState Read(ReadOnlyMemory<byte> json)
    {
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        if (root.GetProperty("format").GetInt32() != FormatVersion)
        {
            throw new FormatException("Unknown state format version.");
        }

        var keys = InstanceState.NoKeys.ToBuilder();
        var keyNamesById = ImmutableDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var k in root.GetProperty("keys").EnumerateArray())
        {
            var versions = k.GetProperty("versions").EnumerateArray().Select(v => new KeyVersion(
                v.GetProperty("id").GetString()!,
                v.GetProperty("createdAt").GetDateTimeOffset(),
                v.GetProperty("material").ValueKind == JsonValueKind.Null ? null : SensitiveBytes.Own(v.GetProperty("material").GetBytesFromBase64()))).ToList();
            var record = new KeyRecord(String(k, "id"), String(k, "name"), String(k, "spec"), String(k, "creator"), k.GetProperty("createdAt").GetDateTimeOffset(), versions)
            {
                Description = Optional(k, "description"),
            };
            keys.Add(record.Name, new StoredKey(record, Optional(k, "restoredBy")));
            keyNamesById.Add(record.Id, record.Name);
        }

        var secrets = InstanceState.NoSecrets.ToBuilder();
        foreach (var s in root.GetProperty("secrets").EnumerateArray())
        {
            var versions = s.GetProperty("versions").EnumerateArray().Select(v => new SecretVersion(
                v.GetProperty("id").GetString()!,
                v.GetProperty("createdAt").GetDateTimeOffset(),
                SensitiveBytes.Own(v.GetProperty("ciphertext").GetBytesFromBase64()))).ToList();
            var record = new SecretRecord(String(s, "name"), String(s, "keyId"), String(s, "creator"), s.GetProperty("createdAt").GetDateTimeOffset(), versions)
            {
                Description = Optional(s, "description"),
            };
            secrets.Add(record.Name, new StoredSecret(record, Optional(s, "restoredBy")));
        }

        var log = root.GetProperty("log").EnumerateArray()
            .Select(e => new ChangeEntry(e.GetProperty("seq").GetInt64(), Enum.Parse<ItemType>(String(e, "type")), String(e, "name"), e.GetProperty("existed").GetBoolean()))
            .ToImmutableList();

        var releasedAt = Optional(root, "releasedAt");
        var imageVersion = Optional(root, "imageVersion");
        return new InstanceState
        {
            Id = String(root, "id"),
            Kind = Enum.Parse<InstanceKind>(String(root, "kind")),
            Region = String(root, "region"),
            OwnerAccount = String(root, "owner"),
            SharedWith = [.. root.GetProperty("sharedWith").EnumerateArray().Select(a => a.GetString()!)],
            KeyQuota = root.GetProperty("keyQuota").GetInt32(),
            SecretQuota = root.GetProperty("secretQuota").GetInt32(),
            CreatedAt = root.GetProperty("createdAt").GetDateTimeOffset(),
            IsEnabled = root.GetProperty("enabled").GetBoolean(),
            ReleasedAt = releasedAt is null ? null : DateTimeOffset.Parse(releasedAt, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind),
            ImageVersion = imageVersion is null ? null : Version.Parse(imageVersion),
            Epoch = String(root, "epoch"),
            Sequence = root.GetProperty("sequence").GetInt64(),
            TrimmedThrough = root.GetProperty("trimmedThrough").GetInt64(),
            Keys = keys.ToImmutable(),
            KeyNamesById = keyNamesById.ToImmutable(),
            Secrets = secrets.ToImmutable(),
            Log = log,
        };
    }

    private static void WriteOptional(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null)
        {
            w.WriteNull(name);
        }
        else
        {
            w.WriteString(name, value);
        }
    }

    private static string String(JsonElement element, string name) =>
        element.GetProperty(name).GetString() ?? throw new FormatException($"The property '{name}' is null.");

    private static string? Optional(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value.GetString() : null;
}
