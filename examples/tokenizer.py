#!/usr/bin/env python3
"""Texts -> the ids an exported gru-imdb model takes, as `gru-imdb predict`
makes them, from the tokenizer.json that `gru-imdb export` writes beside
the model (the `imdb` rule, version 1: docs/tokenizers.md and
docs/export.md). Standard library only; tests/export.rs holds it to the
Rust tokenizer.

    python3 examples/tokenizer.py RUN/tokenizer.json "A great film<br />Loved it"
"""
import bisect
import json
import re
import sys

LINE_BREAK = re.compile(r"<[bB][rR](?: />|/>|>)")


def load(path):
    """tokenizer.json, with a token -> id table and the word characters'
    range starts added."""
    with open(path, encoding="utf-8") as f:
        tok = json.load(f)
    if (tok["rule"], tok["rule_version"]) != ("imdb", 1):
        raise ValueError(f"{path}: rule {tok['rule']} v{tok['rule_version']}; this follows imdb v1")
    tok["ids"] = {w: rank + tok["index_from"] for rank, w in enumerate(tok["vocabulary"], 1)}
    tok["starts"] = [lo for lo, _ in tok["word_characters"]]
    return tok


def encode(text, tok):
    """One text -> its row of `maxlen` ids: [start, ids...], cut and padded in front."""
    text = LINE_BREAK.sub(" ", text).lower()

    def in_word(c):
        i = bisect.bisect_right(tok["starts"], ord(c)) - 1
        return c == "'" or (i >= 0 and ord(c) <= tok["word_characters"][i][1])

    ids, piece = [tok["start_id"]], []
    for c in text + " ":  # a final non-word character ends the last piece
        if in_word(c):
            piece.append(c)
            continue
        token, piece = "".join(piece).strip("'"), []
        if token:
            ids.append(tok["ids"].get(token, tok["oov_id"]))
    ids = ids[-tok["maxlen"]:]
    return [tok["pad_id"]] * (tok["maxlen"] - len(ids)) + ids


if __name__ == "__main__":
    tokenizer = load(sys.argv[1])
    for review in sys.argv[2:]:
        print(json.dumps(encode(review, tokenizer)))
