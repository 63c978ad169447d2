using System.Security.Cryptography;

namespace KmsBackup.Repository;

/// <summary>
/// One pinned buffer that a walk opens batch after batch of objects into (<see cref="ObjectStore.ReadObjectsAsync(IReadOnlyCollection{ObjectId}, PlaintextBuffer, CancellationToken)"/>),
/// instead of a new pinned array per object: pinned arrays are only reclaimed by a full collection, so a walk through a
/// large tree made the pinned heap grow with the tree. The buffer grows to the largest batch and is reused; what it
/// held is zeroed when it is cleared, when it grows, and when it is disposed (it holds leaves: key material and
/// secret ciphertexts).
/// </summary>
internal sealed class PlaintextBuffer : ObjectStore.OpenedObjects, IDisposable
{
    private readonly Dictionary<ObjectId, (int Offset, int Length)> _objects = [];
    private byte[] _bytes = [];
    private int _used;

    /// <summary>The plaintext of object <paramref name="id"/>, opened since the buffer was last cleared.</summary>
    public Memory<byte> this[ObjectId id]
    {
        get
        {
            var (offset, length) = _objects[id];
            return _bytes.AsMemory(offset, length);
        }
    }

    public override void Reserve(long plaintextBytes)
    {
        var needed = _used + plaintextBytes;
        if (needed <= _bytes.Length)
        {
            return;
        }

        if (needed > Array.MaxLength)
        {
            throw new InvalidOperationException("A batch of objects is larger than one buffer can hold.");
        }

        // Pinned, so that no compacting collection leaves a copy of a leaf behind that Clear never reaches.
        var grown = GC.AllocateUninitializedArray<byte>((int)Math.Max(needed, Math.Min(Array.MaxLength, 2L * _bytes.Length)), pinned: true);
        _bytes.AsSpan(0, _used).CopyTo(grown);
        CryptographicOperations.ZeroMemory(_bytes.AsSpan(0, _used));
        _bytes = grown;
    }

    public override void Open(PackCipher cipher, ReadOnlySpan<byte> sealedBytes, ObjectId id, byte role)
    {
        if (_objects.ContainsKey(id))
        {
            return;
        }

        Reserve(Math.Max(0, sealedBytes.Length - RepositoryCrypto.Overhead));
        var length = cipher.OpenObject(sealedBytes, id, role, _bytes.AsSpan(_used));
        _objects[id] = (_used, length);
        _used += length;
    }

    public override void Discard() => Clear();

    /// <summary>Zeroes what the buffer holds and forgets its objects; the buffer is kept for the next batch.</summary>
    public void Clear()
    {
        CryptographicOperations.ZeroMemory(_bytes.AsSpan(0, _used));
        _used = 0;
        _objects.Clear();
    }

    public void Dispose()
    {
        Clear();
        _bytes = [];
    }
}
