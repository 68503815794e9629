"""The evaluation runner: estimate each track, score it, write ``results/<track>.json`` as it finishes.

A rerun skips tracks whose result exists with the same digest (model + evaluation settings + the track's
data fingerprint), so an evaluation killed at any point resumes where it stopped and ends with the same
``summary.json``, and a track whose files changed is evaluated again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from musicbench.errors import ConfigError
from musicbench.evaluation.jobs import matching_results, run_jobs
from musicbench.evaluation.results import (
    aggregate_summary,
    track_value,
    write_scores_csv,
    write_summary,
)
from musicbench.evaluation.systems import (
    BEST_OF_K,
    DIVERSITY,
    MODEL,
    is_model_system,
    oracle_name,
    sample_names,
)
from musicbench.utils.provenance import code_version, digest_of

# A metric maps (reference (S, C, T), estimate (S, C, T)) to (S,) values, (S, frames) framewise values,
# or a dict of those for metrics that come in families (BSSEval's sdr/isr/sir/sar).
Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor | Mapping[str, torch.Tensor]]
# An estimate function maps (mixture (C, T), track name) to estimates (S, C, T), or to {system: (S, C, T)} for
# models that produce several estimates per track (e.g. K restorations of a stochastic model, seeded by the
# track name, plus their mean).
EstimateFn = Callable[[torch.Tensor, str], torch.Tensor | Mapping[str, torch.Tensor]]
# An oracle maps (mixture (C, T), references (S, C, T)) to estimates (S, C, T) computed from the true
# sources (e.g. musicbench.audio.oracles.ideal_ratio_mask): an upper bound scored next to the model.
Oracle = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Evaluator:
    """Scores a model's estimates of the sources against the references, next to the do-nothing baseline.

    Separation and restoration alike: a restorer's estimate is the one source ``clean``.

    Args:
        metrics: ``{name: metric}``; see ``Metric``.
        input_baseline: the name of the system that uses the model's input as the estimate of every
            source, the do-nothing baseline: ``"mixture"`` for separation, ``"input"`` for restoration
            (the degraded audio, e.g. the MP3 decode); ``None`` scores no baseline. Summaries record it,
            and reports show every value's difference to it.
        progress: show a progress bar (tracks done / remaining, ETA).
        lower_is_better: metrics where lower is better (e.g. log-spectral distances), for best-of-K.
        diversity: ``{name: metric}`` computed between every pair of a stochastic model's samples
            (``sample_<k>`` systems); reported as the system ``diversity`` with metrics ``pairwise_<name>``.
        excerpts, excerpt_seconds: save audio and spectrogram panels of ``excerpt_seconds`` from the first
            ``excerpts`` tracks next to the results (restoration; see ``evaluation.excerpts``).
        excerpt_range_db: dB range of the spectrogram panels' colour scale (below the loudest bin).
        oracles: ``{name: oracle}`` (see ``Oracle``): estimates computed from each track's references and
            scored as the system ``oracle_<name>`` (``irm``: ``oracle_irm``), an upper bound next to the
            model and the baseline.

    When the estimate function returns several ``sample_<k>`` systems, the result also holds
    ``best_of_k``: per track, source and metric the best value over the samples.
    """

    def __init__(
        self,
        metrics: Mapping[str, Metric],
        input_baseline: str | None = "mixture",
        progress: bool = True,
        lower_is_better: Sequence[str] = (),
        diversity: Mapping[str, Metric] | None = None,
        excerpts: int = 0,
        excerpt_seconds: float = 6.0,
        excerpt_range_db: float = 90.0,
        oracles: Mapping[str, Oracle] | None = None,
    ) -> None:
        if input_baseline is not None and (not input_baseline or is_model_system(input_baseline)):
            raise ConfigError(
                f"evaluator.input_baseline={input_baseline!r} is not free: model, mean, best_of_k, diversity "
                "and sample_<k> name the model's systems, oracle_<name> the oracles'; use e.g. 'mixture' or "
                "'input' (null: no baseline)"
            )
        if not metrics:
            raise ConfigError("evaluator.metrics is empty: configure at least one metric")
        self.metrics = dict(metrics)
        self.input_baseline = input_baseline
        self.progress = progress
        self.lower_is_better = set(lower_is_better)
        self.diversity = dict(diversity or {})
        self.excerpts, self.excerpt_seconds = int(excerpts), float(excerpt_seconds)
        self.excerpt_range_db = float(excerpt_range_db)
        self.oracles = dict(oracles or {})

    def score(self, reference: torch.Tensor, estimate: torch.Tensor, sources: Sequence[str]):
        """Score one system on one track -> (``{source: {metric: value}}``, framewise values, notes)."""
        scores: dict[str, dict[str, float]] = {s: {} for s in sources}
        frames: dict[str, dict[str, list[float]]] = {}
        failures = []
        for name, metric in self.metrics.items():
            try:
                out = metric(reference, estimate)
            except ValueError as exc:
                # An undefined metric (e.g. BSSEval on a wholly silent stem) must not stop the evaluation of
                # the other tracks: it is NaN, with the reason recorded.
                failures.append(f"{name}=nan: {exc}")
                for source in sources:
                    scores[source][name] = math.nan
                continue
            named = out if isinstance(out, Mapping) else {name: out}
            for key, vals in named.items():
                vals = vals.detach().double().cpu()
                for i, source in enumerate(sources):
                    v = vals[i]
                    if v.ndim == 1:
                        frames.setdefault(source, {})[key] = v.tolist()
                        scores[source][key] = track_value(v.tolist())
                    else:
                        scores[source][key] = float(v)
        notes = failures + _explain_nonfinite(
            scores, reference, estimate, sources, skip=self._failed(failures)
        )
        return scores, frames, notes

    @staticmethod
    def _failed(failures: list[str]) -> set[str]:
        return {f.split("=", 1)[0] for f in failures}

    def evaluate(
        self,
        tracks: Sequence[Any],
        estimate_fn: EstimateFn,
        out_dir: str | Path,
        digest: str,
        meta: Mapping[str, Any] | None = None,
        shard: tuple[int, int] | None = None,
        fingerprints: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Evaluate ``tracks`` (objects with ``name``, ``sources``, ``sample_rate``, ``load()``).

        ``digest`` identifies the model and settings; ``fingerprints`` (``{track name: fingerprint}``, see
        :mod:`musicbench.data.identity`) the data of each track. A result on disk is reused only when both
        match (its ``digest`` is :func:`track_digest`), so a changed track is evaluated again.

        ``estimate_fn(mixture (C, T), track_name)`` returns estimates ``(S, C, T)`` or ``{system: (S, C, T)}``
        (see ``EstimateFn``). Writes
        ``out_dir/results/<track>.json`` per track as it finishes, then ``summary.json`` and ``scores.csv``.
        With ``shard=(k, n)`` only tracks ``k, k+n, k+2n, ...`` are evaluated and no summary is written:
        :meth:`merge` builds it once every shard is done. Returns the summary (of the shard's tracks for a
        shard).
        """
        out_dir = Path(out_dir)
        mine = list(tracks) if shard is None else select_shard(tracks, *shard)
        digests = _track_digests(tracks, digest, fingerprints)
        start = time.perf_counter()
        done = run_jobs(
            mine,
            lambda track: track.name,
            digests,
            lambda track, track_digest: self._evaluate_track(
                track, estimate_fn, track_digest, (fingerprints or {}).get(track.name)
            ),
            out_dir / "results",
            progress=self.progress,
            label="evaluate" if shard is None else f"evaluate shard {shard[0]}/{shard[1]}",
        )
        session = round(time.perf_counter() - start, 3)
        if shard is not None:
            return aggregate_summary(
                [done[t.name] for t in mine],
                digest=digest,
                input_baseline=self.input_baseline,
                session_wall_time_s=session,
                shard=f"{shard[0]}/{shard[1]}",
                **(meta or {}),
            )
        return self.merge(tracks, out_dir, digest, meta, fingerprints, session_wall_time_s=session)

    def merge(
        self,
        tracks: Sequence[Any],
        out_dir: str | Path,
        digest: str,
        meta: Mapping[str, Any] | None = None,
        fingerprints: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Build ``summary.json`` and ``scores.csv`` from the per-track results of all shards.

        Raises ``ValueError`` naming the tracks whose results are missing (or were computed by another
        model, with other settings or on other data: ``digest`` and ``fingerprints`` as in :meth:`evaluate`).
        """
        out_dir = Path(out_dir)
        done = matching_results(out_dir / "results", _track_digests(tracks, digest, fingerprints))
        missing = [t.name for t in tracks if t.name not in done]
        if missing:
            raise ConfigError(
                f"cannot merge {out_dir}: {len(missing)} of {len(tracks)} tracks have no results for this model, "
                f"settings and data: {', '.join(missing)}. Run the missing shards (shard=K/N) first."
            )
        results = [done[t.name] for t in tracks]
        write_scores_csv(results, out_dir / "scores.csv")
        return write_summary(
            out_dir / "summary.json",
            results,
            digest=digest,
            code_version=code_version(),
            input_baseline=self.input_baseline,
            **extra,
            **(meta or {}),
        )

    def _evaluate_track(
        self, track, estimate_fn: EstimateFn, digest: str, fingerprint: str | None
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        mixture, targets = track.load()
        estimates = estimate_fn(mixture, track.name)
        systems = dict(estimates) if isinstance(estimates, Mapping) else {MODEL: estimates}
        for system, est in systems.items():
            if est.shape != targets.shape:
                raise ValueError(
                    f"track {track.name}: estimates of {system} have shape {tuple(est.shape)}, "
                    f"references {tuple(targets.shape)}"
                )
        for name, oracle in self.oracles.items():
            systems[oracle_name(name)] = oracle(mixture, targets)
        if self.input_baseline is not None:
            systems[self.input_baseline] = mixture.unsqueeze(0).expand_as(targets)
        result: dict[str, Any] = {
            "track": track.name,
            "digest": digest,
            "data_fingerprint": fingerprint,
            "sources": list(track.sources),
            "sample_rate": track.sample_rate,
            "num_frames": int(mixture.shape[-1]),
            "duration_s": mixture.shape[-1] / track.sample_rate,
            "scores": {},
            "frames": {},
            "notes": [],
        }
        for system, est in systems.items():
            scores, frames, notes = self.score(targets, est.to(targets.dtype), track.sources)
            result["scores"][system] = scores
            if frames:
                result["frames"][system] = frames
            result["notes"] += [f"{track.name}/{system}/{n}" for n in notes]
        samples = sample_names(systems)
        if len(samples) >= 2:
            result["scores"][BEST_OF_K] = best_of(
                [result["scores"][k] for k in samples], self.lower_is_better
            )
            if self.diversity:
                result["scores"][DIVERSITY] = self._pairwise(
                    [systems[k].to(targets.dtype) for k in samples], track.sources
                )
        result["wall_time_s"] = round(time.perf_counter() - t0, 3)
        return result

    def _pairwise(
        self, samples: Sequence[torch.Tensor], sources: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """Mean of each diversity metric over all pairs of samples, per source (``pairwise_<name>``)."""
        out: dict[str, dict[str, float]] = {s: {} for s in sources}
        pairs = [(i, j) for i in range(len(samples)) for j in range(i + 1, len(samples))]
        for name, metric in self.diversity.items():
            values = torch.stack(
                [torch.as_tensor(metric(samples[i], samples[j])).double().cpu() for i, j in pairs]
            )
            if values.ndim > 2:  # framewise metrics: the track value per pair first
                values = torch.tensor([[track_value(v.tolist()) for v in row] for row in values])
            for k, source in enumerate(sources):
                out[source][f"pairwise_{name}"] = float(values[:, k].mean())
        return out


def best_of(per_sample: Sequence[Mapping[str, Mapping[str, float]]], lower_is_better=frozenset()) -> dict:
    """``{source: {metric: best}}`` over samples' ``{source: {metric: value}}`` scores (NaN ignored;
    the minimum for metrics in ``lower_is_better``, the maximum otherwise)."""
    best: dict[str, dict[str, float]] = {}
    for source, metrics in per_sample[0].items():
        best[source] = {}
        for metric in metrics:
            vals = [s[source][metric] for s in per_sample if not math.isnan(s[source][metric])]
            pick = min if metric in lower_is_better else max
            best[source][metric] = pick(vals) if vals else math.nan
    return best


def track_digest(digest: str, fingerprint: str | None) -> str:
    """The digest of one track's result: the model/settings ``digest`` with the track's data fingerprint
    (``None``: no fingerprint, the digest as it is)."""
    return digest if fingerprint is None else digest_of(digest, fingerprint)


def _track_digests(
    tracks: Sequence[Any], digest: str, fingerprints: Mapping[str, str] | None
) -> dict[str, str]:
    fingerprints = fingerprints or {}
    return {t.name: track_digest(digest, fingerprints.get(t.name)) for t in tracks}


def select_shard(tracks: Sequence[Any], index: int, count: int) -> list[Any]:
    """Tracks ``index, index + count, ...`` of ``tracks`` (0 <= index < count)."""
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"shard {index}/{count}: expected K/N with N >= 1 and 0 <= K < N")
    return list(tracks)[index::count]


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``"K/N"`` -> ``(K, N)``; ``None`` -> ``None``."""
    if spec is None:
        return None
    try:
        k, n = (int(x) for x in str(spec).split("/"))
    except ValueError:
        raise ConfigError(f"shard={spec!r}: expected K/N, e.g. 0/4 (tracks 0, 4, 8, ...)") from None
    select_shard([], k, n)  # validates the range
    return k, n


def _explain_nonfinite(scores, reference, estimate, sources, skip=frozenset()) -> list[str]:
    """A reason for every non-finite score, so no NaN/inf reaches a table unexplained."""
    notes = []
    for i, source in enumerate(sources):
        for metric, v in scores[source].items():
            if math.isfinite(v) or metric in skip:
                continue
            # Non-finite first: NaN compares false with everything, so NaN audio would pass as "silent".
            if not torch.isfinite(reference[i]).all():
                why = "reference contains NaN/Inf"
            elif not torch.isfinite(estimate[i]).all():
                why = "estimate contains NaN/Inf"
            elif not reference[i].abs().amax() > 0:
                why = "reference is digitally silent"
            elif torch.equal(reference[i], estimate[i]):
                why = "estimate equals the reference (no error)"
            else:
                why = "all frames undefined (silent reference or estimate in every frame)"
            notes.append(f"{source}/{metric}={v}: {why}")
    return notes
