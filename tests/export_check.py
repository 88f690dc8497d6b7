"""The Python side of tests/export.rs: loads what `gru-imdb export` wrote
with the real libraries (onnx's checker, onnxruntime, tract, Keras 3 on its
torch backend) and compares their predictions, and examples/tokenizer.py's
ids, with gru-imdb's own. Run by the test with the project's .venv
(scripts/setup-export-checks installs the pinned packages).

    python tests/export_check.py CASES.json

CASES.json: {"tokenizer": path, "tokenize": [...], "ids": [[...]] (gru-imdb's
rows of each of those texts), and to check models too, "onnx": path,
"keras": path,
"texts": [...], "predict": [{"probability", "label"}] (predict --json of
each text)}. Prints one
JSON object of what it measured; exits 1 naming the first disagreement.
"""
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")
import logging  # noqa: E402

logging.getLogger("jieba").setLevel(logging.WARNING)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
import tokenizer as example  # noqa: E402

TOLERANCE = 1e-5


def fail(message):
    print(f"export_check: {message}", file=sys.stderr)
    sys.exit(1)


def check_ids(cases, tok):
    for i, (text, ours) in enumerate(zip(cases["tokenize"], cases["ids"])):
        theirs = example.encode(text, tok)
        if theirs != ours:
            fail(f"examples/tokenizer.py gives other ids for text {i} {text[:80]!r}:\n{theirs}\n{ours}")
    return len(cases["tokenize"])


def predicted(row, want, classes):
    """The row's probability that predict's line reports (two classes: the
    second's; more: that of predict's label), and whether the row's label
    can differ from predict's only by a tie within the tolerance."""
    if len(classes) == 2:
        p = float(row[0])
        return p, classes[int(p > 0.5)] == want["label"] or abs(p - 0.5) <= TOLERANCE
    p = float(row[classes.index(want["label"])])
    return p, float(np.max(row)) - p <= TOLERANCE


def check_predictions(name, outputs, cases, classes):
    worst = 0.0
    for i, (row, want) in enumerate(zip(outputs, cases["predict"])):
        probability, same_label = predicted(row, want, classes)
        difference = abs(probability - want["probability"])
        worst = max(worst, difference)
        if difference > TOLERANCE or not same_label:
            fail(f"{name} gives {list(map(float, row))} for text {i}; predict says "
                 f"{want['label']} {want['probability']:.8f}")
    return worst


def onnx_outputs(path, ids):
    import onnx
    import onnxruntime

    onnx.checker.check_model(onnx.load(path), full_check=True)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"token_ids": ids[i:i + 500]})[0]
                           for i in range(0, len(ids), 500)])


def tract_outputs(path, ids):
    """tract's outputs, the model built once for any batch and run at
    batches of 1, 7 and the rest."""
    import tract

    model = tract.onnx().load(path).into_model().into_runnable()
    batches = [ids[:1], ids[1:8], ids[8:]]
    return np.concatenate([model.run([batch])[0].to_numpy() for batch in batches])


def keras_outputs(path, ids):
    import keras

    model = keras.saving.load_model(path)
    names = [layer.name for layer in model.layers]
    if names != ["embedding", "gru", "dense"]:
        fail(f"{path}: layers {names}")
    return model.predict(ids.astype(np.int32), batch_size=500, verbose=0)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    tok = example.load(cases["tokenizer"])
    report = {"ids_checked": check_ids(cases, tok)}
    if "onnx" in cases:
        check_models(cases, tok, report)
    print(json.dumps(report))


def check_models(cases, tok, report):
    ids = np.array([example.encode(t, tok) for t in cases["texts"]], dtype=np.int64)
    for name, run in [("onnxruntime", lambda: onnx_outputs(cases["onnx"], ids)),
                      ("tract", lambda: tract_outputs(cases["onnx"], ids[:200])),
                      ("keras", lambda: keras_outputs(cases["keras"], ids))]:
        started = time.perf_counter()
        outputs = run()
        report[name] = {"seconds": time.perf_counter() - started, "rows": len(outputs),
                        "max_difference": check_predictions(name, outputs, cases, tok["classes"])}


if __name__ == "__main__":
    main()
