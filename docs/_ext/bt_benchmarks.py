"""Reads benchmarks/RESULTS.md into the benchmarks page: the machine, a summary table and one plot of the ratios.

RESULTS.md stays the one record (``make bench`` and ``benchmarks/ratios.py``
produce its tables; people add the context). This module parses its Markdown
tables: every table with a ``ratio`` column, where a row names what was
measured (``case``) and the alternative (``implementation``; rows of our own
implementations and the ``copy_`` yardstick are skipped). A section measured
in several sessions shows only the tables of its latest date (the last date
written in the prose above a table). The output is
``_generated/benchmarks_summary.md`` (included by ``benchmarks.md``) and
``_generated/benchmark_ratios.png``.
"""

import os
import re

DATE = re.compile(r"20\d\d-\d\d-\d\d")
RATIO = re.compile(r"(\d+(?:\.\d+)?)\s*x\b")


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _plain(cell):
    cell = cell.replace("`", "").strip()
    if cell.startswith("**") and cell.endswith("**") and len(cell) > 4:
        cell = cell[2:-2]
    return cell.strip()


def _is_ours(implementation, names):
    """Ours: it names balancedtorch, or starts with one of its public names (``NoveltyDetector.score``)."""
    if any(word in implementation for word in ("balancedtorch", "bt.", "BALANCEDTORCH")):
        return True
    return any(implementation.startswith(name) for name in names)


def parse_tables(text):
    """Yields (section, date, header, rows) for every Markdown table, with the latest date seen above it."""
    section, date = "", ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
            date = ""
            found = DATE.findall(section)
            if found:
                date = max(found)
        elif line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|\s*$", lines[i + 1]):
            header = [_plain(c).lower() for c in _cells(line)]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            yield section, date, header, rows
            continue
        else:
            found = DATE.findall(line)
            if found:
                date = max(found)
        i += 1


def ratios(text, ours):
    """[(section, case, alternative, ratio, date)]: one entry per (case, alternative), the latest date winning.

    ``ours``: balancedtorch's public names; an implementation starting with one is ours.
    """
    found = []
    for section, date, header, rows in parse_tables(text):
        ratio_cols = [i for i, name in enumerate(header) if name.startswith("ratio")]
        if not ratio_cols:
            continue
        col = ratio_cols[0]
        impl_col = header.index("implementation") if "implementation" in header else None
        # a table of implementations only measures the case its section names
        case = _plain(section.split("(")[0]) if impl_col == 0 else ""
        for row in rows:
            if len(row) <= col:
                continue
            if impl_col != 0 and _plain(row[0]):
                previous, case = case, _plain(row[0])
                if case.startswith("the same ") and " vs " in previous:
                    # "the same vs X" names the previous row's case against another alternative
                    case = previous.split(" vs ")[0] + case[len("the same") :]
            if impl_col is not None:
                alternative = _plain(row[impl_col])
                # ours, or the copy_ yardstick of the memory floor: not an alternative
                if not alternative or _is_ours(alternative, ours) or "copy_" in alternative:
                    continue
            else:
                alternative = ""
            match = RATIO.search(_plain(row[col]))
            if not match or not case or "vs the issue" in row[col]:
                continue
            found.append((section, case, alternative, float(match.group(1)), date))
    # a section measured again in a later session shows only its latest session's tables
    latest = {}
    for section, _, _, _, date in found:
        latest[section] = max(latest.get(section, ""), date)
    seen, out = set(), []
    for row in found:
        section, case, alternative, _, date = row
        if date == latest[section] and (case, alternative) not in seen:
            seen.add((case, alternative))
            out.append(row)
    return sorted(out, key=lambda r: (r[0].lower(), -r[3]))


def machine_paragraph(text):
    """The paragraph of RESULTS.md that starts with 'Machine'."""
    for paragraph in re.split(r"\n\s*\n", text):
        if paragraph.strip().startswith("Machine"):
            return " ".join(paragraph.split())
    return "(RESULTS.md does not name the machine.)"


def gpu_measured(text):
    """True when RESULTS.md has a section whose heading names a GPU measurement."""
    return any(
        re.match(r"^#+ .*\b(GPU|CUDA|H100|H200|A100)\b.*\b(results?|timings?|measured)\b", line, re.I)
        for line in text.splitlines()
    )


def write_page(srcdir, results_path, ours):
    with open(results_path, encoding="utf-8") as f:
        text = f.read()
    rows = ratios(text, ours)
    outdir = os.path.join(srcdir, "_generated")
    os.makedirs(outdir, exist_ok=True)

    md = [
        "<!-- generated by docs/_ext/bt_benchmarks.py from benchmarks/RESULTS.md at every build -->",
        "",
        f"**Machine.** {machine_paragraph(text)}",
        "",
    ]
    if gpu_measured(text):
        md += ["**GPU.** RESULTS.md has GPU measurements: see its GPU section below.", ""]
    else:
        md += [
            "**GPU: nothing has been measured on a GPU yet.** Every number on this page is a CPU "
            "number. The CUDA kernels compile in every CI run, and the GPU benchmark cases are "
            "written, but no GPU has been available to run them (see {doc}`guide/gpu`).",
            "",
        ]
    md += [
        f"**Summary.** {len(rows)} same-run ratios parsed from the tables below "
        "(ratio = the alternative's time / balancedtorch's time, from the medians where the "
        "table gives both; > 1 means balancedtorch is faster). Where a section was measured in "
        "several sessions, its latest session is shown; the date is the one its prose gives.",
        "",
        "| area | case | alternative | ratio | date |",
        "|---|---|---|---:|---|",
    ]

    def cell(text):
        return text.replace("\\", "\\\\").replace("*", "\\*").replace("|", "\\|").replace("_", "\\_")

    for section, case, alternative, value, date in rows:
        section, case, alternative = cell(_plain(section)), cell(case), cell(alternative)
        md.append(f"| {section} | {case} | {alternative or '(named in the case)'} | {value:g}x | {date or 'see the section'} |")
    md.append("")
    _write(os.path.join(outdir, "benchmarks_summary.md"), "\n".join(md))
    _plot(rows, os.path.join(outdir, "benchmark_ratios.png"))
    return rows


def _write(path, text):
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = []
    for _, case, alternative, _, _ in rows:
        label = f"{case} vs {alternative}" if alternative else case
        labels.append(label if len(label) <= 70 else label[:67] + "...")
    values = [r[3] for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.28 * len(rows) + 1.2), dpi=100)
    y = range(len(rows))
    colours = ["tab:green" if v >= 1 else "tab:red" for v in values]
    ax.barh(list(y), values, color=colours)
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("alternative's time / balancedtorch's time (log scale; > 1: balancedtorch faster)")
    ax.set_title("Same-run speed ratios on CPU (benchmarks/RESULTS.md); no GPU measurements yet", fontsize=9)
    for yi, v in zip(y, values):
        ax.text(v, yi, f" {v:g}x", va="center", fontsize=6)
    fig.tight_layout()
    # metadata without a date: the same input writes the same bytes
    tmp = path + ".tmp.png"
    fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
    new = open(tmp, "rb").read()
    if os.path.exists(path) and open(path, "rb").read() == new:
        os.remove(tmp)
    else:
        os.replace(tmp, path)
