"""Document readers: PDF, DOCX and HTML files → one plain-text document each, structure kept as Markdown.

Documents feed document-grounded generation (synth grounded-qa), which needs to know where a passage came
from. So every reader writes the same light structure into the text: headings as Markdown `#` lines (DOCX
heading styles, HTML h1–h6), list items as `- ` lines, table rows as `a | b | c` lines, and for PDF a form
feed (`\\f`, as pdftotext writes it) between pages, so page k of the text is page k of the file (running
headers and footers, lines found on every page, are left out). `.md` and
`.txt` files are read as they are by studio.readers. Parsers: pypdf (PDF text layer), python-docx, lxml.html;
none fetches anything. A file that cannot be read (encrypted, corrupt, or a scanned PDF with no text layer)
raises `DocumentError`, whose message the reader quarantines.
"""

from __future__ import annotations

import re
from pathlib import Path

DOCUMENT_SUFFIXES = (".pdf", ".docx", ".html", ".htm")
PAGE_BREAK = "\f"
_SPACES = re.compile(r"[ \t\u00a0]+")
_DIGITS = re.compile(r"\d+")
_HTML_BLOCKS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "table", "pre", "blockquote", "dt", "dd", "caption"}
_HTML_SKIP = {"script", "style", "noscript", "template", "nav", "footer", "head"}


class DocumentError(ValueError):
    """A document file that yields no text; the message says why and what to do."""


def read_document(path: Path) -> tuple[str, str]:
    """(text, title) of a PDF, DOCX or HTML file."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        text, title = _pdf(path)
    elif suffix == ".docx":
        text, title = _docx(path)
    elif suffix in (".html", ".htm"):
        text, title = _html(path)
    else:
        raise DocumentError(f"{suffix} is not a document format ({', '.join(DOCUMENT_SUFFIXES)})")
    if not text.replace(PAGE_BREAK, "").strip():
        hint = "it may be a scanned PDF without a text layer; OCR it first" if suffix == ".pdf" else "it holds no text"
        raise DocumentError(f"no text could be extracted ({hint})")
    return text, title or path.stem


def _line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _pdf(path: Path) -> tuple[str, str]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise DocumentError("the PDF is encrypted; save an unencrypted copy")
        pages = [_pdf_page(page) for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or ""
    except (PdfReadError, OSError, ValueError, KeyError) as err:
        if isinstance(err, DocumentError):
            raise
        raise DocumentError(f"not a readable PDF ({type(err).__name__}: {err})") from None
    lines = [page.split("\n") for page in pages]
    running = _running_lines(lines)
    cleaned = [re.sub(r"\n{3,}", "\n\n", "\n".join(x for x in page if not x or _DIGITS.sub("#", x) not in running)).strip()
               for page in lines]
    return PAGE_BREAK.join(cleaned), _line(title)


def _pdf_page(page) -> str:
    """A page's text with paragraphs and headings: the text layer's runs grouped into lines by baseline; a
    vertical gap well above the usual line spacing starts a paragraph, and a short line set clearly larger
    than the body text (≥ 1.2×, the most common size by characters) becomes a `##` heading (≥ 1.6×: `#`)."""
    from collections import Counter

    runs: list[tuple[float, float, str]] = []

    def visit(text, cm, tm, font, size) -> None:
        if text.strip():
            runs.append((round(cm[5] + tm[5] * cm[3], 1), round(size * abs(tm[3] or 1) * abs(cm[3] or 1), 1), text))

    page.extract_text(visitor_text=visit)
    lines: list[list] = []  # [baseline, size, text]
    for y, size, text in runs:
        if lines and abs(lines[-1][0] - y) < 0.5:
            lines[-1][2] += text
            lines[-1][1] = max(lines[-1][1], size)
        else:
            lines.append([y, size, text])
    if not lines:
        return ""
    sizes = Counter()
    for _, size, text in lines:
        sizes[size] += len(text)
    body = sizes.most_common(1)[0][0]
    gaps = sorted(a[0] - b[0] for a, b in zip(lines, lines[1:], strict=False) if a[0] > b[0])
    usual = gaps[len(gaps) // 4] if gaps else 0.0  # a low quantile: the spacing inside paragraphs
    out: list[str] = []
    for k, (y, size, text) in enumerate(lines):
        text = _line(text)
        heading = size >= 1.2 * body and len(text) < 100
        gap = lines[k - 1][0] - y if k else 0.0
        if out and (heading or gap > 1.4 * usual or lines[k - 1][1] >= 1.2 * body):
            out.append("")
        out.append(f"{'#' if size >= 1.6 * body else '##'} {text}" if heading else text)
    return "\n".join(out)


def _running_lines(pages: list[list[str]]) -> set[str]:
    """Page headers and footers: lines (digits masked, so "page 2" matches "page 3") found on every page."""
    if len(pages) < 2:
        return set()
    common = {_DIGITS.sub("#", x) for x in pages[0] if x}
    for page in pages[1:]:
        common &= {_DIGITS.sub("#", x) for x in page if x}
    return common


def _docx(path: Path) -> tuple[str, str]:
    import zipfile

    import docx
    import lxml.etree
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, lxml.etree.XMLSyntaxError, KeyError, ValueError) as err:
        raise DocumentError(f"not a readable DOCX file ({type(err).__name__}: {err})") from None
    blocks: list[str] = []
    for child in document.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            para = Paragraph(child, document)
            text = _line(para.text)
            if not text:
                continue
            style = (para.style.name if para.style is not None else "") or ""
            level = re.match(r"Heading (\d)", style)
            if style == "Title":
                blocks.append(f"# {text}")
            elif level:
                blocks.append(f"{'#' * (int(level.group(1)) + 1)} {text}")
            elif "List" in style:
                blocks.append(f"- {text}")
            else:
                blocks.append(text)
        elif tag == "tbl":
            rows = [" | ".join(_line(c.text) for c in row.cells) for row in Table(child, document).rows]
            blocks.append("\n".join(rows))
    return _join_blocks(blocks), _line(document.core_properties.title or "")


def _join_blocks(blocks: list[str]) -> str:
    """Blank lines around paragraphs and headings; consecutive list items stay one block."""
    out: list[str] = []
    for block in blocks:
        if out and block.startswith("- ") and out[-1].rsplit("\n", 1)[-1].startswith("- "):
            out[-1] += "\n" + block
        else:
            out.append(block)
    return "\n\n".join(out)


def _html(path: Path) -> tuple[str, str]:
    import lxml.etree
    import lxml.html

    try:
        root = lxml.html.fromstring(path.read_bytes())
    except (lxml.etree.ParserError, ValueError) as err:
        raise DocumentError(f"not readable HTML ({err})") from None
    title = root.findtext(".//title") or ""
    for bad in list(root.iter(*_HTML_SKIP)):
        if bad.getparent() is not None:
            bad.drop_tree()
    blocks: list[str] = []
    for el in root.iter(*_HTML_BLOCKS):
        if any(anc.tag in _HTML_BLOCKS for anc in el.iterancestors()):
            continue  # its text is part of the enclosing block
        if el.tag == "table":
            text = "\n".join(" | ".join(_line(c.text_content()) for c in tr if c.tag in ("td", "th"))
                             for tr in el.iter("tr"))
        else:
            text = _line(el.text_content())
        if not text:
            continue
        if el.tag[0] == "h" and el.tag[1:].isdigit():
            blocks.append(f"{'#' * int(el.tag[1])} {text}")
        elif el.tag == "li":
            blocks.append(f"- {text}")
        else:
            blocks.append(text)
    return _join_blocks(blocks), _line(title)
