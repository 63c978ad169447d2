using System.Globalization;

namespace KmsBackup.Repository;

/// <summary>A recovery point as stored: one full or incremental backup run of one backup.</summary>
internal sealed record PointManifest
{
    public required string BackupId { get; init; }

    public required long Sequence { get; init; }

    public required BackupRunKind Kind { get; init; }

    public required ScheduleReason Reason { get; init; }

    public required DateTimeOffset StartedAt { get; init; }

    public required DateTimeOffset CompletedAt { get; init; }

    /// <summary>The schedule slot the run counts for: an incremental's grid instant; for a full, its start.</summary>
    public required DateTimeOffset Slot { get; init; }

    public required DateTimeOffset TakenAt { get; init; }

    public required SnapshotSource Source { get; init; }

    public required TreeRoot KeyRoot { get; init; }

    public required TreeRoot SecretRoot { get; init; }

    public required IReadOnlyList<ItemChange> Changes { get; init; }

    public string? Cursor { get; init; }

    public static string Prefix(string backupId) => $"points/{backupId}/";

    /// <summary>What a point is sealed to: its backup, date and sequence, so that a point moved, copied or renamed does not open.</summary>
    public static string AssociatedData(string backupId, DateOnly date, long sequence) =>
        string.Create(CultureInfo.InvariantCulture, $"point:{backupId}:{date:yyyy-MM-dd}:{sequence}");

    public byte[] Encode()
    {
        var w = new RecordWriter();
        w.WriteByte(1);
        w.WriteString(BackupId);
        w.WriteInt64(Sequence);
        w.WriteByte((byte)Kind);
        w.WriteByte((byte)Reason);
        w.WriteInstant(StartedAt);
        w.WriteInstant(CompletedAt);
        w.WriteInstant(Slot);
        w.WriteInstant(TakenAt);
        w.WriteString(Source.InstanceId);
        w.WriteByte((byte)Source.Kind);
        w.WriteString(Source.Region);
        w.WriteString(Source.OwnerAccount);
        WriteRoot(w, KeyRoot);
        WriteRoot(w, SecretRoot);
        w.WriteVarUInt((ulong)Changes.Count);
        foreach (var change in Changes)
        {
            w.WriteByte((byte)change.Type);
            w.WriteByte((byte)change.Kind);
            w.WriteString(change.Name);
        }

        w.WriteString(Cursor);
        return w.ToArray();
    }

    public static PointManifest Decode(byte[] plain, string backupId, long sequence)
    {
        var what = string.Create(CultureInfo.InvariantCulture, $"recovery point {backupId}#{sequence}");
        var r = new RecordReader(plain, what);
        if (r.ReadByte() != 1)
        {
            throw r.Malformed("its format version is unknown");
        }

        var manifest = new PointManifest
        {
            BackupId = r.ReadRequiredString(),
            Sequence = r.ReadInt64(),
            Kind = (BackupRunKind)r.ReadByte(),
            Reason = (ScheduleReason)r.ReadByte(),
            StartedAt = r.ReadInstant(),
            CompletedAt = r.ReadInstant(),
            Slot = r.ReadInstant(),
            TakenAt = r.ReadInstant(),
            Source = new SnapshotSource(r.ReadRequiredString(), (InstanceKind)r.ReadByte(), r.ReadRequiredString(), r.ReadRequiredString()),
            KeyRoot = ReadRoot(ref r),
            SecretRoot = ReadRoot(ref r),
            Changes = ReadChanges(ref r),
            Cursor = r.ReadString(),
        };
        r.ExpectEnd();
        if (manifest.BackupId != backupId || manifest.Sequence != sequence ||
            !Enum.IsDefined(manifest.Kind) || !Enum.IsDefined(manifest.Reason) || !Enum.IsDefined(manifest.Source.Kind))
        {
            throw r.Malformed("its fields do not match where it is stored");
        }

        return manifest;
    }

    private static List<ItemChange> ReadChanges(ref RecordReader r)
    {
        var count = r.ReadCount(100_000_000);
        var changes = new List<ItemChange>(Math.Min(count, 1_000_000));
        for (var i = 0; i < count; i++)
        {
            var type = (ItemType)r.ReadByte();
            var kind = (ChangeKind)r.ReadByte();
            changes.Add(new ItemChange(type, r.ReadRequiredString(), kind));
        }

        return changes;
    }

    private static void WriteRoot(RecordWriter w, TreeRoot root)
    {
        Span<byte> id = stackalloc byte[ObjectId.Size];
        root.Id.Write(id);
        w.WriteRaw(id);
        w.WriteByte(root.Level);
        w.WriteInt64(root.Count);
    }

    private static TreeRoot ReadRoot(ref RecordReader r) => new(ObjectId.Read(r.ReadRaw(ObjectId.Size)), r.ReadByte(), r.ReadInt64());
}

