using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace KmsBackup;

/// <summary>
/// Finds two keys of one uploaded point with the same ID, in memory that does not grow with the number of keys:
/// each key's ID is reduced to a 128-bit digest and kept with where the key lies in the spill file; runs of
/// <see cref="RunLength"/> entries are sorted in memory and, when there are more, written to a spill file of their
/// own and merged (an external sort). Equal digests are then adjacent, and their keys are read back and
/// compared. The digest is SipHash-2-4 (128-bit output) under a random key of this check's own, never stored or
/// shown: a crafted file cannot make many IDs collide and so make the check slow, since whoever made it does not
/// know the key. (It was SHA-256 through the platform's library, whose per-call cost on IDs of a few dozen bytes
/// was a third of an upload's time; a collision of digests only costs a read-back, never a wrong answer.)
/// </summary>
internal sealed class KeyIdCheck : IDisposable
{
    /// <summary>
    /// Entries sorted in memory at once: 24 bytes each, 3 MiB. A point of 100,000,000 keys (the most a file may
    /// hold) makes 763 runs, merged in one pass through a 4 KiB page each: 3 MiB more.
    /// </summary>
    public const int RunLength = 128 * 1024;

    private const int EntrySize = 24;

    private readonly SipHash128 _digest = new(
        BinaryPrimitives.ReadUInt64LittleEndian(RandomNumberGenerator.GetBytes(8)),
        BinaryPrimitives.ReadUInt64LittleEndian(RandomNumberGenerator.GetBytes(8)));

    private readonly string _folder;
    private readonly int _runLength;
    private Entry[] _run;
    private readonly List<(long Start, int Count)> _runs = [];
    private SpillFile? _spilledRuns;
    private int _count;

    /// <param name="folder">Where runs are spilled when there is more than one.</param>
    /// <param name="runLength">Entries per run: <see cref="RunLength"/>; tests make runs short to spill small sets.</param>
    public KeyIdCheck(string folder, int runLength = RunLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(runLength, 2);
        _folder = folder;
        _runLength = runLength;
        _run = new Entry[Math.Min(1024, runLength)];
    }

    /// <summary>Adds the key whose ID is <paramref name="keyId"/> (UTF-8) and whose item starts at <paramref name="position"/> in the spill file.</summary>
    public void Add(ReadOnlySpan<byte> keyId, long position)
    {
        var (high, low) = _digest.Hash(keyId);
        if (_count == _run.Length)
        {
            // The run grows with the keys up to its full length; a point of a few keys takes a few KiB.
            if (_run.Length < _runLength)
            {
                Array.Resize(ref _run, Math.Min(_runLength, _run.Length * 2));
            }
            else
            {
                SpillRun();
            }
        }

        _run[_count++] = new Entry(high, low, position);
    }

    /// <summary>
    /// The positions of two keys with the same ID (the earlier first), or null. <paramref name="sameId"/> reads the
    /// keys at two positions and says whether their IDs are equal.
    /// </summary>
    public (long First, long Second)? FindDuplicate(Func<long, long, bool> sameId, CancellationToken cancellationToken = default)
    {
        if (_runs.Count == 0)
        {
            // One run: sorted in place, nothing written.
            var entries = _run.AsSpan(0, _count);
            entries.Sort();
            for (var i = 1; i < entries.Length; i++)
            {
                if (entries[i].SameDigest(entries[i - 1]) && sameId(entries[i - 1].Position, entries[i].Position))
                {
                    return Ordered(entries[i - 1].Position, entries[i].Position);
                }
            }

            return null;
        }

        if (_count > 0)
        {
            SpillRun();
        }

        // A k-way merge: one cursor (one page) per run, at most MaximumItems / RunLength of them.
        var cursors = _runs.Select(r => (Cursor: _spilledRuns!.OpenCursor(r.Start), Left: r.Count)).ToArray();
        try
        {
            var heads = new PriorityQueue<int, Entry>(cursors.Length);
            for (var i = 0; i < cursors.Length; i++)
            {
                heads.Enqueue(i, ReadEntry(cursors[i].Cursor));
                cursors[i].Left--;
            }

            Entry? previous = null;
            for (long merged = 1; heads.TryDequeue(out var run, out var entry); merged++)
            {
                if (merged % 65536 == 0)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                }

                if (previous is { } p && p.SameDigest(entry) && sameId(p.Position, entry.Position))
                {
                    return Ordered(p.Position, entry.Position);
                }

                previous = entry;
                if (cursors[run].Left > 0)
                {
                    heads.Enqueue(run, ReadEntry(cursors[run].Cursor));
                    cursors[run].Left--;
                }
            }

            return null;
        }
        finally
        {
            foreach (var (cursor, _) in cursors)
            {
                cursor.Dispose();
            }
        }
    }

    public void Dispose() => _spilledRuns?.Dispose();

    private static (long, long) Ordered(long a, long b) => a < b ? (a, b) : (b, a);

    private static Entry ReadEntry(SpillFile.Cursor cursor)
    {
        Span<byte> bytes = stackalloc byte[EntrySize];
        cursor.Read(bytes);
        return MemoryMarshal.Read<Entry>(bytes);
    }

    private void SpillRun()
    {
        var entries = _run.AsSpan(0, _count);
        entries.Sort();
        _spilledRuns ??= SpillFile.Create(_folder, 4 * 1024);
        _runs.Add((_spilledRuns.Length, _count));
        _spilledRuns.Append(MemoryMarshal.AsBytes(entries));
        _count = 0;
    }

    [StructLayout(LayoutKind.Sequential, Pack = 8)]
    private readonly record struct Entry(ulong High, ulong Low, long Position) : IComparable<Entry>
    {
        public bool SameDigest(Entry other) => High == other.High && Low == other.Low;

        public int CompareTo(Entry other)
        {
            var c = High.CompareTo(other.High);
            if (c == 0)
            {
                c = Low.CompareTo(other.Low);
            }

            return c != 0 ? c : Position.CompareTo(other.Position);
        }
    }
}
