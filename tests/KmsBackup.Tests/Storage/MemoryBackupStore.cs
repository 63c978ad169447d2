using System.Runtime.CompilerServices;

namespace KmsBackup.Tests.Storage;

/// <summary>
/// A store in memory that implements only the four primitives, as the author of a new store would: its keys,
/// prefixes and leases are <see cref="BackupStore"/>'s. Several clients share one <see cref="Data"/>, as hosts share
/// a store. <see cref="Before"/> sees every primitive call of this client, the lease protocol's included, so that a
/// test can pause a writer in the middle of the protocol.
/// </summary>
internal sealed class MemoryBackupStore(MemoryBackupStore.Data data, TimeProvider time) : BackupStore(time)
{
    /// <summary>Runs before each primitive call; may wait (pause the caller) or throw.</summary>
    public Func<StoreCall, Task>? Before { get; set; }

    protected override async Task<bool> TryCreateCoreAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        await BeforeAsync(StoreCallKind.Create, key, cancellationToken);
        lock (data.Gate)
        {
            return data.Objects.TryAdd(key, content.ToArray());
        }
    }

    protected override async Task<byte[]?> TryReadCoreAsync(string key, CancellationToken cancellationToken)
    {
        await BeforeAsync(StoreCallKind.Read, key, cancellationToken);
        lock (data.Gate)
        {
            return data.Objects.TryGetValue(key, out var content) ? content.ToArray() : null;
        }
    }

    protected override async IAsyncEnumerable<StoreObject> ListCoreAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await BeforeAsync(StoreCallKind.List, prefix, cancellationToken);
        StoreObject[] listed;
        lock (data.Gate)
        {
            listed = [.. data.Objects.Where(o => o.Key.StartsWith(prefix, StringComparison.Ordinal)).Select(o => new StoreObject(o.Key, o.Value.Length))];
        }

        foreach (var entry in listed)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return entry;
        }
    }

    protected override async Task<bool> DeleteCoreAsync(string key, CancellationToken cancellationToken)
    {
        await BeforeAsync(StoreCallKind.Delete, key, cancellationToken);
        lock (data.Gate)
        {
            return data.Objects.Remove(key);
        }
    }

    private Task BeforeAsync(StoreCallKind kind, string key, CancellationToken cancellationToken) =>
        Before?.Invoke(new StoreCall(kind, key) { CancellationToken = cancellationToken }) ?? Task.CompletedTask;

    /// <summary>What the clients of one memory store share.</summary>
    public sealed class Data
    {
        public Lock Gate { get; } = new();

        /// <summary>Every stored key, lease records included, in ordinal order.</summary>
        public SortedDictionary<string, byte[]> Objects { get; } = new(StringComparer.Ordinal);

        public List<string> Keys()
        {
            lock (Gate)
            {
                return [.. Objects.Keys];
            }
        }
    }
}
