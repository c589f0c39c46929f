"""Fusion of a ``--from A,B --to C`` generator run: the sources, with C generated from them.

The streams available at test time are the sources (e.g. UTD-MHAD's depth ``video`` and its
``skeleton``), each through its own classifier run; the generator adds C (e.g. the inertial
``sensor``) synthesised from their frozen trunks. Rows, every fusion chosen on the validation split
(the pool; the test split chooses nothing):

* each source alone, and ``fusion_sources``: the sources fused (what a deployment without the
  generator would run);
* ``generated_<C>`` alone, and ``fusion_<rule>`` / ``fusion_best``: the sources fused with it;
* ``head_control`` and ``head_control_fusion``: a head of the generator's size, budget and
  embeddings trained on labels only (another seed), fused with the sources by the same selection,
  which rules out a refitted head as the source of a gain;
* with C in the test split: ``<C>`` (the real stream) and ``oracle_fusion`` (sources + real C).

Exact McNemar tests compare ``fusion_best`` with ``fusion_sources`` and with
``head_control_fusion``. ``deploy.keras`` takes the sources and returns ``fusion_best``'s
probabilities; ``fused.keras`` returns every stream's probabilities and embeddings.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np

from vsfusion.config import FusionConfig
from vsfusion.data import ClipLoader, Manifest
from vsfusion.evaluation.metrics import classification_summary, mcnemar_exact
from vsfusion.evaluation.report import build_results, write_results
from vsfusion.fusion import (
    RULE_ORDER,
    FusionSelection,
    apply_fusion,
    build_fused_predictor,
    select_fusion,
)
from vsfusion.models import call_on_inputs, model_inputs_like, split_classifier
from vsfusion.stages.common import (
    RunDir,
    StageError,
    load_model,
    predict_arrays,
    require_modality,
    rows_with,
    save_model,
)
from vsfusion.stages.generator import merge_options

__all__ = ["CrossStreamBundle", "run_stream_fusion"]

logger = logging.getLogger(__name__)

CONTROL = "head_control"


class CrossStreamBundle:
    """A finished ``--from/--to`` generator run: one model from the sources to every stream.

    Attributes:
        run: The generator run.
        info: Its ``metrics.json``.
        sources: Source columns, in the generator's order.
        target: The generated column.
        streams_model: Sources in; per source ``<c>_probs`` / ``<c>_embedding``,
            ``generated_probs`` / ``generated_embedding`` and (with a control) ``control_probs``
            / ``control_embedding`` out; one pass per source trunk.
        target_model: The target's classifier (the oracle's real stream).
    """

    def __init__(self, run: Path) -> None:
        self.run = run
        self.info = json.loads((run / "metrics.json").read_text())
        self.sources: list[str] = list(self.info["sources"])
        self.target: str = self.info["target"]
        runs = {c: Path(p) for c, p in self.info["stream_runs"].items()}
        for c, path in runs.items():
            if not (path / "best.keras").is_file():
                raise StageError(
                    f"generator run {run} needs the {c} run {path}, which is missing; re-run the "
                    f"{c} classifier and the generator"
                )
        self.options = self.info.get("stream_options", {})
        classifiers = {c: load_model(runs[c] / "best.keras") for c in self.sources}
        self.target_model = load_model(runs[self.target] / "best.keras")
        _, target_head = split_classifier(self.target_model)
        generator_head = load_model(run / "generator_head.keras")
        control_head = (
            load_model(run / "control_head.keras")
            if (run / "control_head.keras").is_file()
            else None
        )
        inputs: dict[str, Any] = {}
        outputs: dict[str, Any] = {}
        embeddings = []
        for c in self.sources:
            trunk, head = split_classifier(classifiers[c])
            fresh = model_inputs_like(trunk)
            inputs.update(fresh)
            h = call_on_inputs(trunk, fresh)
            embeddings.append(h)
            outputs[f"{c}_probs"], outputs[f"{c}_embedding"] = head(h), h
        joint = embeddings[0] if len(embeddings) == 1 else keras.layers.Concatenate()(embeddings)
        u = generator_head(joint)
        outputs["generated_probs"], outputs["generated_embedding"] = target_head(u), u
        if control_head is not None:
            c_out = control_head(joint)
            outputs["control_probs"] = c_out["probs"]
            outputs["control_embedding"] = c_out["embedding"]
        self.streams_model = keras.Model(inputs, outputs, name="fused_streams")

    @property
    def has_control(self) -> bool:
        """Whether the generator run trained its head control."""
        return "control_probs" in self.streams_model.output

    def streams(
        self, rows: Any, manifest: Manifest, cfg: FusionConfig, with_target: bool
    ) -> dict[str, np.ndarray]:
        """Every stream's probabilities and embeddings on ``rows``, plus labels and subjects."""
        kw = merge_options([self.options.get(c, {}) for c in self.sources])
        loader = ClipLoader(
            rows,
            manifest.classes,
            modalities=tuple(self.sources),
            streams=manifest.streams,
            batch_size=cfg.batch_size,
            workers=cfg.workers,
            **kw,
        )
        out = {k: np.asarray(v) for k, v in predict_arrays(self.streams_model, loader).items()}
        out["labels"] = np.asarray(loader.labels)
        out["groups"] = rows["subject"].astype(str).to_numpy()
        if with_target:
            real = ClipLoader(
                rows,
                manifest.classes,
                modalities=(self.target,),
                streams=manifest.streams,
                batch_size=cfg.batch_size,
                workers=cfg.workers,
                **self.options.get(self.target, {}),
            )
            trunk, head = split_classifier(self.target_model)
            emb = np.asarray(predict_arrays(trunk, real))
            out["target_embedding"] = emb
            out["target_probs"] = keras.ops.convert_to_numpy(head(emb))
        return out


