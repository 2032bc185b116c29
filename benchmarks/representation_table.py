"""SS-GAN's representation table and curves (Chen et al., CVPR 2019, Table 3 and Figure 8).

python benchmarks/make_tables.py --results=sweeps/rep --table=representation --format=markdown \
    --plot_dir=sweeps/rep/plots

Reads every probes.jsonl under --results (one per run, written by --schedule=probe, see
compare_ssgan/eval/probes.py). Table: a row per model (Uncond-GAN, Cond-GAN, Rot-only,
SS-GAN, SS-GAN (sBN), then any other), a column per D block, the cell the mean ± std over
seeds of the linear probe's test top-1 at the table's last probed step (a run probed only to
an earlier step is named under the table, not averaged in); the best model of each block in
bold. Curves: test top-1 against the GAN's generator step, a panel per block, a line per model
(mean over seeds, band: ± std). Models with SS-GAN's rotation task get a last column: D's
rotation accuracy on the probe's test images (all four rotations; chance 0.25; "—" for the
others), with its own seed count: probes recorded before the field existed lack it.
A last row tests the paper's claim per block, SS-GAN against Uncond-GAN: the difference of the
means, its bootstrap interval, Welch and Mann-Whitney p (benchmarks/seed_stats.py, as the
robustness table).
A table never mixes probe settings, datasets or training configurations: runs that differ in
any of them (the training setup every model shares, SHARED_FIELDS, and the gin bindings of the
runs' sweep_spec.json) get a table and a plot each,
headed by what differs (configurations); seeds of one model that differ in what makes the model
are refused, the error naming what differs. Sweep runs without probe records (failed, not
finished, or not probed) are named under the table, never left out silently.
"""
import collections
import json
import os
import re

import seed_stats
import sweep
from table_text import LATEX_SPECIALS, mark_best, order_key, value_text
from compare_ssgan import config_contract, results


def load_probes_by_file(path):
    """{probes.jsonl path: its probe records} for every probes.jsonl under `path` (a directory,
    or one file), each record given its run's sweep bindings and operative config (configurations
    groups by them)."""
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(d, f) for d, _, names in os.walk(path) for f in names if f == results.PROBES_FILE)
    if not files:
        raise FileNotFoundError(f"no probes.jsonl under {path}: run --schedule=probe on the runs first")
    # Validated and migrated by the record schema; errors name file and line.
    by_file = {name: [r for r in results.read(name) if r["kind"] == "probe"] for name in files}
    records = [r for group in by_file.values() for r in group]
    if not records:
        raise ValueError(f"no probe records in the probes.jsonl under {path}: re-run --schedule=probe on the runs")
    for name, group in by_file.items():  # the run's sweep bindings and presets, its operative config
        beside = {"sweep": _read(os.path.dirname(name), sweep.SPEC_FILE, json.load),
                  "gin_config": _read(os.path.dirname(name), config_contract.CONFIG_FILE, lambda f: f.read())}
        for r in group:
            r.update({key: value for key, value in beside.items() if value and key not in r})
            r[RUN] = os.path.dirname(os.path.abspath(name))
    return by_file


