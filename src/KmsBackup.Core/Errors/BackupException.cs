namespace KmsBackup;

/// <summary>
/// The one exception type of KmsBackup.Sdk for refused operations and bad input. Branch on
/// <see cref="Code"/>; show <see cref="Exception.Message"/> and <see cref="Remedy"/> to people.
/// </summary>
public class BackupException : Exception
{
    /// <summary>Creates an exception from a refusal.</summary>
    /// <param name="refusal">The refusal; its code, item and remedy become this exception's.</param>
    public BackupException(Refusal refusal)
        : base(Format(refusal))
    {
        Refusal = refusal;
    }

    /// <summary>Creates an exception from a refusal with the exception that caused it.</summary>
    /// <param name="refusal">The refusal; its code, item and remedy become this exception's.</param>
    /// <param name="innerException">The underlying cause.</param>
    public BackupException(Refusal refusal, Exception? innerException)
        : base(Format(refusal), innerException)
    {
        Refusal = refusal;
    }

    /// <summary>The refusal this exception carries.</summary>
    public Refusal Refusal { get; }

    /// <summary>The stable error code.</summary>
    public BackupErrorCode Code => Refusal.Code;

    /// <summary>The item the error concerns.</summary>
    public string Item => Refusal.Item;

    /// <summary>What the caller can do about it.</summary>
    public string Remedy => Refusal.Remedy;

    private static string Format(Refusal refusal)
    {
        ArgumentNullException.ThrowIfNull(refusal);
        return $"{refusal.Message} Remedy: {refusal.Remedy}";
    }
}
