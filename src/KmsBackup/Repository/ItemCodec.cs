using System.Collections.Immutable;

namespace KmsBackup.Repository;

/// <summary>How keys and secrets are written into tree leaves. Key material and secret ciphertexts are written as they are: the whole leaf is encrypted.</summary>
internal static class ItemCodec
{
    /// <summary>What a secret version read without its value holds instead: no bytes.</summary>
    private static readonly SensitiveBytes s_withheld = SensitiveBytes.Copy([]);

    /// <summary>
    /// The UTF-8 bytes of an encoded item's name: its first field, a string. The encoding was made by this process
    /// (from records, or field by field from a validated upload), so the string is well formed.
    /// </summary>
    public static ReadOnlySpan<byte> NameOf(ReadOnlySpan<byte> encoded)
    {
        var (offset, length) = NameRange(encoded);
        return encoded.Slice(offset, length);
    }

    /// <summary>Where the UTF-8 bytes of an encoded item's name lie in <paramref name="encoded"/> (see <see cref="NameOf"/>).</summary>
    public static (int Offset, int Length) NameRange(ReadOnlySpan<byte> encoded)
    {
        ulong tagged = 0;
        var i = 0;
        for (var shift = 0; ; shift += 7, i++)
        {
            tagged |= (ulong)(encoded[i] & 0x7F) << shift;
            if (encoded[i] < 0x80)
            {
                break;
            }
        }

        return (i + 1, (int)tagged - 1);
    }

    /// <summary>The UTF-8 bytes of an encoded key's ID: its second field.</summary>
    public static ReadOnlySpan<byte> KeyIdOf(ReadOnlySpan<byte> encoded)
    {
        var name = NameOf(encoded);
        var nameLength = (ulong)name.Length + 1;
        var skipped = 1;
        while (nameLength >= 0x80)
        {
            nameLength >>= 7;
            skipped++;
        }

        return NameOf(encoded[(skipped + name.Length)..]);
    }

    public static void Write(RecordWriter w, KeyRecord key)
    {
        w.WriteString(key.Name);
        w.WriteString(key.Id);
        w.WriteString(key.Spec);
        w.WriteString(key.CreatorAccount);
        w.WriteInstant(key.CreatedAt);
        w.WriteString(key.Description);
        w.WriteVarUInt((ulong)key.Versions.Length);
        foreach (var version in key.Versions)
        {
            w.WriteString(version.VersionId);
            w.WriteInstant(version.CreatedAt);
            if (version.Material is { } material)
            {
                w.WriteByte(1);
                w.WriteBytes(material.Span);
            }
            else
            {
                w.WriteByte(0);
            }
        }
    }

    /// <summary>
    /// Reads a key; without <paramref name="withValues"/> its material is skipped, not copied (each version's
    /// <see cref="KeyVersion.Material"/> is then <see langword="null"/>): for what shows metadata only, such as views.
    /// </summary>
    public static KeyRecord ReadKey(ref RecordReader r, bool withValues)
    {
        var name = r.ReadRequiredString();
        var id = r.ReadRequiredString();
        var spec = r.ReadRequiredString();
        var creator = r.ReadRequiredString();
        var createdAt = r.ReadInstant();
        var description = r.ReadString();
        var count = r.ReadCount(1_000_000);
        var versions = ImmutableArray.CreateBuilder<KeyVersion>(count);
        for (var i = 0; i < count; i++)
        {
            var versionId = r.ReadRequiredString();
            var at = r.ReadInstant();
            var material = r.ReadByte() switch
            {
                0 => null,
                1 when withValues => SensitiveBytes.Copy(r.ReadBytes()),
                1 => SkipMaterial(ref r),
                _ => throw r.Malformed("a key version has a bad material tag"),
            };
            versions.Add(new KeyVersion(versionId, at, material));
        }

        try
        {
            return new KeyRecord(id, name, spec, creator, createdAt, versions.MoveToImmutable()) { Description = description };
        }
        catch (ArgumentException e)
        {
            throw r.Malformed($"a key record is invalid ({e.ParamName})");
        }
    }

