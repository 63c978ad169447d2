namespace KmsBackup;

/// <summary>
/// The order of item names in a snapshot: by Unicode code point, which is also the order of their
/// UTF-8 bytes. (Plain ordinal order compares UTF-16 code units and puts characters U+E000–U+FFFF
/// after supplementary characters; this comparer does not.) Snapshots hold their items, and the client lists
/// them, in this order.
/// </summary>
public sealed class ItemNameComparer : IComparer<string>
{
    private ItemNameComparer()
    {
    }

    /// <summary>The one instance.</summary>
    public static ItemNameComparer Instance { get; } = new();

    /// <inheritdoc />
    public int Compare(string? x, string? y)
    {
        if (ReferenceEquals(x, y))
        {
            return 0;
        }

        if (x is null)
        {
            return -1;
        }

        if (y is null)
        {
            return 1;
        }

        var common = x.AsSpan().CommonPrefixLength(y);
        if (common == x.Length || common == y.Length)
        {
            return x.Length.CompareTo(y.Length);
        }

        return Rank(x[common]).CompareTo(Rank(y[common]));
    }

    // Surrogates (U+D800–U+DFFF) stand for code points above U+FFFF: move them above U+E000–U+FFFF.
    private static int Rank(char c) => c >= 0xD800 ? (c >= 0xE000 ? c - 0x800 : c + 0x2000) : c;
}
