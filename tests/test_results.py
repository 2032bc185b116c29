"""The result record schema (compare_ssgan/results.py) and the tables that read it: grouping by
every recorded axis, statistics across seeds, clear errors for bad or old records."""
import csv
import glob
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from compare_ssgan import results
from result_records import divergence, in_sweep, score, write

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(REPO, "benchmarks", "results", "robustness_mini")
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import grids  # noqa: E402
import make_tables  # noqa: E402
import seed_stats  # noqa: E402
import sweep  # noqa: E402
import table_text  # noqa: E402


def _rows(table):
    return [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| ---")][1:]


def _cells(row):
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def test_two_learning_rate_grid_renders_two_rows(tmp_path):
    """The issue's report: g_lr in {1e-4, 4e-4} x 2 seeds was one cell of "4 seeds"."""
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"models": ["ssgan"], "grid": {"options.g_lr": [1e-4, 4e-4]}}))
    specs = grids.build(str(grid), ["cifar10"], [0, 1], "smoke")
    out = str(tmp_path / "sweep")
    fids = {(1e-4, 0): 20.0, (1e-4, 1): 22.0, (4e-4, 0): 80.0, (4e-4, 1): 110.0}
    for spec in specs:  # what each run's evaluator wrote, then the sweep's own gathering
        g_lr = float(dict(spec.bindings)["options.g_lr"])
        os.makedirs(sweep.run_dir(out, spec))
        write(tmp_path / "sweep" / "runs" / spec.run_id / "scores.jsonl",
              [score(spec.model, spec.seed, fids[(g_lr, spec.seed)], g_lr=g_lr)])
        sweep.write_status(out, spec, state="done")
    assert sweep.gather_results(out, specs) == 4
    records = make_tables.load(out)
    assert {r["sweep"]["axes"][0] for r in records} == {"options.g_lr"}

    table = make_tables.by_axes_table(records, "markdown")
    rows = _rows(table)
    assert len(rows) == 2, table
    assert rows[0].startswith("| 0.0001 | SS-GAN | 2 | 21.00 ± 1.41 | 20.00 | — |")
    assert rows[1].startswith("| 0.0004 | SS-GAN | 2 | 95.00 ± 21.21 | 80.00 | 1 collapsed |")
    assert "Grouped by: options.g_lr, model;" in table
    assert "0 collapsed" not in table and "of which 1 collapsed" in table
    runs = make_tables.runs_table(records, "markdown")  # the per-run table tells them apart too
    assert [r.split(" | ")[0] for r in _rows(runs)] == ["| 0.0001"] * 2 + ["| 0.0004"] * 2
    robustness = make_tables.robustness_table(records, "markdown")  # the paper's layout, split by g_lr
    assert [r.split(" | ")[:2] for r in _rows(robustness)] == [["| 0.0001", "SN"], ["| 0.0004", "SN"]]
    csv = make_tables.by_axes_table(records, "csv")
    assert csv.splitlines()[0].startswith("options.g_lr,Model,n,mean ± std,best")
    kid = make_tables.by_axes_table(records, "markdown", metric="kid")
    assert "| 0.0001 | SS-GAN | 2 | 0.0210 ± 0.0014 |" in kid and "KID (CIFAR-10 classifier)" in kid
    assert "| 0.0004 | SS-GAN | 2 | 0.0950 ± 0.0212 | 0.0800 | 1 collapsed |" in kid  # its FID is > 100


def test_axis_values_print_apart_sort_numerically_and_stay_one_cell():
    """Two swept values never print alike (an EMA decay of 0.9999999 is not "1"), and rows sort
    numbers numerically, then text, then values a run did not record."""
    assert table_text.value_text(0.9999999) != table_text.value_text(1.0) == "1"
    assert table_text.value_text(4e-4) == "0.0004" and table_text.value_text(None) == "—"
    assert table_text.value_text((0.1, 2)) == "[0.1, 2]"
    assert sorted([None, "b", 10, 2.5, "a"], key=lambda v: table_text.order_key([v])) == [2.5, 10, "a", "b", None]
    # A label with a column separator stays one cell in every format.
    latex = make_tables.render(["grid_label", "Model"], [["A & B #1", "\\textbf{12.00 ± 1.00}"]], [], "latex")
    assert "grid\\_label & Model \\\\" in latex and "A \\& B \\#1 & \\textbf{12.00 $\\pm$ 1.00} \\\\" in latex
    assert "| p\\|q | SS-GAN |" in make_tables.render(["label", "Model"], [["p|q", "SS-GAN"]], [], "markdown")


