namespace KmsBackup;

/// <summary>
/// Why an operation was refused: a stable <see cref="Code"/>, a message that names the item it
/// concerns, and a <see cref="Remedy"/> that says what to do about it. Refusals are values so that
/// pure rules can return them; <see cref="ToException"/> turns one into a <see cref="BackupException"/>.
/// </summary>
/// <remarks>A refusal never carries a secret value, key material or key: only names, IDs, dates and numbers.</remarks>
public sealed class Refusal : IEquatable<Refusal>
{
    /// <summary>Creates a refusal.</summary>
    /// <param name="code">The stable error code.</param>
    /// <param name="item">The item the refusal concerns (a backup ID, a date, a value), as the user would name it.</param>
    /// <param name="message">What is wrong, naming <paramref name="item"/>.</param>
    /// <param name="remedy">What the caller can do about it.</param>
    public Refusal(BackupErrorCode code, string item, string message, string remedy)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(item);
        ArgumentException.ThrowIfNullOrWhiteSpace(message);
        ArgumentException.ThrowIfNullOrWhiteSpace(remedy);
        Code = code;
        Item = item;
        Message = message;
        Remedy = remedy;
    }

    /// <summary>The stable error code.</summary>
    public BackupErrorCode Code { get; }

    /// <summary>The item the refusal concerns, e.g. <c>backup 'b-1'</c> or <c>viewableDays=5</c>.</summary>
    public string Item { get; }

    /// <summary>What is wrong.</summary>
    public string Message { get; }

    /// <summary>What the caller can do about it.</summary>
    public string Remedy { get; }

    /// <summary>The refusal as an exception, ready to throw.</summary>
    public BackupException ToException() => new(this);

    /// <summary>The refusal in one line: code, message and remedy.</summary>
    public override string ToString() => $"{Code}: {Message} Remedy: {Remedy}";

    /// <inheritdoc />
    public bool Equals(Refusal? other) =>
        other is not null && Code == other.Code &&
        string.Equals(Item, other.Item, StringComparison.Ordinal) &&
        string.Equals(Message, other.Message, StringComparison.Ordinal) &&
        string.Equals(Remedy, other.Remedy, StringComparison.Ordinal);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as Refusal);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Code, Item, Message, Remedy);
}
