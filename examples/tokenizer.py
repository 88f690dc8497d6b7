#!/usr/bin/env python3
"""Texts -> the ids an exported gru-imdb model takes, as `gru-imdb predict`
makes them, from the tokenizer.json that `gru-imdb export` writes beside
the model (docs/export.md; the rules: docs/tokenizers.md). tests/export.rs
holds it to the Rust tokenizer.

The `imdb` rule (IMDB runs, and English texts by default) needs only the
standard library: `load`, `encode` and `imdb_tokens`. The others need
Unicode's boundaries (`pip install regex`) and, for `jieba`, jieba itself
(`pip install jieba`).

    python3 examples/tokenizer.py RUN/tokenizer.json "A great film<br />Loved it"
"""
import bisect
import json
import re
import sys

LINE_BREAK = re.compile(r"<[bB][rR](?: />|/>|>)")


def load(path):
    """tokenizer.json, with a token -> id table added."""
    with open(path, encoding="utf-8") as f:
        tok = json.load(f)
    if tok["rule"] not in RULES or (tok["format_version"], tok["rule_version"]) != (1, 1):
        raise ValueError(f"{path}: rule {tok['rule']} v{tok['rule_version']} is not one this follows")
    tok["ids"] = {w: rank + tok["index_from"] for rank, w in enumerate(tok["vocabulary"], 1)}
    return tok


def encode(text, tok):
    """One text -> its row of `maxlen` ids: [start, ids...], cut and padded in front."""
    text = LINE_BREAK.sub(" ", text).lower()
    ids = [tok["start_id"]] + [tok["ids"].get(t, tok["oov_id"]) for t in RULES[tok["rule"]](text, tok)]
    ids = ids[-tok["maxlen"]:]
    return [tok["pad_id"]] * (tok["maxlen"] - len(ids)) + ids


def within(c, tok, name):
    """Whether c is in tokenizer.json's class `name` (inclusive code point ranges)."""
    ranges = tok[name]
    i = bisect.bisect_left(ranges, [ord(c) + 1]) - 1
    return i >= 0 and ord(c) <= ranges[i][1]


def imdb_tokens(text, tok):
    """Pieces between characters that are neither word characters nor ', ' stripped."""
    piece = []
    for c in text + " ":  # a final non-word character ends the last piece
        if c == "'" or within(c, tok, "word_characters"):
            piece.append(c)
            continue
        token, piece = "".join(piece).strip("'"), []
        if token:
            yield token


def unicode_tokens(text, tok):
    """UAX #29 words holding a letter, digit or emoji; each ideograph alone."""
    import regex

    def is_word(piece):
        return any(within(c, tok, "word_characters") or within(c, tok, "pictographs") for c in piece)

    for segment in regex.split(r"(?wV1)\b", text):
        if not is_word(segment):
            continue
        run = ""
        for c in segment:
            if within(c, tok, "ideographs"):
                if is_word(run):
                    yield run
                yield c
                run = ""
            else:
                run += c
        if is_word(run):
            yield run


def chars_tokens(text, tok):
    """Every grapheme cluster that is not all white space."""
    import regex

    for grapheme in regex.findall(r"\X", text):
        if not all(within(c, tok, "white_space") for c in grapheme):
            yield grapheme


def jieba_tokens(text, tok):
    """Runs of ideographs cut by jieba (HMM on); the rest by the unicode rule."""
    import itertools

    import jieba

    runs = itertools.groupby(text, key=lambda c: within(c, tok, "ideographs"))
    for han, run in runs:
        run = "".join(run)
        yield from jieba.cut(run, HMM=True) if han else unicode_tokens(run, tok)


RULES = {"imdb": imdb_tokens, "unicode": unicode_tokens, "chars": chars_tokens,
         "jieba": jieba_tokens}

if __name__ == "__main__":
    tokenizer = load(sys.argv[1])
    for review in sys.argv[2:]:
        print(json.dumps(encode(review, tokenizer)))