def test_runs_differing_in_protocol_or_any_axis_are_never_averaged():
    base = [score("uncond", s, 30.0 + s) for s in (0, 1)] + [score("ssgan", s, 20.0 + s) for s in (0, 1)]
    inception = [score("ssgan", s, 10.0, feature_network={"name": "inception", "source": "hub"},
                       model_dir=f"/inc/{s}") for s in (0, 1)]
    fewer = [score("ssgan", s, 40.0, num_samples=500, model_dir=f"/few/{s}") for s in (0, 1)]
    other_batch = [score("ssgan", s, 50.0, batch_size=64, model_dir=f"/b64/{s}") for s in (0, 1)]
    table = make_tables.by_axes_table(base + inception + fewer + other_batch, "markdown")
    means = sorted(_cells(r)[-6] for r in _rows(table))
    assert means == sorted(["30.50 ± 0.71", "20.50 ± 0.71", "10.00 ± 0.00", "40.00 ± 0.00", "50.00 ± 0.00"])
    assert "Grouped by: batch_size, feature_network, num_samples, model;" in table
    # The paper's layouts hold one protocol: asked for one, they say so rather than average.
    with pytest.raises(ValueError, match="mix evaluation protocols"):
        make_tables.select(base + inception)
    assert make_tables.select(base + inception, feature_network="inception") == inception
    robustness = make_tables.robustness_table(base + other_batch, "markdown")
    assert [r.split(" | ")[0] for r in _rows(robustness)] == ["| 32", "| 64"]  # batch_size column
    # One network's weights at two paths are one protocol (its content hash); other weights are not.
    def at(path, digest, seeds):
        network = {"name": "inception", "source": f"saved_model:{path} sha256:{digest}"}
        return [score("ssgan", s, 10.0 + s, feature_network=network, model_dir=f"{path}/{s}") for s in seeds]

    moved = make_tables.by_axes_table(at("/a", "abc", (0, 1)) + at("/b", "abc", (2,)) + at("/c", "def", (3,)),
                                      "markdown")
    assert sorted(_cells(r)[-6] for r in _rows(moved)) == ["11.00 ± 1.00", "13.00"]
    assert "Grouped by: feature_network.weights, model;" in moved


def test_models_of_a_row_are_never_compared_across_a_protocol_or_training_difference():
    """A difference that is constant within each model (Uncond-GAN scored on the train split,
    SS-GAN on the test split; or trained for fewer steps) used to vanish from the grouping and
    leave one row comparing the two."""
    uncond = [score("uncond", s, 30.0 + s, real_split="train") for s in (0, 1)]
    ssgan = [score("ssgan", s, 20.0 + s) for s in (0, 1)]
    table = make_tables.by_axes_table(uncond + ssgan, "markdown")
    rows = [_cells(r) for r in _rows(table)]
    assert [r[:2] for r in rows] == [["test", "SS-GAN"], ["train", "Uncond-GAN"]], table
    assert all(r[-3] == "(first)" for r in rows)  # each model alone in its row: no Δ, no test
    assert "Grouped by: real_split, model;" in table
    robustness = make_tables.robustness_table(uncond + ssgan, "markdown")
    assert [_cells(r)[0] for r in _rows(robustness)] == ["test", "train"]
    shorter = [score("uncond", s, 30.0 + s, training_steps=50, step=50) for s in (0, 1)]
    robustness = make_tables.robustness_table(shorter + ssgan, "markdown")
    assert [_cells(r)[0] for r in _rows(robustness)] == ["50", "100"], robustness
    # Trained at another preset (the gin files after the model's own): never compared either.
    mini = [in_sweep(score("uncond", s, 30.0 + s), f"u{s}") for s in (0, 1)]
    full = [in_sweep(score("ssgan", s, 20.0 + s), f"s{s}") for s in (0, 1)]
    for r in mini:
        r["sweep"]["gin_files"] = ["gin/cifar10/uncond.gin", "gin/presets/mini.gin"]
    for r in full:
        r["sweep"]["gin_files"] = ["gin/cifar10/ssgan.gin"]
    assert [_cells(r)[:2] for r in _rows(make_tables.by_axes_table(mini + full, "markdown"))] == [
        ['["gin/presets/mini.gin"]', "Uncond-GAN"], ["[]", "SS-GAN"]]
    # Within one model family the model's own settings may differ (that is the comparison).
    same = make_tables.by_axes_table([score("uncond", s, 30.0 + s) for s in (0, 1)] + ssgan, "markdown")
    assert [_cells(r)[0] for r in _rows(same)] == ["Uncond-GAN", "SS-GAN"]


