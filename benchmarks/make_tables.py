"""Tables and plots from a sweep's results.jsonl (written by sweep.py).

python benchmarks/make_tables.py --results=sweeps/rob --table=robustness --format=markdown
python benchmarks/make_tables.py --results=sweeps/sq --table=sample_quality --format=latex

robustness: SS-GAN Table 2's layout. Rows: penalty, lambda, beta1, beta2, D iters; per
dataset a column per model with mean ± std of the final-step FID over seeds; the better
(lower) model of a row is marked; FID > 100 is flagged as collapsed.
sample_quality: SS-GAN Table 1's layout: the best final-step FID over seeds per model.
runs: one row per run (setting, model, seed, final step, FID ± std over sample sets, KID,
state, the code version that scored it), the per-seed values behind the other two tables.
Under each table: the feature network that produced the FID (papers use Inception; any other
network's FID is not comparable to theirs) and the sample count. --plot_dir also draws
FID-versus-step curves per setting (one PNG per dataset).
"""
import collections
import json
import math
import os
import sys

from absl import app, flags

from compare_ssgan import jsonl

flags.DEFINE_string("results", None, "Sweep directory holding results.jsonl (or the file itself).")
flags.DEFINE_enum("table", "robustness", ["robustness", "sample_quality", "runs"], "Which table.")
flags.DEFINE_enum("format", "markdown", ["markdown", "latex", "csv"], "Output format.")
flags.DEFINE_string("output", None, "Write the table here instead of stdout.")
flags.DEFINE_string("plot_dir", None, "Also draw FID-vs-step curves here (PNG).")
flags.DEFINE_string("feature_network", None, "Only scores from this feature network.")
flags.DEFINE_integer("num_samples", None, "Only scores from this many generated samples.")
FLAGS = flags.FLAGS

COLLAPSE_FID = 100.0
MODEL_NAMES = {"uncond": "Uncond-GAN", "cond": "Cond-GAN", "ssgan": "SS-GAN", "ssgan_sbn": "SS-GAN (sBN)",
               "rot_only": "Rot-only", "ltgan": "LT-GAN", "crgan": "CR-GAN", "cr_ltgan": "CR+LT"}
MODEL_ORDER = list(MODEL_NAMES)


def load(path):
    if os.path.isdir(path):
        path = os.path.join(path, "results.jsonl")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist: run benchmarks/sweep.py first")
    return jsonl.read(path, strict=True)  # a torn line stops the tables, naming file and line


def run_key(record):
    return record.get("sweep", {}).get("run_id") or record["model_dir"]


def select(records, feature_network=None, num_samples=None):
    """The records of one evaluation protocol: a table never mixes feature networks or sample
    counts (FID depends on both)."""
    if feature_network:
        records = [r for r in records if (r.get("feature_network") or {}).get("name") == feature_network]
    if num_samples:
        records = [r for r in records if r.get("num_samples") == num_samples]
    protocols = sorted({((r.get("feature_network") or {}).get("name"), r.get("num_samples")) for r in records},
                       key=str)
    if len(protocols) > 1:
        raise ValueError(f"the results mix evaluation protocols (feature network, samples) {protocols}; "
                         f"choose one with --feature_network and --num_samples")
    return records


def _is_divergence(record):
    """A record of training stopping on a NaN loss (evaluator.record_divergence): no checkpoint."""
    return "checkpoint" in record and not record["checkpoint"]


def outcomes(records):
    """Per run: (state, record). 'final': its last training step is scored (record = that score);
    'failed': the sweep gave up on it, or its training stopped on a NaN loss (a record with no
    checkpoint, see evaluator.record_divergence); 'unfinished': still to run or resume."""
    rank = lambda r: (r["step"], not _is_divergence(r))  # noqa: E731  (a score beats a divergence)
    last = {}
    for record in records:
        key = run_key(record)
        if key not in last or rank(record) > rank(last[key]):
            last[key] = record
    result = {}
    for key, record in last.items():
        if record["step"] >= record.get("training_steps", record["step"]):
            result[key] = ("final", record)
        else:
            failed = record.get("sweep", {}).get("state") == "failed" or _is_divergence(record)
            result[key] = ("failed" if failed else "unfinished", record)
    return result


def final_records(records):
    """The score at the last training step of every finished run."""
    return [r for state, r in outcomes(records).values() if state == "final"]


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


def _mean_std(values):
    if not values:
        return None, None
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return mean, std


def _fids(records):
    return [r["fid"] for r in records if r.get("fid") is not None]


