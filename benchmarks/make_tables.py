"""Tables and plots from a sweep's results.jsonl (written by sweep.py), with statistics over seeds.

python benchmarks/make_tables.py --results=sweeps/mine                      # any sweep, by its axes
python benchmarks/make_tables.py --results=sweeps/rob --table=robustness --format=markdown
python benchmarks/make_tables.py --results=sweeps/sq --table=sample_quality --format=latex
python benchmarks/make_tables.py --results=sweeps/rob --table=runs --metric=kid

Records are read through compare_ssgan.results (validated; older versions migrated). A run
counts at its last scored step once training finished. Runs are grouped by every axis that
varies across the selected records except the seed (results.axes: the grid's labels, the run's
configuration, the sweep's gin bindings, the evaluation protocol): runs that differ in any of
them are never averaged, and each table names the axes it grouped by. The models of a row differ
only in what makes the model (ROW_RUN_FIELDS). Code versions and training machines are not axes;
a table says when its runs mix them. Runs that failed before any score are named under it.

(no --table): one row per group and model: n seeds, mean ± std, best, collapsed and
diverged/failed counts, and against the row's first model the difference of means with a
bootstrap confidence interval, Welch's t-test and Mann-Whitney U (benchmarks/seed_stats.py).
robustness: SS-GAN Table 2's layout (rows: penalty, λ, β1, β2, D iters; per dataset a column
per model) with the same statistics. sample_quality: SS-GAN Table 1's layout, best of n.
runs: one row per run, the per-seed values behind the others.
Under each table: the feature network and sample count (an FID from a network other than
Inception is not comparable to the papers'). --plot_dir also draws metric-versus-step curves.
representation: SS-GAN Table 3's layout from the runs' linear probes (probes.jsonl; see
benchmarks/representation_table.py), and with --plot_dir Figure 8's probe-vs-step curves.
representation_runs: one row per run and probed step, with the checkpoint's --metric beside.
"""
import collections
import math
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seed_stats  # noqa: E402
import sweep  # noqa: E402
from table_text import LATEX_SPECIALS, mark_best, order_key, value_text  # noqa: E402
from compare_ssgan import results  # noqa: E402

COLLAPSE_FID = 100.0
MODEL_NAMES = {"uncond": "Uncond-GAN", "cond": "Cond-GAN", "ssgan": "SS-GAN", "ssgan_sbn": "SS-GAN (sBN)",
               "rot_only": "Rot-only", "ltgan": "LT-GAN", "crgan": "CR-GAN", "cr_ltgan": "CR+LT"}
MODEL_ORDER = list(MODEL_NAMES)
MODEL_AXIS = ("run", "model")
_MISSING = "not recorded"


def load(path):
    """The records of a sweep directory's results.jsonl (or of that file)."""
    if os.path.isdir(path):
        path = os.path.join(path, "results.jsonl")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist: run benchmarks/sweep.py first")
    return results.read(path)


def _protocol(record):
    return tuple(v for k, v in results.axes(record).items() if k[0] == "protocol")


def run_key(record):
    return record.get("sweep", {}).get("run_id") or record.get("model_dir") or (
        record["dataset"], record["model"], record["seed"])


def filter_protocol(records, feature_network=None, num_samples=None):
    """The scores of one protocol, and every training divergence: a divergence is no evaluation,
    so it counts under whichever protocol the table shows."""
    keep = lambda r, ok: ok or results.is_training_divergence(r)  # noqa: E731
    if feature_network:
        records = [r for r in records if keep(r, (r.get("feature_network") or {}).get("name") == feature_network)]
    if num_samples:
        records = [r for r in records if keep(r, r.get("num_samples") == num_samples)]
    return records


def select(records, feature_network=None, num_samples=None):
    """The records of one evaluation protocol, for the papers' layouts (FID depends on both)."""
    records = filter_protocol(records, feature_network, num_samples)
    protocols = sorted({((r.get("feature_network") or {}).get("name"), r.get("num_samples")) for r in records
                        if not results.is_training_divergence(r)}, key=str)
    if len(protocols) > 1:
        raise ValueError(f"the results mix evaluation protocols (feature network, samples) {protocols}; "
                         f"choose one with --feature_network and --num_samples (or leave out --table "
                         f"for a table with a row per protocol)")
    return records