def test_a_binding_a_run_was_not_given_takes_its_operative_value():
    """Seeds 0-1 launched plainly, seed 2 on the same --out with a precision binding: not one
    configuration. A binding spelled 0 in one run and 0.0 in another is one value."""
    def run(seed, bindings, precision):
        gin_config = f"options.precision = '{precision}'\noptions.beta1 = 0.0\n"
        return in_sweep(score("ssgan", seed, 20.0 + seed, gin_config=gin_config), f"ssgan-{seed}",
                        bindings=bindings)
    records = [run(0, [("options.beta1", "0")], "float32"), run(1, [("options.beta1", "0.0")], "float32"),
               run(2, [("options.beta1", "0.0"), ("options.precision", "'mixed_bfloat16'")], "mixed_bfloat16")]
    table = make_tables.by_axes_table(records, "markdown")
    rows = [_cells(r) for r in _rows(table)]
    assert [(r[0], r[2]) for r in rows] == [("float32", "2"), ("mixed_bfloat16", "1")], table
    assert "Grouped by: options.precision, model;" in table
    # Equal only where gin values are equal: macros, scoped references and True keep their identity.
    value = results.gin_value
    assert value("penalty.fn", "@no_penalty") == "@no_penalty"
    assert value("model.tasks", "[@RotationTask()]") == '["@RotationTask()"]'
    assert value("a.b", "%LR_A") != value("a.b", "%LR_B") and value("p.fn", "@a/wgan_gp") != value("p.fn", "@b/wgan_gp")
    assert value("a.b", "True") != value("a.b", "1") and value("a.b", "1") == value("a.b", "1.0")
    assert value("X", "5") == 5 and value("a.b", "(unclosed") == "(unclosed"
    # Without an operative configuration the value is unknown: never merged with the others.
    records[0].pop("gin_config")
    rows = [_cells(r) for r in _rows(make_tables.by_axes_table(records, "markdown"))]
    assert [(r[0], r[2]) for r in rows] == [("float32", "1"), ("mixed_bfloat16", "1"), ("not recorded", "1")]


def test_tables_say_when_a_row_mixes_code_versions_or_machines():
    old = {"package": "0.1.0", "git_commit": "7bcc3e5" + "0" * 33, "git_dirty": False}
    new = {**old, "git_commit": "d84eee9" + "0" * 33}
    records = [score("ssgan", 0, 20.0, code_version=old), score("ssgan", 1, 22.0, code_version=new),
               score("ssgan", 2, 21.0, code_version=new, training_environment=["CPU x2 cores, 1 thread"])]
    table = make_tables.robustness_table(records, "markdown")
    assert len(_rows(table)) == 1  # neither is an axis
    assert "Code versions (not an axis: a row may average runs of several; --table=runs lists each run's): " \
           "0.1.0@7bcc3e5 (1 run(s)), 0.1.0@d84eee9 (2 run(s))." in table
    assert "Trained on (not an axis" in table and "CPU x2 cores, 1 thread (1 run(s)), not recorded (2 run(s))" in table
    same = make_tables.robustness_table([score("ssgan", s, 20.0, code_version=new) for s in (0, 1)], "markdown")
    assert "Code versions" not in same and "Trained on (" not in same


