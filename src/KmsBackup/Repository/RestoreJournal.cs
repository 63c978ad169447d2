using System.Globalization;
using System.Text;

namespace KmsBackup.Repository;

/// <summary>How a run of a restore operation ended.</summary>
internal enum RestoreRunOutcome : byte
{
    /// <summary>Every planned item is in the target.</summary>
    Completed = 1,

    /// <summary>Nothing the operation created is left in the target.</summary>
    RolledBack = 2,
}

/// <summary>
/// The start of one run of a restore operation, written before its first create: who runs it, which data
/// (pinned to the last recovery point the plan read, so that a resume reads the same items), which target,
/// and the planned items in the order they are created. Names and IDs only, never key material or values.
/// </summary>
internal sealed record RestoreRunStart
{
    public required string OperationId { get; init; }

    public required int Run { get; init; }

    public required string CallerAccount { get; init; }

    public required string BackupId { get; init; }

    public required string TargetInstanceId { get; init; }

    public required DateTimeOffset StartedAt { get; init; }

    public required DateOnly BackupDate { get; init; }

    public BackupDataType? DataType { get; init; }

    public required bool AllItems { get; init; }

    public required long PointSequence { get; init; }

    public required IReadOnlyList<RestoreOperationItem> Items { get; init; }
}

/// <summary>The end of one run: completed (the items this run created) or rolled back (the items removed).</summary>
internal sealed record RestoreRunEnd(RestoreRunOutcome Outcome, DateTimeOffset FinishedAt, IReadOnlyList<RestoreOperationItem> Items);

/// <summary>A restore operation as journaled: its runs, oldest first, and how the latest one ended, if it did.</summary>
internal sealed record JournaledRestore(string OperationId, IReadOnlyList<RestoreRunStart> Runs, RestoreRunEnd? LatestEnd)
{
    public RestoreRunStart Latest => Runs[^1];

    public bool IsFinished => LatestEnd is not null;

    /// <summary>Every item any run planned, in plan order (a rerun under the same ID may have planned more).</summary>
    public IReadOnlyList<RestoreOperationItem> Items =>
        [.. Runs.Reverse().SelectMany(r => r.Items).Distinct().OrderBy(i => i.Type)];
}

/// <summary>
/// The restore journal: what each restore operation is about to write and how it ended, so that a restore
/// whose process dies between its writes and its rollback can be found, resumed or rolled back by its ID
/// after a restart. Objects are sealed like every other repository object and never rewritten:
/// <c>restores/&lt;operationId&gt;/&lt;run:D6&gt;/begin</c> before a run's first create, and
/// <c>restores/&lt;operationId&gt;/&lt;run:D6&gt;/end</c> when it completes or is rolled back. What a run
/// created in between is not journaled item by item: the target's own record (the operation that
/// created each item) is exact even for a create whose reply was lost, which no journal written after the
/// create can be. See docs/repository-format.md.
/// </summary>
internal sealed class RestoreJournal(BackupRepository repository)
{
    public const string Prefix = "restores/";
    private const string BeginPart = "begin";
    private const string EndPart = "end";

    private BackupStore Store => repository.Store;

    public static string KeyOf(string operationId, int run, string part) =>
        string.Create(CultureInfo.InvariantCulture, $"{Prefix}{operationId}/{run:D6}/{part}");

    /// <summary>Loads operation <paramref name="operationId"/>, or returns <see langword="null"/> when the journal has no run of it.</summary>
    public async Task<JournaledRestore?> LoadAsync(string operationId, CancellationToken cancellationToken)
    {
        var runs = new SortedDictionary<int, (bool Begin, bool End)>();
        await foreach (var entry in Store.ListAsync($"{Prefix}{operationId}/", cancellationToken).ConfigureAwait(false))
        {
            if (TryParse(entry.Key, out var op, out var run, out var part) && op == operationId)
            {
                var seen = runs.GetValueOrDefault(run);
                runs[run] = part == BeginPart ? (true, seen.End) : (seen.Begin, true);
            }
        }

        var starts = new List<RestoreRunStart>();
        foreach (var run in runs.Where(r => r.Value.Begin).Select(r => r.Key))
        {
            starts.Add(DecodeStart(await ReadAsync(KeyOf(operationId, run, BeginPart), cancellationToken).ConfigureAwait(false), operationId, run));
        }

        if (starts.Count == 0)
        {
            return null;
        }

        var latest = starts[^1].Run;
        RestoreRunEnd? end = null;
        if (runs[latest].End)
        {
            var key = KeyOf(operationId, latest, EndPart);
            end = DecodeEnd(await ReadAsync(key, cancellationToken).ConfigureAwait(false), key);
        }

        return new JournaledRestore(operationId, starts, end);
    }

