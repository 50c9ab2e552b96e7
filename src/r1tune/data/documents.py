"""Raw documents (TXT, Markdown, PDF, DOCX, HTML) as titled paragraphs under their headings.

A `Document` is a title plus `Paragraph`s, each knowing the heading path it sits under ("Refunds > Fees")
and where it came from (`file:line 12`, `file:p3`, `file:para 7`), so the chunker can keep headings with
their text and every chunk can be traced back to its page or line. Parsers: pypdf, python-docx, lxml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from r1tune.errors import DataError

DOCUMENT_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".pdf", ".docx", ".html", ".htm", ".xhtml"}

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_ZH_HEADING = re.compile(r"^\s*(第[一二三四五六七八九十百零〇两\d]+([章节篇部条]))\s*\S{0,30}\s*$")
_EN_HEADING = re.compile(r"^\s*(?:chapter|section|part|article)\s+[\dIVXLC]+\b.{0,60}$", re.I)
_ZH_LEVEL = {"篇": 1, "部": 1, "章": 1, "节": 2, "条": 3}
_FENCE = re.compile(r"^\s*(```|~~~)")
_CJK_END = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]$")
_CJK_START = re.compile(r"^[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")

_HTML_SKIP = {"script", "style", "noscript", "template", "svg", "head", "iframe", "object", "canvas"}
_HTML_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_HTML_BLOCKS = {
    "p", "div", "section", "article", "main", "aside", "header", "footer", "nav", "ul", "ol", "li", "table",
    "thead", "tbody", "tr", "pre", "blockquote", "form", "dl", "dt", "dd", "figure", "figcaption", "address",
    "hr", "body", "html", "caption", "details", "summary",
}


@dataclass
class Paragraph:
    text: str
    heading: str  # heading path, "" before the first heading
    where: str
    is_heading: bool = False


@dataclass
class Document:
    title: str
    paragraphs: list[Paragraph] = field(default_factory=list)


class _Outline:
    """Tracks the heading path while paragraphs stream by."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, str]] = []

    def enter(self, level: int, title: str) -> str:
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, title))
        return self.path

    @property
    def path(self) -> str:
        return " > ".join(t for _, t in self.stack)