def test_collapsed_and_diverged_runs_are_counted_not_dropped():
    def run(model, seed, fid, **fields):
        return in_sweep(score(model, seed, fid, **fields), f"{model}-{seed}")

    records = [run("uncond", 0, 120.0), run("uncond", 1, 130.0), run("uncond", 2, 20.0),
               run("ssgan", 0, 20.0), run("ssgan", 1, 22.0), run("ssgan", 2, None),
               in_sweep(divergence("ssgan", 3, step=40), "ssgan-3", state="failed"),
               run("ssgan", 4, 19.0, step=50)]  # unfinished: left out, and said so
    table = make_tables.robustness_table(records, "markdown")
    [row] = _rows(table)
    cells = row.split(" | ")
    assert cells[5] == "90.00 ± 60.83 (2 collapsed)" and cells[6:8] == ["20.00", "3"]
    assert cells[8] == "**21.00 ± 1.41 (2 diverged)**" and cells[9:11] == ["20.00", "2"]
    assert "1 run(s) not finished yet (no score at their last step) are left out." in table
    assert "Runs counted: 5 with a value, of which 2 collapsed; without a value: 2 diverged." in table
    generic = make_tables.by_axes_table(records, "markdown")
    assert "| 2 collapsed |" in generic and "| 2 diverged |" in generic
    twice = records + [run("ssgan", 4, 25.0, step=50, num_samples=500)]  # scored by a second protocol too
    assert "1 run(s) not finished yet (no score" in make_tables.by_axes_table(twice, "markdown")


def test_curves_average_only_the_steps_every_seed_reached(tmp_path):
    finished = [score("ssgan", seed, fid, step=step) for seed, base in ((0, 40.0), (1, 60.0))
                for step, fid in ((50, base), (100, base - 20))]
    unfinished = [score("ssgan", 2, 90.0, step=50)]  # still training: no score at step 100 yet
    by_run = {}
    for r in finished + unfinished:
        by_run.setdefault(make_tables.run_key(r), {})[r["step"]] = r["fid"]
    assert seed_stats.common_steps(by_run) == {50: [40.0, 60.0, 90.0]}
    del by_run[make_tables.run_key(unfinished[0])]
    assert seed_stats.common_steps(by_run) == {50: [40.0, 60.0], 100: [20.0, 40.0]}
    [path] = make_tables.plot_curves(finished + unfinished, str(tmp_path))
    assert path.endswith("fid_vs_step_cifar10.png") and os.path.getsize(path) > 0