    /// <summary>
    /// Loads every operation whose latest run has begun and not ended. Reads only those operations' objects.
    /// An operation whose journal does not open stays local: it is added to <paramref name="damaged"/> (when
    /// given) and left out, so that one damaged object never hides every other operation.
    /// </summary>
    public async Task<List<JournaledRestore>> LoadUnfinishedAsync(CancellationToken cancellationToken, List<BackupIntegrityException>? damaged = null)
    {
        var latest = new Dictionary<string, (int Run, bool End)>(StringComparer.Ordinal);
        await foreach (var entry in Store.ListAsync(Prefix, cancellationToken).ConfigureAwait(false))
        {
            if (!TryParse(entry.Key, out var op, out var run, out var part))
            {
                continue;
            }

            var known = latest.GetValueOrDefault(op, (Run: 0, End: false));
            if (run > known.Run)
            {
                latest[op] = (run, part == EndPart);
            }
            else if (run == known.Run && part == EndPart)
            {
                latest[op] = (run, true);
            }
        }

        var unfinished = new List<JournaledRestore>();
        foreach (var (op, _) in latest.Where(l => !l.Value.End).OrderBy(l => l.Key, StringComparer.Ordinal))
        {
            try
            {
                if (await LoadAsync(op, cancellationToken).ConfigureAwait(false) is { IsFinished: false } restore)
                {
                    unfinished.Add(restore);
                }
            }
            catch (BackupIntegrityException e)
            {
                damaged?.Add(e);
            }
        }

        return unfinished;
    }

    /// <summary>Journals the start of run <see cref="RestoreRunStart.Run"/>; fails if another writer began that run first.</summary>
    public Task BeginAsync(RestoreRunStart start, CancellationToken cancellationToken) =>
        CreateAsync(KeyOf(start.OperationId, start.Run, BeginPart), EncodeStart(start), start.OperationId, cancellationToken);

    /// <summary>Journals how run <paramref name="run"/> of <paramref name="operationId"/> ended.</summary>
    public Task EndAsync(string operationId, int run, RestoreRunEnd end, CancellationToken cancellationToken) =>
        CreateAsync(KeyOf(operationId, run, EndPart), EncodeEnd(end), operationId, cancellationToken);

    private async Task CreateAsync(string key, RecordWriter record, string operationId, CancellationToken cancellationToken)
    {
        var sealedBytes = repository.Crypto.Seal(record.WrittenSpan, Encoding.UTF8.GetBytes(key));
        if (!await Store.TryCreateAsync(key, sealedBytes, cancellationToken).ConfigureAwait(false))
        {
            // Runs of one operation hold its lease, so this is a writer that lost the lease meanwhile.
            throw new BackupException(new Refusal(
                BackupErrorCode.LeaseLost, $"restore operation '{operationId}'",
                $"The restore journal object '{key}' was written by another writer meanwhile: another process runs the restore operation '{operationId}'.",
                "Let the other process finish the operation, then list the unfinished restores and resume or roll it back if it is still listed."));
        }
    }

