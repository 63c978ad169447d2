using System.Globalization;
using System.Text;
using KmsBackup.Repository;

namespace KmsBackup;

/// <summary>
/// The plaintext of a backup file: one day of backup data (docs/backup-file-format.md, "The payload"). A
/// download writes it; an upload parses it with <see cref="ReadAsync"/>, which checks every field, count, enum
/// and reference before anything is written, because the uploader chose the data key and so the payload is
/// whatever the uploader wants it to be.
/// </summary>
internal static partial class DayPayload
{
    /// <summary>The longest name, ID, account, spec, version ID, region or source backup ID, in UTF-8 bytes.</summary>
    public const int MaximumStringBytes = 4096;

    /// <summary>The longest description, in UTF-8 bytes.</summary>
    public const int MaximumDescriptionBytes = 64 * 1024;

    /// <summary>The longest time zone ID, in bytes.</summary>
    public const int MaximumTimeZoneBytes = 128;

    /// <summary>
    /// The largest key material or secret version ciphertext: four times the largest secret value that managed key
    /// and secret services accept (64 KiB), with room for a ciphertext's own overhead.
    /// </summary>
    public const int MaximumValueBytes = 256 * 1024;

    /// <summary>The most versions of one key or secret.</summary>
    public const int MaximumVersions = 100_000;

    /// <summary>
    /// The largest key or secret, encoded. A tree leaf holds up to 256 items (32 on average) and is one object,
    /// which the tree writer holds several times over while it encodes, seals and packs it: this keeps any leaf,
    /// and the memory its writing takes, bounded.
    /// </summary>
    public const int MaximumItemBytes = 1024 * 1024;

    /// <summary>The most keys, or secrets, in one recovery point.</summary>
    public const int MaximumItems = 100_000_000;

    /// <summary>The most changes of a day.</summary>
    public const int MaximumChanges = 1_000_000;

    /// <summary>
    /// The most bytes the changes take, encoded: they are stored in one recovery point manifest, a single object,
    /// which an upload holds whole while it seals it (and every later read of that point, while it decodes it).
    /// </summary>
    public const long MaximumChangeBytes = 32L * 1024 * 1024;

    /// <summary>The spill file's page: what one reader of it holds.</summary>
    private const int SpillPageSize = 64 * 1024;

    private const int ShownNameLength = 64;

    public static ReadOnlySpan<byte> Magic => "KBDAY001"u8;

    /// <summary>
    /// Parses and validates a whole payload from <paramref name="plaintext"/>, to its end. The points' items go,
    /// in their leaf encoding, to an encrypted spill file in <paramref name="temporaryFolder"/>; what stays in
    /// memory does not grow with the items. Any malformation is thrown through <paramref name="malformed"/>; the
    /// stream's own refusals (a damaged segment, a wrong key) pass through.
    /// </summary>
    public static async Task<UploadedDay> ReadAsync(Stream plaintext, Func<string, BackupFileException> malformed, string temporaryFolder, CancellationToken cancellationToken)
    {
        using var r = new PayloadStreamReader(plaintext, malformed);
        var scratch = new RecordWriter(64 * 1024, pinned: true);
        SpillFile? items = null;
        try
        {
            foreach (var expected in Magic.ToArray())
            {
                if (await r.ReadByteAsync(cancellationToken).ConfigureAwait(false) != expected)
                {
                    throw r.Malformed("it does not start with the signature of a day of backup data ('KBDAY001')");
                }
            }

            var sourceBackupId = (await r.ReadStringAsync("source backup ID", MaximumStringBytes, required: true, cancellationToken).ConfigureAwait(false))!;
            var dayNumber = await r.ReadInt32Async(cancellationToken).ConfigureAwait(false);
            if (dayNumber <= DateOnly.MinValue.DayNumber || dayNumber >= DateOnly.MaxValue.DayNumber)
            {
                throw r.Malformed(Invariant($"its date (day number {dayNumber}) is out of range"));
            }

            var date = DateOnly.FromDayNumber(dayNumber);
            var zoneId = (await r.ReadStringAsync("time zone", MaximumTimeZoneBytes, required: true, cancellationToken).ConfigureAwait(false))!;
            var zone = TimeZoneOf(zoneId) ?? throw r.Malformed($"its time zone '{Shown(zoneId)}' is not a time zone this system knows");

            items = SpillFile.Create(temporaryFolder, SpillPageSize);
            var full = await ReadSnapshotAsync(r, "full backup", date, zone, items, temporaryFolder, scratch, cancellationToken).ConfigureAwait(false);
            var last = await ReadSnapshotAsync(r, "last recovery point", date, zone, items, temporaryFolder, scratch, cancellationToken).ConfigureAwait(false);
            if (last.Source != full.Source)
            {
                throw r.Malformed($"its full backup is of instance '{Shown(full.Source.InstanceId)}' ({full.Source.Kind}, {Shown(full.Source.Region)}, owner {Shown(full.Source.OwnerAccount)}), but its last recovery point of '{Shown(last.Source.InstanceId)}' ({last.Source.Kind}, {Shown(last.Source.Region)}, owner {Shown(last.Source.OwnerAccount)}): a day's points are of one instance");
            }

            if (last.TakenAt < full.TakenAt)
            {
                throw r.Malformed(Invariant($"its last recovery point was taken at {ViewableWindow.Iso(last.TakenAt)}, before its full backup ({ViewableWindow.Iso(full.TakenAt)})"));
            }

            var changes = await ReadChangesAsync(r, cancellationToken).ConfigureAwait(false);
            r.Context = "the changes";
            CheckChanges(r, items, changes, full, last, ItemType.Key, cancellationToken);
            CheckChanges(r, items, changes, full, last, ItemType.Secret, cancellationToken);
            r.Context = "the end of the day's data";
            await r.ExpectEndAsync(cancellationToken).ConfigureAwait(false);
            return new UploadedDay
            {
                SourceBackupId = sourceBackupId,
                Date = date,
                TimeZone = zone,
                Full = full,
                Last = last,
                Changes = changes,
                Items = items,
            };
        }
        catch
        {
            items?.Dispose();
            throw;
        }
        finally
        {
            scratch.Wipe();
        }
    }