def test_a_divergence_counts_under_every_protocol_and_the_footer_names_where_runs_stopped():
    """Training wrote one divergence record, under the protocol it evaluated with; the runs'
    checkpoints were scored again later by a second protocol (500 samples)."""
    second = dict(num_samples=500, feature_network={"name": "inception", "source": "saved_model sha256:0"})
    records = [in_sweep(score("uncond", s, 30.0 + s), f"uncond-{s}") for s in (0, 1)] + [
        in_sweep(score("uncond", s, 40.0 + s, **second), f"uncond-{s}") for s in (0, 1)] + [
        in_sweep(score("ssgan", 0, 25.0, step=50), "ssgan-0", state="failed"),
        in_sweep(score("ssgan", 0, 35.0, step=50, **second), "ssgan-0", state="failed"),
        in_sweep(divergence("ssgan", 0, step=70), "ssgan-0", state="failed"),
        in_sweep(divergence("ssgan", 1, step=5), "ssgan-1", state="failed")]  # before any score
    states = sorted((r["sweep"]["run_id"], r["num_samples"], r["step"], state)
                    for state, r in make_tables.outcomes(records).values())
    assert states == [("ssgan-0", 500, 70, "diverged"), ("ssgan-0", 2000, 70, "diverged"),
                      ("ssgan-1", 500, 5, "diverged"), ("ssgan-1", 2000, 5, "diverged"),
                      ("uncond-0", 500, 100, "final"), ("uncond-0", 2000, 100, "final"),
                      ("uncond-1", 500, 100, "final"), ("uncond-1", 2000, 100, "final")]
    generic = make_tables.by_axes_table(records, "markdown")  # a row pair per protocol, nothing else
    assert [_cells(r)[2] + " " + _cells(r)[-4] for r in _rows(generic) if "SS-GAN" in r] == ["0 2 diverged"] * 2
    for feature_network in ("cifar10_classifier", "inception"):
        chosen = make_tables.select(records, feature_network=feature_network)
        table = make_tables.robustness_table(chosen, "markdown")
        [row] = _rows(table)
        assert _cells(row)[8] == "— (2 diverged)", feature_network
        assert "final step(s): 100; runs that did not finish: diverged at, or last scored at, step(s) 5, 70." in table
        assert f"feature network: {feature_network};" in table
        runs = {(_cells(r)[-8], _cells(r)[-7]): _cells(r)[-3]
                for r in _rows(make_tables.runs_table(chosen, "markdown"))}
        assert runs[("SS-GAN", "0")] == runs[("SS-GAN", "1")] == "failed: diverged"
        assert runs[("Uncond-GAN", "0")] == "ok"
    # A retry that got past the divergence (resumed from a checkpoint) ends it: a score at or after
    # its step counts, under any protocol, and the other protocol is then merely behind.
    retried = [score("ssgan", 0, 25.0, step=50), score("ssgan", 0, 35.0, step=50, **second),
               divergence("ssgan", 0, step=70), score("ssgan", 0, 20.0, step=100)]
    assert sorted((r["num_samples"], state) for state, r in make_tables.outcomes(retried).values()) == [
        (500, "unfinished"), (2000, "final")]
    at_the_end = [divergence("ssgan", 0, step=100), score("ssgan", 0, 20.0, step=100)]
    assert [state for state, _ in make_tables.outcomes(at_the_end).values()] == ["final"]


def test_a_collapsed_run_without_a_value_and_an_unfinished_diverged_checkpoint_are_labelled_as_such():
    records = [score("ssgan", 0, 20.0), score("ssgan", 1, None, status="collapsed"),
               score("ssgan", 2, None, step=50)]  # a diverged checkpoint at step 50 of 100: training goes on
    [row] = _rows(make_tables.by_axes_table(records, "markdown"))
    assert "| 1 collapsed, no value |" in row
    states = {_cells(r)[1]: _cells(r)[5] for r in _rows(make_tables.runs_table(records, "markdown"))}
    assert states == {"0": "ok", "1": "collapsed", "2": "unfinished"}


def test_statistics_match_scipy_on_fixed_numbers():
    a, b = [26.99, 24.91, 26.78], [18.11, 28.91, 26.90]
    s = seed_stats.summarize(b)
    assert (s.n, s.best) == (3, 18.11)
    assert s.mean == pytest.approx(np.mean(b)) and s.std == pytest.approx(np.std(b, ddof=1))
    assert seed_stats.summarize(b, lower_is_better=False).best == 28.91
    c = seed_stats.compare(a, b)
    assert c.difference == pytest.approx(np.mean(b) - np.mean(a))
    # Welch's t from its definition, p from the t distribution with Welch-Satterthwaite dof.
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 3
    t = (np.mean(b) - np.mean(a)) / np.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    assert c.welch_p == pytest.approx(2 * stats.t.sf(abs(t), dof))
    assert c.welch_p == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue)
    assert c.mannwhitney_p == pytest.approx(stats.mannwhitneyu(b, a, alternative="two-sided").pvalue)
    # Complete separation of 3 against 3: the exact two-sided p is 2 / C(6, 3) = 0.1.
    assert seed_stats.compare([36.8, 47.4, 53.0], [32.0, 35.0, 35.7]).mannwhitney_p == pytest.approx(0.1)
    expected = stats.bootstrap((b, a), lambda x, y, axis: x.mean(axis) - y.mean(axis), n_resamples=9999,
                               method="percentile", rng=np.random.default_rng(0)).confidence_interval
    assert c.ci == pytest.approx((expected.low, expected.high))
    assert c.ci[0] < c.difference < c.ci[1]
    assert seed_stats.compare([1.0], [2.0, 3.0]) == seed_stats.Comparison(1.5, None, None, None)
    assert seed_stats.compare([], [1.0]) is None


