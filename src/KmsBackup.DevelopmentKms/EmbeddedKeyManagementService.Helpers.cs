using System.Security.Cryptography;

namespace KmsBackup.DevelopmentKms;

// The checks, copies, encryption and commit every operation of the embedded service shares.
public sealed partial class EmbeddedKeyManagementService
{
    // ---- Helpers ---------------------------------------------------------------------------

    internal static KeyRecord CopyOf(KeyRecord key) =>
        new(key.Id, key.Name, key.Spec, key.CreatorAccount, key.CreatedAt,
            key.Versions.Select(v => v with { Material = v.Material is null ? null : SensitiveBytes.Copy(v.Material.Span) }))
        {
            Description = key.Description,
        };

    internal static SecretRecord CopyOf(SecretRecord secret) =>
        new(secret.Name, secret.EncryptionKeyId, secret.CreatorAccount, secret.CreatedAt,
            secret.Versions.Select(v => v with { Ciphertext = SensitiveBytes.Copy(v.Ciphertext.Span) }))
        {
            Description = secret.Description,
        };

    private static void ValidateName(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (name.Length > MaximumNameLength || name.Any(char.IsControl))
        {
            throw new ArgumentException($"A name is at most {MaximumNameLength} characters, without control characters.", nameof(name));
        }
    }

    private static bool TryParseCursor(InstanceState state, string cursor, out long sequence)
    {
        sequence = 0;
        var dot = cursor.LastIndexOf('.');
        return dot > 0 &&
               cursor.AsSpan(0, dot).SequenceEqual(state.Epoch) &&
               long.TryParse(cursor.AsSpan(dot + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out sequence);
    }

    private static KeyVersion NewKeyVersion(InstanceState state, DateTimeOffset now, IEnumerable<KeyVersion>? existing = null)
    {
        string id;
        do
        {
            id = Guid.NewGuid().ToString("D");
        }
        while (existing?.Any(v => v.VersionId == id) == true);

        return new KeyVersion(id, now, state.Kind == InstanceKind.Hardware ? null : SensitiveBytes.Own(RandomNumberGenerator.GetBytes(MaterialSize)));
    }

    private static string NextSecretVersionId(SecretRecord secret)
    {
        for (var n = secret.Versions.Length + 1; ; n++)
        {
            var id = $"v{n}";
            if (!secret.Versions.Any(v => v.VersionId == id))
            {
                return id;
            }
        }
    }

    private static StoredKey FindKey(InstanceState state, string name) =>
        state.Keys.TryGetValue(name, out var key) ? key : throw EmbeddedRefusals.ItemNotFound(ItemType.Key, name, state.Id);

    private static StoredSecret FindSecret(InstanceState state, string name) =>
        state.Secrets.TryGetValue(name, out var secret) ? secret : throw EmbeddedRefusals.ItemNotFound(ItemType.Secret, name, state.Id);

    private static void RequireUsable(InstanceState state)
    {
        if (!state.IsUsable)
        {
            throw EmbeddedRefusals.InstanceNotUsable(state);
        }
    }

    private static void RequireMayCreate(InstanceState state, string account)
    {
        if (!state.MayCreate(account))
        {
            throw EmbeddedRefusals.AccessDenied(account, state);
        }
    }

    private static void RequireQuota(InstanceState state, ItemType type, string name)
    {
        var full = type == ItemType.Key ? state.Keys.Count >= state.KeyQuota : state.Secrets.Count >= state.SecretQuota;
        if (full)
        {
            throw EmbeddedRefusals.InsufficientQuota(state, type, name);
        }
    }

    private byte[] EncryptWith(InstanceState state, KeyRecord key, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> context)
    {
        var version = key.CurrentVersion;
        if (version.Material is null)
        {
            return state.Kind == InstanceKind.Hardware && _hardwareKeys is { } hsm
                ? HardwareCiphertext.Encrypt(hsm, state.Id, key.Id, version.VersionId, plaintext, context)
                : throw EmbeddedRefusals.HardwareKeyMaterial(key.Name, state.Id);
        }

        try
        {
            return EmbeddedCiphertext.Encrypt(key.Id, version.VersionId, version.Material.Span, plaintext, context);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            throw EmbeddedRefusals.UnusableMaterial(key.Name, state.Id);
        }
    }

    private SensitiveBytes DecryptWith(InstanceState state, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> context, string what)
    {
        if (!EmbeddedCiphertext.TryReadHeader(ciphertext, out var keyId, out var keyVersionId, out var headerLength))
        {
            throw EmbeddedRefusals.CiphertextInvalid(what, state.Id);
        }

        var key = state.FindKeyById(keyId)?.Record ?? throw EmbeddedRefusals.CiphertextKeyMissing(keyId, keyVersionId, state.Id);
        var version = key.Versions.FirstOrDefault(v => v.VersionId == keyVersionId) ?? throw EmbeddedRefusals.CiphertextKeyMissing(keyId, keyVersionId, state.Id);
        if (version.Material is null)
        {
            var sealedPlaintext = state.Kind == InstanceKind.Hardware && _hardwareKeys is { } hsm
                ? HardwareCiphertext.TryDecrypt(hsm, state.Id, key.Id, ciphertext, headerLength, context)
                : throw EmbeddedRefusals.HardwareKeyMaterial(key.Name, state.Id);
            return sealedPlaintext is null ? throw EmbeddedRefusals.CiphertextInvalid(what, state.Id) : SensitiveBytes.Own(sealedPlaintext);
        }

        byte[]? plaintext;
        try
        {
            plaintext = EmbeddedCiphertext.TryDecrypt(ciphertext, headerLength, version.Material.Span, context);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            throw EmbeddedRefusals.UnusableMaterial(key.Name, state.Id);
        }

        return plaintext is null ? throw EmbeddedRefusals.CiphertextInvalid(what, state.Id) : SensitiveBytes.Own(plaintext);
    }

    private InstanceState Get(string instanceId) =>
        _instances.TryGetValue(instanceId, out var state) ? state : throw EmbeddedRefusals.InstanceNotFound(instanceId);

    private void RequireNameFree(InstanceState target, ItemType type, string name)
    {
        if (target.Holds(type, name))
        {
            throw EmbeddedRefusals.NameConflict(type, name, target, target.Id);
        }

        foreach (var other in _instances.Values)
        {
            if (other.Id != target.Id && other.Region == target.Region && !other.IsReleased && other.Holds(type, name))
            {
                throw EmbeddedRefusals.NameConflict(type, name, other, target.Id);
            }
        }
    }

    // Writes first, then publishes: a failed write leaves the instance as it was.
    private void Commit(InstanceState next)
    {
        _files.Save(next);
        _instances = _instances.SetItem(next.Id, next);
    }

    private void CommitOrClear(InstanceState next, KeyVersion newVersion)
    {
        try
        {
            Commit(next);
        }
        catch
        {
            newVersion.Material?.Clear();
            throw;
        }
    }

    // Every call runs under the lock and completes synchronously; refusals come back as faulted tasks.
    private Task<T> Run<T>(Func<T> body, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<T>(cancellationToken);
        }

        try
        {
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                return Task.FromResult(body());
            }
        }
        catch (Exception e)
        {
            return Task.FromException<T>(e);
        }
    }
}
