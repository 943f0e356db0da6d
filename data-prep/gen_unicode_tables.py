#!/usr/bin/python3
"""Generates data-prep/src/unicode_tables.c: the Unicode properties that the
BERT BasicTokenizer of google-research/bert (tokenization.py) reads through
Python's unicodedata and str methods, as compact C tables, so that the C
tokenizer gives the same tokens as the Python one and the build needs no
Python.

    /usr/bin/python3 data-prep/gen_unicode_tables.py > data-prep/src/unicode_tables.c

What the tables hold (see tdp_unicode.h for the flag meanings):
  - per code point flags (two-stage table): removed by _clean_text, splits
    words (whitespace), punctuation, Mn, the two properties Python's
    str.lower() uses for the final-sigma rule, "has a lower-case mapping",
    "has a canonical decomposition";
  - the canonical combining class (two-stage table), for the canonical
    ordering step of NFD;
  - str.lower() of single code points (sorted keys + a pool; U+0130 maps to
    two code points);
  - the full canonical decomposition of single code points, Hangul syllables
    excepted (they decompose algorithmically in unicode.c);
  - the code points for which str.isspace() holds (blank-line detection).
"""
import sys
import unicodedata

MAX_CP = 0x110000
SHIFT = 7
BLOCK = 1 << SHIFT

F_CONTROL = 1
F_SPACE = 2
F_PUNCT = 4
F_MN = 8
F_CASED = 16
F_CASE_IGNORABLE = 32
F_HAS_LOWER = 64
F_HAS_DECOMP = 128

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3


def is_surrogate(cp):
    return 0xD800 <= cp <= 0xDFFF


def bert_is_whitespace(ch):
    # tokenization.py _is_whitespace
    if ch in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(ch) == "Zs"


def bert_is_control(ch):
    # tokenization.py _is_control
    if ch in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(ch) in ("Cc", "Cf")


def bert_is_punctuation(ch):
    # tokenization.py _is_punctuation
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def sigma_class(ch):
    """How ch takes part in Python's Final_Sigma rule, read off str.lower():
    returns (cased, case_ignorable) as the rule sees them. A case-ignorable
    character is skipped by the rule whether or not it is also cased, so
    'cased' is only reported for characters that are not case-ignorable."""
    t1 = ("A" + ch + "\u03a3").lower()[-1] == "\u03c2"
    t2 = (ch + "\u03a3").lower()[-1] == "\u03c2"
    t3 = ("A\u03a3" + ch).lower()[1] == "\u03c2"
    ignorable = t1 and not t2
    cased = t2
    # consistency with a third probe: final when ch is ignorable or uncased
    assert t3 == (ignorable or not cased), hex(ord(ch))
    return cased, ignorable


def flags_of(cp):
    if is_surrogate(cp):
        return 0
    ch = chr(cp)
    f = 0
    if cp == 0 or cp == 0xFFFD or bert_is_control(ch):
        f |= F_CONTROL
    elif bert_is_whitespace(ch) or ch.isspace():
        # str.split() also splits on the few isspace() characters that
        # survive _clean_text (U+2028, U+2029), so they separate words too.
        f |= F_SPACE
    if bert_is_punctuation(ch):
        f |= F_PUNCT
    if unicodedata.category(ch) == "Mn":
        f |= F_MN
    cased, ignorable = sigma_class(ch)
    if cased:
        f |= F_CASED
    if ignorable:
        f |= F_CASE_IGNORABLE
    if ch.lower() != ch:
        f |= F_HAS_LOWER
    if unicodedata.normalize("NFD", ch) != ch:
        f |= F_HAS_DECOMP
    return f


def two_stage(values, name, ctype2):
    """Splits values (one per code point) into deduplicated blocks."""
    blocks = {}
    stage1 = []
    stage2 = []
    for start in range(0, MAX_CP, BLOCK):
        blk = tuple(values[start:start + BLOCK])
        if blk not in blocks:
            blocks[blk] = len(blocks)
            stage2.extend(blk)
        stage1.append(blocks[blk])
    assert len(blocks) < 65536
    out = []
    out.append("const uint16_t %s_stage1[%d] = {" % (name, len(stage1)))
    out.extend(fmt_rows(stage1, 16, "%d"))
    out.append("};")
    out.append("const %s %s_stage2[%d] = {" % (ctype2, name, len(stage2)))
    out.extend(fmt_rows(stage2, 16, "0x%02x"))
    out.append("};")
    return out


