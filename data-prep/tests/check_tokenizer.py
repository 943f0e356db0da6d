#!/usr/bin/python3
"""Compares `tokdrop-prep tokenize` with a Python transcription of
google-research/bert tokenization.py (BasicTokenizer + WordpieceTokenizer)
on lines that put every assigned code point (and samples of the unassigned
and private-use ones) into several contexts, plus random mixtures of the
characters that exercise the tricky rules (final sigma, combining marks and
their canonical order, Hangul, U+0130, CJK, controls, odd whitespace).

The vocabulary is made of every word the Python BasicTokenizer produces, so
WordPiece keeps them whole and any difference in the basic tokenization
shows up; a second run with a small vocabulary checks WordPiece itself.

usage: check_tokenizer.py TOKDROP_PREP WORKDIR
"""
import os
import random
import subprocess
import sys
import unicodedata


# ---- reference: google-research/bert tokenization.py, transcribed -----------

def is_whitespace(ch):
    if ch in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(ch) == "Zs"


def is_control(ch):
    if ch in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(ch) in ("Cc", "Cf")


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_chinese_char(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


CLEAN = {}  # character -> what _clean_text and _tokenize_chinese_chars make of it


def clean_char(ch):
    r = CLEAN.get(ch)
    if r is None:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or is_control(ch):
            r = ""
        elif is_whitespace(ch):
            r = " "
        elif is_chinese_char(cp):
            r = " " + ch + " "
        else:
            r = ch
        CLEAN[ch] = r
    return r


PUNCT = {}


def punct(ch):
    r = PUNCT.get(ch)
    if r is None:
        r = PUNCT[ch] = is_punctuation(ch)
    return r


def basic_tokenize(text, lower):
    # _clean_text, then _tokenize_chinese_chars (memoized per character)
    text = "".join(clean_char(ch) for ch in text)
    split_tokens = []
    for token in text.strip().split():
        if lower:
            token = token.lower()
            token = "".join(c for c in unicodedata.normalize("NFD", token)
                            if unicodedata.category(c) != "Mn")
        words, cur = [], []
        for ch in token:
            if punct(ch):
                if cur:
                    words.append("".join(cur))
                    cur = []
                words.append(ch)
            else:
                cur.append(ch)
        if cur:
            words.append("".join(cur))
        split_tokens.extend(words)
    return " ".join(split_tokens).strip().split()


def wordpiece(word, vocab):
    if len(word) > 100:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        cur = None
        while start < end:
            sub = word[start:end]
            if start > 0:
                sub = "##" + sub
            if sub in vocab:
                cur = sub
                break
            end -= 1
        if cur is None:
            return ["[UNK]"]
        pieces.append(cur)
        start = end
    return pieces


def full_tokenize(words, vocab):
    out = []
    for w in words:
        out.extend(wordpiece(w, vocab))
    return out


# ---- test lines ----------------------------------------------------------------

def code_point_lines():
    cps = []
    rng = random.Random(7)
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF or cp == 0x0A:
            continue
        cat = unicodedata.category(chr(cp))
        if cat == "Cn" or cat == "Co":
            if rng.random() < 0.01:
                cps.append(cp)
        else:
            cps.append(cp)
    lines = []
    for i in range(0, len(cps), 6):
        parts = []
        for cp in cps[i:i + 6]:
            c = chr(cp)
            # inside a word, between capital sigmas (casing context), and
            # after an accent (canonical order)
            parts.append("a%sb \u03a3%s\u03a3 \u0301%s\u0323" % (c, c, c))
        lines.append(" ".join(parts))
    return lines


TRICKY = (
    "A\u03a3\u03a3\u03a3\u03c3\u0391\u03c2.'-\u0130I\u0131\u00df\u1e9e\ufb00\u01c5"
    "\u0301\u0323\u0345\u0308\u05b0\u0591\u302e\u302f\U0001d165\U0001d16d\u0f71\u0f72\u0f74"
    "\u00e9\u00c9\u1e0a\u1e0c\u212b\u2126\uac00\uac01\ud7a3\u1100\u1161\u11a8"
    "\u4e00\u9fa5\uf900\ufa6a\u3400\u3000\u00a0\u2028\u2029\u200b\u200d\ufeff\u00ad"
    "\x00\x01\x0b\x0c\x1c\x1f\x7f\x85\ufffd\t\r "
    "\u02b0\u02bc\u0483\u1dc0\u20d0\u0300\u0327\u0328\u031b"
    "!?,;:()[]{}<>\"#$%&*+/=@\\^_`|~\u00bf\u00a1\u2014\u2026\u3001\u300c"
    "\U00020000\U0002a6df\U0002f800\U0001f600\U0001d400\U00010400\U00010428"
)


def random_lines(n, seed):
    rng = random.Random(seed)
    pool = [c for c in TRICKY if not (0xD800 <= ord(c) <= 0xDFFF)]
    lines = []
    for _ in range(n):
        k = rng.randint(0, 40)
        lines.append("".join(rng.choice(pool) for _ in range(k)))
    # words around the 100-character limit, with multi-byte characters
    for k in (99, 100, 101, 150):
        lines.append("x" * k + " " + "\u00e9" * k + " " + "\u00c9" * k)
    return lines


def run(exe, vocab_path, data_path, lower):
    cmd = [exe, "tokenize", "--vocab", vocab_path, "--jobs", "1", data_path]
    if not lower:
        cmd.insert(4, "--cased")
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if res.returncode != 0:
        sys.exit("FAIL: %s exited %d: %s" % (" ".join(cmd), res.returncode,
                                             res.stderr.decode(errors="replace")))
    return res.stdout.decode("utf-8").split("\n")


def compare(exe, workdir, name, lines, basic, lower, vocab_words):
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = specials + sorted(vocab_words)
    vset = set(vocab)
    vocab_path = os.path.join(workdir, name + ".vocab.txt")
    data_path = os.path.join(workdir, name + ".txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    with open(data_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    got = run(exe, vocab_path, data_path, lower)
    n_bad = 0
    for i, line in enumerate(lines):
        want = " ".join(full_tokenize(basic[i], vset))
        if got[i] != want:
            n_bad += 1
            if n_bad <= 5:
                print("MISMATCH %s line %d: input %s\n  python: %r\n  C:      %r"
                      % (name, i + 1, ascii(line[:200]), want[:300], got[i][:300]))
    print("%s: %d lines, %d mismatches" % (name, len(lines), n_bad))
    return n_bad


def main():
    exe, workdir = sys.argv[1], sys.argv[2]
    os.makedirs(workdir, exist_ok=True)
    ver = subprocess.run([exe, "--version"], stdout=subprocess.PIPE, check=True).stdout.decode()
    if ("Unicode %s" % unicodedata.unidata_version) not in ver:
        sys.exit("FAIL: the tables of %r are not from this Python's Unicode %s; regenerate them "
                 "with data-prep/gen_unicode_tables.py" % (ver.strip(), unicodedata.unidata_version))
    lines = code_point_lines() + random_lines(3000, 11)
    bad = 0
    for lower in (True, False):
        basic = [basic_tokenize(line, lower) for line in lines]
        words = set(w for b in basic for w in b if len(w) <= 100)
        bad += compare(exe, workdir, "uncased" if lower else "cased", lines, basic, lower, words)
    # WordPiece proper: a small vocabulary of pieces, so that words split into
    # ## continuations or fall back to [UNK].
    rng = random.Random(3)
    alphabet = "abcdefghij\u00e9\u03c3\u03c2"
    pieces = set()
    for _ in range(300):
        p = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
        pieces.add(p if rng.random() < 0.4 else "##" + p)
    wp_lines = [" ".join("".join(rng.choice(alphabet + "k.") for _ in range(rng.randint(1, 12)))
                         for _ in range(8)) for _ in range(2000)]
    bad += compare(exe, workdir, "wordpiece", wp_lines,
                   [basic_tokenize(line, True) for line in wp_lines], True, pieces)
    print("%d passed, %d failed" % (1 if bad == 0 else 0, 0 if bad == 0 else 1))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