def _read(run, name, parse):
    path = os.path.join(run, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return parse(f)


def load_probes(path):
    """The probe records of every probes.jsonl under `path` (see load_probes_by_file)."""
    return [r for group in load_probes_by_file(path).values() for r in group]


# Training hyperparameters every row of the table shares (the models differ in the rest).
SHARED_FIELDS = ("architecture", "loss", "penalty", "lambda", "beta1", "beta2", "disc_iters", "g_lr", "d_lr",
                 "batch_size", "training_steps", "ema_decay", "dataset", "network size")
# Architecture settings that define a Table 3 model rather than its size: Cond-GAN's projection
# D and conditional BN, SS-GAN (sBN)'s self-modulated BN. Every other architecture setting
# (widths, spectral norm, z) is compared as "network size".
MODEL_ARCHITECTURE_KEYS = ("g_norm", "projection")


def _shared_value(record, field):
    if field == "network size":
        config = record.get("architecture_config") or {}
        return {k: v for k, v in config.items() if k not in MODEL_ARCHITECTURE_KEYS}
    return record.get(field)


def _canonical(value):
    """A field's value, comparable and hashable: 0 equals 0.0, lists become tuples."""
    if isinstance(value, (list, tuple)):
        return tuple(json.dumps(x, sort_keys=True) if isinstance(x, (dict, list)) else _canonical(x) for x in value)
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _flat(name, value):
    if isinstance(value, dict):
        return [item for key in sorted(value) for item in _flat(f"{name}.{key}", value[key])]
    return [(name, _canonical(value))]


def table_fields(record, bindings=()):
    """What one table holds fixed ({name: value}, dicts flattened, e.g. 'network size.width'),
    in heading order: the training setup every model of Table 3 shares, the probe setting, then
    the sweep `bindings` (the run's own, sweep_spec.json, else its operative config's value) and
    the preset files. A value the run does not record is left out (see configurations)."""
    fields = [item for field in SHARED_FIELDS for item in _flat(field, _shared_value(record, field))]
    for name in ("train_split", "num_train", "test_split", "num_test"):
        fields += _flat(name, record.get(name))
    fields += _flat("probe", record.get("probe") or {})
    block = record.get("sweep") or {}
    given = dict(block.get("bindings", ()))
    for name in bindings:
        value = results.gin_value(name, given[name]) if name in given else results.operative_binding(record, name)
        fields += [] if value is None else [(name, _canonical(value))]
    if "gin_files" in block:  # the model's own file first, the presets after it
        fields.append(("presets", tuple(block["gin_files"][1:])))
    return dict(fields)


def configurations(records):
    """[({field: value} that tells this table from the others, its records)]: one table per
    dataset, probe setting, shared training setup (SHARED_FIELDS) and sweep binding, so a cell
    never averages and a row never compares across them; a single ({}, records) when they all
    agree. A field is named only where it splits the tables its earlier fields make. A field some
    runs do not record (e.g. no sweep_spec.json: launched by hand) counts as the others' value
    when they all agree, else as "not recorded", as make_tables.py's grouping does."""
    bindings = list(dict.fromkeys(name for r in records for name, _ in (r.get("sweep") or {}).get("bindings", ())
                                  if name not in results.DATA_LOCATION_BINDINGS))
    per_record = [table_fields(r, bindings) for r in records]
    names = list(dict.fromkeys(name for fields in per_record for name in fields))
    keys, kept = [()] * len(records), []
    for name in names:
        recorded = {fields[name] for fields in per_record if name in fields}
        fill = next(iter(recorded)) if len(recorded) == 1 else "not recorded"
        values = [fields.get(name, fill) for fields in per_record]
        first = {}
        if any(first.setdefault(key, value) != value for key, value in zip(keys, values)):
            kept.append(name)
            keys = [key + (value,) for key, value in zip(keys, values)]
    groups = collections.defaultdict(list)
    for record, key in zip(records, keys):
        groups[key].append(record)
    return [(dict(zip(kept, key)), groups[key]) for key in sorted(groups, key=order_key)]


def configuration_text(fields):
    return "; ".join(f"{name} = {value_text(value)}" for name, value in fields.items())


def _check_one_configuration(records, path):
    """Seeds of one model in one table must be one configuration (the table's shared fields
    already agree; this catches e.g. two task weights under one model name)."""
    by_model = collections.defaultdict(list)
    for r in records:
        by_model[r["model"]].append(r)
    for model, group in by_model.items():
        fields = sorted(f for f in results.RUN_FIELDS if len({tuple(_flat(f, r.get(f))) for r in group}) > 1)
        if fields:
            raise ValueError(f"the {model} runs under {path} differ in {', '.join(fields)}: a cell would "
                             f"average different configurations; point --results at one configuration per model")


_UNPROBED_TEXTS = {"failed": "failed (see each run's log)", "done": "finished, not probed (run --schedule=probe)"}


def unprobed_note(path, by_file):
    """Sweep runs under `path` (a sweep directory or its export) without probe records: no cell
    can hold them, so the table names them rather than leaving them out silently."""
    if not os.path.isdir(path):
        return None
    probed = {os.path.realpath(os.path.dirname(name)) for name, records in by_file.items() if records}
    missing = collections.defaultdict(list)
    for run_id, (run, state) in sweep.run_states(path).items():
        if os.path.realpath(run) not in probed:
            missing[state].append(run_id)
    if not missing:
        return None
    return "In no cell (no probe records): " + "; ".join(
        f"{len(ids)} run(s) {_UNPROBED_TEXTS.get(state, f'not finished (state {state})')}: {', '.join(ids)}"
        for state, ids in sorted(missing.items(), key=lambda item: str(item[0]))) + "."


def _mean_std(values):
    summary = seed_stats.summarize(values, lower_is_better=False)
    return summary.mean, summary.std


TABLE3_ORDER = ["uncond", "cond", "rot_only", "ssgan", "ssgan_sbn"]  # SS-GAN's Table 3 rows
CLAIM = ("uncond", "ssgan")  # SS-GAN above Uncond-GAN in every block (Chen et al. section 4, appendix C, Fig. 8)
ROTATION = "rotation"  # the cells' key of D's rotation accuracy
RUN = "run_dir"  # the key load_probes_by_file gives each record: its run's directory (one probes.jsonl)


def final_cells(records):
    """({model: {block: [test top-1 per seed]}} (and under ROTATION, D's rotation accuracy per
    seed where recorded) at the table's final step, that step, {run: its last probed step} for the
    runs probed only to an earlier one). The final step is the last any run of the table was
    probed at: a run that failed or stopped before it, or is still being probed, is in no cell,
    never averaged in at an earlier step."""
    last = {}
    for r in records:
        last[r[RUN]] = max(last.get(r[RUN], r["step"]), r["step"])
    final = max(last.values())
    cells = collections.defaultdict(lambda: collections.defaultdict(list))
    rotation = {}  # per run: one value (every block's record of a step carries the same one)
    for r in records:
        if r["step"] == final:
            cells[r["model"]][r["block"]].append(r["test_top1"])
            if r.get("d_rotation_accuracy") is not None:
                rotation[r[RUN]] = (r["model"], r["d_rotation_accuracy"])
    for model, value in rotation.values():
        cells[model][ROTATION].append(value)
    return cells, final, {run: step for run, step in last.items() if step < final}


def _cell_text(values, fmt, bold=False):
    """'mean ± std (n)' of one cell's per-seed values, or '—' when there are none."""
    if not values:
        return "—"
    mean, std = _mean_std(values)
    text = f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "") + f" ({len(values)})"
    text = mark_best(text, fmt, bold)
    return text.replace("±", "$\\pm$") if fmt == "latex" else text