def _under_protocol(divergence, example):
    """A divergence record as counted under the protocol of the score record `example`."""
    return {**divergence, **{name: example[name] for name in (*results.PROTOCOL_FIELDS, "metric_labels")
                             if name in example}}


def outcomes(records):
    """Per run and protocol: (state, record). 'final': the run's last training step is scored
    under that protocol (record = that score); 'diverged': training stopped on a non-finite loss
    (an origin 'training' record) after every score of the run. A divergence is the run's, not a
    protocol's: it counts under every protocol the records hold (record = the divergence with that
    protocol's fields); a score at or after its step is from a retry that got past it, and then it
    is ignored. 'failed': the sweep gave up on the run; 'unfinished': still to run or resume
    (record = the last score)."""
    scores, diverged = {}, {}
    for record in records:
        run = run_key(record)
        if results.is_training_divergence(record):
            if run not in diverged or record["step"] > diverged[run]["step"]:
                diverged[run] = record
            continue
        key = (run, _protocol(record))
        if key not in scores or record["step"] > scores[key]["step"]:
            scores[key] = record
    last_step, protocols = {}, {}
    for (run, protocol), record in scores.items():
        last_step[run] = max(last_step.get(run, record["step"]), record["step"])
        protocols.setdefault(protocol, record)
    diverged = {run: r for run, r in diverged.items() if run not in last_step or r["step"] > last_step[run]}
    result = {}
    for (run, protocol), record in scores.items():
        if run in diverged:
            continue
        if record["step"] >= record.get("training_steps", record["step"]):
            result[run, protocol] = ("final", record)
        else:
            failed = record.get("sweep", {}).get("state") == "failed"
            result[run, protocol] = ("failed" if failed else "unfinished", record)
    for run, record in diverged.items():
        for protocol, example in protocols.items() or [(_protocol(record), record)]:
            result[run, protocol] = ("diverged", _under_protocol(record, example))
    return result


def unscored_runs(path, records):
    """{why: run ids} of the sweep's runs that no record holds, so no cell can count them: failed
    before any score (a non-finite loss has its own record), scored after results.jsonl was last
    gathered, queued or running without a score yet, or finished without one. Read from the run
    directories beside results.jsonl."""
    directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    gathered = {(r.get("sweep") or {}).get("run_id") for r in records}
    unscored = {why: [] for why in _UNSCORED_TEXTS}
    for run_id, (run, state) in sweep.run_states(directory).items():
        if run_id not in gathered:
            scores = os.path.join(run, results.SCORES_FILE)
            if os.path.exists(scores) and os.path.getsize(scores) > 0:
                unscored["not gathered"].append(run_id)
            else:
                unscored[{"failed": "before any score", "done": "done without a score"}.get(state, "no score yet")
                         ].append(run_id)
    return {why: ids for why, ids in unscored.items() if ids}


_UNSCORED_TEXTS = {"before any score": "failed before their first score (see each run's log)",
                   "not gathered": "with scores that results.jsonl does not hold yet (re-run the sweep command: "
                                   "it gathers)",
                   "no score yet": "queued or running, without a score yet",
                   "done without a score": "finished without a score (see each run's log)"}


def _unscored_note(unscored):
    return "In no cell: " + "; ".join(f"{len(ids)} run(s) {_UNSCORED_TEXTS[why]}: {', '.join(ids)}"
                                      for why, ids in unscored.items()) + "."


def final_records(records):
    """The score at the last training step of every finished run."""
    return [r for state, r in outcomes(records).values() if state == "final"]


# -- grouping -------------------------------------------------------------------------------------

# What a row's models may not differ in (the protocol, the grid's labels and bindings, the preset
# gin files, the optimisation and length of training): an axis of these splits rows, not only a
# model's runs, so two models are never compared across it. The model's own settings (tasks,
# architecture, its own gin file) may differ between the models of a row.
ROW_RUN_FIELDS = ("dataset", "loss", "penalty", "lambda", "beta1", "beta2", "disc_iters", "g_lr", "d_lr",
                  "batch_size", "training_steps", "ema_decay")
GIN_FILE_AXES = ("files", "presets")  # results.axes' ("gin", ...) axes that are not bindings


def _splits_rows(name):
    source, field = name
    return source in ("label", "protocol") or (source == "gin" and field != "files") or (
        source == "run" and field in ROW_RUN_FIELDS)


