"""Characters that look like an ASCII letter or digit: the part of Unicode's
confusables (UTS #39, ``confusables.txt``) that the twin check of
:mod:`spaces.files.names` needs beyond what NFKC with case folding already does
(full-width and mathematical letters, ligatures).

Generated data, do not edit: from ``confusables.json`` of confusable_homoglyphs
3.3.1 (Unicode's confusables.txt), every single character ``x`` paired with an
ASCII letter or digit ``y`` whose NFKC case-folded NFD form is one non-ASCII
character, mapped to ``y`` in lower case (a letter where it looks like a
letter and a digit: Greek ``ι`` looks like ``i`` and ``l``, it maps to ``i``).
"""

from __future__ import annotations

#: Pairs of (look-alike, ASCII it passes for), concatenated.
_PAIRS = (
    "\u00d7x\u0131i\u0185b\u018dg\u01a82\u01bds\u01c0l\u021d3\u02238\u0251a\u025c3\u0261g"
    "\u0263y\u0269i\u026ai\u026fw\u0280r\u028bu\u028fy\u02923\u029dj\u03b1a\u03b2b\u03b3y"
    "\u03b5e\u03b6z\u03b7h\u03b9i\u03bak\u03bcm\u03bdn\u03bfo\u03c1p\u03c3c\u03c4t\u03c5u"
    "\u03c7x\u03ddf\u03e92\u03f3j\u03fbm\u0430a\u04316\u0432b\u0433r\u0435e\u04373\u043ak"
    "\u043cm\u043dh\u043eo\u0440p\u0441c\u0442t\u0443y\u0445x\u044cb\u0455s\u0456i\u0458j"
    "\u0461w\u0475v\u04afy\u04bbh\u04bde\u04cfi\u04e13\u0501d\u050dg\u051bq\u051dw\u0561w"
    "\u0563q\u0566q\u0570h\u0578n\u057cn\u057du\u057fs\u0581g\u0584f\u0585o\u05c0l\u05d5l"
    "\u05d8v\u05dfl\u05e1o\u0627l\u0647o\u0661l\u0665o\u0667v\u06beo\u06c1o\u06d5o\u06f1l"
    "\u06f5o\u06f7v\u07c0o\u07cal\u0966o\u09e6o\u09ea8\u09ed9\u0a66o\u0a679\u0a6a8\u0ae6o"
    "\u0b038\u0b20o\u0b66o\u0b689\u0be6o\u0c02o\u0c66o\u0c82o\u0ce6o\u0d02o\u0d20o\u0d66o"
    "\u0d6d9\u0d82o\u0e50o\u0ed0o\u101do\u1040o\u10e7y\u10ffo\u1200u\u12d0o\u13a0d\u13a1r"
    "\u13a2t\u13a5i\u13a9y\u13aaa\u13abj\u13ace\u13b1r\u13b3w\u13b7m\u13bbh\u13bdy\u13c0g"
    "\u13c2h\u13c3z\u13ce4\u13cfb\u13d2r\u13d4w\u13d5s\u13d9v\u13das\u13del\u13dfc\u13e2p"
    "\u13e6k\u13e7d\u13ee6\u13f3g\u13f4b\u142fv\u144cu\u146dp\u146fd\u1472b\u148dj\u14aal"
    "\u14bf2\u1541x\u157ch\u157dx\u1587r\u15afb\u15b4f\u15c5a\u15ded\u15ead\u15f0m\u15f7b"
    "\u166dx\u166ex\u16b7x\u16c1l\u16d5k\u16d6m\u1d04c\u1d0fo\u1d11o\u1d1cu\u1d20v\u1d21w"
    "\u1d22z\u1d26r\u1d83g\u1d8cy\u1e9df\u1effy\u212ee\u2223l\u2228v\u222au\u22a4t\u22c1v"
    "\u22c3u\u22ffe\u2373i\u2374p\u237aa\u23fdl\u2502l\u2573x\u27d9t\u292bx\u292cx\u2a2fx"
    "\u2c85r\u2c8fh\u2c93l\u2c95k\u2c99m\u2c9bn\u2c9fo\u2ca3p\u2ca5c\u2ca7t\u2ca9y\u2cadx"
    "\u2ccb9\u2ccd3\u2cd1l\u2cd36\u2d38v\u2d39e\u2d4fl\u2d54o\u2d55q\u2d5dx\u3007o\ua4d0b"
    "\ua4d1p\ua4d2d\ua4d3d\ua4d4t\ua4d6g\ua4d7k\ua4d9j\ua4dac\ua4dcz\ua4ddf\ua4dfm\ua4e0n"
    "\ua4e1l\ua4e2s\ua4e3r\ua4e6v\ua4e7h\ua4eaw\ua4ebx\ua4ecy\ua4eea\ua4f0e\ua4f2l\ua4f3o"
    "\ua4f4u\ua6452\ua647i\ua6dfv\ua6ef2\ua731s\ua75b2\ua76b3\ua76f9\ua799f\ua79fu\ua7b5b"
    "\uab32e\uab35f\uab3do\uab47r\uab48r\uab4eu\uab52u\uab53x\uab5ay\U00010282b"
    "\U00010286e\U00010287f\U0001028al\U00010290x\U00010292o\U00010295p\U00010296s"
    "\U00010297t\U000102a0a\U000102a1b\U000102a2c\U000102a5f\U000102abo\U000102b0m"
    "\U000102b1t\U000102b2y\U000102b4x\U000102cfh\U000102f5z\U00010301b\U00010302c"
    "\U00010309l\U00010311m\U00010315t\U00010317x\U0001031a8\U00010320l\U00010322x"
    "\U0001042co\U0001043dc\U00010443l\U00010448s\U000104dcr\U000104eao\U000104f6u"
    "\U000104fa7\U00010513n\U00010516o\U00010518k\U0001051cc\U0001051dv\U00010525f"
    "\U00010526l\U00010527x\U000114d0o\U00011706v\U0001170aw\U0001170ew\U0001170fw"
    "\U000118c0v\U000118c1s\U000118c2f\U000118c3i\U000118c4y\U000118c6e\U000118c8o"
    "\U000118c9z\U000118ca3\U000118cc9\U000118cee\U000118cf4\U000118d2l\U000118d5o"
    "\U000118d69\U000118d7o\U000118d8u\U000118db5\U000118dct\U000118e0o\U000118e5z"
    "\U000118e6w\U000118e9c\U000118ecx\U000118efw\U000118f2c\U00016f08v\U00016f0at"
    "\U00016f16l\U00016f28l\U00016f35r\U00016f3as\U00016f3b3\U00016f40a\U00016f42u"
    "\U00016f43y\U0001d2063\U0001d20dv\U0001d2127\U0001d213f\U0001d216r\U0001d22al"
    "\U0001e8c7l\U0001e8cb8\U0001f74cc\U0001f768t"
)

#: For ``str.translate``: each look-alike to the ASCII character it passes for.
TO_ASCII: dict[int, str] = {ord(_PAIRS[i]): _PAIRS[i + 1] for i in range(0, len(_PAIRS), 2)}
