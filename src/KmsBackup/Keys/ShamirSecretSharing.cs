using System.Security.Cryptography;

namespace KmsBackup;

/// <summary>
/// Shamir's secret sharing over GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1: each byte of the secret is
/// the constant term of its own random polynomial of degree <c>threshold - 1</c>, and share <c>x</c> (1 to 255) holds
/// every polynomial's value at <c>x</c>. Any <c>threshold</c> shares give the secret by Lagrange interpolation at 0;
/// fewer give no information about it.
/// </summary>
/// <remarks>
/// Field arithmetic is branch-free and uses no tables indexed by secret bytes, so its timing does not depend on them.
/// </remarks>
internal static class ShamirSecretSharing
{
    /// <summary>Splits <paramref name="secret"/> into <paramref name="shareCount"/> shares, numbered 1 to <paramref name="shareCount"/>.</summary>
    /// <returns>Share <c>i</c> (0-based) has the number <c>i + 1</c>; each is as long as the secret. Clear them when done.</returns>
    public static byte[][] Split(ReadOnlySpan<byte> secret, int threshold, int shareCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threshold, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(threshold, shareCount);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(shareCount, 255);
        var shares = new byte[shareCount][];
        for (var i = 0; i < shareCount; i++)
        {
            shares[i] = GC.AllocateArray<byte>(secret.Length, pinned: true);
        }

        var coefficients = GC.AllocateArray<byte>(threshold, pinned: true);
        try
        {
            for (var b = 0; b < secret.Length; b++)
            {
                coefficients[0] = secret[b];
                RandomNumberGenerator.Fill(coefficients.AsSpan(1));
                for (var i = 0; i < shareCount; i++)
                {
                    // Horner's rule at x = i + 1.
                    var x = (byte)(i + 1);
                    byte y = 0;
                    for (var c = threshold - 1; c >= 0; c--)
                    {
                        y = (byte)(Multiply(y, x) ^ coefficients[c]);
                    }

                    shares[i][b] = y;
                }
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(coefficients);
        }

        return shares;
    }

    /// <summary>
    /// Rebuilds the secret from shares with distinct non-zero numbers <paramref name="xs"/>, into <paramref name="secret"/>.
    /// With fewer shares than the threshold the result is a wrong secret, not an error: the caller checks it.
    /// </summary>
    public static void Combine(ReadOnlySpan<byte> xs, IReadOnlyList<byte[]> shares, Span<byte> secret)
    {
        if (xs.Length != shares.Count || xs.Length == 0)
        {
            throw new ArgumentException("One number per share, and at least one share.", nameof(xs));
        }

        // Lagrange basis at 0: l_j = prod_{m != j} x_m / (x_m - x_j); subtraction is XOR in GF(2^8).
        Span<byte> basis = stackalloc byte[xs.Length];
        for (var j = 0; j < xs.Length; j++)
        {
            byte numerator = 1, denominator = 1;
            for (var m = 0; m < xs.Length; m++)
            {
                if (m == j)
                {
                    continue;
                }

                if (xs[m] == xs[j] || xs[m] == 0)
                {
                    throw new ArgumentException("Share numbers must be distinct and non-zero.", nameof(xs));
                }

                numerator = Multiply(numerator, xs[m]);
                denominator = Multiply(denominator, (byte)(xs[m] ^ xs[j]));
            }

            basis[j] = Multiply(numerator, Inverse(denominator));
        }

        for (var b = 0; b < secret.Length; b++)
        {
            byte value = 0;
            for (var j = 0; j < xs.Length; j++)
            {
                value ^= Multiply(shares[j][b], basis[j]);
            }

            secret[b] = value;
        }
    }

    /// <summary>Multiplication in GF(2^8) modulo 0x11B, without branches on the operands.</summary>
    internal static byte Multiply(byte a, byte b)
    {
        int x = a, y = b, product = 0;
        for (var i = 0; i < 8; i++)
        {
            product ^= -(y & 1) & x;
            var high = (x >> 7) & 1;
            x = ((x << 1) ^ (-high & 0x1B)) & 0xFF;
            y >>= 1;
        }

        return (byte)product;
    }

    /// <summary>The multiplicative inverse in GF(2^8): a^254 (0 for 0).</summary>
    internal static byte Inverse(byte a)
    {
        // a^254 = a^(2+4+8+16+32+64+128).
        byte result = 1, power = a;
        for (var i = 1; i < 8; i++)
        {
            power = Multiply(power, power);
            result = Multiply(result, power);
        }

        return result;
    }
}
