using System.IO.Abstractions;
using Spectre.Console;

namespace KmsBackup.Cli.Output;

/// <summary>
/// What the command tree runs against: the clock, the file system, the environment and the output
/// streams. <see cref="System"/> is the real process; tests build one over captured writers.
/// </summary>
internal sealed class CliHost
{
    /// <summary>Creates a host.</summary>
    /// <param name="fileSystem">The file system the folder is on.</param>
    /// <param name="time">The clock; <c>--now</c> overrides it per invocation.</param>
    /// <param name="output">Standard output: tables, or JSON with <c>--json</c>.</param>
    /// <param name="error">Standard error: refusals and errors in text mode.</param>
    /// <param name="environment">Reads an environment variable.</param>
    /// <param name="interactive">Whether output is a terminal (progress bars, colours).</param>
    public CliHost(IFileSystem fileSystem, TimeProvider time, TextWriter output, TextWriter error, Func<string, string?> environment, bool interactive)
    {
        FileSystem = fileSystem;
        Time = time;
        Output = output;
        Error = error;
        Environment = environment;
        Interactive = interactive;
        Console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = interactive ? InteractionSupport.Yes : InteractionSupport.No,
        });
        if (!interactive)
        {
            // Captured or piped output is read by programs and people alike: no wrapping at 80 columns.
            Console.Profile.Width = 240;
        }

        ErrorConsole = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(error),
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        if (!interactive)
        {
            ErrorConsole.Profile.Width = 240;
        }
    }

    public IFileSystem FileSystem { get; }

    public TimeProvider Time { get; }

    public TextWriter Output { get; }

    public TextWriter Error { get; }

    public Func<string, string?> Environment { get; }

    public bool Interactive { get; }

    /// <summary>Rich output (tables, progress) on standard output.</summary>
    public IAnsiConsole Console { get; }

    /// <summary>Rich output on standard error.</summary>
    public IAnsiConsole ErrorConsole { get; }

    /// <summary>The real process: the local disk, the system clock, the console.</summary>
    public static CliHost System() => new(
        new FileSystem(),
        TimeProvider.System,
        global::System.Console.Out,
        global::System.Console.Error,
        global::System.Environment.GetEnvironmentVariable,
        !global::System.Console.IsOutputRedirected);
}
