using System.Buffers.Binary;
using System.Security.Cryptography;

namespace KmsBackup.Tests.Keys;

/// <summary>The passphrase and recovery-key providers and the secret sharing under them (issue 17, item 1).</summary>
public class KeyProviderKindsTests
{
    private const string Passphrase = "correct horse battery staple";

    [Fact]
    [Trait("Issue", "17")]
    public void Any_threshold_of_shares_rebuilds_the_secret_and_fewer_do_not()
    {
        var secret = RandomNumberGenerator.GetBytes(32);
        for (var n = 1; n <= 6; n++)
        {
            for (var m = 1; m <= n; m++)
            {
                var shares = ShamirSecretSharing.Split(secret, m, n);
                foreach (var subset in Subsets(n, m))
                {
                    var rebuilt = new byte[32];
                    ShamirSecretSharing.Combine([.. subset.Select(i => (byte)(i + 1))], [.. subset.Select(i => shares[i])], rebuilt);
                    Assert.True(secret.AsSpan().SequenceEqual(rebuilt), $"{m} of {n}: shares {string.Join(",", subset)} did not rebuild the secret");
                }

                if (m > 1)
                {
                    foreach (var subset in Subsets(n, m - 1))
                    {
                        var rebuilt = new byte[32];
                        ShamirSecretSharing.Combine([.. subset.Select(i => (byte)(i + 1))], [.. subset.Select(i => shares[i])], rebuilt);
                        Assert.False(secret.AsSpan().SequenceEqual(rebuilt), $"{m - 1} shares of a {m}-of-{n} split rebuilt the secret");
                    }
                }
            }
        }
    }

    [Fact]
    [Trait("Issue", "17")]
    public void Field_arithmetic_inverts_every_non_zero_element()
    {
        for (var a = 1; a < 256; a++)
        {
            Assert.Equal(1, ShamirSecretSharing.Multiply((byte)a, ShamirSecretSharing.Inverse((byte)a)));
        }

        Assert.Equal(0xC1, ShamirSecretSharing.Multiply(0x57, 0x83)); // FIPS 197, section 4.2
    }

    [Fact]
    [Trait("Issue", "17")]
    public async Task A_recovery_key_rebuilt_from_shares_as_typed_with_spaces_and_capitals_unwraps_what_it_wrapped()
    {
        using var split = RecoveryKeyRepositoryKeyProvider.Split(threshold: 3, shareCount: 5);
        var wrapped = await split.Provider.WrapAsync(new byte[] { 1, 2, 3 });
        var typed = split.Shares.Skip(1).Take(3).Select(s => " " + string.Join(" ", s.ToUpperInvariant().Chunk(8).Select(c => new string(c))) + "\n").ToList();
        using var rebuilt = RecoveryKeyRepositoryKeyProvider.FromShares(typed);
        Assert.Equal(split.Provider.KeyId, rebuilt.KeyId);
        var key = await rebuilt.UnwrapAsync(wrapped);
        Assert.Equal(new byte[] { 1, 2, 3 }, key.Span.ToArray());
        Assert.DoesNotContain(split.Shares[0].Split('-')[4], split.ToString(), StringComparison.Ordinal);
        Assert.Equal("recovery", rebuilt.Kind);
    }

    [Fact]
    [Trait("Issue", "17")]
    public async Task A_passphrase_unwraps_what_it_wrapped_and_a_wrong_one_is_a_typed_error()
    {
        using var provider = new PassphraseRepositoryKeyProvider(Passphrase);
        var wrapped = await provider.WrapAsync(new byte[] { 9, 8, 7 });
        using var again = new PassphraseRepositoryKeyProvider(Passphrase);
        Assert.NotEqual(provider.KeyId, again.KeyId); // a salt of its own
        Assert.True(again.Accepts(provider.KeyId));
        Assert.False(again.Accepts("keyfile:0123456789abcdef"));
        Assert.Equal(new byte[] { 9, 8, 7 }, (await again.UnwrapAsync(wrapped)).Span.ToArray());

        using var wrong = new PassphraseRepositoryKeyProvider("correct horse battery stapler");
        var e = await Assert.ThrowsAsync<BackupException>(() => wrong.UnwrapAsync(wrapped));
        Assert.Equal(BackupErrorCode.WrongPassphrase, e.Code);
        Assert.DoesNotContain(Passphrase, e.Message + e.Remedy + provider, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new PassphraseRepositoryKeyProvider("short"));
    }

    [Theory]
    [Trait("Issue", "17")]
    [InlineData(4u * 1024 * 1024, 2u, 1u)] // 4 GiB of memory
    [InlineData(19u * 1024, 1_000_000u, 1u)] // a million passes
    [InlineData(19u * 1024, 2u, 8u)] // parallelism libsodium does not do
    [InlineData(1u, 2u, 1u)] // too little memory to resist guessing
    public async Task A_planted_record_that_demands_costs_out_of_bounds_is_refused_before_anything_is_derived(uint memoryKiB, uint passes, uint parallelism)
    {
        using var provider = new PassphraseRepositoryKeyProvider(Passphrase);
        var wrapped = await provider.WrapAsync(new byte[32]);
        BinaryPrimitives.WriteUInt32LittleEndian(wrapped.AsSpan(5), memoryKiB);
        BinaryPrimitives.WriteUInt32LittleEndian(wrapped.AsSpan(9), passes);
        BinaryPrimitives.WriteUInt32LittleEndian(wrapped.AsSpan(13), parallelism);
        var started = System.Diagnostics.Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<BackupIntegrityException>(() => provider.UnwrapAsync(wrapped));
        Assert.Equal(BackupErrorCode.IntegrityViolation, e.Code);
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(5));
    }

    private static IEnumerable<int[]> Subsets(int n, int size)
    {
        if (size == 0)
        {
            yield return [];
            yield break;
        }

        for (var first = 0; first < n; first++)
        {
            foreach (var rest in Subsets(n, size - 1).Where(r => r.All(i => i > first)))
            {
                yield return [first, .. rest];
            }
        }
    }
}
