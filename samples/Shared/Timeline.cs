using System.Globalization;
using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Samples;

/// <summary>Prints what happens as a timeline, each line stamped with the simulated time.</summary>
internal sealed class Timeline(FakeTimeProvider clock)
{
    public int Refusals { get; private set; }

    public static void Chapter(string title)
    {
        Console.WriteLine();
        Console.WriteLine($"== {title}");
    }

    public void Say(string text) =>
        Console.WriteLine($"[{clock.GetUtcNow().ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)}] {text}");

    public static void Detail(string text) => Console.WriteLine($"                   {text}");

    /// <summary>A refusal, as the SDK states it: code, message and remedy.</summary>
    public void Refused(BackupException refusal) => Refused(refusal.Refusal);

    public void Refused(Refusal refusal)
    {
        Refusals++;
        Say($"REFUSED {refusal.Code}: {refusal.Message}");
        Detail($"Remedy: {refusal.Remedy}");
    }
}
