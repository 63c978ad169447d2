using System.Globalization;
using KmsBackup.Repository;
using System.Runtime.CompilerServices;
using System.Text;

namespace KmsBackup;

/// <summary>Reads of backed-up data (rules D2–D4): data views by date and type, recovery points, and the state at an instant.</summary>
internal sealed class BackupDataReader
{
    private readonly BackupCatalog _catalog;
    private readonly BackupRepository _repository;

    internal BackupDataReader(BackupCatalog catalog)
    {
        _catalog = catalog;
        _repository = catalog.Repository;
    }

    internal async Task<BackupDataPage> GetDataPageAsync(
        string callerAccount, string backupId, DateOnly backupDate, BackupDataType type, BackupDataQuery? query = null, CancellationToken cancellationToken = default)
    {
        query ??= new BackupDataQuery();
        if (!Enum.IsDefined(type))
        {
            throw new ArgumentOutOfRangeException(nameof(type), type, "Not a defined data type.");
        }

        if (query.PageSize is < 1 or > BackupClient.MaximumPageSize)
        {
            throw new ArgumentOutOfRangeException(nameof(query), query.PageSize, $"A page holds 1 to {BackupClient.MaximumPageSize} items.");
        }

        if (query.NamePrefix is { } namePrefix && !IsValidUtf16(namePrefix))
        {
            throw new ArgumentException("The name prefix is not valid text (it holds a lone surrogate), so no item name can start with it.", nameof(query));
        }

        var entry = await _catalog.LoadOwnedForAsync(callerAccount, backupId, BackupOperation.View, backupDate, cancellationToken).ConfigureAwait(false);

        var day = await _repository.ListPointsAsync(backupId, backupDate, cancellationToken).ConfigureAwait(false);
        var (after, position) = DecodePageToken(query.ContinuationToken);
        var prefix = string.IsNullOrEmpty(query.NamePrefix) ? null : query.NamePrefix;
        if (type is BackupDataType.FullyBackedUpKeys or BackupDataType.FullyBackedUpSecrets && query.NameContains is null
            && (after is null || position is not null)
            && await FullViewPageAsync(day, backupDate, type, after, position ?? 0, query.PageSize, prefix, cancellationToken).ConfigureAwait(false) is { } seeked)
        {
            return seeked;
        }

        var items = await ItemsOfAsync(day, type, cancellationToken).ConfigureAwait(false);
        var filtered = items
            .Where(i => query.NameContains is null || i.Name.Contains(query.NameContains, StringComparison.OrdinalIgnoreCase))
            .Where(i => prefix is null || i.Name.StartsWith(prefix, StringComparison.Ordinal))
            .Where(i => after is null || ItemNameComparer.Instance.Compare(i.Name, after) > 0);
        var page = filtered.Take(query.PageSize + 1).ToList();
        var hasMore = page.Count > query.PageSize;
        if (hasMore)
        {
            page.RemoveAt(page.Count - 1);
        }

        var fullKey = await FullPointOfAsync(day, cancellationToken).ConfigureAwait(false);
        return new BackupDataPage
        {
            Date = backupDate,
            Type = type,
            Items = page,
            ContinuationToken = hasMore ? EncodeToken(page[^1].Name) : null,
            FullPoint = fullKey is { } k ? BackupCatalog.ToPoint(await _catalog.ReadPointAsync(k, cancellationToken).ConfigureAwait(false), k.Date) : null,
        };
    }