def grouping_axes(records, start=lambda r: (), exclude=(), all_labels=True, row=None):
    """The axes (results.axes keys, in priority order) that tell apart the records beyond the
    groups `start` already makes (`row`: the same without the model; default `start`): the grid's
    own axes (labels) whenever they vary (with `all_labels`; a paper's layout shows its own); an
    axis of _splits_rows if it splits a row of the axes kept before it; any other axis if it
    splits a group. Every other varying axis is then constant within each group, so grouping by
    the kept axes is grouping by all of them. A sweep binding a run was not given has the value
    of the run's operative gin configuration (else "not recorded"); any other axis some records
    do not record (older code) counts as equal to the others' value when they all agree, else as
    its own value."""
    row = row or start
    per_record = [results.axes(r) for r in records]
    names = list(dict.fromkeys(k for axes in per_record for k in axes if k not in exclude))
    values = {}
    for name in names:
        if name[0] == "gin" and name[1] not in GIN_FILE_AXES:  # a binding
            values[name] = [axes[name] if name in axes else results.operative_binding(r, name[1])
                            for r, axes in zip(records, per_record)]
            values[name] = [_MISSING if v is None else v for v in values[name]]
            continue
        recorded = {axes[name] for axes in per_record if name in axes}
        fill = next(iter(recorded)) if len(recorded) == 1 else _MISSING
        values[name] = [axes.get(name, fill) for axes in per_record]
    groups, rows, kept = [start(r) for r in records], [row(r) for r in records], []
    for name in names:
        first_value = {}
        varies = all_labels and name[0] == "label" and len(set(values[name])) > 1
        within = rows if _splits_rows(name) else groups
        if varies or any(first_value.setdefault(g, v) != v for g, v in zip(within, values[name])):
            kept.append(name)
            groups = [g + (v,) for g, v in zip(groups, values[name])]
            rows = [g + (v,) for g, v in zip(rows, values[name])]
    return kept, {id(r): tuple(values[name][i] for name in kept) for i, r in enumerate(records)}


def _axis_title(name):
    return {"penalty": "Penalty", "lambda": "λ", "beta1": "β1", "beta2": "β2", "disc_iters": "D iters",
            "dataset": "Dataset", "model": "Model"}.get(name[1], name[1])


def _model_order(model):
    return (MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER), model)


def _lower_is_better(metric):
    return results.METRICS[metric]


def _metric_label(records, metric):
    labels = sorted({(r.get("metric_labels") or {}).get(metric, metric) for r in records})
    return ", ".join(labels) or metric


class Cell:
    """One model's finished runs in one group: the values, and the runs without one."""

    def __init__(self, metric):
        self.metric, self.values, self.collapsed, self.lost = metric, [], 0, collections.Counter()

    def add(self, state, record):
        value = record.get(self.metric)
        if state in ("diverged", "failed"):
            self.lost[state] += 1
        elif value is None:
            status = record.get("status")
            self.lost[status if status in ("diverged", "damaged") else
                      "collapsed, no value" if status == "collapsed" else "no value"] += 1
        else:
            self.values.append(value)
            # A collapse is the run's, whichever metric the table shows: its FID says so.
            fid = record.get("fid")
            self.collapsed += record.get("status") == "collapsed" or (fid is not None and fid > COLLAPSE_FID)

    def summary(self):
        return seed_stats.summarize(self.values, _lower_is_better(self.metric))

    def counts_text(self):
        parts = [f"{self.collapsed} collapsed"] * bool(self.collapsed)
        parts += [f"{n} {reason}" for reason, n in sorted(self.lost.items())]
        return ", ".join(parts)


def cells(outcome, metric, key):
    """{key(record): {model: Cell}} over the finished (or finally failed) runs of `outcome`
    (outcomes())."""
    table = collections.defaultdict(dict)
    for state, record in outcome.values():
        if state != "unfinished":
            table[key(record)].setdefault(record["model"], Cell(metric)).add(state, record)
    return table


def _mean_text(summary, digits):
    if summary.mean is None:
        return "—"
    return f"{summary.mean:.{digits}f}" + (f" ± {summary.std:.{digits}f}" if summary.std is not None else "")


def _digits(metric):
    return 4 if metric == "kid" else 2