def fmt_rows(vals, per_row, fmt):
    rows = []
    for i in range(0, len(vals), per_row):
        rows.append("    " + ", ".join(fmt % v for v in vals[i:i + per_row]) + ",")
    return rows


def mapping_table(pairs, name, len_bits):
    """pairs: sorted (cp, [cps]). Emits keys, packed (offset << len_bits | len)
    values and the pool."""
    keys, vals, pool = [], [], []
    for cp, seq in pairs:
        assert 1 <= len(seq) < (1 << len_bits)
        keys.append(cp)
        vals.append((len(pool) << len_bits) | len(seq))
        pool.extend(seq)
    out = []
    out.append("const uint32_t %s_keys[%d] = {" % (name, len(keys)))
    out.extend(fmt_rows(keys, 8, "0x%05x"))
    out.append("};")
    out.append("const uint32_t %s_vals[%d] = {" % (name, len(vals)))
    out.extend(fmt_rows(vals, 8, "0x%05x"))
    out.append("};")
    out.append("const uint32_t %s_pool[%d] = {" % (name, len(pool)))
    out.extend(fmt_rows(pool, 8, "0x%05x"))
    out.append("};")
    return out, len(keys)


def utf8_c_spaces():
    """The code points listed in src/base/utf8.c's td_utf8_is_space."""
    import os
    import re
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "utf8.c")
    text = open(path).read()
    block = text[text.index("spaces[] = {"):]
    block = block[:block.index("}")]
    return [int(h, 16) for h in re.findall(r"0x[0-9a-fA-F]+", block)]


def main():
    flags = [flags_of(cp) for cp in range(MAX_CP)]
    ccc = [0 if is_surrogate(cp) else unicodedata.combining(chr(cp)) for cp in range(MAX_CP)]

    lower_pairs = []
    decomp_pairs = []
    for cp in range(MAX_CP):
        if is_surrogate(cp):
            continue
        ch = chr(cp)
        if flags[cp] & F_HAS_LOWER:
            lower_pairs.append((cp, [ord(c) for c in ch.lower()]))
        if flags[cp] & F_HAS_DECOMP and not HANGUL_FIRST <= cp <= HANGUL_LAST:
            decomp_pairs.append((cp, [ord(c) for c in unicodedata.normalize("NFD", ch)]))
    # str.isspace() is not a table: src/base/utf8.c lists its 29 code points,
    # which this checks.
    pyspace = [cp for cp in range(MAX_CP) if not is_surrogate(cp) and chr(cp).isspace()]
    listed = utf8_c_spaces()
    if pyspace != listed:
        sys.exit("src/base/utf8.c td_utf8_is_space lists %s, Python's str.isspace() is true for %s"
                 % ([hex(c) for c in listed], [hex(c) for c in pyspace]))

    out = []
    out.append("/* GENERATED by data-prep/gen_unicode_tables.py from Python %s's unicodedata"
               % sys.version.split()[0])
    out.append(" * (Unicode %s). Do not edit; rerun the script:" % unicodedata.unidata_version)
    out.append(" *   /usr/bin/python3 data-prep/gen_unicode_tables.py > data-prep/src/unicode_tables.c")
    out.append(" * The lookups are in unicode.c; unicode_tables.h declares these arrays. */")
    out.append('#include "unicode_tables.h"')
    out.append("")
    out.append('const char tdp_uc_version[] = "%s";' % unicodedata.unidata_version)
    out.append("const int32_t tdp_uc_shift = %d;" % SHIFT)
    out.append("")
    out.extend(two_stage(flags, "tdp_uc_flags", "uint8_t"))
    out.append("")
    out.extend(two_stage(ccc, "tdp_uc_ccc", "uint8_t"))
    out.append("")
    lines, n_lower = mapping_table(lower_pairs, "tdp_uc_lower", 2)
    out.extend(lines)
    out.append("const int32_t tdp_uc_n_lower = %d;" % n_lower)
    out.append("")
    lines, n_decomp = mapping_table(decomp_pairs, "tdp_uc_decomp", 3)
    out.extend(lines)
    out.append("const int32_t tdp_uc_n_decomp = %d;" % n_decomp)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
