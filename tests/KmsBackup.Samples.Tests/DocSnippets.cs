using System.Text;
using System.Text.RegularExpressions;

namespace KmsBackup.Samples.Tests;

/// <summary>
/// The C# shown in the docs and the sources it is kept in. Each snippet is a file <c>docs/snippets/&lt;Name&gt;.cs</c>
/// whose shown part lies between a line <c>#region snippet</c> and a line <c>#endregion</c>; a doc shows it in a
/// <c>```csharp</c> block right after a line <c>&lt;!-- snippet: Name --&gt;</c>, word for word. A snippet file is a
/// top-level program, as a user would paste it into a new console project: what a fragment takes as given is set up
/// before its region, and what the tests check of it comes after. <c>docs/snippets/Support/*.cs</c> holds the
/// helper classes that the setup uses; the docs never show them.
/// </summary>
internal static partial class DocSnippets
{
    public const string Folder = "docs/snippets";

    /// <summary>A snippet: its name, file (relative to the repository), whole text and shown region.</summary>
    public sealed record Snippet(string Name, string File, string Text, string Region);

    /// <summary>A C# block of a Markdown file: where it starts (1-based line of its fence), its marker's name (if any) and its body.</summary>
    public sealed record Block(string File, int Line, string? Marker, string Body);

    /// <summary>Every snippet under docs/snippets (not Support/).</summary>
    public static IReadOnlyList<Snippet> LoadSnippets(string root) =>
        Directory.GetFiles(Path.Combine(root, Folder), "*.cs")
            .Order(StringComparer.Ordinal)
            .Select(path =>
            {
                var text = Normalize(File.ReadAllText(path));
                var relative = Path.GetRelativePath(root, path).Replace('\\', '/');
                return new Snippet(Path.GetFileNameWithoutExtension(path), relative, text, RegionOf(relative, text));
            })
            .ToList();

    /// <summary>The text between the file's one <c>#region snippet</c> line and the <c>#endregion</c> line after it.</summary>
    public static string RegionOf(string file, string text)
    {
        var lines = text.Split('\n');
        var starts = Enumerable.Range(0, lines.Length).Where(i => lines[i] == "#region snippet").ToList();
        if (starts.Count != 1)
        {
            throw new InvalidDataException($"{file} has {starts.Count} lines '#region snippet'; a snippet file has exactly one, at the start of a line.");
        }

        var end = Array.FindIndex(lines, starts[0] + 1, l => l == "#endregion");
        if (end < 0)
        {
            throw new InvalidDataException($"{file}: '#region snippet' has no '#endregion' line after it.");
        }

        return string.Join('\n', lines[(starts[0] + 1)..end]);
    }

    /// <summary>The Markdown files whose C# blocks must be snippets: every *.md of the repository outside build output and tools.</summary>
    public static IReadOnlyList<string> MarkdownFiles(string root) =>
        Directory.EnumerateFiles(root, "*.md", SearchOption.AllDirectories)
            .Select(path => Path.GetRelativePath(root, path).Replace('\\', '/'))
            .Where(path => !path.Split('/').Any(part => part is "bin" or "obj" or "artifacts" or "node_modules" || part.StartsWith('.')))
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>The C# blocks of a Markdown text (fences <c>```csharp</c>, <c>```cs</c>, <c>```c#</c>, any case, indented or not).</summary>
    public static IReadOnlyList<Block> BlocksOf(string file, string markdown)
    {
        var lines = Normalize(markdown).Split('\n');
        var blocks = new List<Block>();
        for (var i = 0; i < lines.Length; i++)
        {
            var open = Fence().Match(lines[i]);
            if (!open.Success)
            {
                continue;
            }

            var isCSharp = CSharpInfo().IsMatch(open.Groups["info"].Value);
            var indent = open.Groups["indent"].Value;
            var end = Array.FindIndex(lines, i + 1, l => l.Trim() == open.Groups["fence"].Value);
            if (end < 0)
            {
                end = lines.Length;
            }

            if (isCSharp)
            {
                var previous = i - 1;
                while (previous >= 0 && lines[previous].Trim().Length == 0)
                {
                    previous--;
                }

                var marker = previous >= 0 ? Marker().Match(lines[previous].Trim()) : Match.Empty;
                var body = string.Join('\n', lines[(i + 1)..end].Select(l => l.StartsWith(indent, StringComparison.Ordinal) ? l[indent.Length..] : l));
                blocks.Add(new Block(file, i + 1, marker.Success ? marker.Groups["name"].Value : null, body));
            }

            i = end;
        }

        return blocks;
    }