def _pool(s: dict[str, np.ndarray], streams: dict[str, str]) -> dict[str, Any]:
    """The selection pool: ``{row name: output prefix}`` of the streams to fuse."""
    return {
        "labels": s["labels"],
        "groups": s["groups"],
        "probs": {name: s[f"{key}_probs"] for name, key in streams.items()},
        "embeddings": {f"{name}_embedding": s[f"{key}_embedding"] for name, key in streams.items()},
    }


def _features(s: dict[str, np.ndarray], streams: dict[str, str]) -> dict[str, np.ndarray]:
    return {f"{name}_embedding": s[f"{key}_embedding"] for name, key in streams.items()}


def run_stream_fusion(cfg: FusionConfig, run: Path, manifest: Manifest) -> RunDir:
    """The fusion stage for a ``--from/--to`` generator run (module docstring)."""
    if cfg.oof:
        raise StageError(
            f"--oof: out-of-fold selection is not available for --from/--to generator run {run} "
            "yet; drop --oof (the validation split is the pool)"
        )
    bundle = CrossStreamBundle(run)
    sources, target = bundle.sources, bundle.target
    rows = {}
    for split in ("train", "val", "test"):
        part = manifest.split(split)
        for c in sources:
            part = rows_with(part, c)
        if len(part) == 0:
            require_modality(manifest, split, sources[0])  # names the split and the stream
            raise StageError(
                f"{manifest.name}: split '{split}' has no samples with all of {sources}"
            )
        rows[split] = part.reset_index(drop=True)
    out = RunDir.create(cfg)
    save_model(bundle.streams_model, out.path, "fused")
    has_target = all(len(rows_with(rows[s], target)) == len(rows[s]) for s in ("val", "test"))
    va = bundle.streams(rows["val"], manifest, cfg, has_target)
    te = bundle.streams(rows["test"], manifest, cfg, has_target)
    single = len(set(va["groups"])) < 2
    tr = bundle.streams(rows["train"], manifest, cfg, has_target) if single else None

    src = {c: c for c in sources}
    generated = f"generated_{target}"
    plans = {
        "sources": src,
        "generated": {**src, generated: "generated"},
        **({"control": {**src, CONTROL: "control"}} if bundle.has_control else {}),
        **({"oracle": {**src, target: "target"}} if has_target else {}),
    }
    selections: dict[str, FusionSelection] = {}
    for name, streams in plans.items():
        kw = {"train_features": _features(tr, streams), "y_train": tr["labels"]} if tr else {}
        selections[name] = select_fusion(
            _pool(va, streams),
            num_classes=len(manifest.classes),
            max_epochs=cfg.mlp_epochs,
            hidden=cfg.mlp_hidden,
            seed=cfg.seed,
            **kw,
        )
    gen_sel = selections["generated"]
    save_model(gen_sel.mlp, out.path, "fusion_mlp")
    deploy = build_fused_predictor(
        bundle.streams_model,
        gen_sel,
        {name: f"{key}_probs" for name, key in plans["generated"].items()},
        {f"{name}_embedding": f"{key}_embedding" for name, key in plans["generated"].items()},
        name="deploy",
    )
    save_model(deploy, out.path, "deploy")

    y = te["labels"]
    probs: dict[str, np.ndarray] = {c: te[f"{c}_probs"] for c in sources}
    probs[generated] = te["generated_probs"]
    fused = {
        n: apply_fusion(selections[n], _pool(te, p)["probs"], _features(te, p))
        for n, p in plans.items()
    }
    probs["fusion_sources"] = fused["sources"]["best"]
    for rule in RULE_ORDER:
        if rule in fused["generated"]:
            probs[f"fusion_{rule}"] = fused["generated"][rule]
    probs["fusion_best"] = fused["generated"]["best"]
    if "control" in fused:
        probs[CONTROL] = te["control_probs"]
        probs[f"{CONTROL}_fusion"] = fused["control"]["best"]
    if "oracle" in fused:
        probs[target] = te["target_probs"]
        probs["oracle_fusion"] = fused["oracle"]["best"]
    summaries = {k: classification_summary(y, p, manifest.classes) for k, p in probs.items()}
    preds = {k: np.argmax(p, axis=1) for k, p in probs.items()}
    pairs = [("fusion_best", "fusion_sources")]
    if f"{CONTROL}_fusion" in preds:
        pairs.append(("fusion_best", f"{CONTROL}_fusion"))
    mcnemar = [{"pair": list(p), **mcnemar_exact(y, preds[p[0]], preds[p[1]])} for p in pairs]
    from vsfusion.stages.fusion import _save_predictions

    _save_predictions(out.path / "predictions.npz", probs, te)
    kinds = {c: manifest.streams[c].kind for c in [*sources, target]}
    names = " + ".join(f"{c} ({kinds[c]})" for c in sources)
    matrix: dict[str, dict[str, Any]] = {
        f"{c} ({kinds[c]}) only": {"stream": c, "rule": None} for c in sources
    }
    matrix[names] = {"stream": "fusion_sources", "rule": selections["sources"].describe()}
    matrix[f"{names} + generated {target}"] = {"stream": "fusion_best", "rule": gen_sel.describe()}
    if "oracle" in selections:
        matrix[f"{names} + real {target}"] = {
            "stream": "oracle_fusion",
            "rule": selections["oracle"].describe(),
        }
    results = build_results(
        dataset=manifest.name,
        n_train=len(rows["train"]),
        n_val=len(rows["val"]),
        n_test=len(rows["test"]),
        seed=cfg.seed,
        accuracy={k: s["top1"] for k, s in summaries.items()},
        macro_f1={k: s["macro_f1"] for k, s in summaries.items()},
        mcnemar_p=mcnemar[0]["p_value"],
        extra={
            "top5": {k: s["top5"] for k, s in summaries.items()},
            "sources": {c: kinds[c] for c in sources},
            "target": {target: kinds[target]},
            "best_fusion": f"fusion_{gen_sel.best}",
            "best_fusion_rule": gen_sel.describe(),
            "generator_method": bundle.info.get("method", "regress"),
            "generator_trunk": bundle.info.get("trunk"),
            "control": CONTROL if bundle.has_control else None,
            "mcnemar_pair": list(pairs[0]),
            "mcnemar_tests": mcnemar,
            "missing_modality": matrix,
            "selection": {
                "pool": gen_sel.pool,
                "pool_groups": gen_sel.groups,
                **{name: sel.summary() for name, sel in selections.items()},
            },
            "deploy": {
                "file": "deploy.keras",
                "inputs": {t.name: list(t.shape[1:]) for t in deploy.inputs},
                "output": "fused class probabilities (fusion_best)",
                "rule": gen_sel.describe(),
                "streams": list(gen_sel.streams),
            },
        },
    )
    write_results(out.path, results)
    if cfg.out:
        write_results(cfg.out, results)
    out.finish({"results": results, "generator_run": str(run.resolve())})
    acc = results["accuracy"]
    logger.info(
        "test accuracy: %s %.3f, + generated %s (%s) %.3f, + %s %s, oracle %s; McNemar p = %.3g",
        "+".join(sources),
        acc["fusion_sources"],
        target,
        gen_sel.describe(),
        acc["fusion_best"],
        CONTROL,
        acc.get(f"{CONTROL}_fusion"),
        acc.get("oracle_fusion"),
        mcnemar[0]["p_value"],
    )
    return out
