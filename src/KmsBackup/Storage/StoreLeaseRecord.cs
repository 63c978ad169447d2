using System.Globalization;
using System.Text.Json;

namespace KmsBackup.Storage;

/// <summary>
/// One generation of a lease, as <see cref="BackupStore.AcquireLeaseAsync"/> keeps it in the store: who holds
/// it, the random token that tells this holder's acquisition from any other (even one with the same holder
/// name), until when, and whether it was released; stored as JSON.
/// </summary>
/// <param name="LeaseName">What the lease guards.</param>
/// <param name="Generation">The generation's number: each change of the lease writes the next one.</param>
/// <param name="Holder">Who holds it.</param>
/// <param name="Token">The random token of this acquisition.</param>
/// <param name="ExpiresAt">When it expires unless renewed.</param>
/// <param name="Released">Whether its holder released it.</param>
internal sealed record StoreLeaseRecord(string LeaseName, long Generation, string Holder, string Token, DateTimeOffset ExpiresAt, bool Released)
{
    /// <summary>Whether the lease is free to take at <paramref name="now"/>.</summary>
    public bool IsFreeAt(DateTimeOffset now) => Released || now >= ExpiresAt;

    /// <summary>The refusal for another writer who asks while this record holds the lease (<see cref="BackupErrorCode.LeaseHeld"/>), naming the holder.</summary>
    public BackupException HeldException() =>
        new Refusal(
            BackupErrorCode.LeaseHeld,
            Item(LeaseName),
            $"The lease '{LeaseName}' is held by '{Holder}' until {Iso(ExpiresAt)}; one writer at a time may hold it.",
            $"Wait for '{Holder}' to finish, or stop it. If it is gone (crashed or killed), its lease can be taken over once it expires at {Iso(ExpiresAt)}: retry then.")
        .ToException();

    /// <summary>
    /// The refusal for the holder of <paramref name="mine"/> when the store's current record is
    /// <paramref name="head"/> (<see cref="BackupErrorCode.LeaseLost"/>): gone, taken over, released or expired.
    /// </summary>
    /// <param name="mine">The record this holder wrote last.</param>
    /// <param name="head">The store's current record, or <see langword="null"/> when there is none.</param>
    /// <param name="now">The current instant.</param>
    public static BackupException LostException(StoreLeaseRecord mine, StoreLeaseRecord? head, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(mine);
        string message;
        var remedy = "Stop writing what the lease guards: another writer may have changed it. Acquire the lease again and redo the work, renewing the lease well before it expires.";
        if (head is null)
        {
            message = $"The lease '{mine.LeaseName}' of '{mine.Holder}' no longer exists in the store.";
        }
        else if (head.Token != mine.Token)
        {
            message = head.IsFreeAt(now)
                ? $"The lease '{mine.LeaseName}' of '{mine.Holder}' was taken over by '{head.Holder}' (who no longer holds it)."
                : $"The lease '{mine.LeaseName}' of '{mine.Holder}' was taken over by '{head.Holder}', who holds it until {Iso(head.ExpiresAt)}.";
        }
        else if (head.Released)
        {
            message = $"The lease '{mine.LeaseName}' of '{mine.Holder}' was released.";
            remedy = "Acquire the lease again before writing.";
        }
        else
        {
            message = $"The lease '{mine.LeaseName}' of '{mine.Holder}' expired at {Iso(head.ExpiresAt)}; another writer may take it over at any time.";
            remedy = "Renew the lease (if no other writer took it over, that takes it back) or acquire it again before committing, and renew it well before it expires.";
        }

        return new Refusal(BackupErrorCode.LeaseLost, Item(mine.LeaseName), message, remedy).ToException();
    }

    /// <summary>How refusals name a lease, e.g. <c>lease 'backups/b-1'</c>.</summary>
    /// <param name="leaseName">The lease's name.</param>
    public static string Item(string leaseName) => $"lease '{leaseName}'";

    /// <summary>The record as UTF-8 JSON.</summary>
    public byte[] ToJson()
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            writer.WriteString("lease", LeaseName);
            writer.WriteNumber("generation", Generation);
            writer.WriteString("holder", Holder);
            writer.WriteString("token", Token);
            writer.WriteString("expiresAt", ExpiresAt.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture));
            writer.WriteBoolean("released", Released);
            writer.WriteEndObject();
        }

        return buffer.ToArray();
    }

    /// <summary>Reads a record written by <see cref="ToJson"/>; <see langword="null"/> if the bytes are not one.</summary>
    public static StoreLeaseRecord? TryParse(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            using var document = JsonDocument.ParseValue(ref reader);
            var root = document.RootElement;
            var expiresAt = DateTimeOffset.Parse(root.GetProperty("expiresAt").GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
            return new StoreLeaseRecord(
                root.GetProperty("lease").GetString()!,
                root.GetProperty("generation").GetInt64(),
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

    private static string Iso(DateTimeOffset instant) => ViewableWindow.Iso(instant);
}
