using System.Globalization;
using System.Runtime;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// A random byte string planted in key material or secret values, and searched for in this process's memory. The
/// test never holds the marker itself in managed memory: only its complement (in a pinned array, so that the GC never
/// leaves a copy of it behind), from which the marker is written where it is planted and into the scanner's own
/// buffer, which the scan leaves out.
/// </summary>
internal sealed class MemoryMarker
{
    private readonly byte[] _complement;

    public MemoryMarker(string name, int length = 16)
    {
        Name = name;
        _complement = GC.AllocateArray<byte>(length, pinned: true);
        RandomNumberGenerator.Fill(_complement);
    }

    public string Name { get; }

    public int Length => _complement.Length;

    /// <summary>Writes the marker into the first <see cref="Length"/> bytes of <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination)
    {
        for (var i = 0; i < _complement.Length; i++)
        {
            destination[i] = (byte)~_complement[i];
        }
    }

    /// <summary>A new array holding the marker followed by random bytes, pinned so that no copy of it is left when the GC compacts.</summary>
    public byte[] Planted(int length)
    {
        var bytes = GC.AllocateArray<byte>(length, pinned: true);
        WriteTo(bytes);
        RandomNumberGenerator.Fill(bytes.AsSpan(Length));
        return bytes;
    }
}

/// <summary>How many copies of each marker a scan found, and how much memory it read.</summary>
internal sealed record MemoryScanResult(IReadOnlyDictionary<string, int> Copies, long BytesScanned, long BytesUnreadable, int Mappings)
{
    public int this[MemoryMarker marker] => Copies[marker.Name];

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{string.Join(", ", Copies.Select(c => $"{c.Key} {c.Value}"))}; scanned {BytesScanned / (1024 * 1024)} MiB in {Mappings} mappings, {BytesUnreadable / 1024} KiB unreadable");
}

/// <summary>
/// Counts the copies of markers in this process's memory (Linux only): reads <c>/proc/self/maps</c> and reads every
/// readable mapping that is anonymous (the heap, thread stacks, the GC's regions, malloc arenas) or writable (data of
/// loaded libraries) through <c>/proc/self/mem</c>. Read-only mappings of files are skipped: they hold what their file
/// holds, never a copy made at run time. The scanner's own buffer, which holds the markers while it searches and
/// every chunk it reads, is pinned, left out of the scan, and zeroed when the scanner is disposed.
/// </summary>
internal sealed class ProcessMemoryScanner : IDisposable
{
    private const int ChunkSize = 1024 * 1024;

    private readonly MemoryMarker[] _markers;
    private readonly byte[] _buffer;
    private readonly int _needlesLength;
    private readonly ulong _bufferStart;
    private readonly ulong _bufferEnd;

    public ProcessMemoryScanner(params MemoryMarker[] markers)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException(
                "The memory scan reads /proc/self/mem, which only Linux has; run this test on Linux (CI does). It fails here rather than pass without scanning.");
        }

        _markers = markers;
        _needlesLength = markers.Sum(m => m.Length);
        _buffer = GC.AllocateArray<byte>(_needlesLength + ChunkSize, pinned: true);
        _bufferStart = (ulong)Marshal.UnsafeAddrOfPinnedArrayElement(_buffer, 0);
        _bufferEnd = _bufferStart + (ulong)_buffer.Length;
        var offset = 0;
        foreach (var marker in markers)
        {
            marker.WriteTo(_buffer.AsSpan(offset, marker.Length));
            offset += marker.Length;
        }
    }

    /// <summary>Collects garbage the way a long-running process eventually does: full, blocking and compacting, the large object heap included.</summary>
    public static void CollectEverything()
    {
        for (var i = 0; i < 2; i++)
        {
            GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }
    }

    public MemoryScanResult Scan()
    {
        var copies = new int[_markers.Length];
        long scanned = 0, unreadable = 0;
        var mappings = 0;
        var longest = _markers.Max(m => m.Length);
        using var memory = File.OpenHandle("/proc/self/mem", FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        foreach (var line in File.ReadAllLines("/proc/self/maps"))
        {
            if (!TryParse(line, out var start, out var end, out var perms, out var path) || !ShouldScan(perms, path))
            {
                continue;
            }

            mappings++;
            foreach (var (from, to) in Without(start, end, _bufferStart, _bufferEnd))
            {
                for (var at = from; at < to;)
                {
                    var length = (int)Math.Min(ChunkSize, to - at);
                    var chunk = _buffer.AsSpan(_needlesLength, length);
                    if (!TryRead(memory, at, chunk))
                    {
                        unreadable += (long)(to - at);
                        break;
                    }

                    // Chunks overlap by one marker less a byte, so that a copy across two chunks is found once: in the chunk it starts in.
                    var last = at + (ulong)length >= to;
                    var counted = last ? length : length - (longest - 1);
                    var needle = 0;
                    for (var m = 0; m < _markers.Length; m++)
                    {
                        copies[m] += CountIn(chunk, _buffer.AsSpan(needle, _markers[m].Length), counted);
                        needle += _markers[m].Length;
                    }

                    scanned += counted;
                    at += (ulong)counted;
                }
            }
        }

        _buffer.AsSpan(_needlesLength).Clear();
        return new MemoryScanResult(
            _markers.Select((m, i) => (m.Name, copies[i])).ToDictionary(p => p.Name, p => p.Item2, StringComparer.Ordinal),
            scanned, unreadable, mappings);
    }

    public void Dispose() => CryptographicOperations.ZeroMemory(_buffer);

    private static bool ShouldScan(string perms, string path)
    {
        if (perms[0] != 'r' || path is "[vvar]" or "[vvar_vclock]" or "[vdso]" or "[vsyscall]")
        {
            return false;
        }

        var anonymous = path.Length == 0 || path.StartsWith('[');
        return anonymous || perms[1] == 'w';
    }

    private static bool TryParse(string line, out ulong start, out ulong end, out string perms, out string path)
    {
        // "start-end perms offset dev inode   path", the path optional and possibly holding spaces.
        start = end = 0;
        perms = path = string.Empty;
        var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 5)
        {
            return false;
        }

        var range = fields[0].Split('-');
        if (range.Length != 2 ||
            !ulong.TryParse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out start) ||
            !ulong.TryParse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out end) ||
            end > long.MaxValue)
        {
            return false;
        }

        perms = fields[1];
        path = fields.Length == 6 ? fields[5].Trim() : string.Empty;
        return perms.Length >= 4;
    }

    private static IEnumerable<(ulong From, ulong To)> Without(ulong start, ulong end, ulong holeStart, ulong holeEnd)
    {
        if (holeEnd <= start || holeStart >= end)
        {
            yield return (start, end);
            yield break;
        }

        if (start < holeStart)
        {
            yield return (start, holeStart);
        }

        if (holeEnd < end)
        {
            yield return (holeEnd, end);
        }
    }

    private static bool TryRead(Microsoft.Win32.SafeHandles.SafeFileHandle memory, ulong address, Span<byte> into)
    {
        try
        {
            var done = 0;
            while (done < into.Length)
            {
                var read = RandomAccess.Read(memory, into[done..], (long)address + done);
                if (read <= 0)
                {
                    return false;
                }

                done += read;
            }

            return true;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static int CountIn(ReadOnlySpan<byte> chunk, ReadOnlySpan<byte> needle, int startsBefore)
    {
        var count = 0;
        var from = 0;
        while (from < startsBefore)
        {
            var found = chunk[from..].IndexOf(needle);
            if (found < 0 || from + found >= startsBefore)
            {
                break;
            }

            count++;
            from += found + 1;
        }

        return count;
    }
}
