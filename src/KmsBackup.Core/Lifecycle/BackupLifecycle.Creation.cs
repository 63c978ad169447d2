namespace KmsBackup.Domain;

/// <summary>Creating backups: automatic, default, purchased and uploaded (rules K1–K6, H1).</summary>
internal static partial class BackupLifecycle
{
    /// <summary>
    /// Creates the automatic backup of an instance that is being enabled (rules K4, K5): only for an
    /// enabled instance created on or after its kind's cutoff, only if it has no automatic backup yet,
    /// and for a hardware instance only from image version 3.9.1 (rule H1). The backup is enabled at
    /// once with 90 viewable days, and its first full backup is due now.
    /// </summary>
    /// <param name="backupId">The new backup's ID.</param>
    /// <param name="instance">The instance being enabled.</param>
    /// <param name="existingBackups">The backups that exist, to enforce one automatic backup per instance.</param>
    /// <param name="cutoffs">The eligibility cutoffs (<see cref="AutomaticBackupCutoffs.Default"/> are the seed's).</param>
    /// <param name="timeZone">The zone the backup counts days in.</param>
    /// <param name="now">The current instant.</param>
    public static CreationOutcome CreateAutomatic(
        string backupId, InstanceInfo instance, IEnumerable<BackupState> existingBackups,
        AutomaticBackupCutoffs cutoffs, BackupTimeZone timeZone, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(backupId);
        ArgumentNullException.ThrowIfNull(instance);
        ArgumentNullException.ThrowIfNull(existingBackups);
        ArgumentNullException.ThrowIfNull(cutoffs);
        ArgumentNullException.ThrowIfNull(timeZone);

        var instanceItem = $"instance '{instance.Id}'";
        if (!instance.IsEnabled)
        {
            return CreationOutcome.Refused(InstanceNotEnabled(instance));
        }

        var cutoff = cutoffs.For(instance.Kind);
        if (instance.CreatedAt < cutoff)
        {
            return CreationOutcome.Refused(new Refusal(
                BackupErrorCode.InstanceNotEligible, instanceItem,
                $"The {Lower(instance.Kind)} instance '{instance.Id}' was created on {Iso(instance.CreatedAt)}, before {Iso(cutoff)}, so it gets no automatic backup.",
                "Back it up with a default or purchased backup instead."));
        }

        if (HardwareRules.CheckImageVersion(instance) is { } tooOld)
        {
            return CreationOutcome.Refused(tooOld);
        }

        var existing = existingBackups.FirstOrDefault(b =>
            b.Kind == BackupKind.Automatic && b.Status != BackupStatus.Released &&
            string.Equals(b.Instance?.Id, instance.Id, StringComparison.Ordinal));
        if (existing is not null)
        {
            return CreationOutcome.Refused(new Refusal(
                BackupErrorCode.AutomaticBackupExists, instanceItem,
                $"The instance '{instance.Id}' already has the automatic backup '{existing.Id}'; an instance has at most one.",
                $"Use the existing automatic backup '{existing.Id}'."));
        }

        var state = new BackupState(backupId, BackupKind.Automatic, timeZone, now, BackupKindPolicy.AutomaticViewableDays)
        {
            Status = BackupStatus.Enabled,
            Region = instance.Region,
            Alias = backupId,
            Instance = new BoundInstance(instance.Id, instance.Kind, instance.Region),
            EnabledAt = now,
        };
        return CreationOutcome.Accepted([state], [LifecycleEffect.RunFullBackup]);
    }

    /// <summary>Creates a default backup: free, 7 fixed viewable days, unbound (<c>Disabled</c>) until enabled (rules K1, K2, L3).</summary>
    /// <param name="backupId">The new backup's ID.</param>
    /// <param name="timeZone">The zone the backup counts days in.</param>
    /// <param name="now">The current instant.</param>
    public static BackupState CreateDefault(string backupId, BackupTimeZone timeZone, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(backupId);
        ArgumentNullException.ThrowIfNull(timeZone);
        return new BackupState(backupId, BackupKind.Default, timeZone, now, BackupKindPolicy.DefaultViewableDays);
    }

