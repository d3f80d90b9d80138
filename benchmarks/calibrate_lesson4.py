"""Calibrate the lesson-4 early-stopping threshold: the reference solution over many seeds.

For each seed the reference solution of ``lesson4_early_stopping`` (3 x Dense(512, relu) +
Dense(1), adam, MAE, EarlyStopping(min_delta=0.001, patience=20, restore_best_weights=True),
batch 256, up to 500 epochs, on the course's split scaled with the training statistics) is
trained on this machine, exactly as the notebook does it (``keras.utils.set_random_seed`` +
op determinism). The final (restored) weights are then re-evaluated the way the checker does
it: captured by ``keras_capture`` and run through the numpy forward pass of ``keras_model`` on
the course's validation split. Baselines (the training mean, a linear regression) show where a
model that learned nothing useful lands.

Prints a table and writes ``benchmarks/results/calibrate_lesson4.json``.
Run: ``.venv/bin/python benchmarks/calibrate_lesson4.py [--seeds 20] [--threads 1]`` (about
12 s per seed on 2 cores). One TensorFlow thread by default, as in every grading kernel.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("COURSE_DATA_HOME", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # as in the grading kernel
OUT = ROOT / "benchmarks" / "results" / "calibrate_lesson4.json"


def run_seed(seed: int, data: dict) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf
    from keras import callbacks, layers

    from dlcourse import keras_capture
    from dlcourse import keras_model as km

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    early_stopping = callbacks.EarlyStopping(
        min_delta=0.001, patience=20, restore_best_weights=True
    )
    model = keras.Sequential(
        [
            keras.Input(shape=(11,)),
            layers.Dense(512, activation="relu"),
            layers.Dense(512, activation="relu"),
            layers.Dense(512, activation="relu"),
            layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mae")
    started = time.perf_counter()
    history = model.fit(
        data["X_train"],
        data["y_train"],
        validation_data=(data["X_valid"], data["y_valid"]),
        batch_size=256,
        epochs=500,
        callbacks=[early_stopping],
        verbose=0,
    )
    seconds = time.perf_counter() - started
    val = [float(v) for v in history.history["val_loss"]]
    # re-evaluate as the checker does: plain data -> numpy forward pass
    description = keras_capture.describe_model(model)
    index, arrays = keras_capture.model_weights(model)
    view = km.normalize(description)
    pred = km.forward(view, km.weights_by_layer(index, arrays), data["X_valid"])
    recomputed = km.mae(data["y_valid"], pred)
    restored = int(early_stopping.best_epoch)
    return {
        "seed": seed,
        "epochs_run": len(val),
        "stopped_epoch": int(early_stopping.stopped_epoch) + 1,
        "restored_epoch": restored + 1,
        "argmin_epoch": int(np.argmin(val)) + 1,
        "min_val_loss": min(val),
        "val_loss_at_restored": val[restored],
        "recomputed_val_mae": recomputed,
        "integrity_gap": abs(recomputed - val[restored]),
        "restore_gap": recomputed - min(val),
        "fit_seconds": round(seconds, 2),
    }


def baselines(data: dict) -> dict:
    import numpy as np

    mean = float(np.mean(np.abs(data["y_valid"] - data["y_train"].mean())))
    design = np.c_[data["X_train"], np.ones(len(data["X_train"]))]
    coef, *_ = np.linalg.lstsq(design, data["y_train"], rcond=None)
    linear = np.c_[data["X_valid"], np.ones(len(data["X_valid"]))] @ coef
    return {
        "predict_training_mean": mean,
        "linear_regression": float(np.mean(np.abs(data["y_valid"] - linear))),
    }


def summarize(runs: list[dict], thresholds: dict) -> dict:
    values = [r["recomputed_val_mae"] for r in runs]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    high = float(thresholds.get("es_val_mae_max", float("nan")))
    low = float(thresholds.get("es_val_mae_min", float("nan")))
    return {
        "seeds": len(runs),
        "recomputed_val_mae": {
            "median": statistics.median(values),
            "mean": statistics.mean(values),
            "std": spread,
            "min": min(values),
            "max": max(values),
        },
        "epochs_run": {
            "min": min(r["epochs_run"] for r in runs),
            "median": statistics.median(r["epochs_run"] for r in runs),
            "max": max(r["epochs_run"] for r in runs),
        },
        "fit_seconds": {
            "min": min(r["fit_seconds"] for r in runs),
            "median": statistics.median(r["fit_seconds"] for r in runs),
            "max": max(r["fit_seconds"] for r in runs),
        },
        "max_integrity_gap": max(r["integrity_gap"] for r in runs),
        "max_restore_gap": max(r["restore_gap"] for r in runs),
        "threshold_max": high,
        "margin_above_worst_seed": high - max(values),
        "margin_in_std": (high - max(values)) / spread if spread else None,
        "threshold_min": low,
        "margin_below_best_seed": min(values) - low,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="number of seeds (0, 1, ...)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="TensorFlow threads (default 1: what every grading kernel gets, "
        "GradingSettings.kernel_threads); 0 = TensorFlow's default",
    )
    args = parser.parse_args(argv)
    if args.threads:  # before TensorFlow is imported: thread counts are read once
        from autograder.core import GradingSettings

        os.environ.update(GradingSettings(kernel_threads=args.threads).kernel_env())

    from autograder.checkers.support import wine_arrays
    from autograder.config import load_course

    data = wine_arrays()
    thresholds = load_course(ROOT / "course_config.py").thresholds["lesson4_early_stopping"]
    runs = []
    header = (
        f"{'seed':>4} {'epochs':>6} {'stop':>5} {'restored':>8} {'argmin':>6} "
        f"{'min val':>8} {'re-eval MAE':>11} {'gap':>9} {'fit s':>6}"
    )
    print(header)
    for seed in range(args.seeds):
        run = run_seed(seed, data)
        runs.append(run)
        print(
            f"{seed:>4} {run['epochs_run']:>6} {run['stopped_epoch']:>5} "
            f"{run['restored_epoch']:>8} {run['argmin_epoch']:>6} {run['min_val_loss']:>8.4f} "
            f"{run['recomputed_val_mae']:>11.4f} {run['integrity_gap']:>9.1e} "
            f"{run['fit_seconds']:>6.1f}",
            flush=True,
        )
    summary = summarize(runs, thresholds)
    summary["baselines"] = baselines(data)
    mae = summary["recomputed_val_mae"]
    print(
        f"\nre-evaluated val MAE over {len(runs)} seeds: median {mae['median']:.4f}, "
        f"min {mae['min']:.4f}, max {mae['max']:.4f}, std {mae['std']:.4f}"
    )
    print(
        f"threshold es_val_mae_max = {summary['threshold_max']} -> margin "
        f"{summary['margin_above_worst_seed']:.4f} above the worst seed"
    )
    print(
        f"plausibility floor es_val_mae_min = {summary['threshold_min']} -> margin "
        f"{summary['margin_below_best_seed']:.4f} below the best seed"
    )
    print("baselines: " + ", ".join(f"{k} {v:.4f}" for k, v in summary["baselines"].items()))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    summary["tensorflow_threads"] = args.threads or "default"
    OUT.write_text(json.dumps({"summary": summary, "runs": runs}, indent=1))
    return summary


if __name__ == "__main__":
    main()