    /// <summary>
    /// A page of a day's full backup without a name filter, read by seeking through the tree to the page's position
    /// (the branches record how many items each subtree holds): it costs the tree's depth plus the page, not the day's
    /// size. The continuation token carries the position of the next item and the name of the last one shown; the
    /// item before the position is read too and must have that name, else (the token is not this point's) the caller
    /// falls back to reading the view whole, and this returns <see langword="null"/>.
    /// </summary>
    private async Task<BackupDataPage?> FullViewPageAsync(
        List<PointKey> day, DateOnly backupDate, BackupDataType type, string? after, long position, int pageSize, string? prefix, CancellationToken cancellationToken)
    {
        if (await FullPointOfAsync(day, cancellationToken).ConfigureAwait(false) is not { } fullKey)
        {
            return after is null ? new BackupDataPage { Date = backupDate, Type = type, Items = [], ContinuationToken = null, FullPoint = null } : null;
        }

        var manifest = await _catalog.ReadPointAsync(fullKey, cancellationToken).ConfigureAwait(false);

        // A first page with a prefix starts at the first name at or after it (one leaf and its path read); a later page at the
        // position its token carries, whatever the prefix.
        var start = after is not null || prefix is null ? position
            : type == BackupDataType.FullyBackedUpKeys
                ? await _repository.RankKeyAsync(manifest, prefix, cancellationToken).ConfigureAwait(false)
                : await _repository.RankSecretAsync(manifest, prefix, cancellationToken).ConfigureAwait(false);
        var from = after is null ? start : position - 1;
        if (from < 0)
        {
            return null;
        }

        var take = pageSize + 1 + (after is null ? 0 : 1);
        List<BackupDataItem> items = type == BackupDataType.FullyBackedUpKeys
            ? [.. (await _repository.ReadKeyRangeAsync(manifest, from, take, cancellationToken).ConfigureAwait(false)).Select(BackupDataItem.From)]
            : [.. (await _repository.ReadSecretRangeAsync(manifest, from, take, cancellationToken).ConfigureAwait(false)).Select(BackupDataItem.From)];
        if (after is not null)
        {
            if (items.Count == 0 || !string.Equals(items[0].Name, after, StringComparison.Ordinal))
            {
                return null;
            }

            items.RemoveAt(0);
        }

        if (prefix is not null)
        {
            // Names with the prefix are contiguous in the view's order: the page ends at the first without it.
            var matching = items.FindIndex(i => !i.Name.StartsWith(prefix, StringComparison.Ordinal));
            if (matching >= 0)
            {
                items.RemoveRange(matching, items.Count - matching);
            }
        }

        var hasMore = items.Count > pageSize;
        if (hasMore)
        {
            items.RemoveAt(items.Count - 1);
        }

        return new BackupDataPage
        {
            Date = backupDate,
            Type = type,
            Items = items,
            ContinuationToken = hasMore ? EncodeToken(items[^1].Name, start + pageSize) : null,
            FullPoint = BackupCatalog.ToPoint(manifest, fullKey.Date),
        };
    }