def load_document(path: Path, encoding: str = "auto") -> Document:
    """Parse one document file; unreadable or empty files raise DataError naming the file."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        doc = _pdf_document(path)
    elif suffix == ".docx":
        doc = _docx_document(path)
    elif suffix in (".html", ".htm", ".xhtml"):
        from r1tune.data.files import read_text

        doc = html_document(read_text(path, encoding), str(path), path.stem)
    else:
        from r1tune.data.files import read_text

        doc = text_document(read_text(path, encoding), str(path), path.stem)
    if not any(p.text.strip() for p in doc.paragraphs):
        hint = "scanned PDFs need OCR first" if suffix == ".pdf" else "is the file empty?"
        raise DataError(f"{path}: no text found in the document", hint=hint)
    return doc


def text_document(text: str, where: str, title: str) -> Document:
    """Plain text or Markdown: blank lines separate paragraphs; `#` and 第X章/节 lines are headings."""
    doc = Document(title)
    outline = _Outline()
    lines: list[str] = []
    start = 1
    in_fence = False

    def flush(end_line: int) -> None:
        body = _join_lines(lines)
        if body.strip():
            doc.paragraphs.append(Paragraph(body, outline.path, f"{where}:{start}"))
        lines.clear()

    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            in_fence = not in_fence
        level_title = None if in_fence else _heading_of(line)
        if level_title is not None:
            flush(number)
            level, heading = level_title
            path = outline.enter(level, heading)
            doc.paragraphs.append(Paragraph(heading, path, f"{where}:{number}", is_heading=True))
            start = number + 1
            continue
        if not line.strip() and not in_fence:
            flush(number)
            start = number + 1
            continue
        if not lines:
            start = number
        lines.append(line)
    flush(len(text.splitlines()))
    return doc


def _heading_of(line: str) -> tuple[int, str] | None:
    if m := _MD_HEADING.match(line):
        return len(m.group(1)), m.group(2).strip()
    if len(line) <= 40 and (m := _ZH_HEADING.match(line)):
        return _ZH_LEVEL.get(m.group(2), 1), line.strip()
    if len(line) <= 70 and _EN_HEADING.match(line):
        return 1, line.strip()
    return None


def _join_lines(lines: list[str]) -> str:
    """Re-flow hard-wrapped lines: CJK lines join without a space, others with one."""
    out = ""
    for line in (ln.strip() for ln in lines):
        if not line:
            continue
        if not out:
            out = line
        elif _CJK_END.search(out) and _CJK_START.search(line):
            out += line
        elif out.endswith("-") and line[:1].islower():
            out = out[:-1] + line
        else:
            out += " " + line
    return out


def _pdf_document(path: Path) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise DataError(f"{path}: the PDF is password-protected", hint="export an unprotected copy")
        meta_title = (reader.metadata.title if reader.metadata else None) or path.stem
        doc = Document(str(meta_title))
        outline = _Outline()
        for number, page in enumerate(reader.pages, start=1):
            page_doc = text_document(page.extract_text() or "", f"{path}:p{number}", doc.title)
            for para in page_doc.paragraphs:
                para.where = f"{path}:p{number}"
                if para.is_heading:
                    para.heading = outline.enter(len(para.heading.split(" > ")), para.text)
                else:
                    para.heading = outline.path
                doc.paragraphs.append(para)
        return doc
    except DataError:
        raise
    except (PdfReadError, ValueError, KeyError, OSError) as err:
        raise DataError(f"{path}: not a readable PDF ({type(err).__name__}: {err})") from None


def _docx_document(path: Path) -> Document:
    import zipfile

    import docx
    from docx.opc.exceptions import OpcError
    from docx.table import Table

    try:
        word = docx.Document(str(path))
    except (zipfile.BadZipFile, OpcError, KeyError, ValueError, OSError) as err:
        raise DataError(f"{path}: not a readable DOCX file ({type(err).__name__}: {err})") from None
    doc = Document(word.core_properties.title or path.stem)
    outline = _Outline()
    for number, block in enumerate(word.iter_inner_content(), start=1):
        where = f"{path}:para {number}"
        if isinstance(block, Table):
            rows = [" | ".join(c.text.strip() for c in row.cells) for row in block.rows]
            text = "\n".join(r for r in rows if r.strip(" |"))
            if text:
                doc.paragraphs.append(Paragraph(text, outline.path, where))
            continue
        text = block.text.strip()
        if not text:
            continue
        style = (block.style.name if block.style is not None else "") or ""
        level = _docx_heading_level(style)
        if style == "Title":
            doc.title = text
        elif level:
            doc.paragraphs.append(Paragraph(text, outline.enter(level, text), where, is_heading=True))
        else:
            doc.paragraphs.append(Paragraph(text, outline.path, where))
    return doc


def _docx_heading_level(style: str) -> int:
    m = re.match(r"(?:Heading|标题)\s*(\d)", style)
    return int(m.group(1)) if m else 0


def html_document(html: str, where: str, title: str) -> Document:
    """An HTML page as paragraphs under its h1-h6 headings (scripts, styles and <head> skipped)."""
    import lxml.html
    from lxml.etree import ParserError

    try:
        root = lxml.html.document_fromstring(html)
    except (ParserError, ValueError) as err:
        raise DataError(f"{where}: not readable HTML ({err})") from None
    page_title = root.findtext(".//title")
    doc = Document((page_title or "").strip() or title)
    outline = _Outline()
    for index, (level, text) in enumerate(html_blocks(root), start=1):
        if level:
            doc.paragraphs.append(Paragraph(text, outline.enter(level, text), f"{where}:block {index}", True))
        else:
            doc.paragraphs.append(Paragraph(text, outline.path, f"{where}:block {index}"))
    return doc


def html_blocks(root) -> list[tuple[int, str]]:
    """(heading level or 0, text) for each block of an lxml tree; <br> becomes a line break."""
    blocks: list[tuple[int, str]] = []
    buffer: list[str] = []

    def flush(level: int = 0) -> None:
        lines = (" ".join(line.split()) for line in "".join(buffer).split("\n"))
        text = "\n".join(line for line in lines if line)
        if text:
            blocks.append((level, text))
        buffer.clear()

    def walk(el) -> None:
        tag = el.tag.lower() if isinstance(el.tag, str) else None
        if tag is not None and tag not in _HTML_SKIP:
            is_block = tag in _HTML_BLOCKS or tag in _HTML_HEADINGS
            if is_block:
                flush()
            if tag == "br":
                buffer.append("\n")
            if el.text:
                buffer.append(el.text)
            for child in el:
                walk(child)
            if tag in ("td", "th"):
                buffer.append(" | ")
            if is_block:
                flush(_HTML_HEADINGS.get(tag, 0))
        if el.tail:
            buffer.append(el.tail)

    try:
        walk(root)
    except RecursionError:
        raise DataError("HTML nested too deeply to read") from None
    flush()
    return [(lvl, text.rstrip(" |")) for lvl, text in blocks]