/// <summary>A backup in the catalog: its lifecycle state and the account that owns it.</summary>
internal sealed record CatalogEntry(BackupState State, string OwnerAccount)
{
    /// <summary>The catalog version this entry was read as (0 for a new backup); the next save writes version + 1 or fails.</summary>
    public long Version { get; init; }
}

/// <summary>How a backup's lifecycle state is stored in the catalog.</summary>
internal static class CatalogCodec
{
    public static string Prefix(string backupId) => $"catalog/{backupId}/";

    public static string KeyOf(string backupId, long version) => string.Create(CultureInfo.InvariantCulture, $"catalog/{backupId}/{version:D12}");

    public static string AssociatedData(string backupId, long version) => string.Create(CultureInfo.InvariantCulture, $"catalog:{backupId}:{version}");

    public static byte[] Encode(CatalogEntry entry)
    {
        var s = entry.State;
        var w = new RecordWriter();
        w.WriteByte(1);
        w.WriteString(entry.OwnerAccount);
        w.WriteString(s.Id);
        w.WriteByte((byte)s.Kind);
        w.WriteByte((byte)s.Status);
        w.WriteString(s.TimeZone.Id);
        w.WriteInstant(s.CreatedAt);
        w.WriteInt32(s.ViewableDays);
        w.WriteString(s.Region);
        w.WriteString(s.Alias);
        w.WriteByte(s.Instance is null ? (byte)0 : (byte)1);
        if (s.Instance is { } instance)
        {
            w.WriteString(instance.Id);
            w.WriteByte((byte)instance.Kind);
            w.WriteString(instance.Region);
        }

        w.WriteOptionalInstant(s.EnabledAt);
        w.WriteOptionalInstant(s.InstanceReleasedAt);
        w.WriteByte(s.Purchase is null ? (byte)0 : (byte)1);
        if (s.Purchase is { } purchase)
        {
            w.WriteInstant(purchase.PurchasedAt);
            w.WriteInt32(purchase.Term.Months);
            w.WriteInt32(purchase.ViewableDays);
            w.WriteInt32(purchase.Quantity);
        }

        w.WriteOptionalInstant(s.ExpiresAt);
        w.WriteOptionalInstant(s.ReleasedAt);
        w.WriteInt32(s.UploadedDate?.DayNumber ?? -1);
        return w.ToArray();
    }

    public static CatalogEntry Decode(byte[] plain, string backupId)
    {
        var r = new RecordReader(plain, $"catalog entry of backup '{backupId}'");
        if (r.ReadByte() != 1)
        {
            throw r.Malformed("its format version is unknown");
        }

        var owner = r.ReadRequiredString();
        var id = r.ReadRequiredString();
        var kind = (BackupKind)r.ReadByte();
        var status = (BackupStatus)r.ReadByte();
        var zoneId = r.ReadRequiredString();
        var createdAt = r.ReadInstant();
        var viewableDays = r.ReadInt32();
        var region = r.ReadString();
        var alias = r.ReadString();
        BoundInstance? instance = r.ReadByte() == 1 ? new BoundInstance(r.ReadRequiredString(), (InstanceKind)r.ReadByte(), r.ReadRequiredString()) : null;
        var enabledAt = r.ReadOptionalInstant();
        var instanceReleasedAt = r.ReadOptionalInstant();
        PurchaseRecord? purchase = null;
        if (r.ReadByte() == 1)
        {
            var purchasedAt = r.ReadInstant();
            var months = r.ReadInt32();
            var days = r.ReadInt32();
            var quantity = r.ReadInt32();
            if (!PurchaseTerm.TryFromMonths(months, out var term, out _))
            {
                throw r.Malformed("its purchase term is out of range");
            }

            purchase = new PurchaseRecord(purchasedAt, term, days, quantity);
        }

        var expiresAt = r.ReadOptionalInstant();
        var releasedAt = r.ReadOptionalInstant();
        var uploadedDay = r.ReadInt32();
        r.ExpectEnd();
        if (id != backupId || !Enum.IsDefined(kind) || !Enum.IsDefined(status) ||
            !BackupTimeZone.TryFromId(zoneId, out var zone, out _))
        {
            throw r.Malformed("its fields are out of range");
        }

        return new CatalogEntry(new BackupState(id, kind, zone, createdAt, viewableDays)
        {
            Status = status,
            Region = region,
            Alias = alias,
            Instance = instance,
            EnabledAt = enabledAt,
            InstanceReleasedAt = instanceReleasedAt,
            Purchase = purchase,
            ExpiresAt = expiresAt,
            ReleasedAt = releasedAt,
            UploadedDate = uploadedDay < 0 ? null : DateOnly.FromDayNumber(uploadedDay),
        }, owner);
    }
}
