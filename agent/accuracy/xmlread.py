"""A small XML tree with the line of every element, for label files whose errors must name it.

Read with the standard library's expat binding (``xml.parsers.expat``): ElementTree keeps no line
numbers. Document type declarations are refused, so no entity of a label file is ever expanded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional
from xml.parsers import expat


@dataclass
class Element:
    tag: str
    attrs: Dict[str, str]
    line: int
    children: List["Element"] = field(default_factory=list)
    text: str = ""  # the element's own character data, stripped

    def find(self, tag: str) -> Optional["Element"]:
        """The first child named ``tag``."""
        return next((c for c in self.children if c.tag == tag), None)

    def findall(self, tag: str) -> List["Element"]:
        return [c for c in self.children if c.tag == tag]

    def child_text(self, tag: str) -> Optional[str]:
        """The text of the first child named ``tag``, or None without one."""
        child = self.find(tag)
        return None if child is None else child.text


def parse(path: Path) -> Element:
    """The root element of the XML file at ``path``; ValueError '<file>:<line>: what' when malformed."""
    stack: List[Element] = []
    texts: List[List[str]] = []
    roots: List[Element] = []
    parser = expat.ParserCreate()

    def start(tag: str, attrs: Dict[str, str]) -> None:
        element = Element(tag, dict(attrs), parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(element)
        stack.append(element)
        texts.append([])

    def end(tag: str) -> None:
        stack.pop().text = "".join(texts.pop()).strip()

    def characters(data: str) -> None:
        if texts:
            texts[-1].append(data)

    def doctype(*_: object) -> None:
        raise ValueError("document type declarations are not accepted")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    parser.StartDoctypeDeclHandler = doctype
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not well-formed XML ({expat.ErrorString(exc.code)})") from None
    except ValueError as exc:
        raise ValueError(f"{path}:{parser.CurrentLineNumber}: {exc}") from None
    return roots[0]
