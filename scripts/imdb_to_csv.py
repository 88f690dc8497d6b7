#!/usr/bin/env python3
"""Convert the IMDB archive (aclImdb_v1.tar.gz or the labelled mirror) into
train.csv and test.csv with columns text,label (label: neg or pos), the way
a user's own data would come, for `gru-imdb --train-file train.csv
--test-file test.csv`.

Rows are written in the order of gru-imdb's archive path (within a split:
neg before pos, each by the numeric id of the file name, then the name),
so the arrays prepared from the CSVs equal those from the archive, bit for
bit (tests/texts_real.rs checks it). Texts are decoded as UTF-8 with
invalid bytes replaced, as the archive path does.

    python3 scripts/imdb_to_csv.py ../shared/data/aclImdb_labeled.tar.gz OUT_DIR

Only the standard library; each CSV is written to a temporary name and
renamed when complete.
"""
import csv
import os
import re
import sys
import tarfile

REVIEW = re.compile(r"^(?:\./)?aclImdb/(train|test)/(neg|pos)/((\d+)_\d+\.txt)$")


def read_reviews(archive):
    """{split: [(label, id, name, text)]} of every review file."""
    splits = {"train": [], "test": []}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            match = REVIEW.match(member.name)
            if not match or not member.isfile():
                continue
            split, label, name, number = match.groups()
            text = tar.extractfile(member).read().decode("utf-8", errors="replace")
            splits[split].append((label, int(number), name, text))
    return splits


def write_csv(path, rows):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["text", "label"])
        for label, _, _, text in rows:
            writer.writerow([text, label])
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def main():
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} ARCHIVE OUT_DIR")
    archive, out_dir = sys.argv[1:]
    splits = read_reviews(archive)
    os.makedirs(out_dir, exist_ok=True)
    for split, rows in splits.items():
        if not rows:
            sys.exit(f"{archive}: no aclImdb/{split}/{{neg,pos}}/*.txt reviews in it")
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        path = os.path.join(out_dir, f"{split}.csv")
        write_csv(path, rows)
        print(f"{path}: {len(rows)} reviews")


if __name__ == "__main__":
    main()