def _stats_note(metric):
    better = "lower" if _lower_is_better(metric) else "higher"
    collapse = f"FID > {COLLAPSE_FID:g}" + ("" if metric == "fid" else " (whichever metric is shown)") + " or "
    return (f"Mean ± sample std (ddof=1) over the seeds with a value; best = the {better} value of the n "
            f"seeds ({better} is better); collapsed: {collapse}status 'collapsed' (kept in the mean); "
            f"diverged/failed/damaged runs have no value and are counted, not averaged. "
            f"Δ = mean(model) − mean(first model of the row), with a {seed_stats.CONFIDENCE:.0%} percentile "
            f"bootstrap interval ({seed_stats.BOOTSTRAP_RESAMPLES} resamples, seed "
            f"{seed_stats.BOOTSTRAP_SEED}); p: two-sided Welch t-test and Mann–Whitney U (scipy.stats); "
            f"— where a model has fewer than 2 values.")


def _footer(outcome, metric, grouped_by=None, lists_unfinished=False, provenance=True):
    """Notes under a table of `outcome` (outcomes()). Unfinished runs are counted as left out,
    a run scored by two protocols once, unless the table `lists_unfinished`."""
    unfinished = set() if lists_unfinished else {run for (run, _), (state, _) in outcome.items()
                                                 if state == "unfinished"}
    items = [(state, r) for state, r in outcome.values() if lists_unfinished or state != "unfinished"]
    records = [r for _, r in items]
    samples = sorted({r.get("num_samples") for r in records}, key=str)
    networks = sorted({(r.get("feature_network") or {}).get("name") or "?" for r in records})
    steps = sorted({r["step"] for state, r in items if state == "final"})
    stopped = sorted({r["step"] for state, r in items if state != "final"})
    not_finished = (f"; runs that did not finish: diverged at, or last scored at, step(s) "
                    f"{', '.join(map(str, stopped))}")
    lines = [f"Metric: {_metric_label(records, metric)}; feature network: {', '.join(networks)}; "
             f"{', '.join(map(str, samples))} generated samples per set; final step(s): "
             f"{', '.join(map(str, steps)) or '—'}{not_finished if stopped else ''}."]
    if any(n != "inception" for n in networks):
        lines.append("Not Inception FID: not comparable to the papers' numbers.")
    lines += _provenance_notes(records) if provenance else []  # the runs table has a column each
    if grouped_by is not None:
        lines.append(f"Grouped by: {', '.join(grouped_by) or 'nothing (one configuration)'}; runs that "
                     f"differ only in their seed are averaged.")
    if unfinished:
        lines.append(f"{len(unfinished)} run(s) not finished yet (no score at their last step) are left out.")
    return lines


def _code_text(record):
    from compare_ssgan.provenance import describe_short

    return describe_short(record["code_version"]) if record.get("code_version") else _MISSING


def _trained_on_text(record):
    return "; ".join(record.get("training_environment") or []) or _MISSING


def _provenance_notes(records):
    """Which code versions and training environments the counted runs mix, when they mix any:
    neither is an axis (a fix that does not change training must not split a table), but a
    reader must see that a row may average across them."""
    notes = []
    for what, describe in (("Code versions", _code_text), ("Trained on", _trained_on_text)):
        counts = collections.Counter(describe(r) for r in records)
        if len(counts) > 1:
            notes.append(f"{what} (not an axis: a row may average runs of several; --table=runs lists each "
                         f"run's): " + ", ".join(f"{v} ({n} run(s))" for v, n in sorted(counts.items())) + ".")
    return notes


def _counts_note(groups):
    """Every collapsed run and every run without a value, in one line (zero included)."""
    all_cells = [cell for by_model in groups.values() for cell in by_model.values()]
    lost = sum((cell.lost for cell in all_cells), collections.Counter())
    return (f"Runs counted: {sum(len(c.values) for c in all_cells)} with a value, of which "
            f"{sum(c.collapsed for c in all_cells)} collapsed; without a value: "
            + (", ".join(f"{n} {reason}" for reason, n in sorted(lost.items())) or "none") + ".")


# -- tables ---------------------------------------------------------------------------------------

TABLES = {}  # name -> (function(records, fmt, metric) -> text, the record kind it reads)