    private async Task<byte[]> ReadAsync(string key, CancellationToken cancellationToken)
    {
        var bytes = await Store.TryReadAsync(key, cancellationToken).ConfigureAwait(false)
            ?? throw RepositoryErrors.Integrity(What(key), "it is missing from the store");
        return await repository.Objects.WithKeysAsync(() => repository.Crypto.Open(bytes, Encoding.UTF8.GetBytes(key), What(key)), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Opens every journal object, for verify: each one that does not open, or is not a journal name, is a problem.</summary>
    public async Task<List<(string Item, string Problem)>> VerifyAsync(CancellationToken cancellationToken)
    {
        var problems = new List<(string, string)>();
        await foreach (var entry in Store.ListAsync(Prefix, cancellationToken).ConfigureAwait(false))
        {
            if (!TryParse(entry.Key, out _, out _, out _))
            {
                problems.Add(($"object '{entry.Key}'", "it is in the restore journal's area but is not a journal object"));
                continue;
            }

            try
            {
                await ReadAsync(entry.Key, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupIntegrityException e)
            {
                problems.Add((e.Item, e.Message));
            }
        }

        return problems;
    }

    private static string What(string key) => $"restore journal object '{key}'";

    private static bool TryParse(string key, out string operationId, out int run, out string part)
    {
        var parts = key.Split('/');
        operationId = parts.Length == 4 ? parts[1] : "";
        part = parts.Length == 4 ? parts[3] : "";
        run = 0;
        return parts.Length == 4 && parts[0] + "/" == Prefix && part is BeginPart or EndPart &&
               int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out run) && run > 0;
    }

    private static RecordWriter EncodeStart(RestoreRunStart start)
    {
        var w = new RecordWriter();
        w.WriteByte(1);
        w.WriteString(start.OperationId);
        w.WriteInt32(start.Run);
        w.WriteString(start.CallerAccount);
        w.WriteString(start.BackupId);
        w.WriteString(start.TargetInstanceId);
        w.WriteInstant(start.StartedAt);
        w.WriteInt32(start.BackupDate.DayNumber);
        w.WriteByte(start.DataType is { } type ? (byte)type : (byte)0);
        w.WriteByte(start.AllItems ? (byte)1 : (byte)0);
        w.WriteInt64(start.PointSequence);
        WriteItems(w, start.Items);
        return w;
    }

    private static RestoreRunStart DecodeStart(byte[] plain, string operationId, int run)
    {
        var r = new RecordReader(plain, What(KeyOf(operationId, run, BeginPart)));
        if (r.ReadByte() != 1)
        {
            throw r.Malformed("its format version is not supported by this SDK");
        }

        var start = new RestoreRunStart
        {
            OperationId = r.ReadRequiredString(),
            Run = r.ReadInt32(),
            CallerAccount = r.ReadRequiredString(),
            BackupId = r.ReadRequiredString(),
            TargetInstanceId = r.ReadRequiredString(),
            StartedAt = r.ReadInstant(),
            BackupDate = ReadDate(ref r),
            DataType = r.ReadByte() switch
            {
                0 => null,
                var t when Enum.IsDefined((BackupDataType)t) => (BackupDataType)t,
                _ => throw r.Malformed("its data type is unknown"),
            },
            AllItems = r.ReadByte() != 0,
            PointSequence = r.ReadInt64(),
            Items = ReadItems(ref r),
        };
        r.ExpectEnd();

        // The associated data binds the object to its key already; this catches an encoder bug.
        if (start.OperationId != operationId || start.Run != run)
        {
            throw r.Malformed("it names another operation or run than its key");
        }

        return start;
    }

    private static RecordWriter EncodeEnd(RestoreRunEnd end)
    {
        var w = new RecordWriter();
        w.WriteByte(1);
        w.WriteByte((byte)end.Outcome);
        w.WriteInstant(end.FinishedAt);
        WriteItems(w, end.Items);
        return w;
    }

    private static RestoreRunEnd DecodeEnd(byte[] plain, string key)
    {
        var r = new RecordReader(plain, What(key));
        if (r.ReadByte() != 1)
        {
            throw r.Malformed("its format version is not supported by this SDK");
        }

        var outcome = (RestoreRunOutcome)r.ReadByte();
        if (!Enum.IsDefined(outcome))
        {
            throw r.Malformed("its outcome is unknown");
        }

        var end = new RestoreRunEnd(outcome, r.ReadInstant(), ReadItems(ref r));
        r.ExpectEnd();
        return end;
    }

    private static void WriteItems(RecordWriter w, IReadOnlyList<RestoreOperationItem> items)
    {
        w.WriteVarUInt((ulong)items.Count);
        foreach (var item in items)
        {
            w.WriteByte((byte)item.Type);
            w.WriteString(item.Name);
        }
    }

    private static List<RestoreOperationItem> ReadItems(ref RecordReader r)
    {
        var count = r.ReadCount(10_000_000);
        var items = new List<RestoreOperationItem>(count);
        for (var i = 0; i < count; i++)
        {
            var type = (ItemType)r.ReadByte();
            if (!Enum.IsDefined(type))
            {
                throw r.Malformed("an item's type is unknown");
            }

            items.Add(new RestoreOperationItem(type, r.ReadRequiredString()));
        }

        return items;
    }

    private static DateOnly ReadDate(ref RecordReader r)
    {
        var day = r.ReadInt32();
        if (day < DateOnly.MinValue.DayNumber || day > DateOnly.MaxValue.DayNumber)
        {
            throw r.Malformed("a date is out of range");
        }

        return DateOnly.FromDayNumber(day);
    }
}