    /// <summary>A name as an error message shows it: at most 64 characters, control characters escaped.</summary>
    public static string Shown(string value)
    {
        var cut = value.Length > ShownNameLength ? value[..ShownNameLength] + "…" : value;
        return cut.Any(char.IsControl) ? string.Concat(cut.Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString())) : cut;
    }

    private static async Task<UploadedSnapshot> ReadSnapshotAsync(
        PayloadStreamReader r, string what, DateOnly date, BackupTimeZone zone, SpillFile items, string temporaryFolder,
        RecordWriter scratch, CancellationToken cancellationToken)
    {
        r.Context = $"the {what}";
        var takenAt = await r.ReadInstantAsync("time taken", cancellationToken).ConfigureAwait(false);
        if (!IsOnDay(zone, takenAt, date))
        {
            throw r.Malformed(Invariant($"its {what} was taken at {ViewableWindow.Iso(takenAt)}, which is not on {date:yyyy-MM-dd} in {zone.Id} (or past midnight into the next day), the date the file holds"));
        }

        var instanceId = (await r.ReadStringAsync("instance ID", MaximumStringBytes, required: true, cancellationToken).ConfigureAwait(false))!;
        var kindByte = await r.ReadByteAsync(cancellationToken).ConfigureAwait(false);
        var kind = (InstanceKind)kindByte;
        if (!Enum.IsDefined(kind))
        {
            throw r.Malformed(Invariant($"its {what} has an undefined instance kind {kindByte} (1 software, 2 hardware)"));
        }

        var region = (await r.ReadStringAsync("region", MaximumStringBytes, required: true, cancellationToken).ConfigureAwait(false))!;
        var owner = (await r.ReadStringAsync("owner account", MaximumStringBytes, required: true, cancellationToken).ConfigureAwait(false))!;
        var source = new SnapshotSource(instanceId, kind, region, owner);

        var keyCount = await r.ReadCountAsync(MaximumItems, "keys", cancellationToken).ConfigureAwait(false);
        var keys = new SpilledItems(items.Length, keyCount);
        var previous = new RecordWriter(256);
        using (var ids = new KeyIdCheck(temporaryFolder))
        {
            for (var i = 0; i < keyCount; i++)
            {
                scratch.Clear();
                r.SetItem("key", i + 1, what, scratch);
                await EncodeKeyAsync(r, kind, scratch, cancellationToken).ConfigureAwait(false);
                CheckOrder(r, previous, scratch, "key");
                ids.Add(ItemCodec.KeyIdOf(scratch.WrittenSpan), items.Length);
                Spill(items, scratch);
            }

            CheckKeyIdsUnique(r, items, ids, what, cancellationToken);
        }

        var secretCount = await r.ReadCountAsync(MaximumItems, "secrets", cancellationToken).ConfigureAwait(false);
        var secrets = new SpilledItems(items.Length, secretCount);
        previous.Clear();
        for (var i = 0; i < secretCount; i++)
        {
            scratch.Clear();
            r.SetItem("secret", i + 1, what, scratch);
            await EncodeSecretAsync(r, scratch, cancellationToken).ConfigureAwait(false);
            CheckOrder(r, previous, scratch, "secret");
            Spill(items, scratch);
        }

        r.Context = $"the {what}";
        return new UploadedSnapshot(source, takenAt, keys, secrets);
    }

    /// <summary>Appends an encoded item to the spill file, after its length, and zeroes the scratch copy.</summary>
    private static void Spill(SpillFile items, RecordWriter item)
    {
        items.AppendVarUInt((ulong)item.Length);
        items.Append(item.WrittenSpan);
        item.Clear();
    }

    /// <summary>
    /// Reads one key, checking every field, and writes it into <paramref name="into"/> in the encoding of a tree
    /// leaf (<see cref="ItemCodec"/>; docs/repository-format.md, "Item trees"), field by field as it is read: no
    /// key material lands in an array of its own, and no field is decoded that need not be.
    /// </summary>
    private static async Task EncodeKeyAsync(PayloadStreamReader r, InstanceKind kind, RecordWriter into, CancellationToken cancellationToken)
    {
        await r.CopyStringAsync("name", MaximumStringBytes, required: true, into, cancellationToken).ConfigureAwait(false);
        await r.CopyStringAsync("key ID", MaximumStringBytes, required: true, into, cancellationToken).ConfigureAwait(false);
        await r.CopyStringAsync("key spec", MaximumStringBytes, required: true, into, cancellationToken).ConfigureAwait(false);
        await r.CopyStringAsync("creator account", MaximumStringBytes, required: true, into, cancellationToken).ConfigureAwait(false);
        into.WriteInstant(await r.ReadInstantAsync("creation time", cancellationToken).ConfigureAwait(false));
        await r.CopyStringAsync("description", MaximumDescriptionBytes, required: false, into, cancellationToken).ConfigureAwait(false);
        var count = await r.ReadCountAsync(MaximumVersions, "versions", cancellationToken).ConfigureAwait(false);
        if (count == 0)
        {
            throw r.Malformed($"{r.Context} has no version; every key has at least one");
        }

        into.WriteVarUInt((ulong)count);
        var versionIds = count > 1 ? new HashSet<string>(StringComparer.Ordinal) : null;
        for (var v = 0; v < count; v++)
        {
            await CopyVersionIdAsync(r, versionIds, into, cancellationToken).ConfigureAwait(false);
            into.WriteInstant(await r.ReadInstantAsync("version's creation time", cancellationToken).ConfigureAwait(false));
            var tag = await r.ReadByteAsync(cancellationToken).ConfigureAwait(false);
            into.WriteByte(tag);
            switch (tag)
            {
                case 0:
                    break;
                case 1 when kind == InstanceKind.Hardware:
                    throw r.Malformed($"{r.Context} carries key material, but the instance is a hardware instance, whose key material never leaves its HSM cluster (rule D1)");
                case 1:
                    await r.ReadValueAsync("key material", MaximumValueBytes, into, cancellationToken).ConfigureAwait(false);
                    break;
                default:
                    throw r.Malformed(Invariant($"{r.Context}: version {v + 1} has the material tag {tag} (0 none, 1 present)"));
            }

            CheckItemSize(r, into);
        }
    }

    /// <summary>Reads one secret, checking every field, and writes it into <paramref name="into"/> as a tree leaf holds it.</summary>
    private static async Task EncodeSecretAsync(PayloadStreamReader r, RecordWriter into, CancellationToken cancellationToken)
    {
        await r.CopyStringAsync("name", MaximumStringBytes, required: true, into, cancellationToken).ConfigureAwait(false);
        await r.CopyStringAsync("encrypting key ID", MaximumStringBytes, required: true, into, cancellationToken).ConfigureAwait(false);
        await r.CopyStringAsync("creator account", MaximumStringBytes, required: true, into, cancellationToken).ConfigureAwait(false);
        into.WriteInstant(await r.ReadInstantAsync("creation time", cancellationToken).ConfigureAwait(false));
        await r.CopyStringAsync("description", MaximumDescriptionBytes, required: false, into, cancellationToken).ConfigureAwait(false);
        var count = await r.ReadCountAsync(MaximumVersions, "versions", cancellationToken).ConfigureAwait(false);
        if (count == 0)
        {
            throw r.Malformed($"{r.Context} has no version; every secret has at least one");
        }

        into.WriteVarUInt((ulong)count);
        var versionIds = count > 1 ? new HashSet<string>(StringComparer.Ordinal) : null;
        for (var v = 0; v < count; v++)
        {
            await CopyVersionIdAsync(r, versionIds, into, cancellationToken).ConfigureAwait(false);
            into.WriteInstant(await r.ReadInstantAsync("version's creation time", cancellationToken).ConfigureAwait(false));
            await r.ReadValueAsync("ciphertext", MaximumValueBytes, into, cancellationToken).ConfigureAwait(false);
            CheckItemSize(r, into);
        }
    }

    /// <summary>Copies a version ID; when the item has several versions, checks it is not one of theirs.</summary>
    private static async Task CopyVersionIdAsync(PayloadStreamReader r, HashSet<string>? seen, RecordWriter into, CancellationToken cancellationToken)
    {
        var start = into.Length;
        await r.CopyStringAsync("version ID", MaximumStringBytes, required: true, into, cancellationToken).ConfigureAwait(false);
        if (seen is not null)
        {
            var versionId = Encoding.UTF8.GetString(ItemCodec.NameOf(into.WrittenSpan[start..]));
            if (!seen.Add(versionId))
            {
                throw r.Malformed($"{r.Context} has two versions with the ID '{Shown(versionId)}'");
            }
        }
    }

    /// <summary>Reads the changes, checking each field, into their compact encoding.</summary>
    private static async Task<EncodedChanges> ReadChangesAsync(PayloadStreamReader r, CancellationToken cancellationToken)
    {
        r.Context = "the changes";
        var start = r.Consumed;
        var count = await r.ReadCountAsync(MaximumChanges, "changes", cancellationToken).ConfigureAwait(false);
        var changes = new EncodedChanges();
        for (var i = 0; i < count; i++)
        {
            r.SetItem("change", i + 1, "day", null);
            var typeByte = await r.ReadByteAsync(cancellationToken).ConfigureAwait(false);
            var type = (ItemType)typeByte;
            if (!Enum.IsDefined(type))
            {
                throw r.Malformed(Invariant($"{r.Context} has an undefined item type {typeByte} (1 key, 2 secret)"));
            }

            var kindByte = await r.ReadByteAsync(cancellationToken).ConfigureAwait(false);
            var kind = (ChangeKind)kindByte;
            if (kind is not (ChangeKind.Added or ChangeKind.Deleted or ChangeKind.Rotated or ChangeKind.MetadataChanged or (ChangeKind.Rotated | ChangeKind.MetadataChanged)))
            {
                throw r.Malformed(Invariant($"{r.Context} has the change kind {kindByte}, which no diff makes (1 added, 2 deleted, 4 rotated, 8 metadata changed, 12 both)"));
            }

            var name = (await r.ReadStringAsync("item name", MaximumStringBytes, required: true, cancellationToken).ConfigureAwait(false))!;
            if (r.Consumed - start > MaximumChangeBytes)
            {
                throw r.Malformed(Invariant($"its changes take more than {MaximumChangeBytes:N0} bytes"));
            }

            changes.Add(type, kind, name);
        }

        return changes;
    }

    /// <summary>
    /// Items are in name order with no name twice: by code point, which is the order of their UTF-8 bytes. Keeps
    /// the current item's name in <paramref name="previous"/> for the next.
    /// </summary>
    private static void CheckOrder(PayloadStreamReader r, RecordWriter previous, RecordWriter item, string noun)
    {
        var name = ItemCodec.NameOf(item.WrittenSpan);
        if (previous.Length > 0)
        {
            var order = previous.WrittenSpan.SequenceCompareTo(name);
            if (order >= 0)
            {
                throw r.Malformed(order == 0
                    ? $"{r.Context} has the name of the {noun} before it; names are unique in an instance"
                    : $"{r.Context} comes after '{Shown(Encoding.UTF8.GetString(previous.WrittenSpan))}' but sorts before it; {noun}s are in name order (by code point)");
            }
        }

        previous.Clear();
        previous.WriteRaw(name);
    }

    private static void CheckItemSize(PayloadStreamReader r, RecordWriter item)
    {
        if (item.Length > MaximumItemBytes)
        {
            throw r.Malformed(Invariant($"{r.Context} takes more than {MaximumItemBytes:N0} bytes"));
        }
    }

    private static BackupTimeZone? TimeZoneOf(string id)
    {
        // Zone IDs are looked up in the system's zone database by name: only the characters of IANA and
        // Windows zone names, and no path steps, reach it.
        if (id.Contains("..", StringComparison.Ordinal) || id.StartsWith('/') ||
            !id.All(c => char.IsAsciiLetterOrDigit(c) || c is '/' or '_' or '-' or '+' or ' ' or '.' or '(' or ')'))
        {
            return null;
        }

        try
        {
            return BackupTimeZone.TryFromId(id, out var zone, out _) ? zone : null;
        }
        catch (Exception e) when (e is ArgumentException or InvalidTimeZoneException or IOException or UnauthorizedAccessException or System.Security.SecurityException)
        {
            return null;
        }
    }

    private static bool IsOnDay(BackupTimeZone zone, DateTimeOffset instant, DateOnly date)
    {
        DateOnly local;
        try
        {
            local = zone.DateOf(instant);
        }
        catch (ArgumentOutOfRangeException)
        {
            return false;
        }

        return local == date || local == date.AddDays(1);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