    public static void Write(RecordWriter w, SecretRecord secret)
    {
        w.WriteString(secret.Name);
        w.WriteString(secret.EncryptionKeyId);
        w.WriteString(secret.CreatorAccount);
        w.WriteInstant(secret.CreatedAt);
        w.WriteString(secret.Description);
        w.WriteVarUInt((ulong)secret.Versions.Length);
        foreach (var version in secret.Versions)
        {
            w.WriteString(version.VersionId);
            w.WriteInstant(version.CreatedAt);
            w.WriteBytes(version.Ciphertext.Span);
        }
    }

    /// <summary>
    /// Reads a secret; without <paramref name="withValues"/> its versions' ciphertexts are skipped, not copied (each
    /// <see cref="SecretVersion.Ciphertext"/> is then empty): for what shows metadata only, such as views.
    /// </summary>
    public static SecretRecord ReadSecret(ref RecordReader r, bool withValues)
    {
        var name = r.ReadRequiredString();
        var keyId = r.ReadRequiredString();
        var creator = r.ReadRequiredString();
        var createdAt = r.ReadInstant();
        var description = r.ReadString();
        var count = r.ReadCount(1_000_000);
        var versions = ImmutableArray.CreateBuilder<SecretVersion>(count);
        for (var i = 0; i < count; i++)
        {
            var versionId = r.ReadRequiredString();
            var at = r.ReadInstant();
            versions.Add(new SecretVersion(versionId, at, withValues ? SensitiveBytes.Copy(r.ReadBytes()) : SkipCiphertext(ref r)));
        }

        try
        {
            return new SecretRecord(name, keyId, creator, createdAt, versions.MoveToImmutable()) { Description = description };
        }
        catch (ArgumentException e)
        {
            throw r.Malformed($"a secret record is invalid ({e.ParamName})");
        }
    }

    /// <summary>
    /// Steps over an encoded key without decoding it (no string or array is made): for what only needs to know where an
    /// item ends, such as a download copying leaves as they are. Returns 0.
    /// </summary>
    public static int SkipKey(ref RecordReader r)
    {
        SkipStrings(ref r, 4);
        r.ReadInstant();
        SkipStrings(ref r, 1);
        for (var i = r.ReadCount(1_000_000); i > 0; i--)
        {
            SkipStrings(ref r, 1);
            r.ReadInstant();
            switch (r.ReadByte())
            {
                case 0:
                    break;
                case 1:
                    r.ReadBytes();
                    break;
                default:
                    throw r.Malformed("a key version has a bad material tag");
            }
        }

        return 0;
    }

    /// <summary>Steps over an encoded secret without decoding it (see <see cref="SkipKey"/>). Returns 0.</summary>
    public static int SkipSecret(ref RecordReader r)
    {
        SkipStrings(ref r, 3);
        r.ReadInstant();
        SkipStrings(ref r, 1);
        for (var i = r.ReadCount(1_000_000); i > 0; i--)
        {
            SkipStrings(ref r, 1);
            r.ReadInstant();
            r.ReadBytes();
        }

        return 0;
    }

    /// <summary>Steps over <paramref name="count"/> strings (a varuint of length + 1, 0 for null, then the bytes).</summary>
    private static void SkipStrings(ref RecordReader r, int count)
    {
        for (var i = 0; i < count; i++)
        {
            var tagged = r.ReadVarUInt();
            if (tagged > 0)
            {
                r.ReadRaw(tagged - 1 > int.MaxValue ? -1 : (int)(tagged - 1)); // a length past the end is refused as malformed
            }
        }
    }

    /// <summary>Steps over a key version's material without copying it; the version then has none.</summary>
    private static SensitiveBytes? SkipMaterial(ref RecordReader r)
    {
        r.ReadBytes();
        return null;
    }

    /// <summary>Steps over a secret version's ciphertext without copying it; the version then holds no bytes.</summary>
    private static SensitiveBytes SkipCiphertext(ref RecordReader r)
    {
        r.ReadBytes();
        return s_withheld;
    }
}
