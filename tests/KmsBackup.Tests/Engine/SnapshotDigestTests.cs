using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace KmsBackup.Tests.Engine;

/// <summary>Two snapshots of one instance: a random "before", and an "after" made from it by random edits.</summary>
public sealed record DigestPair(InstanceSnapshot Before, InstanceSnapshot After)
{
    public override string ToString() => $"{Before} -> {After}";
}

public static class DigestArbitraries
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly SnapshotSource Source = new("kst-1", InstanceKind.Software, "cn-hangzhou", "owner");

    // A small alphabet, so that edits hit existing names.
    private static readonly Gen<string> NameGen =
        Gen.Elements("a", "b", "k", "z", "é", "😀", "-").ArrayOf().Where(a => a.Length is > 0 and < 4).Select(a => string.Concat(a));

    private static KeyRecord Key(string name, int versions, string? description = null, byte salt = 0) =>
        new($"id-{name}", name, "Aliyun_AES_256", "owner", T0,
            Enumerable.Range(1, versions).Select(v => new KeyVersion($"v{v}", T0.AddDays(v), SensitiveBytes.Copy([(byte)v, salt, 7]))))
        { Description = description };

    private static SecretRecord Secret(string name, int versions, string? description = null) =>
        new(name, "id-k", "owner", T0, Enumerable.Range(1, versions).Select(v => new SecretVersion($"s{v}", T0.AddDays(v), SensitiveBytes.Copy([(byte)v, 9]))))
        { Description = description };

    public static Arbitrary<DigestPair> Pairs() =>
        (from keyNames in NameGen.ArrayOf()
         from secretNames in NameGen.ArrayOf()
         from edits in Gen.Choose(0, 5).Zip(NameGen).ArrayOf()
         select Build(keyNames.Distinct().ToArray(), secretNames.Distinct().ToArray(), edits))
        .ToArbitrary();

    private static DigestPair Build(string[] keyNames, string[] secretNames, (int Op, string Name)[] edits)
    {
        var keys = keyNames.ToDictionary(n => n, n => Key(n, 1), StringComparer.Ordinal);
        var secrets = secretNames.ToDictionary(n => n, n => Secret(n, 1), StringComparer.Ordinal);
        var before = InstanceSnapshot.Create(Source, T0, keys.Values, secrets.Values);
        foreach (var (op, name) in edits)
        {
            switch (op)
            {
                case 0: keys[name] = keys.TryGetValue(name, out var k) ? Key(name, k.Versions.Length + 1, k.Description) : Key(name, 1); break;
                case 1: keys.Remove(name); break;
                case 2: if (keys.TryGetValue(name, out var m)) { keys[name] = Key(name, m.Versions.Length, (m.Description ?? "") + "x"); } break;
                case 3: secrets[name] = secrets.TryGetValue(name, out var s) ? Secret(name, s.Versions.Length + 1, s.Description) : Secret(name, 1); break;
                case 4: secrets.Remove(name); break;
                default: if (secrets.TryGetValue(name, out var t)) { secrets[name] = Secret(name, t.Versions.Length, (t.Description ?? "") + "y"); } break;
            }
        }

        return new DigestPair(before, InstanceSnapshot.Create(Source, T0.AddHours(1), keys.Values, secrets.Values));
    }

    /// <summary>The snapshot as a read without values gives it: no key material, empty secret ciphertexts.</summary>
    public static InstanceSnapshot WithoutValues(InstanceSnapshot snapshot) =>
        InstanceSnapshot.Create(
            snapshot.Source, snapshot.TakenAt,
            snapshot.Keys.Select(k => new KeyRecord(k.Id, k.Name, k.Spec, k.CreatorAccount, k.CreatedAt, k.Versions.Select(v => v with { Material = null })) { Description = k.Description }),
            snapshot.Secrets.Select(s => new SecretRecord(s.Name, s.EncryptionKeyId, s.CreatorAccount, s.CreatedAt, s.Versions.Select(v => v with { Ciphertext = SensitiveBytes.Copy([]) })) { Description = s.Description }));
}

/// <summary>
/// What a client remembers of a backup's last point between runs is a digest without key material or secret values
/// (issue 13, finding 6); the changes it tells (rule D5) are those <see cref="SnapshotDiff"/> finds.
/// </summary>
[Properties(Arbitrary = [typeof(DigestArbitraries)], MaxTest = 300)]
public class SnapshotDigestTests
{
    [Property]
    [Trait("Rule", "D5")]
    public bool The_digest_tells_the_changes_the_snapshot_diff_finds(DigestPair pair) =>
        SnapshotDigest.Of(pair.After).ChangesSince(SnapshotDigest.Of(pair.Before)).SequenceEqual(SnapshotDiff.Compare(pair.Before, pair.After).Changes);

    [Property]
    [Trait("Rule", "D5")]
    public bool A_digest_read_without_values_tells_the_same_changes(DigestPair pair) =>
        SnapshotDigest.Of(pair.After).ChangesSince(SnapshotDigest.Of(DigestArbitraries.WithoutValues(pair.Before)))
            .SequenceEqual(SnapshotDiff.Compare(pair.Before, pair.After).Changes);
}