@pytest.mark.parametrize("line, message", [
    ('{"step": 6, "fid"', "line 2: not valid JSON"),
    ('{"schema_version": 3, "kind": "score"}', "line 2: schema_version 3 is newer than this code reads (2)"),
    ('{"schema_version": "two"}', "line 2: schema_version 'two' is not a version this code knows"),
    ('{"schema_version": 2, "kind": "histogram"}', "line 2: unknown record kind 'histogram'"),
    ('[1, 2]', "line 2: expected a JSON object"),
    ('{"fid": NaN}', "line 2: not valid JSON"),
])
def test_malformed_or_unreadable_records_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(score()) + "\n" + line + "\n")
    with pytest.raises(results.RecordError, match=re.escape(f"results.jsonl {message}")):
        results.read(str(path))


def test_invalid_fields_and_old_versions(tmp_path):
    for change, message in ((lambda r: r.pop("fid"), "'fid' is a required property"),
                            (lambda r: r.update(status="fine"), "status: 'fine' is not one of"),
                            (lambda r: r.update(step="100"), "step: '100' is not of type 'integer'"),
                            (lambda r: r.update(origin="training"), "status: 'diverged' was expected")):
        record = score()
        change(record)
        path = write(tmp_path / "scores.jsonl", [record])
        with pytest.raises(results.RecordError, match=f"scores.jsonl line 1: not a valid score record.*{message}"):
            results.read(path)
    # A record from before the schema (version 1): migrated, its divergence made explicit.
    legacy = score()
    for name in ("schema_version", "kind", "origin"):
        del legacy[name]
    legacy_divergence = dict(legacy, step=40, checkpoint=None, status="diverged", fid=None, kid=None)
    read = results.read(write(tmp_path / "old.jsonl", [legacy, legacy_divergence]))
    assert [(r["schema_version"], r["kind"], r["origin"]) for r in read] == [
        (2, "score", "checkpoint"), (2, "score", "training")]
    missing = dict(legacy)
    del missing["num_samples"]
    with pytest.raises(results.RecordError, match="old.jsonl line 1: .*'num_samples' is a required property"):
        results.read(write(tmp_path / "old.jsonl", [missing]))


