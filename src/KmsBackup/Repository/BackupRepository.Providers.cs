using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace KmsBackup.Repository;

// Several key providers per repository: the keyring envelope (docs/repository-format.md, "Key providers").
internal sealed partial class BackupRepository
{
    /// <summary>The prefix of provider records: <c>keys/providers/&lt;32 hex digits of SHA-256(key ID)&gt;</c>.</summary>
    public const string ProvidersPrefix = "keys/providers/";

    /// <summary>The keyring record: the master secret wrapped under the keyring secret. Its presence means the repository has migrated.</summary>
    public const string KeyringKey = "keys/keyring";

    /// <summary>The prefix of keyring copies of generation records that were wrapped by the first provider (before migration).</summary>
    public const string RingCopiesPrefix = "keys/ring/";

    /// <summary>The key ID a generation record names when its secret is wrapped under the keyring secret.</summary>
    public const string KeyringKeyId = "keyring";

    /// <summary>The size of the keyring secret.</summary>
    public const int KeyringSecretSize = 32;

    private const string ProvidersLease = "keys/providers";
    private static readonly byte[] s_providerRecordMagic = "KBKPRV01"u8.ToArray();
    private static readonly byte[] s_keyringMagic = "KBKRNG01"u8.ToArray();

    // The keyring secret once this host knows it (the repository migrated), pinned; null before.
    private byte[]? _keyring;

    // The key ID of the registered provider this host opened with (the config's in a repository that has not migrated).
    private string _providerKeyId = string.Empty;

    /// <summary>The provider record of one registered provider, as read (not yet authenticated).</summary>
    private sealed record ProviderRecord(string Name, string KeyId, string Kind, DateTimeOffset AddedAt, byte[] Wrapped, byte[] Bytes);

