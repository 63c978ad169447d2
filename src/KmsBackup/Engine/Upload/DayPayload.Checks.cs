using System.Text;
using KmsBackup.Repository;

namespace KmsBackup;

/// <summary>The checks of an uploaded day that look across its items: key IDs, and changes against both points.</summary>
internal static partial class DayPayload
{
    /// <summary>Key IDs are unique in an instance: see <see cref="KeyIdCheck"/>.</summary>
    private static void CheckKeyIdsUnique(PayloadStreamReader r, SpillFile items, KeyIdCheck ids, string what, CancellationToken cancellationToken)
    {
        using var cursor = items.OpenCursor(0);
        var first = new RecordWriter(4096, pinned: true);
        var second = new RecordWriter(4096, pinned: true);
        try
        {
            void Load(long position, RecordWriter into)
            {
                into.Clear();
                cursor.Seek(position);
                cursor.Read(into.Append(checked((int)cursor.ReadVarUInt())).Span);
            }

            var duplicate = ids.FindDuplicate((a, b) =>
            {
                Load(a, first);
                Load(b, second);
                return ItemCodec.KeyIdOf(first.WrittenSpan).SequenceEqual(ItemCodec.KeyIdOf(second.WrittenSpan));
            }, cancellationToken);
            if (duplicate is { } pair)
            {
                Load(pair.First, first);
                Load(pair.Second, second);
                r.Context = $"the {what}";
                throw r.Malformed($"its {what} has two keys with the ID '{Shown(Encoding.UTF8.GetString(ItemCodec.KeyIdOf(first.WrittenSpan)))}' ('{Shown(Encoding.UTF8.GetString(ItemCodec.NameOf(first.WrittenSpan)))}' and '{Shown(Encoding.UTF8.GetString(ItemCodec.NameOf(second.WrittenSpan)))}'); key IDs are unique in an instance");
            }
        }
        finally
        {
            first.Wipe();
            second.Wipe();
        }
    }

    /// <summary>
    /// Checks that the changes of items of <paramref name="type"/> lead from the full backup to the last recovery
    /// point: replayed over the full's names, each addition names an item not there yet, each deletion, rotation or
    /// metadata change one that is there, the result for each name is whether the last point holds it, and a name
    /// no change touches is in both points or in neither. One walk in name order through the full's items, the
    /// last point's and the changes sorted by name (stably, so each name's changes keep their order): no lookup,
    /// and nothing held but one item of each point.
    /// </summary>
    private static void CheckChanges(
        PayloadStreamReader r, SpillFile items, EncodedChanges changes, UploadedSnapshot full, UploadedSnapshot last, ItemType type, CancellationToken cancellationToken)
    {
        var noun = type == ItemType.Key ? "key" : "secret";
        var sorted = Enumerable.Range(0, changes.Count).Where(i => changes.TypeOf(i) == type).ToArray();
        Array.Sort(sorted, (a, b) =>
        {
            var c = changes.NameOf(a).SequenceCompareTo(changes.NameOf(b));
            return c != 0 ? c : a.CompareTo(b);
        });

        using var inFull = new SpilledNames(items, type == ItemType.Key ? full.Keys : full.Secrets);
        using var inLast = new SpilledNames(items, type == ItemType.Key ? last.Keys : last.Secrets);
        var next = 0;
        for (var step = 1; inFull.HasName || inLast.HasName || next < sorted.Length; step++)
        {
            if (step % 65536 == 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
            }

            // The least name among the three heads.
            var name = inFull.HasName ? inFull.Name : inLast.HasName ? inLast.Name : changes.NameOf(sorted[next]);
            if (inLast.HasName && inLast.Name.SequenceCompareTo(name) < 0)
            {
                name = inLast.Name;
            }

            if (next < sorted.Length && changes.NameOf(sorted[next]).SequenceCompareTo(name) < 0)
            {
                name = changes.NameOf(sorted[next]);
            }

            var wasThere = inFull.HasName && inFull.Name.SequenceEqual(name);
            var isInLast = inLast.HasName && inLast.Name.SequenceEqual(name);
            if (next == sorted.Length || !changes.NameOf(sorted[next]).SequenceEqual(name))
            {
                if (wasThere != isInLast)
                {
                    throw r.Malformed($"the {noun} '{Shown(Encoding.UTF8.GetString(name))}' is only in the {(wasThere ? "full backup" : "last recovery point")}, yet no change of the day adds or deletes it");
                }
            }
            else
            {
                var isThere = wasThere;
                for (; next < sorted.Length && changes.NameOf(sorted[next]).SequenceEqual(name); next++)
                {
                    var kind = changes.KindOf(sorted[next]);
                    if (kind == ChangeKind.Added ? isThere : !isThere)
                    {
                        throw r.Malformed(Invariant($"change {sorted[next] + 1} of the day {(kind == ChangeKind.Added ? "adds" : kind == ChangeKind.Deleted ? "deletes" : "changes")} the {noun} '{Shown(Encoding.UTF8.GetString(name))}', which {(isThere ? "is there already" : "is not there")} at that point of the day"));
                    }

                    isThere = kind != ChangeKind.Deleted;
                }

                if (isThere != isInLast)
                {
                    throw r.Malformed($"after the day's changes the {noun} '{Shown(Encoding.UTF8.GetString(name))}' {(isThere ? "is there" : "is gone")}, but the last recovery point {(isThere ? "does not hold it" : "holds it")}");
                }
            }

            if (wasThere)
            {
                inFull.MoveNext();
            }

            if (isInLast)
            {
                inLast.MoveNext();
            }
        }
    }

    /// <summary>The names of spilled items, one at a time, in order: the item being looked at is all that is held.</summary>
    private sealed class SpilledNames : IDisposable
    {
        private readonly SpillFile.Cursor _cursor;
        private readonly RecordWriter _item = new(4096, pinned: true);
        private long _left;

        public SpilledNames(SpillFile items, SpilledItems region)
        {
            _cursor = items.OpenCursor(region.Start);
            _left = region.Count;
            MoveNext();
        }

        public bool HasName { get; private set; }

        public ReadOnlySpan<byte> Name => ItemCodec.NameOf(_item.WrittenSpan);

        public void MoveNext()
        {
            _item.Clear();
            HasName = _left > 0;
            if (HasName)
            {
                _left--;
                _cursor.Read(_item.Append(checked((int)_cursor.ReadVarUInt())).Span);
            }
        }

        public void Dispose()
        {
            _item.Wipe();
            _cursor.Dispose();
        }
    }
}
