"""The report page: sections of text, tables and PNG figures -> one self-contained HTML file.

Figures are embedded as base64 `data:image/png` URIs, so the file works on its own (mail it, open it
offline); the same PNGs are also written beside it. The page has no scripts, fonts, stylesheets or
anything else fetched from elsewhere, and every piece of text (class names, file names, settings) is
HTML-escaped, so a class called `<b>` is shown as written.

Usage:
    page = render_page("Report: runs/fm/model.safetensors", [Section("summary", "Summary", ...)])
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field


@dataclass
class Figure:
    name: str  # file stem: <name>.png beside the report
    png: bytes
    caption: str = ""


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    numeric: bool = True  # right-align every column but the first


@dataclass
class Section:
    id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    items: list[str] = field(default_factory=list)  # a bulleted list (warnings, confused pairs)
    note: str = ""  # small print under the section


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 72rem;
       padding: 1rem 1.5rem 3rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2rem; }
nav a { margin-right: 1rem; }
.meta { color: #666; font-size: .9rem; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .9rem; }
th, td { padding: .15rem .6rem; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: .8rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .85rem; }
.note { color: #666; font-size: .85rem; }
.tables { display: flex; flex-wrap: wrap; gap: 2rem; align-items: flex-start; }
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.headers)
    rows = []
    for row in t.rows:
        cells = [("<td class=\"num\">" if (t.numeric and j > 0) else "<td>") + html.escape(str(v)) + "</td>"
                 for j, v in enumerate(row)]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figure(f: Figure) -> str:
    alt = html.escape(f.caption or f.name, quote=True)
    cap = f"<figcaption>{html.escape(f.caption)}</figcaption>" if f.caption else ""
    return f'<figure id="fig-{html.escape(f.name, quote=True)}"><img src="{data_uri(f.png)}" alt="{alt}">{cap}</figure>'


def _section(s: Section) -> str:
    parts = [f'<section id="{html.escape(s.id, quote=True)}"><h2>{html.escape(s.title)}</h2>']
    parts += [f"<p>{html.escape(p)}</p>" for p in s.paragraphs]
    if s.tables:
        parts.append('<div class="tables">' + "".join(_table(t) for t in s.tables) + "</div>")
    if s.items:
        parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in s.items) + "</ul>")
    parts += [_figure(f) for f in s.figures]
    if s.note:
        parts.append(f'<p class="note">{html.escape(s.note)}</p>')
    parts.append("</section>")
    return "\n".join(parts)


def render_page(title: str, sections: list[Section], subtitle: str = "") -> str:
    nav = " ".join(f'<a href="#{html.escape(s.id, quote=True)}">{html.escape(s.title)}</a>' for s in sections)
    body = "\n".join(_section(s) for s in sections)
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        # no network: the page may load nothing but its own inline data
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p class=\"meta\">{html.escape(subtitle)}</p>\n<nav>{nav}</nav>\n"
        f"{body}\n</body>\n</html>\n"
    )