    private static bool IsValidUtf16(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(text[i]))
            {
                return false;
            }
        }

        return true;
    }

    internal async IAsyncEnumerable<BackupDataItem> GetDataAsync(
        string callerAccount, string backupId, DateOnly backupDate, BackupDataType type, string? nameContains = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string? token = null;
        do
        {
            var page = await GetDataPageAsync(callerAccount, backupId, backupDate, type,
                new BackupDataQuery { PageSize = BackupClient.MaximumPageSize, NameContains = nameContains, ContinuationToken = token }, cancellationToken).ConfigureAwait(false);
            foreach (var item in page.Items)
            {
                yield return item;
            }

            token = page.ContinuationToken;
        }
        while (token is not null);
    }

    internal async Task<IReadOnlyList<RecoveryPoint>> ListRecoveryPointsAsync(string callerAccount, string backupId, DateOnly backupDate, CancellationToken cancellationToken = default)
    {
        var entry = await _catalog.LoadOwnedForAsync(callerAccount, backupId, BackupOperation.View, backupDate, cancellationToken).ConfigureAwait(false);

        var result = new List<RecoveryPoint>();
        foreach (var key in await _repository.ListPointsAsync(backupId, backupDate, cancellationToken).ConfigureAwait(false))
        {
            result.Add(BackupCatalog.ToPoint(await _catalog.ReadPointAsync(key, cancellationToken).ConfigureAwait(false), key.Date));
        }

        return result;
    }

    internal async Task<RecoveryPointState> GetStateAtAsync(
        string callerAccount, string backupId, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        var (point, snapshot) = await StateAtAsync(callerAccount, backupId, at, withValues: true, cancellationToken).ConfigureAwait(false);
        return new RecoveryPointState(point, snapshot);
    }

    /// <summary><see cref="GetStateAtAsync"/>, with key material and secret ciphertexts only when <paramref name="withValues"/>.</summary>
    internal async Task<(RecoveryPoint Point, InstanceSnapshot Snapshot)> StateAtAsync(
        string callerAccount, string backupId, DateTimeOffset at, bool withValues, CancellationToken cancellationToken)
    {
        var entry = await _catalog.LoadOwnedForAsync(callerAccount, backupId, BackupOperation.View, date: null, cancellationToken).ConfigureAwait(false);
        var now = _catalog.Clock.GetUtcNow();

        var found = await FindPointAtAsync(backupId, entry.State, at, cancellationToken).ConfigureAwait(false);
        if (found is not { } hit)
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.NotFound, $"backup '{backupId}' at {ViewableWindow.Iso(at)}",
                $"The backup '{backupId}' has no recovery point at or before {ViewableWindow.Iso(at)}.",
                "Choose a later instant, within the backup's queryable range."));
        }

        var (bestKey, best) = hit;
        if (BackupLifecycle.CheckDate(entry.State, bestKey.Date, BackupOperation.View, now) is { } dateRefusal)
        {
            throw dateRefusal.ToException();
        }

        return (BackupCatalog.ToPoint(best, bestKey.Date), await _repository.ReadSnapshotAsync(best, withValues, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>The latest recovery point taken at or before <paramref name="at"/> (rule D4), or <see langword="null"/>.</summary>
    internal async Task<(PointKey Key, PointManifest Manifest)?> FindPointAtAsync(string backupId, BackupState state, DateTimeOffset at, CancellationToken cancellationToken)
    {
        // Points are in sequence order, which is the order they were taken in: search from the newest,
        // skipping by their dates, so that a long-lived backup does not read every manifest.
        var lastDate = state.TimeZone.DateOf(at).AddDays(1);
        var points = await _repository.ListPointsAsync(backupId, cancellationToken).ConfigureAwait(false);
        for (var i = points.Count - 1; i >= 0; i--)
        {
            if (points[i].Date > lastDate)
            {
                continue;
            }

            var manifest = await _catalog.ReadPointAsync(points[i], cancellationToken).ConfigureAwait(false);
            if (manifest.TakenAt <= at)
            {
                return (points[i], manifest);
            }
        }

        return null;
    }

    internal async Task<IReadOnlyList<BackupDataItem>> ItemsOfAsync(List<PointKey> day, BackupDataType type, CancellationToken cancellationToken)
    {
        // A view shows metadata only: the items are read without their key material and secret values.
        var (keys, secrets) = await ViewRecordsAsync(day, type, withValues: false, null, cancellationToken).ConfigureAwait(false);
        return keys is not null ? keys.Select(BackupDataItem.From).ToList() : secrets!.Select(BackupDataItem.From).ToList();
    }

    /// <summary>
    /// The records a data view of a day shows (rules D2, D3): the keys (secrets <see langword="null"/>) for a
    /// key type, or the secrets (keys <see langword="null"/>) for a secret type, sorted by name. Only the tree of
    /// that type is read. With <paramref name="withValues"/> (a restore) the records carry key material and secret
    /// ciphertexts, and every record read, shown or not, is passed to <paramref name="read"/>, which must zero them
    /// when done; without, none is copied out of the leaves.
    /// </summary>
    internal async Task<(List<KeyRecord>? Keys, List<SecretRecord>? Secrets)> ViewRecordsAsync(
        List<PointKey> day, BackupDataType type, bool withValues, Action<IEnumerable<KeyRecord>, IEnumerable<SecretRecord>>? read, CancellationToken cancellationToken)
    {
        var itemType = type is BackupDataType.FullyBackedUpKeys or BackupDataType.IncrementallyBackedUpKeys or BackupDataType.RotatedKeys ? ItemType.Key : ItemType.Secret;
        List<KeyRecord>? keys = itemType == ItemType.Key ? [] : null;
        List<SecretRecord>? secrets = itemType == ItemType.Secret ? [] : null;
        if (day.Count == 0)
        {
            return (keys, secrets);
        }

        // A point's items of the view's type: all of them, or those named (found by seeking through the tree).
        async Task<(List<KeyRecord>? Keys, List<SecretRecord>? Secrets)> ReadAsync(PointKey point, IReadOnlyCollection<string>? names = null)
        {
            var manifest = await _catalog.ReadPointAsync(point, cancellationToken).ConfigureAwait(false);
            var readKeys = keys is null ? null
                : names is null ? await _repository.ReadKeysAsync(manifest, withValues, cancellationToken).ConfigureAwait(false)
                : await _repository.FindKeysAsync(manifest, names, withValues, cancellationToken).ConfigureAwait(false);
            var readSecrets = secrets is null ? null
                : names is null ? await _repository.ReadSecretsAsync(manifest, withValues, cancellationToken).ConfigureAwait(false)
                : await _repository.FindSecretsAsync(manifest, names, withValues, cancellationToken).ConfigureAwait(false);
            read?.Invoke(readKeys ?? [], readSecrets ?? []);
            return (readKeys, readSecrets);
        }

        if (type is BackupDataType.FullyBackedUpKeys or BackupDataType.FullyBackedUpSecrets)
        {
            if (await FullPointOfAsync(day, cancellationToken).ConfigureAwait(false) is not { } fullKey)
            {
                return (keys, secrets);
            }

            var (fullKeys, fullSecrets) = await ReadAsync(fullKey).ConfigureAwait(false);
            return (fullKeys, fullSecrets);
        }

        // Added or rotated that day: the names from the day's points' changes, each item as the last point
        // of the day that holds it shows it (an item added and deleted the same day as the point that added it).
        var wanted = type is BackupDataType.IncrementallyBackedUpKeys or BackupDataType.IncrementallyBackedUpSecrets ? ChangeKind.Added : ChangeKind.Rotated;
        var remaining = new HashSet<string>(StringComparer.Ordinal);
        var lastSeenIn = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < day.Count; i++)
        {
            foreach (var change in (await _catalog.ReadPointAsync(day[i], cancellationToken).ConfigureAwait(false)).Changes)
            {
                if (change.Type == itemType && (change.Kind & wanted) == wanted)
                {
                    remaining.Add(change.Name);
                    lastSeenIn[change.Name] = i;
                }
            }
        }

        for (var i = day.Count - 1; i >= 0 && remaining.Count > 0; i--)
        {
            if (!remaining.Any(n => lastSeenIn[n] <= i))
            {
                continue;
            }

            var (pointKeys, pointSecrets) = await ReadAsync(day[i], [.. remaining]).ConfigureAwait(false);
            foreach (var key in pointKeys ?? [])
            {
                if (remaining.Remove(key.Name))
                {
                    keys!.Add(key);
                }
            }

            foreach (var secret in pointSecrets ?? [])
            {
                if (remaining.Remove(secret.Name))
                {
                    secrets!.Add(secret);
                }
            }
        }

        keys?.Sort((a, b) => ItemNameComparer.Instance.Compare(a.Name, b.Name));
        secrets?.Sort((a, b) => ItemNameComparer.Instance.Compare(a.Name, b.Name));
        return (keys, secrets);
    }

    /// <summary>The day's full backup: the first full point of the day (00:00, the enabling day's first, or a catch-up).</summary>
    internal async Task<PointKey?> FullPointOfAsync(List<PointKey> day, CancellationToken cancellationToken)
    {
        foreach (var key in day)
        {
            if ((await _catalog.ReadPointAsync(key, cancellationToken).ConfigureAwait(false)).Kind == BackupRunKind.Full)
            {
                return key;
            }
        }

        return null;
    }

    // A token is the base64 of the last shown item's name; a positional one is "p", the position of the next item, ".",
    // and that base64. No base64 text holds a '.', so the two never meet, whatever the names.
    internal static string EncodeToken(string name, long? position = null)
    {
        var encoded = Convert.ToBase64String(Encoding.UTF8.GetBytes(name));
        return position is { } p ? string.Create(CultureInfo.InvariantCulture, $"p{p}.{encoded}") : encoded;
    }

    internal static string? DecodeToken(string? token) => DecodePageToken(token).Name;

    /// <summary>The name of the last item a page showed and, for a positional token, the position of the next item.</summary>
    internal static (string? Name, long? Position) DecodePageToken(string? token)
    {
        if (token is null)
        {
            return (null, null);
        }

        long? position = null;
        var encoded = token;
        var dot = token.IndexOf('.', StringComparison.Ordinal);
        if (dot >= 0)
        {
            if (dot < 2 || token[0] != 'p' || !long.TryParse(token.AsSpan(1, dot - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var p) || p < 1)
            {
                throw NotIssued(nameof(token));
            }

            position = p;
            encoded = token[(dot + 1)..];
        }

        try
        {
            return (Encoding.UTF8.GetString(Convert.FromBase64String(encoded)), position);
        }
        catch (FormatException)
        {
            throw NotIssued(nameof(token));
        }
    }

    private static ArgumentException NotIssued(string parameter) => new("The continuation token is not one this client issued.", parameter);
}