def table(name, kind="score"):
    """Registers a named table (e.g. a 'representation' table of probe records)."""
    def register(function):
        TABLES[name] = (function, kind)
        return function
    return register


def _baseline(models):
    return sorted(models, key=_model_order)[0]


def by_axes_table(records, fmt, metric="fid"):
    """Any sweep: a row per group (every varying axis except the seed) and model."""
    outcome = outcomes(records)
    finals = [r for _, r in outcome.values()]
    axes, key_of = grouping_axes(finals, start=lambda r: (r["model"],), exclude=(MODEL_AXIS,), row=lambda r: ())
    groups = cells(outcome, metric, lambda r: key_of[id(r)])
    digits = _digits(metric)
    header = [_axis_title(a) for a in axes] + [
        "Model", "n", "mean ± std", "best", "collapsed / no value", "Δ vs first model [95% CI]", "Welch p",
        "Mann–Whitney p"]
    rows = []
    for key in sorted(groups, key=order_key):
        models = sorted(groups[key], key=_model_order)
        base = groups[key][models[0]]
        for model in models:
            cell = groups[key][model]
            s = cell.summary()
            comparison = None if model == models[0] else seed_stats.compare(base.values, cell.values)
            rows.append([value_text(v) for v in key] + [
                MODEL_NAMES.get(model, model), str(s.n), _mean_text(s, digits),
                "—" if s.best is None else f"{s.best:.{digits}f}", cell.counts_text() or "—",
                *(["(first)", "", ""] if model == models[0] else seed_stats.comparison_texts(comparison, digits))])
    notes = _footer(outcome, metric, [_axis_title(a) for a in axes] + ["model"]) + [
        _counts_note(groups), _stats_note(metric)]
    return render(header, rows, notes, fmt)


def setting(record):
    """(penalty type, lambda, beta1, beta2, disc_iters) of a run, from its own record."""
    sn = record.get("architecture_config", {}).get("d_spectral_norm", False)
    penalty = record.get("penalty", "no_penalty")
    if penalty == "no_penalty":
        name, lam = ("SN" if sn else "none"), None
    else:
        name, lam = {"wgan_gp": "WGAN-GP", "dragan": "DRAGAN", "l2": "L2"}.get(penalty, penalty), record.get("lambda")
        name += " + SN" if sn else ""
    return name, lam, record["beta1"], record["beta2"], record["disc_iters"]


def _setting_order(s):
    return s[0], s[1] or 0, s[2], s[3], s[4]


@table("robustness")
def robustness_table(records, fmt, metric="fid"):
    """Rows: any other varying axes, then the setting; per dataset, per model: mean ± std (the
    better model in bold, † mean FID > 100), best, n; then Δ [CI], Welch p, Mann–Whitney p
    against the first model."""
    outcome = outcomes(records)
    finals = [r for _, r in outcome.values()]
    extra, key_of = grouping_axes(finals, start=lambda r: (r["dataset"], setting(r), r["model"]),
                                  exclude=(MODEL_AXIS, ("run", "dataset")), all_labels=False,
                                  row=lambda r: (r["dataset"], setting(r)))
    groups = cells(outcome, metric, lambda r: (r["dataset"], key_of[id(r)], setting(r)))
    datasets = sorted({d for d, _, _ in groups})
    models = sorted({m for c in groups.values() for m in c}, key=_model_order)
    digits, lower = _digits(metric), _lower_is_better(metric)
    header = [_axis_title(a) for a in extra] + ["Penalty", "λ", "β1", "β2", "D iters"]
    for d in datasets:
        header += [col for m in models for col in (f"{d}: {MODEL_NAMES.get(m, m)}", "best", "n")]
        header += [f"{d}: Δ {MODEL_NAMES.get(m, m)} − {MODEL_NAMES.get(models[0], models[0])} [95% CI]"
                   for m in models[1:]]
        header += [f"{test}{f' ({MODEL_NAMES.get(m, m)})' if len(models) > 2 else ''}"
                   for m in models[1:] for test in ("Welch p", "Mann–Whitney p")]
    rows = []
    for other, s in sorted({(k, s) for _, k, s in groups}, key=lambda ks: (order_key(ks[0]),
                                                                             _setting_order(ks[1]))):
        row = [value_text(v) for v in other] + [s[0], value_text(s[1]), f"{s[2]:g}", f"{s[3]:g}", str(s[4])]
        for d in datasets:
            cellmap = groups.get((d, other, s), {})
            summaries = {m: cellmap[m].summary() if m in cellmap else seed_stats.summarize([]) for m in models}
            means = [x.mean for x in summaries.values() if x.mean is not None]
            best_mean = (min if lower else max)(means, default=None)
            tests = []
            for m in models:
                x, cell = summaries[m], cellmap.get(m)
                text = _mean_text(x, digits)
                if metric == "fid" and x.mean is not None and x.mean > COLLAPSE_FID:
                    text += "†"
                if cell is not None and cell.counts_text():
                    text += f" ({cell.counts_text()})"
                row += [mark_best(text, fmt, len(means) > 1 and x.mean == best_mean),
                        "—" if x.best is None else f"{x.best:.{digits}f}", str(x.n)]
            for m in models[1:]:
                base, cell = cellmap.get(models[0]), cellmap.get(m)
                tests.append(seed_stats.comparison_texts(
                    seed_stats.compare(base.values, cell.values) if base and cell else None, digits))
            row += [t[0] for t in tests] + [p for t in tests for p in t[1:]]
        rows.append(row)
    grouped = [_axis_title(a) for a in extra] + ["dataset", "penalty", "λ", "β1", "β2", "D iters", "model"]
    notes = _footer(outcome, metric, grouped) + [_counts_note(groups),
        _stats_note(metric) + (f" Bold: the better mean of a row; † mean FID > {COLLAPSE_FID:g}."
                               if metric == "fid" else " Bold: the better mean of a row.")]
    return render(header, rows, notes, fmt)