def table(records, fmt, render, names, order, extra_notes=()):
    cells, final, short = final_cells(records)
    models = [m for m in order if m in cells] + sorted(set(cells) - set(order))
    blocks = sorted({b for c in cells.values() for b in c if b != ROTATION})
    rotation = any(cells[m].get(ROTATION) for m in models)
    means = {(m, b): _mean_std(cells[m][b])[0] for m in models for b in blocks if cells[m].get(b)}
    best = {b: max((means[m, b] for m in models if (m, b) in means), default=None) for b in blocks}
    rows = []
    for m in models:
        row = [names.get(m, m)]
        for b in blocks:
            values = cells[m].get(b)
            bold = len(models) > 1 and bool(values) and means[m, b] == best[b]
            row.append(_cell_text(values, fmt, bold))
        rows.append(row + ([_cell_text(cells[m].get(ROTATION), fmt)] if rotation else []))
    baseline, model = CLAIM
    claim = baseline in cells and model in cells
    if claim:  # the paper's claim, tested: a row of differences
        baseline_name, model_name = names.get(baseline, baseline), names.get(model, model)
        row = [f"{model_name} vs {baseline_name}"]
        for b in blocks:
            delta, welch, mannwhitney = seed_stats.comparison_texts(
                seed_stats.compare(cells[baseline].get(b, []), cells[model].get(b, [])), 3)
            row.append(delta if welch == "—" else f"{delta}; p {welch} / {mannwhitney}")
        rows.append(row + (["—"] if rotation else []))
    r = records[0]
    pooling = (f"average-pooled to {r['probe']['pooled_size']}x{r['probe']['pooled_size']}"
               if r["probe"].get("pooled_size") else
               f"average-pooled to <= {r['probe']['max_features']:,} dims (Zhang et al.)")
    notes = [f"Linear probe (multinomial logistic regression, C in {r['probe']['inverse_regularization']}) "
             f"on each D block of {r['dataset']} runs; {pooling}; trained on {r['num_train']:,} "
             f"{r['train_split']} images, top-1 on {r['num_test']:,} {r['test_split']} images.",
             f"Mean ± std (sample std) over seeds (count in parentheses) at GAN step {final}, the last step "
             f"the runs were probed at; higher is better; the best model of each block in bold."]
    if short:
        notes.append("In no cell (probed only to an earlier step): " + ", ".join(
            f"{os.path.basename(run)} (step {step})" for run, step in sorted(short.items())) + ".")
    if claim:
        notes.append(f"{model_name} vs {baseline_name}: mean({model_name}) − mean({baseline_name}) "
                     f"with a {seed_stats.CONFIDENCE:.0%} percentile bootstrap interval; p: two-sided Welch "
                     f"t-test / Mann–Whitney U over the seeds (benchmarks/seed_stats.py); no interval or p "
                     f"with fewer than 2 seeds of either model.")
    if rotation:
        notes.append(f"D rotation acc.: D's rotation head on all four rotations of the same "
                     f"{r['num_test']:,} {r['test_split']} images (chance 0.25), same step, mean ± std over seeds (count).")
    unconverged = sum(not x.get("converged", True) for x in records)
    if unconverged:
        notes.append(f"{unconverged} probe fit(s) stopped at max_iter before converging.")
    notes += extra_notes
    return render(["Model"] + [f"Block {b}" for b in blocks] + (["D rotation acc."] if rotation else []),
                  rows, notes, fmt)


