using System.Globalization;

namespace KmsBackup;

/// <summary>A purchase or renewal duration in whole calendar months, 1 month to 10 years.</summary>
public readonly struct PurchaseTerm : IEquatable<PurchaseTerm>
{
    /// <summary>The shortest term: one month.</summary>
    public const int MinimumMonths = 1;

    /// <summary>The longest term: ten years.</summary>
    public const int MaximumMonths = 120;

    private PurchaseTerm(int months) => Months = months;

    /// <summary>The term in months.</summary>
    public int Months { get; }

    /// <summary>A term of <paramref name="months"/> months.</summary>
    /// <param name="months">From 1 to 120.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.InvalidPurchaseTerm"/>: outside 1 to 120 months.</exception>
    public static PurchaseTerm FromMonths(int months) =>
        TryFromMonths(months, out var term, out var refusal) ? term : throw refusal.ToException();

    /// <summary>A term of <paramref name="years"/> years.</summary>
    /// <param name="years">From 1 to 10.</param>
    /// <exception cref="BackupException"><see cref="BackupErrorCode.InvalidPurchaseTerm"/>: outside 1 to 10 years.</exception>
    public static PurchaseTerm FromYears(int years)
    {
        if (years is < 1 or > MaximumMonths / 12)
        {
            throw new Refusal(
                BackupErrorCode.InvalidPurchaseTerm,
                string.Create(CultureInfo.InvariantCulture, $"term={years} years"),
                string.Create(CultureInfo.InvariantCulture, $"A purchase duration of {years} years is outside 1 month to 10 years."),
                "Choose a duration from 1 to 10 years, or from 1 to 120 months.").ToException();
        }

        return new PurchaseTerm(years * 12);
    }

    /// <summary>A term of <paramref name="months"/> months, or why not.</summary>
    /// <param name="months">From 1 to 120.</param>
    /// <param name="term">The term, when valid.</param>
    /// <param name="refusal">Why not, when invalid.</param>
    /// <returns>Whether the term is valid.</returns>
    public static bool TryFromMonths(int months, out PurchaseTerm term, [System.Diagnostics.CodeAnalysis.NotNullWhen(false)] out Refusal? refusal)
    {
        if (months is < MinimumMonths or > MaximumMonths)
        {
            term = default;
            refusal = new Refusal(
                BackupErrorCode.InvalidPurchaseTerm,
                string.Create(CultureInfo.InvariantCulture, $"term={months} months"),
                string.Create(CultureInfo.InvariantCulture, $"A purchase duration of {months} months is outside 1 month to 10 years."),
                "Choose a duration from 1 to 120 months.");
            return false;
        }

        term = new PurchaseTerm(months);
        refusal = null;
        return true;
    }

    /// <summary>The instant <see cref="Months"/> calendar months (in UTC) after <paramref name="start"/>.</summary>
    /// <param name="start">The start of the term.</param>
    /// <exception cref="InvalidOperationException">This is the default value, not a term.</exception>
    internal DateTimeOffset EndFrom(DateTimeOffset start)
    {
        if (Months == 0)
        {
            throw new InvalidOperationException("The default PurchaseTerm is not a term; create one with FromMonths or FromYears.");
        }

        return start.ToUniversalTime().AddMonths(Months);
    }

    /// <summary>The term in ISO 8601 duration form, e.g. <c>P12M</c>.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"P{Months}M");

    /// <inheritdoc />
    public bool Equals(PurchaseTerm other) => Months == other.Months;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is PurchaseTerm other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => Months;

    /// <summary>Whether two terms are the same.</summary>
    public static bool operator ==(PurchaseTerm left, PurchaseTerm right) => left.Equals(right);

    /// <summary>Whether two terms differ.</summary>
    public static bool operator !=(PurchaseTerm left, PurchaseTerm right) => !left.Equals(right);
}

/// <summary>A purchase of backups (rules K3, K6): where, how many viewable days, for how long, how many.</summary>
/// <param name="Region">The region of the instance the backups will back up.</param>
/// <param name="ViewableDays">From 7 to 600.</param>
/// <param name="Term">The purchase duration.</param>
/// <param name="Quantity">How many backups to create, 1 to 100; each backs up one instance.</param>
public sealed record PurchaseOrder(string Region, int ViewableDays, PurchaseTerm Term, int Quantity = 1)
{
    /// <summary>The most backups one order can create.</summary>
    public const int MaximumQuantity = 100;
}

/// <summary>The purchase a purchased backup came from, as recorded for billing (rule K3).</summary>
/// <param name="PurchasedAt">When the purchase was made.</param>
/// <param name="Term">The purchase duration.</param>
/// <param name="ViewableDays">The viewable days bought.</param>
/// <param name="Quantity">How many backups the order created.</param>
public sealed record PurchaseRecord(DateTimeOffset PurchasedAt, PurchaseTerm Term, int ViewableDays, int Quantity);
