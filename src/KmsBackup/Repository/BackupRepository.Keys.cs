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
                if (entry.Key.StartsWith(ProvidersPrefix, StringComparison.Ordinal) || entry.Key.StartsWith(RingCopiesPrefix, StringComparison.Ordinal) ||
                    string.Equals(entry.Key, KeyringKey, StringComparison.Ordinal))
                {
                    continue;
                }

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

                string keyId;
                byte[] wrapped;
                try
                {
                    (keyId, wrapped) = DecodeKeyRecord(entry.Key, sequence, generation, bytes);
                }
                catch (BackupIntegrityException e)
                {
                    unusable.Add((entry.Key, e.Message));
                    continue;
                }

                var secret = await UnwrapGenerationAsync(sequence, generation, keyId, wrapped, cancellationToken).ConfigureAwait(false);
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
        await _keysGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Once the repository has migrated to the keyring, new generations are wrapped under it, so every provider opens them.
            await EnsureKeyringCoreAsync(migrate: false, DateTimeOffset.MinValue, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _keysGate.Release();
        }

        var sequence = checked(_crypto.HighestSequence + 1);
        var secret = GC.AllocateArray<byte>(RepositoryCrypto.MasterSecretSize, pinned: true);
        RandomNumberGenerator.Fill(secret);
        try
        {
            var wrapped = _keyring is null ? await _keys.WrapAsync(secret, cancellationToken).ConfigureAwait(false) : null;
            for (var attempt = 0; ; attempt++)
            {
                var generation = BitConverter.ToUInt32(RandomNumberGenerator.GetBytes(4));
                if (generation <= RepositoryCrypto.FirstGeneration || _crypto.SequenceOf(generation) != 0)
                {
                    continue;
                }

                var key = KeyRecordKey(sequence, generation);
                var record = wrapped is not null
                    ? EncodeKeyRecord(sequence, generation, _keys.KeyId, wrapped)
                    : RingCopyRecord(_keyring!, sequence, generation, secret);
                if (await _store.TryCreateAsync(key, record, cancellationToken).ConfigureAwait(false))
                {
                    _crypto.AddGeneration(generation, sequence, secret);
                    if (wrapped is not null)
                    {
                        // Wrapped by the first provider because no keyring was there a moment ago. A migration that finished
                        // since may have listed the generations before this record was created: then its keyring is visible
                        // now, and this host copies the generation under it, so every provider opens it.
                        await _keysGate.WaitAsync(cancellationToken).ConfigureAwait(false);
                        try
                        {
                            await EnsureKeyringCoreAsync(migrate: false, DateTimeOffset.MinValue, cancellationToken).ConfigureAwait(false);
                            if (_keyring is not null)
                            {
                                await EnsureRingCopyAsync(sequence, generation, RingCopyRecord(_keyring, sequence, generation, secret), cancellationToken).ConfigureAwait(false);
                            }
                        }
                        finally
                        {
                            _keysGate.Release();
                        }
                    }

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

    private byte[] EncodeKeyRecord(ulong sequence, uint generation, string keyId, byte[] wrapped)
    {
        var w = new RecordWriter();
        w.WriteRaw(s_keyRecordMagic);
        w.WriteVarUInt(sequence);
        w.WriteVarUInt(generation);
        w.WriteString(RepositoryId);
        w.WriteString(keyId);
        w.WriteBytes(wrapped);
        w.WriteRaw(_crypto.KeyRecordMac(w.WrittenSpan));
        return w.ToArray();
    }

    /// <summary>Decodes an authentic generation record (its own or its keyring copy): the key ID of what wrapped it, and the wrapped secret.</summary>
    private (string KeyId, byte[] Wrapped) DecodeKeyRecord(string key, ulong sequence, uint generation, byte[] bytes)
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
        return (keyId, wrapped);
    }

    /// <summary>
    /// Unwraps a generation's secret: under the keyring, or with this host's provider when that wrapped it (a repository
    /// before migration, or a generation its first provider wrapped), or from the generation's keyring copy.
    /// </summary>
    private async Task<SensitiveBytes> UnwrapGenerationAsync(ulong sequence, uint generation, string keyId, byte[] wrapped, CancellationToken cancellationToken)
    {
        var what = $"key generation {sequence}";
        if (string.Equals(keyId, KeyringKeyId, StringComparison.Ordinal))
        {
            // Another host migrated the repository after this one opened it.
            await EnsureKeyringCoreAsync(migrate: false, DateTimeOffset.MinValue, cancellationToken).ConfigureAwait(false);
            if (_keyring is null)
            {
                throw RepositoryErrors.Integrity(what, "it is wrapped under a keyring, but the repository has no keyring record (keys/keyring)");
            }

            return UnwrapGenerationFromKeyring(sequence, generation, wrapped);
        }

        if (string.Equals(keyId, _keys.KeyId, StringComparison.Ordinal))
        {
            var secret = await _keys.UnwrapAsync(wrapped, cancellationToken).ConfigureAwait(false);
            if (_keyring is not null)
            {
                // Completes a migration that a rotation by a host that had not seen it raced with.
                var copy = RingCopyRecord(_keyring, sequence, generation, secret.Span);
                await EnsureRingCopyAsync(sequence, generation, copy, cancellationToken).ConfigureAwait(false);
            }

            return secret;
        }

        if (_keyring is not null)
        {
            var copyKey = RingCopyKey(sequence, generation);
            var copyBytes = await _store.TryReadAsync(copyKey, cancellationToken).ConfigureAwait(false);
            if (copyBytes is not null)
            {
                var (copyKeyId, copyWrapped) = DecodeKeyRecord(copyKey, sequence, generation, copyBytes);
                if (string.Equals(copyKeyId, KeyringKeyId, StringComparison.Ordinal))
                {
                    return UnwrapGenerationFromKeyring(sequence, generation, copyWrapped);
                }
            }

            throw new BackupException(new Refusal(
                BackupErrorCode.KeyProviderNotRegistered, what,
                $"The repository's key generation {sequence} is wrapped only by the key '{keyId}' (its first provider): a host rotated the key with it while the repository moved to several providers, and no host holding that key has opened the repository since.",
                $"Open the repository once with the provider '{keyId}'; that copies the generation under the keyring, for every provider."));
        }

        // Authentic, but this host's key provider cannot unwrap it: a configuration error, not damage.
        throw new BackupException(new Refusal(
            BackupErrorCode.IntegrityViolation, what,
            $"The repository's key generation {sequence} is wrapped by the key '{keyId}', but the key provider offers '{_keys.KeyId}'.",
            "Configure the repository key provider with the key the repository's keys are wrapped by."));
    }
}