def _footer(records):
    labels = sorted({r.get("fid_label", "FID") for r in records})
    samples = sorted({r.get("num_samples") for r in records})
    steps = sorted({r["step"] for r in records})
    networks = sorted({json.dumps(r.get("feature_network", {}).get("name")) for r in records})
    lines = [f"Metric: {', '.join(labels)}; feature network: {', '.join(n.strip(chr(34)) for n in networks)}; "
             f"{', '.join(map(str, samples))} generated samples per set; final step(s): "
             f"{', '.join(map(str, steps))}."]
    if any("inception" not in n for n in networks):
        lines.append("Not Inception FID: not comparable to the papers' numbers.")
    return lines


def robustness_rows(records):
    """{(dataset, setting): {model: [final FIDs over seeds]}} and, per (dataset, setting, model),
    how many runs diverged (no FID) or failed."""
    cells = collections.defaultdict(lambda: collections.defaultdict(list))
    lost = collections.defaultdict(int)
    for state, r in outcomes(records).values():
        if state == "unfinished":
            continue
        key = (r["dataset"], setting(r))
        values = cells[key][r["model"]]  # listed even if every seed diverged
        if state == "failed" or r.get("fid") is None:
            lost[key + (r["model"],)] += 1
        else:
            values.append(r["fid"])
    return cells, lost


def _cell_text(values, diverged_count, fmt, bold):
    mean, std = _mean_std(values)
    if mean is None:
        return f"diverged/failed ({diverged_count})" if diverged_count else "—"
    text = f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")
    if mean > COLLAPSE_FID:
        text += "†"
    if diverged_count:
        text += f" ({diverged_count} diverged/failed)"
    if bold:
        text = {"markdown": f"**{text}**", "latex": f"\\textbf{{{text}}}", "csv": text}[fmt]
    return text.replace("±", "$\\pm$").replace("†", "$^\\dagger$") if fmt == "latex" else text


def robustness_table(records, fmt):
    cells, diverged = robustness_rows(records)
    datasets = sorted({d for d, _ in cells})
    models = [m for m in MODEL_ORDER if any(m in v for v in cells.values())]
    models += sorted({m for v in cells.values() for m in v} - set(models))
    settings = sorted({s for _, s in cells}, key=_setting_order)
    header = ["Penalty", "λ", "β1", "β2", "D iters"] + [
        f"{d}: {MODEL_NAMES.get(m, m)}" for d in datasets for m in models]
    rows = []
    for s in settings:
        row = [s[0], "—" if s[1] is None else f"{s[1]:g}", f"{s[2]:g}", f"{s[3]:g}", str(s[4])]
        for d in datasets:
            means = {m: _mean_std(cells[(d, s)].get(m, []))[0] for m in models}
            best = min((v for v in means.values() if v is not None), default=None)
            bold_ok = sum(v is not None for v in means.values()) > 1
            for m in models:
                row.append(_cell_text(cells[(d, s)].get(m, []), diverged.get((d, s, m), 0), fmt,
                                      bold_ok and means[m] is not None and means[m] == best))
        rows.append(row)
    seeds = sorted({len(v) for c in cells.values() for v in c.values() if v})
    unfinished = sum(state == "unfinished" for state, _ in outcomes(records).values())
    notes = _footer(final_records(records)) + [f"{unfinished} run(s) not finished yet are left out."] * bool(unfinished) + [
        f"Mean ± std (sample std) over {'/'.join(map(str, seeds))} seed(s); lower is better; the better "
        f"model of each row in bold; † FID > {COLLAPSE_FID:g} (collapsed); diverged/failed: no FID (non-finite "
        f"samples, or training stopped, e.g. on a NaN loss)."]
    return render(header, rows, notes, fmt)


def sample_quality_table(records, fmt):
    best = collections.defaultdict(dict)
    for r in final_records(records):
        fid = r.get("fid")
        if fid is not None and (r["model"] not in best[r["dataset"]] or fid < best[r["dataset"]][r["model"]]):
            best[r["dataset"]][r["model"]] = fid
    datasets = sorted(best)
    models = [m for m in MODEL_ORDER if any(m in best[d] for d in datasets)]
    header = ["Model"] + datasets
    rows = [[MODEL_NAMES.get(m, m)] + [f"{best[d][m]:.2f}" if m in best[d] else "—" for d in datasets]
            for m in models]
    notes = _footer(final_records(records)) + ["Best final-step FID over seeds; lower is better."]
    return render(header, rows, notes, fmt)