def runs_table(by_file, parts, fmt, render, names, order, metric="fid", digits=2, extra_notes=()):
    """One row per run and probed step: test top-1 per block, D's rotation accuracy, and the
    run's `metric` at that checkpoint (its scores.jsonl beside probes.jsonl): the per-seed values
    behind the table, and how the representation moves with sample quality. Runs of different
    configurations (`parts`, from configurations) get a column per field that differs."""
    blocks = sorted({r["block"] for group in by_file.values() for r in group})
    varying = list(parts[0][0]) if parts else []
    configuration_of = {id(r): tuple(fields.values()) for fields, group in parts for r in group}
    rows, scored = [], []
    for name, probes in by_file.items():
        if not probes:
            continue
        scores_path = os.path.join(os.path.dirname(name), results.SCORES_FILE)
        scores = {}
        for r in results.read(scores_path) if os.path.exists(scores_path) else []:
            if r["kind"] == "score" and r.get(metric) is not None:
                scores[r["step"]] = r[metric]
                scored.append(r)
        model, seed = probes[0]["model"], probes[0].get("seed", "?")
        rank = order.index(model) if model in order else len(order)
        for configuration in {configuration_of[id(r)] for r in probes}:
            probed = [r for r in probes if configuration_of[id(r)] == configuration]
            for step in sorted({r["step"] for r in probed}):
                at = {r["block"]: r for r in probed if r["step"] == step}
                rotation = next((r["d_rotation_accuracy"] for r in at.values()
                                 if r.get("d_rotation_accuracy") is not None), None)
                rows.append((order_key(configuration) + (rank, model, str(seed), step),
                             [value_text(v) for v in configuration]
                             + [names.get(model, model), str(seed), str(step)]
                             + [f"{at[b]['test_top1']:.3f}" if b in at else "—" for b in blocks]
                             + ["—" if rotation is None else f"{rotation:.3f}",
                                "—" if step not in scores else f"{scores[step]:.{digits}f}"]))
    protocols = sorted({((r.get("feature_network") or {}).get("name") or "?", r.get("num_samples")) for r in scored},
                       key=str)
    if len(protocols) > 1:  # one column never mixes feature networks or sample counts
        raise ValueError(f"the runs were scored with {len(protocols)} protocols (feature network, samples): "
                         f"{protocols}; rescore them alike or point --results at a subset")
    label = ", ".join(sorted({(r.get("metric_labels") or {}).get(metric, metric) for r in scored})) or metric
    notes = [f"One row per run and probed GAN step: linear-probe test top-1 per D block, D's rotation "
             f"accuracy on the probe's test images (chance 0.25; — without a rotation head), and {label} "
             f"of that checkpoint from the run's {results.SCORES_FILE} (— where not scored)."]
    if protocols:
        [(network, samples)] = protocols
        notes.append(f"Feature network: {network}; {samples} generated samples per set."
                     + ("" if network == "inception" else " Not Inception: not comparable to the papers' numbers."))
    notes += extra_notes
    return render(varying + ["Model", "Seed", "Step"] + [f"Block {b}" for b in blocks] + ["D rotation acc.", label],
                  [row for _, row in sorted(rows)], notes, fmt)


