"""How the table scripts order, print and escape the values of a grouping axis, shared so that
make_tables.py and representation_table.py sort and name a value alike (representation_table
cannot import make_tables: that module defines its command-line flags at import)."""

# LaTeX's special characters a value or label may hold (a gin binding, a grid label), escaped;
# not $ \ { }, which the tables' own markup (\textbf, $\pm$) uses.
LATEX_SPECIALS = str.maketrans({"_": "\\_", "%": "\\%", "&": "\\&", "#": "\\#", "~": "\\textasciitilde{}",
                                "^": "\\textasciicircum{}"})


def order_key(values):
    """A sort key for a row's axis values: numbers numerically, before text; None last."""
    return tuple((0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else
                 (2, 0, "") if v is None else (1, 0, str(v)) for v in values)


def value_text(value):
    """An axis value as a table prints it: floats short (1.0 -> "1") unless that loses digits,
    sequences in brackets, None as a dash."""
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(map(value_text, value)) + "]"
    if isinstance(value, float):
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    return "—" if value is None else str(value)


def mark_best(text, fmt, bold):
    """A cell's text, in bold in `fmt` when `bold` (the best value of its row or column)."""
    if bold:
        text = {"markdown": f"**{text}**", "latex": f"\\textbf{{{text}}}", "csv": text}[fmt]
    return text
