namespace KmsBackup.Domain;

/// <summary>
/// The codec's argument checks and the refusals it throws, each with a stable code, the part of the file it
/// concerns and a remedy, so that every reader and writer refuses the same input with the same error.
/// Messages never hold key bytes.
/// </summary>
internal static class BackupFileRefusals
{
    public const string CorruptRemedy = "The file was damaged or altered after it was downloaded: download the backup again, or use an intact copy. Nothing of this file may be imported.";
    public const string TruncatedRemedy = "The file was cut short (an interrupted download or copy): download or copy it again in full.";

    private const string FileItem = "backup file";
    private const string WrongKeyRemedy = "Use the data key that was returned when this file was downloaded; a key of another download does not open it.";

    public static void ValidateSegmentSize(int segmentSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(segmentSize, BackupFileCodec.MinimumSegmentSize);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(segmentSize, BackupFileCodec.MaximumSegmentSize);
    }

    public static void ValidateDataKey(int dataKeyLength)
    {
        if (dataKeyLength != BackupFileCodec.DataKeySize)
        {
            throw new BackupException(new Refusal(
                BackupErrorCode.InvalidDataKey,
                "data key",
                $"The data key is {dataKeyLength} bytes long; backup files use {BackupFileCodec.DataKeySize}-byte (256-bit) data keys.",
                "Pass the whole 32-byte data key that was returned when the file was downloaded (decode it from its text form first if it was stored as text)."));
        }
    }

    public static BackupException TooManySegments(long maximumSegmentCount, int segmentSize) =>
        new(new Refusal(
            BackupErrorCode.FileTooLarge,
            FileItem,
            $"The plaintext needs more than {maximumSegmentCount} segments of {segmentSize} bytes, more than a backup file can number without its segment counter wrapping.",
            "Encrypt with a larger segment size, or split the backup data into several files."));

    public static BackupFileException TooManySegmentsInFile(uint index, long maximumSegmentCount) =>
        new(
            new Refusal(
                BackupErrorCode.FileTooLarge,
                $"segment {index} of the backup file",
                $"The backup file holds more than {maximumSegmentCount} segments, more than the format can number without its segment counter wrapping: it is not a file this SDK wrote.",
                CorruptRemedy),
            index,
            null);

    public static BackupFileException Header(BackupErrorCode code, string message, string remedy) =>
        new(new Refusal(code, "header of the backup file", message, remedy), null, null);

    public static BackupFileException WrongKey() =>
        Header(
            BackupErrorCode.WrongFileKey,
            "The data key does not open this backup file: it is not the key the file was encrypted under (the key commitment in the file's header does not match).",
            WrongKeyRemedy);

    public static BackupFileException Truncated(uint index, int read)
    {
        var message = read == 0
            ? index == 0
                ? "The backup file ends after its header, without any segment."
                : $"The backup file ends after segment {index - 1} without its final segment: it was cut short at a segment boundary."
            : $"The backup file ends {read} bytes into segment {index}, fewer than the {SegmentCipher.TagSize}-byte authentication tag: it was cut short.";
        return new BackupFileException(new Refusal(BackupErrorCode.FileTruncated, $"segment {index} of the backup file", message, TruncatedRemedy), index, null);
    }

    public static BackupFileException SegmentFailed(uint index, bool final, int read)
    {
        var message = final
            ? $"Segment {index} of the backup file ({read} bytes, read as the final segment because the file ends there) failed authentication: the file was damaged, altered, reordered or cut short, or bytes were appended after its end."
            : $"Segment {index} of the backup file failed authentication: it was damaged, altered, moved, duplicated or taken from another file, or bytes were appended after the file's end.";
        return new BackupFileException(new Refusal(BackupErrorCode.FileCorrupt, $"segment {index} of the backup file", message, CorruptRemedy), index, null);
    }
}
