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
    /// <param name="terminalWidth">The terminal's width in columns, if output is a terminal that reports one.</param>
    /// <param name="input">Standard input; none when <see langword="null"/>.</param>
    public CliHost(IFileSystem fileSystem, TimeProvider time, TextWriter output, TextWriter error, Func<string, string?> environment, bool interactive, int? terminalWidth = null, TextReader? input = null)
    {
        FileSystem = fileSystem;
        Input = input ?? TextReader.Null;
        Time = time;
        Output = output;
        Error = error;
        Environment = environment;
        Interactive = interactive;
        Width = WidthOf(environment(ColumnsVariable), terminalWidth);
        Console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = interactive ? InteractionSupport.Yes : InteractionSupport.No,
        });
        Console.Profile.Width = Width;

        ErrorConsole = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(error),
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        ErrorConsole.Profile.Width = Width;
    }

    /// <summary>The variable that sets the width tables and lines fit in, as shells and terminals set it.</summary>
    public const string ColumnsVariable = "COLUMNS";

    /// <summary>Output that is neither a terminal nor given a width (piped, captured) is read by programs and people alike: wide enough not to wrap.</summary>
    public const int UnboundedWidth = 240;

    /// <summary>The narrowest width the tool lays out for; a smaller COLUMNS is taken as this.</summary>
    public const int MinimumWidth = 40;

    public IFileSystem FileSystem { get; }

    /// <summary>
    /// The width in columns that tables and lines fit in: <c>COLUMNS</c> when set, else the terminal's width, else
    /// <see cref="UnboundedWidth"/>.
    /// </summary>
    public int Width { get; }

    public TimeProvider Time { get; }

    public TextWriter Output { get; }

    /// <summary>Standard input: what <c>--passphrase-stdin</c> reads (nothing when the host has none).</summary>
    public TextReader Input { get; }

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
        !global::System.Console.IsOutputRedirected,
        TerminalWidth(),
        global::System.Console.In);

    private static int WidthOf(string? columns, int? terminalWidth) =>
        int.TryParse(columns, global::System.Globalization.NumberStyles.None, global::System.Globalization.CultureInfo.InvariantCulture, out var width) && width > 0
            ? Math.Max(width, MinimumWidth)
            : terminalWidth is > 0 and var terminal ? Math.Max(terminal, MinimumWidth) : UnboundedWidth;

    private static int? TerminalWidth()
    {
        if (global::System.Console.IsOutputRedirected)
        {
            return null;
        }

        try
        {
            return global::System.Console.WindowWidth;
        }
        catch (IOException)
        {
            // No console to ask (a detached process): lay out as for piped output.
            return null;
        }
    }
}