@table("sample_quality")
def sample_quality_table(records, fmt, metric="fid"):
    """Rows: model (after any other varying axes); per dataset the best final value over seeds."""
    outcome = outcomes(records)
    finals = [r for _, r in outcome.values()]
    extra, key_of = grouping_axes(finals, start=lambda r: (r["dataset"], r["model"]),
                                  exclude=(MODEL_AXIS, ("run", "dataset")), all_labels=False,
                                  row=lambda r: (r["dataset"],))
    groups = cells(outcome, metric, lambda r: (r["dataset"], key_of[id(r)]))
    datasets = sorted({d for d, _ in groups})
    others = sorted({k for _, k in groups}, key=order_key)
    models = sorted({m for c in groups.values() for m in c}, key=_model_order)
    digits = _digits(metric)
    header = [_axis_title(a) for a in extra] + ["Model"] + datasets
    rows = []
    for other in others:
        for m in models:
            row = [value_text(v) for v in other] + [MODEL_NAMES.get(m, m)]
            for d in datasets:
                cell = groups.get((d, other), {}).get(m)
                x = cell.summary() if cell else seed_stats.summarize([])
                text = "—" if x.best is None else f"{x.best:.{digits}f} (of {x.n}; {_mean_text(x, digits)})"
                row.append(text + (f" [{cell.counts_text()}]" if cell and cell.counts_text() else ""))
            if any(c != "—" for c in row[len(other) + 1:]):
                rows.append(row)
    notes = _footer(outcome, metric, [_axis_title(a) for a in extra] + ["dataset", "model"]) + [
        _counts_note(groups), "Best final-step value over seeds (of n seeds; mean ± std); "
        + ("lower" if _lower_is_better(metric) else "higher") + " is better."]
    return render(header, rows, notes, fmt)


