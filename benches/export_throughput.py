#!/usr/bin/env python3
"""Reviews per second of an exported model in onnxruntime (and Keras 3 on
its torch backend), at batch 1 and 1024, on a run's test arrays, to set
beside `gru-imdb evaluate --batch-size 1,1024` of the same run in the same
sitting. Best of --repeats timed passes after one warm-up pass.

    gru-imdb data --data-dir D --export ARRAYS ...   # x_test.npy
    gru-imdb export RUN --format onnx -o OUT/model.onnx
    .venv/bin/python benches/export_throughput.py OUT/model.onnx ARRAYS/x_test.npy
"""
import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "torch")
import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402


def best_rate(predict, ids, batch, repeats):
    def one_pass():
        started = time.perf_counter()
        for i in range(0, len(ids), batch):
            predict(ids[i:i + batch])
        return len(ids) / (time.perf_counter() - started)

    one_pass()
    return max(one_pass() for _ in range(repeats))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("onnx")
    parser.add_argument("x_test")
    parser.add_argument("--keras", help="the .keras file, to time it too")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-1-reviews", type=int, default=2000,
                        help="reviews timed at batch 1 (all of them take minutes)")
    args = parser.parse_args()
    ids = np.load(args.x_test).astype(np.int64)
    session = onnxruntime.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
    ort = lambda batch: session.run(None, {"token_ids": batch})[0]  # noqa: E731
    rates = {"onnxruntime": {
        "1": best_rate(ort, ids[:args.batch_1_reviews], 1, args.repeats),
        "1024": best_rate(ort, ids, 1024, args.repeats)}}
    if args.keras:
        import keras
        model = keras.saving.load_model(args.keras)
        as_int32 = ids.astype(np.int32)
        rates["keras"] = {"1024": best_rate(lambda b: model.predict_on_batch(b), as_int32, 1024,
                                            args.repeats)}
    rates["versions"] = {"onnxruntime": onnxruntime.__version__}
    print(json.dumps(rates, indent=1))


if __name__ == "__main__":
    main()