def runs_table(records, fmt):
    order = lambda item: (item[1]["dataset"], *_setting_order(setting(item[1])),  # noqa: E731
                          MODEL_ORDER.index(item[1]["model"]) if item[1]["model"] in MODEL_ORDER else 99,
                          item[1].get("seed", 0))
    from compare_ssgan.provenance import describe_short

    header = ["Dataset", "Penalty", "λ", "β1", "β2", "D iters", "Model", "Seed", "Step", "FID", "KID", "State",
              "Code"]
    rows, runs = [], sorted(outcomes(records).values(), key=order)
    for state, r in runs:
        s = setting(r)
        fid = "—" if r.get("fid") is None else f"{r['fid']:.2f}" + (
            f" ± {r['fid_std']:.2f}" if r.get("fid_std") is not None else "")
        kid = "—" if r.get("kid") is None else f"{r['kid']:.4f}"
        rows.append([r["dataset"], s[0], "—" if s[1] is None else f"{s[1]:g}", f"{s[2]:g}", f"{s[3]:g}",
                     str(s[4]), MODEL_NAMES.get(r["model"], r["model"]), str(r.get("seed", "?")),
                     f"{r['step']}/{r.get('training_steps', r['step'])}", fid, kid,
                     r.get("status", "ok") if state == "final" else
                     "failed: diverged" if r.get("status") == "diverged" else state,
                     describe_short(r["code_version"]) if r.get("code_version") else "—"])
    if fmt == "latex":
        rows = [[c.replace("±", "$\\pm$") for c in row] for row in rows]
    notes = _footer([r for _, r in runs]) + ["One row per run at its last scored step; FID ± std over the generated "
                                "sample sets; state: ok/collapsed/diverged for finished runs, else "
                                "unfinished, failed, or failed: diverged (a non-finite training loss at "
                                "that step)."]
    return render(header, rows, notes, fmt)


def render(header, rows, notes, fmt):
    if fmt == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(rows)
        for note in notes:
            writer.writerow([f"# {note}"])
        return buffer.getvalue()
    if fmt == "latex":
        esc = lambda t: str(t).replace("λ", "$\\lambda$").replace("β", "$\\beta$").replace("_", "\\_")  # noqa: E731
        lines = ["\\begin{tabular}{" + "l" * len(header) + "}", "\\toprule",
                 " & ".join(esc(h) for h in header) + " \\\\", "\\midrule"]
        lines += [" & ".join(esc(c) for c in row) + " \\\\" for row in rows]
        lines += ["\\bottomrule", "\\end{tabular}"] + [f"% {note}" for note in notes]
        return "\n".join(lines) + "\n"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def plot_curves(records, plot_dir):
    """One PNG per dataset: FID vs step, a panel per setting, a line per model (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(plot_dir, exist_ok=True)
    curves = collections.defaultdict(lambda: collections.defaultdict(lambda: collections.defaultdict(list)))
    for r in records:
        if r.get("fid") is not None:
            curves[r["dataset"]][setting(r)][r["model"]].append((r["step"], r["fid"]))
    paths = []
    label = sorted({r.get("fid_label", "FID") for r in records})[0] if records else "FID"
    for dataset, by_setting in curves.items():
        settings = sorted(by_setting, key=_setting_order)
        cols = min(3, len(settings))
        rows = math.ceil(len(settings) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows), squeeze=False)
        for ax, s in zip(axes.flat, settings):
            for model in sorted(by_setting[s], key=lambda m: MODEL_ORDER.index(m) if m in MODEL_ORDER else 99):
                per_step = collections.defaultdict(list)
                for step, fid in by_setting[s][model]:
                    per_step[step].append(fid)
                steps = sorted(per_step)
                ax.plot(steps, [sum(per_step[t]) / len(per_step[t]) for t in steps], marker="o",
                        label=MODEL_NAMES.get(model, model))
            lam = "" if s[1] is None else f" λ={s[1]:g}"
            ax.set_title(f"{s[0]}{lam}, β=({s[2]:g}, {s[3]:g}), D iters {s[4]}", fontsize=9)
            ax.set_xlabel("generator step")
            ax.set_ylabel(label, fontsize=8)
            ax.legend(fontsize=8)
        for ax in list(axes.flat)[len(settings):]:
            ax.axis("off")
        fig.suptitle(f"{dataset}: {label} vs step (mean over seeds)", fontsize=10)
        fig.tight_layout()
        path = os.path.join(plot_dir, f"fid_vs_step_{dataset}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv):
    del argv
    if not FLAGS.results:
        raise app.UsageError("--results is required")
    try:
        records = select(load(FLAGS.results), FLAGS.feature_network, FLAGS.num_samples)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    make = {"robustness": robustness_table, "sample_quality": sample_quality_table, "runs": runs_table}
    table = make[FLAGS.table](records, FLAGS.format)
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            f.write(table)
    else:
        sys.stdout.write(table)
    if FLAGS.plot_dir:
        for path in plot_curves(records, FLAGS.plot_dir):
            print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    app.run(main)
