using System.Collections.Immutable;

namespace KmsBackup;

/// <summary>What kind of item: a key or a secret.</summary>
public enum ItemType
{
    /// <summary>A key (metadata, and for software instances its material).</summary>
    Key = 1,

    /// <summary>A secret (its versions, encrypted under a key).</summary>
    Secret = 2,
}

/// <summary>One version of a key. <see cref="Material"/> is <see langword="null"/> for a hardware key (rule D1: its material stays in the HSM).</summary>
/// <param name="VersionId">The version's ID, unique within the key.</param>
/// <param name="CreatedAt">When the version was created (the key's creation or a rotation).</param>
/// <param name="Material">The key material of a software key; <see langword="null"/> for a hardware key.</param>
public sealed record KeyVersion(string VersionId, DateTimeOffset CreatedAt, SensitiveBytes? Material);

/// <summary>One version of a secret, as ciphertext under the secret's encrypting key (never the plaintext value).</summary>
/// <param name="VersionId">The version's ID, unique within the secret.</param>
/// <param name="CreatedAt">When the version was created.</param>
/// <param name="Ciphertext">The version's value encrypted under the secret's encrypting key.</param>
public sealed record SecretVersion(string VersionId, DateTimeOffset CreatedAt, SensitiveBytes Ciphertext);

/// <summary>A key as backed up: ID, name, spec, creator, times and versions (rule R9 restores all of them).</summary>
public sealed record KeyRecord
{
    /// <summary>Describes a key.</summary>
    /// <param name="id">The key ID.</param>
    /// <param name="name">The key's name (its alias), unique in its region.</param>
    /// <param name="spec">The key spec, e.g. <c>Aliyun_AES_256</c>.</param>
    /// <param name="creatorAccount">The account that created the key (the owner, or a consumer of a shared instance).</param>
    /// <param name="createdAt">When the key was created.</param>
    /// <param name="versions">The key's versions, oldest first; at least one.</param>
    /// <exception cref="ArgumentException">An argument is empty, or the versions are empty or repeat an ID.</exception>
    public KeyRecord(string id, string name, string spec, string creatorAccount, DateTimeOffset createdAt, IEnumerable<KeyVersion> versions)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(id);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        ArgumentException.ThrowIfNullOrWhiteSpace(creatorAccount);
        ArgumentNullException.ThrowIfNull(versions);
        Id = id;
        Name = name;
        Spec = spec;
        CreatorAccount = creatorAccount;
        CreatedAt = createdAt;
        Versions = VersionChecks.CheckVersions(versions.ToImmutableArray(), v => v.VersionId, nameof(versions));
    }

    /// <summary>The key ID.</summary>
    public string Id { get; }

    /// <summary>The key's name, unique in its region.</summary>
    public string Name { get; }

    /// <summary>The key spec.</summary>
    public string Spec { get; }

    /// <summary>The account that created the key.</summary>
    public string CreatorAccount { get; }

    /// <summary>When the key was created.</summary>
    public DateTimeOffset CreatedAt { get; }

    /// <summary>A free-form description (metadata).</summary>
    public string? Description { get; init; }

    /// <summary>The key's versions, oldest first.</summary>
    public ImmutableArray<KeyVersion> Versions { get; }

    /// <summary>The newest version.</summary>
    public KeyVersion CurrentVersion => Versions[^1];

    /// <summary>When the key was last rotated: the newest version's creation, or <see langword="null"/> if never rotated.</summary>
    public DateTimeOffset? LastRotatedAt => Versions.Length > 1 ? CurrentVersion.CreatedAt : null;

    /// <summary>Whether any version carries key material (a software key); hardware keys carry none.</summary>
    public bool HasMaterial => Versions.Any(v => v.Material is not null);

    /// <summary>Whether the metadata (all but the versions) equals <paramref name="other"/>'s.</summary>
    /// <param name="other">Another record of the same key.</param>
    internal bool SameMetadata(KeyRecord other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Id == other.Id && Name == other.Name && Spec == other.Spec && CreatorAccount == other.CreatorAccount &&
               CreatedAt == other.CreatedAt && Description == other.Description;
    }

    /// <summary>Whether the versions equal <paramref name="other"/>'s, material included.</summary>
    /// <param name="other">Another record of the same key.</param>
    internal bool SameVersions(KeyRecord other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Versions.SequenceEqual(other.Versions);
    }

    /// <summary>Value equality over metadata and versions.</summary>
    /// <param name="other">Another record.</param>
    public bool Equals(KeyRecord? other) => other is not null && SameMetadata(other) && SameVersions(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Id, Name, Versions.Length);

    /// <summary>The key without its material, e.g. <c>key 'orders' (key-1, 2 versions)</c>.</summary>
    public override string ToString() => $"key '{Name}' ({Id}, {Versions.Length} versions)";
}