    public static string ProviderRecordKey(string keyId) =>
        ProvidersPrefix + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(keyId)).AsSpan(0, 16));

    /// <summary>
    /// Finds the record of <paramref name="keys"/> (its own key ID, or else every record it accepts) and unwraps the
    /// keyring secret from it. Nothing is written.
    /// </summary>
    private static async Task<(byte[] Keyring, ProviderRecord Record)> UnwrapKeyringAsync(
        BackupStore store, string repositoryId, RepositoryKeyProvider keys, CancellationToken cancellationToken)
    {
        var records = await ReadProviderRecordsAsync(store, repositoryId, cancellationToken).ConfigureAwait(false);
        var exact = records.Where(r => string.Equals(r.KeyId, keys.KeyId, StringComparison.Ordinal)).ToList();
        var candidates = exact.Count > 0 ? exact : records.Where(r => keys.Accepts(r.KeyId)).ToList();
        if (candidates.Count == 0)
        {
            throw NotRegistered(keys.KeyId, records.Select(r => r.KeyId));
        }

        BackupException? last = null;
        foreach (var candidate in candidates)
        {
            SensitiveBytes secret;
            try
            {
                secret = await keys.UnwrapAsync(candidate.Wrapped, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupException e) when (candidates.Count > 1)
            {
                last = e;
                continue;
            }

            try
            {
                if (secret.Length != KeyringSecretSize)
                {
                    throw RepositoryErrors.Integrity($"key provider record of '{candidate.KeyId}'", "its keyring secret has the wrong length");
                }

                var keyring = GC.AllocateArray<byte>(KeyringSecretSize, pinned: true);
                secret.Span.CopyTo(keyring);
                return (keyring, candidate);
            }
            finally
            {
                secret.Clear();
            }
        }

        throw last!;
    }

    /// <summary>Reads every provider record that parses and is named as its key ID says; the others are left out (and cannot open).</summary>
    private static async Task<List<ProviderRecord>> ReadProviderRecordsAsync(BackupStore store, string repositoryId, CancellationToken cancellationToken)
    {
        var records = new List<ProviderRecord>();
        await foreach (var entry in store.ListAsync(ProvidersPrefix, cancellationToken).ConfigureAwait(false))
        {
            var bytes = await store.TryReadAsync(entry.Key, cancellationToken).ConfigureAwait(false);
            if (bytes is not null && TryDecodeProviderRecord(entry.Key, bytes, repositoryId) is { } record)
            {
                records.Add(record);
            }
        }

        return records;
    }

    private static ProviderRecord? TryDecodeProviderRecord(string name, byte[] bytes, string repositoryId)
    {
        try
        {
            if (bytes.Length < 32)
            {
                return null;
            }

            var r = new RecordReader(bytes.AsSpan(0, bytes.Length - 32), "key provider record");
            if (!r.ReadRaw(s_providerRecordMagic.Length).SequenceEqual(s_providerRecordMagic) ||
                !string.Equals(r.ReadRequiredString(), repositoryId, StringComparison.Ordinal))
            {
                return null;
            }

            var keyId = r.ReadRequiredString();
            var kind = r.ReadRequiredString();
            var added = r.ReadInstant();
            var wrapped = r.ReadBytes().ToArray();
            r.ExpectEnd();
            return string.Equals(ProviderRecordKey(keyId), name, StringComparison.Ordinal) ? new ProviderRecord(name, keyId, kind, added, wrapped, bytes) : null;
        }
        catch (BackupException)
        {
            return null;
        }
    }

    private byte[] EncodeProviderRecord(string keyId, string kind, DateTimeOffset addedAt, byte[] wrapped)
    {
        var w = new RecordWriter();
        w.WriteRaw(s_providerRecordMagic);
        w.WriteString(RepositoryId);
        w.WriteString(keyId);
        w.WriteString(kind);
        w.WriteInstant(addedAt);
        w.WriteBytes(wrapped);
        w.WriteRaw(_crypto.KeyRecordMac(w.WrittenSpan));
        return w.ToArray();
    }

    /// <summary>Whether a record (provider or keyring) authenticates under this repository's keyring key: only a holder of its keys wrote it.</summary>
    private static bool Authenticates(RepositoryCrypto crypto, byte[] bytes) =>
        bytes.Length >= 32 && CryptographicOperations.FixedTimeEquals(crypto.KeyRecordMac(bytes.AsSpan(0, bytes.Length - 32)), bytes.AsSpan(bytes.Length - 32));

    /// <summary>The master secret from the keyring record, unwrapped with the keyring secret.</summary>
    private static SensitiveBytes OpenKeyringRecord(byte[] bytes, ReadOnlySpan<byte> keyring, string repositoryId)
    {
        const string What = "keyring (keys/keyring)";
        if (bytes.Length < 32)
        {
            throw RepositoryErrors.Integrity(What, "it is too short");
        }

        var r = new RecordReader(bytes.AsSpan(0, bytes.Length - 32), What);
        if (!r.ReadRaw(s_keyringMagic.Length).SequenceEqual(s_keyringMagic))
        {
            throw r.Malformed("it is not a keyring record");
        }

        if (!string.Equals(r.ReadRequiredString(), repositoryId, StringComparison.Ordinal))
        {
            throw r.Malformed("it belongs to another repository");
        }

        var wrapped = r.ReadBytes();
        r.ExpectEnd();
        var master = Unwrap(keyring, "kmsbackup/keyring/v1/master"u8, Encoding.UTF8.GetBytes("keyring:" + repositoryId), wrapped, What);
        if (master.Length != RepositoryCrypto.MasterSecretSize)
        {
            master.Clear();
            throw RepositoryErrors.Integrity(What, "its master secret has the wrong length");
        }

        return master;
    }

    private byte[] EncodeKeyringRecord(ReadOnlySpan<byte> keyring, ReadOnlySpan<byte> master)
    {
        var w = new RecordWriter();
        w.WriteRaw(s_keyringMagic);
        w.WriteString(RepositoryId);
        w.WriteBytes(Wrap(keyring, "kmsbackup/keyring/v1/master"u8, Encoding.UTF8.GetBytes("keyring:" + RepositoryId), master));
        w.WriteRaw(_crypto.KeyRecordMac(w.WrittenSpan));
        return w.ToArray();
    }

    private byte[] GenerationAssociatedData(ulong sequence, uint generation) =>
        Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"generation:{RepositoryId}:{sequence}:{generation:x8}"));

    /// <summary>AES-256-GCM under HKDF-SHA-256(keyring secret, info): nonce ‖ ciphertext ‖ tag.</summary>
    private static byte[] Wrap(ReadOnlySpan<byte> keyring, ReadOnlySpan<byte> info, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> secret)
    {
        Span<byte> key = stackalloc byte[32];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, keyring, key, salt: [], info: info);
        try
        {
            var wrapped = new byte[RepositoryCrypto.NonceSize + secret.Length + RepositoryCrypto.TagSize];
            RandomNumberGenerator.Fill(wrapped.AsSpan(0, RepositoryCrypto.NonceSize));
            using var aes = new AesGcm(key, RepositoryCrypto.TagSize);
            aes.Encrypt(wrapped.AsSpan(0, RepositoryCrypto.NonceSize), secret, wrapped.AsSpan(RepositoryCrypto.NonceSize, secret.Length), wrapped.AsSpan(RepositoryCrypto.NonceSize + secret.Length), associatedData);
            return wrapped;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    private static SensitiveBytes Unwrap(ReadOnlySpan<byte> keyring, ReadOnlySpan<byte> info, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> wrapped, string what)
    {
        if (wrapped.Length < RepositoryCrypto.NonceSize + RepositoryCrypto.TagSize)
        {
            throw RepositoryErrors.Integrity(what, "its wrapped secret is too short");
        }

        Span<byte> key = stackalloc byte[32];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, keyring, key, salt: [], info: info);
        var secret = GC.AllocateArray<byte>(wrapped.Length - RepositoryCrypto.NonceSize - RepositoryCrypto.TagSize, pinned: true);
        try
        {
            using var aes = new AesGcm(key, RepositoryCrypto.TagSize);
            aes.Decrypt(wrapped[..RepositoryCrypto.NonceSize], wrapped[RepositoryCrypto.NonceSize..^RepositoryCrypto.TagSize], wrapped[^RepositoryCrypto.TagSize..], secret, associatedData);
            return SensitiveBytes.Own(secret);
        }
        catch (AuthenticationTagMismatchException)
        {
            CryptographicOperations.ZeroMemory(secret);
            throw RepositoryErrors.Integrity(what, "it does not open under the repository's keyring secret (it was changed, damaged, or planted)");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    private static BackupException NotRegistered(string keyId, IEnumerable<string> registered)
    {
        var names = string.Join(", ", registered.Select(k => $"'{k}'"));
        return new BackupException(new Refusal(
            BackupErrorCode.KeyProviderNotRegistered, $"key provider '{keyId}'",
            $"The key provider '{keyId}' is not one of this repository's key providers{(names.Length == 0 ? "" : $" ({names})")}: it was never added, or it was removed.",
            "Open the repository with one of its registered providers ('kmsbackup keys list'), and add this one with 'kmsbackup keys add' if it should open it too."));
    }

    /// <summary>
    /// Makes sure this host knows the keyring secret when the repository has migrated (another host may have migrated it
    /// since this one opened), and migrates it first when <paramref name="migrate"/> is set. Call under <see cref="_keysGate"/>.
    /// </summary>
    private async Task EnsureKeyringCoreAsync(bool migrate, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (_keyring is not null)
        {
            return;
        }

        var keyringBytes = await _store.TryReadAsync(KeyringKey, cancellationToken).ConfigureAwait(false);
        if (keyringBytes is not null)
        {
            // Another host migrated the repository after this one opened it: this host's provider (the first) has a record.
            var (keyring, record) = await UnwrapKeyringAsync(_store, RepositoryId, _keys, cancellationToken).ConfigureAwait(false);
            try
            {
                OpenKeyringRecord(keyringBytes, keyring, RepositoryId).Clear();
                if (!Authenticates(_crypto, keyringBytes) || !Authenticates(_crypto, record.Bytes))
                {
                    throw RepositoryErrors.Integrity("keyring", "its records do not authenticate under this repository's keys (they were changed, damaged, or planted)");
                }
            }
            catch
            {
                CryptographicOperations.ZeroMemory(keyring);
                throw;
            }

            _keyring = keyring;
            _providerKeyId = record.KeyId;
            return;
        }

        if (!migrate)
        {
            return;
        }

        // Migration, by a host that opened the repository through the config, so with its first provider. Order matters:
        // (1) the first provider's record, wrapping a fresh keyring secret: of hosts migrating at once, the first to
        // create it wins, and the others take the keyring secret from it; (2) keyring copies of the generation records
        // wrapped by the first provider; (3) the keyring record, which switches every host to the keyring. Each step is
        // create-if-absent, so a migration killed at any step is completed by the next.
        var fresh = GC.AllocateArray<byte>(KeyringSecretSize, pinned: true);
        RandomNumberGenerator.Fill(fresh);
        try
        {
            var ownName = ProviderRecordKey(_keys.KeyId);
            var ownRecord = EncodeProviderRecord(_keys.KeyId, _keys.Kind, now, await _keys.WrapAsync(fresh, cancellationToken).ConfigureAwait(false));
            if (!await _store.TryCreateAsync(ownName, ownRecord, cancellationToken).ConfigureAwait(false))
            {
                var existing = await _store.TryReadAsync(ownName, cancellationToken).ConfigureAwait(false);
                if (existing is null || TryDecodeProviderRecord(ownName, existing, RepositoryId) is not { } record || !Authenticates(_crypto, existing))
                {
                    throw RepositoryErrors.Integrity($"key provider record of '{_keys.KeyId}'", $"'{ownName}' exists but does not authenticate under this repository's keys; delete it and try again");
                }

                var secret = await _keys.UnwrapAsync(record.Wrapped, cancellationToken).ConfigureAwait(false);
                try
                {
                    if (secret.Length != KeyringSecretSize)
                    {
                        throw RepositoryErrors.Integrity($"key provider record of '{_keys.KeyId}'", "its keyring secret has the wrong length");
                    }

                    secret.Span.CopyTo(fresh);
                }
                finally
                {
                    secret.Clear();
                }
            }

            await CopyFirstProviderGenerationsAsync(fresh, cancellationToken).ConfigureAwait(false);

            var config = await _store.TryReadAsync(ConfigKey, cancellationToken).ConfigureAwait(false)
                ?? throw RepositoryErrors.Integrity("config", "it vanished");
            var (_, _, wrappedMaster) = DecodeConfig(config);
            var master = await _keys.UnwrapAsync(wrappedMaster, cancellationToken).ConfigureAwait(false);
            try
            {
                var keyringRecord = EncodeKeyringRecord(fresh, master.Span);
                if (!await _store.TryCreateAsync(KeyringKey, keyringRecord, cancellationToken).ConfigureAwait(false))
                {
                    var existing = await _store.TryReadAsync(KeyringKey, cancellationToken).ConfigureAwait(false)
                        ?? throw RepositoryErrors.Integrity("keyring", "it vanished right after it was created");
                    if (!Authenticates(_crypto, existing))
                    {
                        throw RepositoryErrors.Integrity("keyring", "'keys/keyring' exists but does not authenticate under this repository's keys");
                    }

                    OpenKeyringRecord(existing, fresh, RepositoryId).Clear();
                }
            }
            finally
            {
                master.Clear();
            }

            _keyring = fresh;
            _providerKeyId = _keys.KeyId;
        }
        catch
        {
            CryptographicOperations.ZeroMemory(fresh);
            throw;
        }

        // A host that had not seen the migration may have rotated with the first provider meanwhile.
        await CopyFirstProviderGenerationsAsync(_keyring, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes a keyring copy of every generation record wrapped by this host's provider that has none yet.</summary>
    private async Task CopyFirstProviderGenerationsAsync(byte[] keyring, CancellationToken cancellationToken)
    {
        await foreach (var entry in _store.ListAsync(KeysPrefix, cancellationToken).ConfigureAwait(false))
        {
            if (!TryParseKeyRecordName(entry.Key, out var sequence, out var generation))
            {
                continue;
            }

            var bytes = await _store.TryReadAsync(entry.Key, cancellationToken).ConfigureAwait(false);
            if (bytes is null)
            {
                continue;
            }

            string keyId;
            byte[] wrapped;
            try
            {
                (keyId, wrapped) = DecodeKeyRecord(entry.Key, sequence, generation, bytes);
            }
            catch (BackupIntegrityException)
            {
                continue;
            }

            if (string.Equals(keyId, _keys.KeyId, StringComparison.Ordinal))
            {
                byte[] copy;
                var secret = await _keys.UnwrapAsync(wrapped, cancellationToken).ConfigureAwait(false);
                try
                {
                    copy = RingCopyRecord(keyring, sequence, generation, secret.Span);
                }
                finally
                {
                    secret.Clear();
                }

                await EnsureRingCopyAsync(sequence, generation, copy, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static string RingCopyKey(ulong sequence, uint generation) => RingCopiesPrefix + KeyRecordKey(sequence, generation)[KeysPrefix.Length..];

    private byte[] RingCopyRecord(byte[] keyring, ulong sequence, uint generation, ReadOnlySpan<byte> secret) =>
        EncodeKeyRecord(sequence, generation, KeyringKeyId, Wrap(keyring, "kmsbackup/keyring/v1/generation"u8, GenerationAssociatedData(sequence, generation), secret));

    /// <summary>Creates the keyring copy of a generation record wrapped by the first provider, unless one exists.</summary>
    private async Task EnsureRingCopyAsync(ulong sequence, uint generation, byte[] record, CancellationToken cancellationToken)
    {
        var copyKey = RingCopyKey(sequence, generation);
        if (await _store.TryReadAsync(copyKey, cancellationToken).ConfigureAwait(false) is null)
        {
            await _store.TryCreateAsync(copyKey, record, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The generation secret of a record whose secret is wrapped under the keyring.</summary>
    private SensitiveBytes UnwrapGenerationFromKeyring(ulong sequence, uint generation, byte[] wrapped) =>
        Unwrap(_keyring!, "kmsbackup/keyring/v1/generation"u8, GenerationAssociatedData(sequence, generation), wrapped, $"key generation {sequence}");

    /// <summary>
    /// The provider, keyring and keyring-copy records that do not parse or do not authenticate under this repository's
    /// keys, each with why: what verify reports. Reads only.
    /// </summary>
    public async Task<IReadOnlyList<(string Key, string Problem)>> CheckKeyProviderRecordsAsync(CancellationToken cancellationToken)
    {
        var problems = new List<(string, string)>();
        foreach (var prefix in new[] { ProvidersPrefix, RingCopiesPrefix })
        {
            await foreach (var entry in _store.ListAsync(prefix, cancellationToken).ConfigureAwait(false))
            {
                if (await _store.TryReadAsync(entry.Key, cancellationToken).ConfigureAwait(false) is not { } bytes)
                {
                    continue;
                }

                if (prefix == ProvidersPrefix && TryDecodeProviderRecord(entry.Key, bytes, RepositoryId) is null)
                {
                    problems.Add((entry.Key, "it is not a key provider record of this repository (malformed, of another repository, or named for another key ID); it opens nothing"));
                }
                else if (!Authenticates(_crypto, bytes))
                {
                    problems.Add((entry.Key, "it does not authenticate under this repository's keys (it was changed, damaged, or planted); it opens nothing"));
                }
            }
        }

        if (await _store.TryReadAsync(KeyringKey, cancellationToken).ConfigureAwait(false) is { } keyring && !Authenticates(_crypto, keyring))
        {
            problems.Add((KeyringKey, "it does not authenticate under this repository's keys (it was changed, damaged, or planted): no provider opens the repository"));
        }

        return problems;
    }

    /// <summary>Lists the repository's registered key providers (authentic records only); one, from the config, before migration.</summary>
    public async Task<IReadOnlyList<RepositoryKeyProviderInfo>> ListKeyProvidersAsync(CancellationToken cancellationToken)
    {
        if (await _store.TryReadAsync(KeyringKey, cancellationToken).ConfigureAwait(false) is null)
        {
            var config = await _store.TryReadAsync(ConfigKey, cancellationToken).ConfigureAwait(false)
                ?? throw RepositoryErrors.Integrity("config", "it vanished");
            var (_, keyId, _) = DecodeConfig(config);
            return [new RepositoryKeyProviderInfo(KindOf(keyId), keyId, null)];
        }

        var records = await ReadProviderRecordsAsync(_store, RepositoryId, cancellationToken).ConfigureAwait(false);
        return [.. records.Where(r => Authenticates(_crypto, r.Bytes)).OrderBy(r => r.AddedAt).ThenBy(r => r.KeyId, StringComparer.Ordinal)
            .Select(r => new RepositoryKeyProviderInfo(r.Kind, r.KeyId, r.AddedAt))];
    }

    /// <summary>
    /// Registers <paramref name="provider"/>: wraps the keyring secret under it into its own record, migrating the
    /// repository first when it has none (without re-encrypting any data object).
    /// </summary>
    public async Task<RepositoryKeyProviderInfo> AddKeyProviderAsync(RepositoryKeyProvider provider, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(provider);
        if (string.IsNullOrWhiteSpace(provider.KeyId) || string.Equals(provider.KeyId, KeyringKeyId, StringComparison.Ordinal))
        {
            throw new ArgumentException("The provider's key ID must be a name of its own.", nameof(provider));
        }

        await _keysGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await EnsureKeyringCoreAsync(migrate: true, now, cancellationToken).ConfigureAwait(false);
            var name = ProviderRecordKey(provider.KeyId);
            if (await _store.TryReadAsync(name, cancellationToken).ConfigureAwait(false) is not null)
            {
                throw AlreadyRegistered(provider.KeyId);
            }

            var wrapped = await provider.WrapAsync(_keyring, cancellationToken).ConfigureAwait(false);

            // A provider that cannot unwrap what it wrapped would register a record that never opens.
            var check = await provider.UnwrapAsync(wrapped, cancellationToken).ConfigureAwait(false);
            try
            {
                if (!CryptographicOperations.FixedTimeEquals(check.Span, _keyring))
                {
                    throw new BackupException(new Refusal(
                        BackupErrorCode.IntegrityViolation, $"key provider '{provider.KeyId}'",
                        $"The key provider '{provider.KeyId}' does not unwrap what it wrapped; it was not added.",
                        "Check the provider (its token or key), then add it again."));
                }
            }
            finally
            {
                check.Clear();
            }

            if (!await _store.TryCreateAsync(name, EncodeProviderRecord(provider.KeyId, provider.Kind, now, wrapped), cancellationToken).ConfigureAwait(false))
            {
                throw AlreadyRegistered(provider.KeyId);
            }

            return new RepositoryKeyProviderInfo(provider.Kind, provider.KeyId, now);
        }
        finally
        {
            _keysGate.Release();
        }
    }

    /// <summary>
    /// Removes the provider <paramref name="keyId"/>'s record, under a store lease, so that of two hosts removing the last
    /// two providers at once, one is refused: a repository never has no provider.
    /// </summary>
    public async Task RemoveKeyProviderAsync(string keyId, string holder, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(keyId);
        await _keysGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await EnsureKeyringCoreAsync(migrate: false, now, cancellationToken).ConfigureAwait(false);
            if (_keyring is null)
            {
                var providers = await ListKeyProvidersAsync(cancellationToken).ConfigureAwait(false);
                throw providers.Any(p => string.Equals(p.KeyId, keyId, StringComparison.Ordinal))
                    ? LastProvider(keyId)
                    : NoSuchProvider(keyId, providers.Select(p => p.KeyId));
            }

            var lease = await _store.AcquireLeaseAsync(ProvidersLease, holder, TimeSpan.FromMinutes(1), cancellationToken).ConfigureAwait(false);
            await using (lease.ConfigureAwait(false))
            {
                var records = await ReadProviderRecordsAsync(_store, RepositoryId, cancellationToken).ConfigureAwait(false);
                var target = records.FirstOrDefault(r => string.Equals(r.KeyId, keyId, StringComparison.Ordinal))
                    ?? throw NoSuchProvider(keyId, records.Select(r => r.KeyId));
                if (!records.Any(r => r != target && Authenticates(_crypto, r.Bytes)))
                {
                    throw LastProvider(keyId);
                }

                await lease.EnsureHeldAsync(cancellationToken).ConfigureAwait(false);
                await _store.DeleteAsync(target.Name, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _keysGate.Release();
        }
    }

    private static BackupException NoSuchProvider(string keyId, IEnumerable<string> registered) => new(new Refusal(
        BackupErrorCode.NotFound, $"key provider '{keyId}'",
        $"No key provider of this repository has the key ID '{keyId}' (registered: {string.Join(", ", registered.Select(k => $"'{k}'"))}); nothing changed.",
        "Copy the key ID from 'kmsbackup keys list'."));

    private static string KindOf(string keyId) => keyId.IndexOf(':', StringComparison.Ordinal) is var colon and > 0 ? keyId[..colon] : keyId;

    private static BackupException AlreadyRegistered(string keyId) => new(new Refusal(
        BackupErrorCode.KeyProviderAlreadyRegistered, $"key provider '{keyId}'",
        $"The key provider '{keyId}' is one of this repository's key providers already; nothing changed.",
        "List the providers with 'kmsbackup keys list'; to replace one, remove it first."));

    private static BackupException LastProvider(string keyId) => new(new Refusal(
        BackupErrorCode.LastKeyProvider, $"key provider '{keyId}'",
        $"The key provider '{keyId}' is the repository's last key provider; without one the repository could never be opened again. Nothing changed.",
        "Add another provider first ('kmsbackup keys add'), then remove this one."));
}