@table("runs")
def runs_table(records, fmt, metric="fid"):
    """One row per run (and protocol) at its last scored step."""
    outcome = outcomes(records)
    everything = list(outcome.values())
    axes, key_of = grouping_axes([r for _, r in everything], start=lambda r: (r["model"],), exclude=(MODEL_AXIS,),
                                 row=lambda r: ())
    runs = sorted(everything, key=lambda item: (order_key(key_of[id(item[1])]),
                                                _model_order(item[1]["model"]), item[1].get("seed", 0)))
    digits = _digits(metric)
    header = [_axis_title(a) for a in axes] + ["Model", "Seed", "Step", _metric_label(records, metric),
                                               "KID" if metric != "kid" else "FID", "State", "Code", "Trained on"]
    second = "kid" if metric != "kid" else "fid"
    rows = []
    for state, r in runs:
        value = "—" if r.get(metric) is None else f"{r[metric]:.{digits}f}" + (
            f" ± {r[metric + '_std']:.{digits}f}" if r.get(metric + "_std") is not None else "")
        other = "—" if r.get(second) is None else f"{r[second]:.{_digits(second)}f}"
        rows.append([value_text(v) for v in key_of[id(r)]] + [
            MODEL_NAMES.get(r["model"], r["model"]), str(r.get("seed", "?")),
            f"{r['step']}/{r.get('training_steps', r['step'])}", value, other,
            r["status"] if state == "final" else "failed: diverged" if state == "diverged" else state,
            "—" if not r.get("code_version") else _code_text(r), _trained_on_text(r)])
    notes = _footer(outcome, metric, [_axis_title(a) for a in axes] + ["model"], lists_unfinished=True,
                    provenance=False) + [
        "One row per run at its last scored step; value ± std over the generated sample sets; state: "
        "ok/collapsed/diverged/damaged for finished runs, else unfinished, failed, or failed: diverged "
        "(a non-finite training loss at that step). Trained on: the machine (CPU model), threads, oneDNN switch "
        "and precision of each training session (compare_ssgan/environment.py); not an axis, but it changes "
        "a run's numbers."]
    return render(header, rows, notes, fmt)


