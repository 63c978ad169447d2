namespace KmsBackup;

/// <summary>
/// Stored backup data failed an integrity check: a MAC, a length, a reference, or its format.
/// Wrong data is never returned: the read that found it throws this instead. <see cref="BackupException.Item"/>
/// names the object.
/// </summary>
public sealed class BackupIntegrityException : BackupException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="refusal">The refusal, with code <see cref="BackupErrorCode.IntegrityViolation"/>.</param>
    public BackupIntegrityException(Refusal refusal)
        : base(refusal)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    /// <param name="refusal">The refusal, with code <see cref="BackupErrorCode.IntegrityViolation"/>.</param>
    /// <param name="innerException">The cause.</param>
    public BackupIntegrityException(Refusal refusal, Exception? innerException)
        : base(refusal, innerException)
    {
    }
}
