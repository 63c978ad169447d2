namespace KmsBackup;

/// <summary>
/// Zeroes the key material and secret ciphertexts of records the engine read (from the repository or, as copies, from
/// an instance gateway) once the operation that needed them is done: they are <see cref="SensitiveBytes"/>, pinned, so
/// that zeroing them leaves no copy.
/// </summary>
internal static class SensitiveValues
{
    public static void Clear(KeyRecord key)
    {
        foreach (var version in key.Versions)
        {
            version.Material?.Clear();
        }
    }

    public static void Clear(SecretRecord secret)
    {
        foreach (var version in secret.Versions)
        {
            version.Ciphertext.Clear();
        }
    }

    public static void Clear(InstanceSnapshot? snapshot)
    {
        if (snapshot is null)
        {
            return;
        }

        foreach (var key in snapshot.Keys)
        {
            Clear(key);
        }

        foreach (var secret in snapshot.Secrets)
        {
            Clear(secret);
        }
    }

    public static void Clear(InstanceChanges? changes)
    {
        if (changes is null)
        {
            return;
        }

        foreach (var key in changes.UpsertedKeys)
        {
            Clear(key);
        }

        foreach (var secret in changes.UpsertedSecrets)
        {
            Clear(secret);
        }
    }
}

/// <summary>What an operation read that holds key material or secret ciphertexts; all of it is zeroed when this is disposed.</summary>
internal sealed class HeldValues : IDisposable
{
    private readonly List<InstanceSnapshot> _snapshots = [];
    private readonly List<InstanceChanges> _changes = [];

    public InstanceSnapshot? Hold(InstanceSnapshot? snapshot)
    {
        if (snapshot is not null)
        {
            _snapshots.Add(snapshot);
        }

        return snapshot;
    }

    public SnapshotRead Hold(SnapshotRead read)
    {
        _snapshots.Add(read.Snapshot);
        return read;
    }

    public InstanceChanges Hold(InstanceChanges changes)
    {
        _changes.Add(changes);
        return changes;
    }

    public void Dispose()
    {
        _snapshots.ForEach(SensitiveValues.Clear);
        _changes.ForEach(SensitiveValues.Clear);
        _snapshots.Clear();
        _changes.Clear();
    }
}