def test_make_tables_cli_reports_a_bad_record_in_one_line(tmp_path):
    write(tmp_path / "results.jsonl", [score(), dict(score(), schema_version=9)])
    result = subprocess.run([sys.executable, "benchmarks/make_tables.py", f"--results={tmp_path}"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"error: {tmp_path}/results.jsonl line 2: schema_version 9 is newer than "
                                     f"this code reads (2); update compare_ssgan to read it")


def test_runs_that_failed_before_any_score_are_named_under_the_table(tmp_path):
    """A crash other than a non-finite loss leaves no record, nor does a run not scored yet: the
    run directories still say."""
    records = [in_sweep(score("ssgan", s, 20.0 + s), f"ssgan-{s}") for s in (0, 1)]
    write(tmp_path / "results.jsonl", records)
    for run_id, state in (("ssgan-0", "done"), ("ssgan-1", "failed"), ("ssgan-2", "failed"), ("ssgan-3", "running")):
        (tmp_path / "runs" / run_id).mkdir(parents=True)
        (tmp_path / "runs" / run_id / sweep.STATUS_FILE).write_text(json.dumps({"state": state}))
    # ssgan-1 failed on a retry after its scores were gathered: counted in its cell, not here.
    assert make_tables.unscored_runs(str(tmp_path), records) == {"before any score": ["ssgan-2"],
                                                                   "no score yet": ["ssgan-3"]}
    write(tmp_path / "runs" / "ssgan-2" / "scores.jsonl", [score("ssgan", 2, 22.0)])  # not gathered yet
    assert make_tables.unscored_runs(str(tmp_path / "results.jsonl"), records) == {"not gathered": ["ssgan-2"],
                                                                                 "no score yet": ["ssgan-3"]}
    (tmp_path / "runs" / "ssgan-2" / "scores.jsonl").unlink()
    result = subprocess.run([sys.executable, "benchmarks/make_tables.py", f"--results={tmp_path}",
                             "--table=robustness"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert ("\n\nIn no cell: 1 run(s) failed before their first score (see each run's log): ssgan-2; "
            "1 run(s) queued or running, without a score yet: ssgan-3." in result.stdout)
    result = subprocess.run([sys.executable, "benchmarks/make_tables.py", f"--results={tmp_path}", "--format=csv"],
                            cwd=REPO, capture_output=True, text=True)
    last = list(csv.reader(io.StringIO(result.stdout)))[-1]  # one field, however many commas
    assert last == ["# In no cell: 1 run(s) failed before their first score (see each run's log): ssgan-2; "
                    "1 run(s) queued or running, without a score yet: ssgan-3."]


def test_probe_records_are_a_kind_of_their_own():
    record = results.probe_record(step=2000, block=3, train_top1=0.41, test_top1=0.39, feature_dim=512,
                                  pooling="avg4x4", probe={"method": "logistic_regression", "l2": 1e-3},
                                  run={"model": "ssgan", "dataset": "cifar10", "seed": 0})
    assert results.parse(json.loads(json.dumps(record))) == record
    assert results.axes(record)[("probe", "block")] == 3
    with pytest.raises(results.RecordError, match="test_top1: 39.0 is greater than the maximum of 1"):
        results.validate(dict(record, test_top1=39.0))


def test_committed_legacy_records_are_migrated_and_keep_their_numbers():
    """benchmarks/results/robustness_mini was written before the schema (no version)."""
    scores = [r for path in glob.glob(os.path.join(COMMITTED, "runs", "*", "scores.jsonl"))
              for r in results.read(path)]
    gathered = make_tables.load(COMMITTED)
    assert len(scores) == len(gathered) == 84
    assert {(r["schema_version"], r["kind"], r["origin"], r["status"]) for r in gathered} == {
        (2, "score", "checkpoint", "ok")}
    table = make_tables.robustness_table(gathered, "markdown")
    row = next(r for r in _rows(table) if r.startswith("| SN | — | 0.5 | 0.999 | 1 |"))
    assert row.split(" | ")[5:] == ["45.74 ± 8.21", "36.81", "3", "**34.23 ± 1.92**", "32.04", "3",
                                    row.split(" | ")[11], "0.13", "0.10 |"]


def test_training_environment_summaries():
    """How the runs table names where a run trained: accelerators by name, CPUs by threads."""
    from compare_ssgan import environment

    gpu = {"accelerators": ["GPU"], "accelerator_names": ["NVIDIA H100"], "replicas": 1, "cpu_count": 16,
           "intra_op_threads": None, "precision": "mixed_bfloat16", "jit_compile": True, "tensorflow": "2.21.0"}
    assert environment.summary(gpu) == "1 GPU (NVIDIA H100), mixed_bfloat16, XLA, tf 2.21.0"
    cpu = dict(gpu, accelerators=[], accelerator_names=[], cpu_count=2, precision="float32", jit_compile=False)
    assert environment.summary(cpu) == "CPU x2 cores, default threads, tf 2.21.0"
    assert environment.summary(dict(cpu, intra_op_threads=2, replicas=2)) == "CPU x2 cores, 2 threads, 2 replicas, tf 2.21.0"
    # The CPU model and oneDNN's switch pick the kernels, so they change a run's numbers.
    intel = dict(cpu, cpu_model="Intel(R) Xeon(R) Processor", kernel_variables={"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert environment.summary(intel) == "CPU x2 cores (Intel(R) Xeon(R) Processor), default threads, oneDNN off, tf 2.21.0"