/// <summary>A secret as backed up: name, encrypting key, creator, times and versions (as ciphertext).</summary>
public sealed record SecretRecord
{
    /// <summary>Describes a secret.</summary>
    /// <param name="name">The secret's name, unique in its region.</param>
    /// <param name="encryptionKeyId">The ID of the key that encrypts the secret's values.</param>
    /// <param name="creatorAccount">The account that created the secret.</param>
    /// <param name="createdAt">When the secret was created.</param>
    /// <param name="versions">The secret's versions, oldest first; at least one.</param>
    /// <exception cref="ArgumentException">An argument is empty, or the versions are empty or repeat an ID.</exception>
    public SecretRecord(string name, string encryptionKeyId, string creatorAccount, DateTimeOffset createdAt, IEnumerable<SecretVersion> versions)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(encryptionKeyId);
        ArgumentException.ThrowIfNullOrWhiteSpace(creatorAccount);
        ArgumentNullException.ThrowIfNull(versions);
        Name = name;
        EncryptionKeyId = encryptionKeyId;
        CreatorAccount = creatorAccount;
        CreatedAt = createdAt;
        Versions = VersionChecks.CheckVersions(versions.ToImmutableArray(), v => v.VersionId, nameof(versions));
    }

    /// <summary>The secret's name, unique in its region.</summary>
    public string Name { get; }

    /// <summary>The ID of the key that encrypts the secret's values; it must exist in a restore target (rule R4).</summary>
    public string EncryptionKeyId { get; }

    /// <summary>The account that created the secret.</summary>
    public string CreatorAccount { get; }

    /// <summary>When the secret was created.</summary>
    public DateTimeOffset CreatedAt { get; }

    /// <summary>A free-form description (metadata).</summary>
    public string? Description { get; init; }

    /// <summary>The secret's versions, oldest first.</summary>
    public ImmutableArray<SecretVersion> Versions { get; }

    /// <summary>The newest version.</summary>
    public SecretVersion CurrentVersion => Versions[^1];

    /// <summary>When the secret was last rotated: the newest version's creation, or <see langword="null"/> if never rotated.</summary>
    public DateTimeOffset? LastRotatedAt => Versions.Length > 1 ? CurrentVersion.CreatedAt : null;

    /// <summary>Whether the metadata (all but the versions) equals <paramref name="other"/>'s.</summary>
    /// <param name="other">Another record of the same secret.</param>
    internal bool SameMetadata(SecretRecord other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Name == other.Name && EncryptionKeyId == other.EncryptionKeyId && CreatorAccount == other.CreatorAccount &&
               CreatedAt == other.CreatedAt && Description == other.Description;
    }

    /// <summary>Whether the versions equal <paramref name="other"/>'s, ciphertexts included.</summary>
    /// <param name="other">Another record of the same secret.</param>
    internal bool SameVersions(SecretRecord other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Versions.SequenceEqual(other.Versions);
    }

    /// <summary>Value equality over metadata and versions.</summary>
    /// <param name="other">Another record.</param>
    public bool Equals(SecretRecord? other) => other is not null && SameMetadata(other) && SameVersions(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Name, EncryptionKeyId, Versions.Length);

    /// <summary>The secret without its values, e.g. <c>secret 'db-password' (3 versions, key key-1)</c>.</summary>
    public override string ToString() => $"secret '{Name}' ({Versions.Length} versions, key {EncryptionKeyId})";
}
