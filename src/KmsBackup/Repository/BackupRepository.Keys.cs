using System.Globalization;
using System.Security.Cryptography;

namespace KmsBackup.Repository;
// Key generations: the keys/ records that add and rotate the repository keys.
internal sealed partial class BackupRepository
{
    // --- key generations ---

    /// <summary>
    /// Reads the key generation records this process does not know yet and adds their keys. A record that does not
    /// authenticate under the repository's keyring key (planted, damaged, or of another repository) is returned, not
    /// thrown: the objects sealed under it cannot be opened (each read says so), everything else can. A record that
    /// authenticates but does not unwrap (the key provider fails, or is not the one that wrapped it) is thrown: this
    /// host must not carry on without a key the other hosts use.
    /// </summary>
    /// <returns>The records that could not be used, each with why.</returns>
    public async Task<IReadOnlyList<(string Key, string Problem)>> RefreshKeysAsync(CancellationToken cancellationToken)
    {
        var unusable = new List<(string, string)>();
        await _keysGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await foreach (var entry in _store.ListAsync(KeysPrefix, cancellationToken).ConfigureAwait(false))
            {
                if (!TryParseKeyRecordName(entry.Key, out var sequence, out var generation))
                {
                    unusable.Add((entry.Key, "its name is not that of a key generation record"));
                    continue;
                }

                if (_crypto.SequenceOf(generation) != 0)
                {
                    continue;
                }

                var bytes = await _store.TryReadAsync(entry.Key, cancellationToken).ConfigureAwait(false);
                if (bytes is null)
                {
                    unusable.Add((entry.Key, "it vanished while it was read"));
                    continue;
                }

                byte[] wrapped;
                try
                {
                    wrapped = DecodeKeyRecord(entry.Key, sequence, generation, bytes);
                }
                catch (BackupIntegrityException e)
                {
                    unusable.Add((entry.Key, e.Message));
                    continue;
                }

                var secret = await _keys.UnwrapAsync(wrapped, cancellationToken).ConfigureAwait(false);
                try
                {
                    if (secret.Length != RepositoryCrypto.MasterSecretSize)
                    {
                        throw RepositoryErrors.Integrity($"key generation {sequence}", "its secret has the wrong length");
                    }

                    _crypto.AddGeneration(generation, sequence, secret.Span);
                }
                finally
                {
                    secret.Clear();
                }
            }
        }
        finally
        {
            _keysGate.Release();
        }

        return unusable;
    }

    /// <summary>
    /// Adds a key generation: a new random secret, wrapped by the key provider, stored as
    /// <c>keys/&lt;sequence&gt;-&lt;ID&gt;</c> with the next sequence number and a random ID. Objects name the ID, so a
    /// generation is never mistaken for another: two hosts rotating at once make two generations of one sequence
    /// (every host then seals under the one with the higher ID), and a deleted record makes its objects unreadable
    /// rather than its number reusable. Objects written from then on are sealed under it; older objects stay
    /// readable under their own generation until a rekey rewrites them.
    /// </summary>
    /// <returns>The new generation's ID and sequence number.</returns>
    public async Task<(uint Generation, ulong Sequence)> RotateKeyAsync(CancellationToken cancellationToken)
    {
        await RefreshKeysAsync(cancellationToken).ConfigureAwait(false);
        var sequence = checked(_crypto.HighestSequence + 1);
        var secret = GC.AllocateArray<byte>(RepositoryCrypto.MasterSecretSize, pinned: true);
        RandomNumberGenerator.Fill(secret);
        try
        {
            var wrapped = await _keys.WrapAsync(secret, cancellationToken).ConfigureAwait(false);
            for (var attempt = 0; ; attempt++)
            {
                var generation = BitConverter.ToUInt32(RandomNumberGenerator.GetBytes(4));
                if (generation <= RepositoryCrypto.FirstGeneration || _crypto.SequenceOf(generation) != 0)
                {
                    continue;
                }

                var key = KeyRecordKey(sequence, generation);
                var w = new RecordWriter();
                w.WriteRaw(s_keyRecordMagic);
                w.WriteVarUInt(sequence);
                w.WriteVarUInt(generation);
                w.WriteString(RepositoryId);
                w.WriteString(_keys.KeyId);
                w.WriteBytes(wrapped);
                w.WriteRaw(_crypto.KeyRecordMac(w.WrittenSpan));
                if (await _store.TryCreateAsync(key, w.ToArray(), cancellationToken).ConfigureAwait(false))
                {
                    _crypto.AddGeneration(generation, sequence, secret);
                    return (generation, sequence);
                }

                if (attempt >= 3)
                {
                    throw RepositoryErrors.Integrity("key generation records", $"'{key}' and the names tried before it exist already");
                }
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    private static string KeyRecordKey(ulong sequence, uint generation) =>
        string.Create(CultureInfo.InvariantCulture, $"{KeysPrefix}{sequence:D20}-{generation:x8}");

    private static bool TryParseKeyRecordName(string key, out ulong sequence, out uint generation)
    {
        sequence = 0;
        generation = 0;
        var name = key.AsSpan(KeysPrefix.Length);
        return name.Length == 29 && name[20] == '-' &&
            ulong.TryParse(name[..20], NumberStyles.None, CultureInfo.InvariantCulture, out sequence) && sequence >= 2 &&
            uint.TryParse(name[21..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out generation) &&
            generation > RepositoryCrypto.FirstGeneration && !name[21..].ContainsAnyInRange('A', 'F');
    }

    private byte[] DecodeKeyRecord(string key, ulong sequence, uint generation, byte[] bytes)
    {
        var what = $"key generation {sequence}";
        if (bytes.Length < 32 || !CryptographicOperations.FixedTimeEquals(_crypto.KeyRecordMac(bytes.AsSpan(0, bytes.Length - 32)), bytes.AsSpan(bytes.Length - 32)))
        {
            throw RepositoryErrors.Integrity(what, $"'{key}' does not authenticate under this repository's keys (it was changed, damaged, or planted)");
        }

        var r = new RecordReader(bytes.AsSpan(0, bytes.Length - 32), what);
        if (!r.ReadRaw(s_keyRecordMagic.Length).SequenceEqual(s_keyRecordMagic) || r.ReadVarUInt() != sequence || r.ReadVarUInt() != generation)
        {
            throw r.Malformed("it is not the record its name says");
        }

        if (!string.Equals(r.ReadRequiredString(), RepositoryId, StringComparison.Ordinal))
        {
            throw r.Malformed("it belongs to another repository");
        }

        var keyId = r.ReadRequiredString();
        var wrapped = r.ReadBytes().ToArray();
        r.ExpectEnd();
        if (!string.Equals(keyId, _keys.KeyId, StringComparison.Ordinal))
        {
            // Authentic, but this host's key provider cannot unwrap it: a configuration error, not damage.
            throw new BackupException(new Refusal(
                BackupErrorCode.IntegrityViolation, what,
                $"The repository's key generation {sequence} is wrapped by the key '{keyId}', but the key provider offers '{_keys.KeyId}'.",
                "Configure the repository key provider with the key the repository's keys are wrapped by."));
        }

        return wrapped;
    }
}
