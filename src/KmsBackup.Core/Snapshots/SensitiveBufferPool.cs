using System.Numerics;
using System.Security.Cryptography;

namespace KmsBackup.Domain;

/// <summary>
/// Buffers for plaintext that holds key material or secret values while an operation works on it (a backup file's
/// segment, a payload being parsed). Pinned, so that a compacting garbage collection never leaves a copy at an old
/// address (<see cref="System.Buffers.ArrayPool{T}.Shared"/> hands out ordinary arrays, which it may); zeroed when
/// returned, so that a buffer never holds what its last user put in it; and pooled, so that a call does not allocate
/// (and so fragment the pinned object heap, which is never compacted) once its sizes have been seen.
/// </summary>
internal static class SensitiveBufferPool
{
    private const int SmallestBucket = 12; // 4 KiB
    private const int LargestBucket = 24; // 16 MiB
    private const int BuffersPerBucket = 8;

    private static readonly Stack<byte[]>[] s_buckets = [.. Enumerable.Range(0, LargestBucket - SmallestBucket + 1).Select(_ => new Stack<byte[]>())];

    /// <summary>A pinned buffer of at least <paramref name="minimumLength"/> bytes; its content is undefined. Give it back with <see cref="Return"/>.</summary>
    public static byte[] Rent(int minimumLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(minimumLength);
        var bucket = BucketOf(minimumLength);
        if (bucket < 0)
        {
            return GC.AllocateUninitializedArray<byte>(minimumLength, pinned: true);
        }

        var stack = s_buckets[bucket];
        lock (stack)
        {
            if (stack.TryPop(out var pooled))
            {
                return pooled;
            }
        }

        return GC.AllocateUninitializedArray<byte>(1 << (bucket + SmallestBucket), pinned: true);
    }

    /// <summary>Zeroes <paramref name="buffer"/> (all of it) and keeps it for the next <see cref="Rent"/> when there is room.</summary>
    public static void Return(byte[] buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        CryptographicOperations.ZeroMemory(buffer);
        var bucket = BucketOf(buffer.Length);
        if (bucket < 0 || buffer.Length != 1 << (bucket + SmallestBucket))
        {
            return; // not one of the pool's sizes: the GC takes it, zeroed
        }

        var stack = s_buckets[bucket];
        lock (stack)
        {
            if (stack.Count < BuffersPerBucket)
            {
                stack.Push(buffer);
            }
        }
    }

    private static int BucketOf(int length)
    {
        var log = length <= 1 << SmallestBucket ? SmallestBucket : BitOperations.Log2((uint)length - 1) + 1;
        return log > LargestBucket ? -1 : log - SmallestBucket;
    }
}