def plot_curves(records, plot_dir, names, order, configuration=None):
    """Figure 8's layout: test top-1 vs GAN step, a panel per block, a line per model (mean ±
    std over its seeds, at the steps every seed reached). One configuration (see configurations):
    where there are several, its fields title the figure and name its file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = collections.defaultdict(lambda: collections.defaultdict(lambda: collections.defaultdict(dict)))
    for r in records:  # a run: one seed of a model (one configuration per model, _check_one_configuration)
        series[r["block"]][r["model"]].setdefault(r[RUN], {})[r["step"]] = r["test_top1"]
    blocks = sorted(series)
    fig, axes = plt.subplots(1, len(blocks), figsize=(3.6 * len(blocks), 3.2), squeeze=False, sharey=True)
    for ax, block in zip(axes[0], blocks):
        for model in sorted(series[block], key=lambda m: order.index(m) if m in order else len(order)):
            per_step = seed_stats.common_steps(series[block][model])  # the steps every seed reached
            steps = list(per_step)
            stats = [_mean_std(values) for values in per_step.values()]
            means = [m for m, _ in stats]
            stds = [s or 0.0 for _, s in stats]
            ax.plot(steps, means, marker="o", label=names.get(model, model))
            ax.fill_between(steps, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                            alpha=0.2)
        ax.set_title(f"Block {block}", fontsize=10)
        ax.set_xlabel("GAN generator step")
    axes[0, 0].set_ylabel(f"probe test top-1 ({records[0]['dataset']})")
    axes[0, -1].legend(fontsize=8)
    if configuration:
        fig.suptitle(configuration_text(configuration), fontsize=9)
    fig.tight_layout()
    os.makedirs(plot_dir, exist_ok=True)
    suffix = "".join(f"_{name}-{value_text(value)}" for name, value in (configuration or {}).items())
    suffix = re.sub(r"[^A-Za-z0-9._=-]+", "", suffix.replace(" ", "_"))
    path = os.path.join(plot_dir, f"probe_vs_step_{records[0]['dataset']}{suffix}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _heading(text, fmt):
    """A heading above one of several tables, visible in each format."""
    if fmt == "latex":
        return "\\paragraph{" + text.translate(LATEX_SPECIALS) + "}\n"
    return {"markdown": f"**{text}**\n\n", "csv": f"# {text}\n"}[fmt]


def main(path, fmt, output, plot_dir, render, render_notes, names, order, per_run=False, metric="fid",
         digits=2):
    """make_tables.py --table=representation (or representation_runs, `per_run`, with `metric`
    printed to `digits` decimals): the table to `output` (or stdout), the curves to `plot_dir`.
    Runs of several configurations (see configurations) get a table and a plot each."""
    import sys

    by_file = load_probes_by_file(path)
    records = [r for group in by_file.values() for r in group]
    order = TABLE3_ORDER + [m for m in order if m not in TABLE3_ORDER]
    extra_notes = [note for note in [unprobed_note(path, by_file)] if note]
    parts = configurations(records)
    for _, group in parts:
        _check_one_configuration(group, path)
    if per_run:
        text = runs_table(by_file, parts, fmt, render, names, order, metric, digits, extra_notes)
    elif len(parts) == 1:
        text = table(records, fmt, render, names, order, extra_notes)
    else:  # a table each, headed by what sets it apart; the notes about every run once, at the end
        text = "".join(_heading(f"Configuration {i} of {len(parts)}: {configuration_text(fields)}", fmt)
                       + table(group, fmt, render, names, order) + ("\n" if fmt == "markdown" else "")
                       for i, (fields, group) in enumerate(parts, 1))
        text += render_notes(extra_notes, fmt) if extra_notes else ""
    if output:
        with open(output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if plot_dir:
        for fields, group in parts:
            print(f"wrote {plot_curves(group, plot_dir, names, order, fields)}", file=sys.stderr)