    /// <summary>What is wrong with the docs' C# blocks against the snippets; empty when every block is its snippet's region.</summary>
    public static IReadOnlyList<string> Problems(IEnumerable<Block> blocks, IReadOnlyList<Snippet> snippets)
    {
        var byName = snippets.ToDictionary(s => s.Name, StringComparer.Ordinal);
        var problems = new List<string>();
        foreach (var block in blocks)
        {
            var where = $"{block.File}:{block.Line}";
            if (block.Marker is null)
            {
                problems.Add($"{where}: a C# block without a '<!-- snippet: Name -->' line before it. Keep the code in {Folder}/Name.cs between '#region snippet' and '#endregion', and mark the block.");
            }
            else if (!byName.TryGetValue(block.Marker, out var snippet))
            {
                problems.Add($"{where}: the block is marked as snippet '{block.Marker}', but there is no {Folder}/{block.Marker}.cs.");
            }
            else if (block.Body != snippet.Region)
            {
                problems.Add($"{where}: the block differs from the region of {snippet.File}{FirstDifference(block.Body, snippet.Region)}. " +
                    $"Edit {snippet.File} (it is compiled and run by SnippetTests) and copy its region into the block.");
            }
        }

        return problems;
    }

    /// <summary>
    /// The snippet as a class of the consumer project that runs them all: its using directives at the top, and the rest
    /// of the top-level program as the body of <c>RunAsync(string[] args)</c>, as the compiler treats top-level statements
    /// (the body of a generated Main). <c>#line</c> makes the compiler's messages name the snippet file and its lines.
    /// </summary>
    public static string ToConsumerSource(Snippet snippet, string path)
    {
        var usings = new List<string>();
        var body = new List<string>();
        var inHeader = true;
        foreach (var line in snippet.Text.Split('\n'))
        {
            var trimmed = line.Trim();
            if (trimmed is "#region snippet" or "#endregion")
            {
                body.Add(string.Empty);
            }
            else if (inHeader && UsingDirective().IsMatch(line))
            {
                usings.Add(line);
                body.Add(string.Empty);
            }
            else
            {
                inHeader &= trimmed.Length == 0 || trimmed.StartsWith("//", StringComparison.Ordinal);
                body.Add(line);
            }
        }

        var source = new StringBuilder();
        source.Append("// Generated by SnippetTests from ").Append(snippet.File).Append('\n');
        foreach (var directive in usings)
        {
            source.Append(directive).Append('\n');
        }

        source.Append("\ninternal static class ").Append(snippet.Name).Append("Snippet\n{\n")
            .Append("    public static async Task RunAsync(string[] args)\n    {\n")
            .Append("#line 1 \"").Append(path).Append("\"\n");
        foreach (var line in body)
        {
            source.Append(line).Append('\n');
        }

        source.Append("#line default\n    }\n}\n");
        return source.ToString();
    }

    /// <summary>The consumer's Program.cs: runs the snippet named by the first argument with the other arguments.</summary>
    public static string ConsumerProgram(IEnumerable<Snippet> snippets)
    {
        var source = new StringBuilder("""
            // Generated by SnippetTests: runs the snippet of docs/snippets named by the first argument.
            if (args.Length == 0)
            {
                Console.Error.WriteLine("usage: Snippets <name> [arguments]");
                return 2;
            }

            switch (args[0])
            {

            """);
        foreach (var snippet in snippets)
        {
            source.Append("    case \"").Append(snippet.Name).Append("\":\n        await ").Append(snippet.Name).Append("Snippet.RunAsync(args[1..]);\n        return 0;\n");
        }

        source.Append("""
                default:
                    Console.Error.WriteLine($"No snippet '{args[0]}'.");
                    return 2;
            }

            """);
        return source.ToString();
    }

    private static string FirstDifference(string block, string region)
    {
        var a = block.Split('\n');
        var b = region.Split('\n');
        for (var i = 0; i < Math.Max(a.Length, b.Length); i++)
        {
            var x = i < a.Length ? a[i] : "(end of block)";
            var y = i < b.Length ? b[i] : "(end of region)";
            if (x != y)
            {
                return $" at its line {i + 1}:\n  doc:     {x}\n  snippet: {y}\n";
            }
        }

        return string.Empty;
    }

    private static string Normalize(string text) => text.Replace("\r\n", "\n", StringComparison.Ordinal);

    [GeneratedRegex(@"^(?<indent>\s*)(?<fence>```+|~~~+)\s*(?<info>.*)$")]
    private static partial Regex Fence();

    [GeneratedRegex(@"^(csharp|cs|c#)(\s|$)", RegexOptions.IgnoreCase)]
    private static partial Regex CSharpInfo();

    [GeneratedRegex(@"^<!--\s*snippet:\s*(?<name>[A-Za-z0-9_]+)\s*-->$")]
    private static partial Regex Marker();

    [GeneratedRegex(@"^\s*(global\s+)?using\s+(static\s+)?([A-Za-z_][A-Za-z0-9_]*\s*=\s*)?[A-Za-z_][A-Za-z0-9_.]*(<[^;]*>)?\s*;\s*(//.*)?$")]
    private static partial Regex UsingDirective();
}