    /// <summary>
    /// Purchases <see cref="PurchaseOrder.Quantity"/> backups (rules K2, K3, K6): each unbound, with the
    /// order's region and viewable days, expiring at the end of the term. The IDs are
    /// <c>{orderId}-1</c> to <c>{orderId}-{Quantity}</c>.
    /// </summary>
    /// <param name="orderId">The order's ID, from which the backups' IDs are made.</param>
    /// <param name="order">What is bought.</param>
    /// <param name="timeZone">The zone the backups count days in.</param>
    /// <param name="now">The current instant: the purchase time.</param>
    public static CreationOutcome Purchase(string orderId, PurchaseOrder order, BackupTimeZone timeZone, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(orderId);
        ArgumentNullException.ThrowIfNull(order);
        ArgumentNullException.ThrowIfNull(timeZone);

        if (string.IsNullOrWhiteSpace(order.Region))
        {
            return CreationOutcome.Refused(new Refusal(
                BackupErrorCode.RegionMismatch, "region=(empty)",
                "A purchase needs the region of the instance it will back up.",
                "Give the region of the instance to back up, e.g. 'cn-hangzhou'."));
        }

        if (ViewableDaysRangeRefusal(order.ViewableDays) is { } badDays)
        {
            return CreationOutcome.Refused(badDays);
        }

        if (order.Term.Months == 0)
        {
            PurchaseTerm.TryFromMonths(0, out _, out var badTerm);
            return CreationOutcome.Refused(badTerm!);
        }

        if (order.Quantity is < 1 or > PurchaseOrder.MaximumQuantity)
        {
            return CreationOutcome.Refused(new Refusal(
                BackupErrorCode.InvalidQuantity, Invariant($"quantity={order.Quantity}"),
                Invariant($"A purchase of {order.Quantity} backups is outside 1 to {PurchaseOrder.MaximumQuantity}."),
                Invariant($"Buy from 1 to {PurchaseOrder.MaximumQuantity} backups at a time; each backs up one instance.")));
        }

        var record = new PurchaseRecord(now, order.Term, order.ViewableDays, order.Quantity);
        var expiresAt = order.Term.EndFrom(now);
        var backups = new BackupState[order.Quantity];
        for (var i = 0; i < backups.Length; i++)
        {
            backups[i] = new BackupState(Invariant($"{orderId}-{i + 1}"), BackupKind.Purchased, timeZone, now, order.ViewableDays)
            {
                Region = order.Region,
                Purchase = record,
                ExpiresAt = expiresAt,
            };
        }

        return CreationOutcome.Accepted(backups, [LifecycleEffect.RecordCharge]);
    }

    /// <summary>Creates an uploaded backup holding the one date its file held (rules K1, K2).</summary>
    /// <param name="backupId">The new backup's ID.</param>
    /// <param name="name">The backup name given at upload; becomes its alias.</param>
    /// <param name="heldDate">The backup date the file holds.</param>
    /// <param name="region">The region the backup is kept for, or <see langword="null"/>.</param>
    /// <param name="timeZone">The zone the backup counts days in.</param>
    /// <param name="now">The current instant.</param>
    public static CreationOutcome CreateUploaded(string backupId, string name, DateOnly heldDate, string? region, BackupTimeZone timeZone, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(backupId);
        ArgumentNullException.ThrowIfNull(timeZone);
        if (AliasRefusal(name, "name") is { } badName)
        {
            return CreationOutcome.Refused(badName);
        }

        var state = new BackupState(backupId, BackupKind.Uploaded, timeZone, now, 1)
        {
            Status = BackupStatus.Enabled,
            Alias = name,
            Region = region,
            UploadedDate = heldDate,
        };
        return CreationOutcome.Accepted([state], s_none);
    }
}
