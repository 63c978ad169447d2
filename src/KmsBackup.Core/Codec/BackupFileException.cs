namespace KmsBackup;

/// <summary>
/// A backup file was refused while it was opened, verified or decrypted: a wrong data key
/// (<see cref="BackupErrorCode.WrongFileKey"/>), damage, tampering or trailing data (<see cref="BackupErrorCode.FileCorrupt"/>),
/// truncation (<see cref="BackupErrorCode.FileTruncated"/>), an unknown version
/// (<see cref="BackupErrorCode.UnsupportedFileVersion"/>) or a file too large for its format
/// (<see cref="BackupErrorCode.FileTooLarge"/>). Whatever was written to the destination before it was
/// thrown must be discarded.
/// </summary>
/// <remarks>A separate type because callers react differently: nothing of the file may be imported.</remarks>
public sealed class BackupFileException : BackupException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="refusal">The refusal, naming the part of the file that failed.</param>
    public BackupFileException(Refusal refusal)
        : base(refusal)
    {
    }

    /// <summary>Creates the exception for a segment, with its cause.</summary>
    /// <param name="refusal">The refusal, naming the part of the file that failed.</param>
    /// <param name="segment">The index (from 0) of the segment that failed, or <see langword="null"/> for the header or the file as a whole.</param>
    /// <param name="innerException">The cause, if any.</param>
    public BackupFileException(Refusal refusal, long? segment, Exception? innerException)
        : base(refusal, innerException)
    {
        Segment = segment;
    }

    /// <summary>The index (from 0) of the segment that failed, or <see langword="null"/> when the header or the file as a whole failed.</summary>
    public long? Segment { get; }
}