def render(header, rows, notes, fmt):
    if fmt == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(rows)
        return buffer.getvalue() + render_notes(notes, fmt)
    if fmt == "latex":
        def esc(text):  # cells may hold markup already (\textbf, $\pm$): only what no markup uses
            text = str(text).translate(LATEX_SPECIALS).replace("±", "$\\pm$").replace("†", "$^\\dagger$")
            return text.replace("λ", "$\\lambda$").replace("β", "$\\beta$").replace("Δ", "$\\Delta$").replace(
                "−", "$-$")
        lines = ["\\begin{tabular}{" + "l" * len(header) + "}", "\\toprule",
                 " & ".join(esc(h) for h in header) + " \\\\", "\\midrule"]
        lines += [" & ".join(esc(c) for c in row) + " \\\\" for row in rows]
        lines += ["\\bottomrule", "\\end{tabular}"]
        return "\n".join(lines) + "\n" + render_notes(notes, fmt)
    lines = ["| " + " | ".join(str(h).replace("|", "\\|") for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n\n" + render_notes(notes, fmt)


def render_notes(notes, fmt):
    """The notes under a table: CSV rows starting '# ', LaTeX comments, or markdown paragraphs."""
    if fmt == "csv":
        import csv
        import io

        buffer = io.StringIO()
        csv.writer(buffer).writerows([f"# {note}"] for note in notes)
        return buffer.getvalue()
    if fmt == "latex":
        return "".join(f"% {note}\n" for note in notes)
    return "\n\n".join(notes) + "\n"


def plot_curves(records, plot_dir, metric="fid"):
    """One PNG per dataset: metric vs step, a panel per group (every varying axis except the
    seed, model and dataset), a line per model (mean over its seeds at the steps every seed
    reached, seed_stats.common_steps) over a thin line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(plot_dir, exist_ok=True)
    scored = [r for r in records if r.get(metric) is not None]
    axes, key_of = grouping_axes(scored, start=lambda r: (r["dataset"], r["model"], r["step"]),
                                 exclude=(MODEL_AXIS, ("run", "dataset")), row=lambda r: (r["dataset"],))
    curves = collections.defaultdict(lambda: collections.defaultdict(lambda: collections.defaultdict(dict)))
    for r in scored:  # one record per run, step and protocol (the protocol is a grouping axis)
        curves[r["dataset"]][key_of[id(r)]][r["model"]].setdefault(run_key(r), {})[r["step"]] = r[metric]
    paths = []
    label = _metric_label(scored, metric) if scored else metric
    for dataset, by_group in curves.items():
        keys = sorted(by_group, key=order_key)
        cols = min(3, len(keys))
        nrows = math.ceil(len(keys) / cols)
        fig, panels = plt.subplots(nrows, cols, figsize=(4.5 * cols, 3.4 * nrows), squeeze=False)
        for ax, key in zip(panels.flat, keys):
            for model in sorted(by_group[key], key=_model_order):
                runs = by_group[key][model]
                per_step = seed_stats.common_steps(runs)
                line, = ax.plot(list(per_step), [sum(v) / len(v) for v in per_step.values()], marker="o",
                                label=f"{MODEL_NAMES.get(model, model)} (mean of {len(runs)})")
                for values in runs.values():  # each seed, thin: also the steps not every seed reached
                    ax.plot(sorted(values), [values[t] for t in sorted(values)], color=line.get_color(),
                            alpha=0.3, linewidth=0.8)
            ax.set_title(", ".join(f"{_axis_title(a)}={value_text(v)}" for a, v in zip(axes, key)) or dataset,
                         fontsize=8)
            ax.set_xlabel("generator step")
            ax.set_ylabel(label, fontsize=8)
            ax.legend(fontsize=8)
        for ax in list(panels.flat)[len(keys):]:
            ax.axis("off")
        fig.suptitle(f"{dataset}: {label} vs step (mean over seeds; thin: each seed)", fontsize=10)
        fig.tight_layout()
        path = os.path.join(plot_dir, f"{metric}_vs_step_{dataset}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _metrics_of(kind):
    return [m for m in results.METRICS if (m in ("train_top1", "test_top1")) == (kind == "probe")]


def main(argv):
    del argv
    if not FLAGS.results:
        raise app.UsageError("--results is required")
    if FLAGS.table in REPRESENTATION_TABLES:  # the runs' probes.jsonl, not the sweep's scores
        import representation_table

        try:
            if FLAGS.table == "representation_runs" and FLAGS.metric not in _metrics_of("score"):
                raise ValueError(f"--metric={FLAGS.metric}: the per-run representation table shows a "
                                 f"score metric ({', '.join(_metrics_of('score'))}) beside the probes")
            representation_table.main(FLAGS.results, FLAGS.format, FLAGS.output, FLAGS.plot_dir, render,
                                      render_notes, MODEL_NAMES, MODEL_ORDER,
                                      per_run=FLAGS.table == "representation_runs",
                                      metric=FLAGS.metric, digits=_digits(FLAGS.metric))
        except (FileNotFoundError, ValueError, results.RecordError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        return
    function, kind = TABLES[FLAGS.table] if FLAGS.table else (by_axes_table, "score")
    metrics = _metrics_of(kind)
    try:
        if FLAGS.metric not in metrics:
            raise ValueError(f"--metric={FLAGS.metric} is not a metric of {kind} records; valid: "
                             f"{', '.join(metrics)}")
        every = load(FLAGS.results)
        records = [r for r in every if r["kind"] == kind]
        # The papers' layouts hold one protocol; the axis table gives each protocol its rows.
        records = (select if FLAGS.table else filter_protocol)(records, FLAGS.feature_network, FLAGS.num_samples)
    except (FileNotFoundError, ValueError, results.RecordError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    text = function(records, FLAGS.format, FLAGS.metric)
    unscored = unscored_runs(FLAGS.results, every)
    if unscored:
        text += ("\n" if FLAGS.format == "markdown" else "") + render_notes([_unscored_note(unscored)], FLAGS.format)
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if FLAGS.plot_dir:
        for path in plot_curves(records, FLAGS.plot_dir, FLAGS.metric):
            print(f"wrote {path}", file=sys.stderr)


FLAGS = flags.FLAGS
flags.DEFINE_string("results", None, "Sweep directory holding results.jsonl (or the file itself).")
REPRESENTATION_TABLES = ("representation", "representation_runs")  # benchmarks/representation_table.py
flags.DEFINE_enum("table", None, list(TABLES) + list(REPRESENTATION_TABLES),
                  "A paper's layout (representation, representation_runs: benchmarks/representation_table.py); "
                  "default: any sweep, grouped by its axes.")
flags.DEFINE_enum("format", "markdown", ["markdown", "latex", "csv"], "Output format.")
flags.DEFINE_string("metric", "fid", f"Which metric: {', '.join(results.METRICS)}.")
flags.DEFINE_string("output", None, "Write the table here instead of stdout.")
flags.DEFINE_string("plot_dir", None, "Also draw metric-vs-step curves here (PNG).")
flags.DEFINE_string("feature_network", None, "Only scores from this feature network.")
flags.DEFINE_integer("num_samples", None, "Only scores from this many generated samples.")

if __name__ == "__main__":
    app.run(main)
