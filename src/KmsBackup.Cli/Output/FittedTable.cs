using Spectre.Console;

namespace KmsBackup.Cli.Output;

/// <summary>
/// A table that fits the console's width by showing fewer columns, never by splitting IDs and names over lines:
/// columns are dropped by priority (the highest first) until the rest fits, and a line after the table names the
/// hidden ones. With <c>--wide</c> every column is shown, however wide the table gets.
/// </summary>
/// <remarks>Cells are markup; their width is measured without it.</remarks>
internal sealed class FittedTable
{
    private readonly List<ColumnSpec> _columns = [];
    private readonly List<string[]> _rows = [];

    /// <summary>Adds a column.</summary>
    /// <param name="header">The header (plain text).</param>
    /// <param name="priority">0 for columns always shown; higher numbers are hidden first when the table is too wide.</param>
    /// <param name="wrap">Whether the cells may wrap (free text such as a description); IDs and names never do.</param>
    public FittedTable Column(string header, int priority, bool wrap = false)
    {
        _columns.Add(new ColumnSpec(header, priority, wrap));
        return this;
    }

    /// <summary>Adds a row: one markup cell per column, in order.</summary>
    public FittedTable Row(params string[] cells)
    {
        if (cells.Length != _columns.Count)
        {
            throw new ArgumentException($"A row of {cells.Length} cells in a table of {_columns.Count} columns.", nameof(cells));
        }

        _rows.Add(cells);
        return this;
    }

    public void Write(IAnsiConsole console, bool wide)
    {
        var widths = _columns.Select((c, i) => _rows.Select(r => Measure(r[i])).Append(c.Header.Length).Max()).ToArray();
        var shown = Enumerable.Range(0, _columns.Count).ToList();
        var width = console.Profile.Width;
        if (!wide)
        {
            // Free-text columns count at their header's width (they wrap); the others at their widest cell.
            while (TableWidth(shown.Select(i => _columns[i].Wrap ? Math.Min(widths[i], Math.Max(_columns[i].Header.Length, 12)) : widths[i])) > width
                && shown.Where(i => _columns[i].Priority > 0).OrderByDescending(i => _columns[i].Priority).ThenByDescending(i => i).FirstOrDefault(-1) is var drop and >= 0)
            {
                shown.Remove(drop);
            }
        }

        var table = new Table();
        foreach (var i in shown)
        {
            var column = new TableColumn(Markup.Escape(_columns[i].Header));
            if (!_columns[i].Wrap)
            {
                column.NoWrap();
            }

            table.AddColumn(column);
        }

        foreach (var row in _rows)
        {
            table.AddRow([.. shown.Select(i => row[i])]);
        }

        var natural = TableWidth(shown.Select(i => widths[i]));
        if (wide && natural > width)
        {
            // Every column as wide as its cells: the terminal, not the tool, folds the lines (or a pager scrolls them).
            console.Profile.Width = natural;
            try
            {
                console.Write(table);
            }
            finally
            {
                console.Profile.Width = width;
            }
        }
        else
        {
            console.Write(table);
        }

        var hidden = _columns.Where((_, i) => !shown.Contains(i)).Select(c => c.Header).ToList();
        if (hidden.Count > 0)
        {
            console.MarkupLine($"[grey]Hidden at {width} columns (--wide shows them): {Markup.Escape(string.Join(", ", hidden))}[/]");
        }
    }

    private static int Measure(string markup) => Markup.Remove(markup).Split('\n').Max(l => l.GetCellWidth());

    // Each column has a space of padding either side and a border on its left; the table has one more border.
    private static int TableWidth(IEnumerable<int> columnWidths) => columnWidths.Sum(w => w + 3) + 1;

    private sealed record ColumnSpec(string Header, int Priority, bool Wrap);
}
