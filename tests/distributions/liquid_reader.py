"""How Braze reads a Liquid template, as far as our snippets need it, to check them from the
outside (not with the code that writes them).

First Braze's attribute placeholders (reference braze.md 6.1): `${name}` ends at its first `}`
(we also take it to end at a line break: Braze documents none that spans lines), and a dot in
it reads a nested attribute (`${address.city}`). Then Liquid's lexer, Shopify's
`{%.*?%}|{{.*?}}` pattern, splits the text into output and tag tokens; Braze also reads an
output inside a tag (`{% if {{custom_attribute.${code}}} == blank %}`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PLACEHOLDER = re.compile(r"\$\{([^}\n\r]*)\}")
TOKEN = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)
OUTPUT = re.compile(r"\{\{.*?\}\}", re.DOTALL)
DELIMITERS = ("{{", "}}", "{%", "%}", "${")
ATTRIBUTE = "ATTR"  # what a placeholder becomes once read


@dataclass(frozen=True)
class Reading:
    attributes: list[tuple[str, ...]]  # each placeholder as the attribute path Braze reads
    tokens: list[str]  # with every placeholder replaced by ATTRIBUTE
    stray: list[str]  # delimiters outside any token, or unbalanced inside one


def read(template: str) -> Reading:
    attributes = [tuple(name.split(".")) for name in PLACEHOLDER.findall(template)]
    text = PLACEHOLDER.sub(ATTRIBUTE, template)
    tokens = TOKEN.findall(text)
    outside = TOKEN.sub(" ", text)
    stray = [d for d in DELIMITERS if d in outside]
    for token in tokens:
        inner = token[2:-2]
        if token.startswith("{%"):
            inner = OUTPUT.sub(" ", inner)  # Braze's output inside a tag
        stray += [f"{d} in {token!r}" for d in DELIMITERS if d in inner]
    return Reading(attributes, tokens, stray)
