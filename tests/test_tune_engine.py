"""The search engine without training: every sampler runs its N trials through the worker loop
(a quadratic stands in for the trial process), orphans are claimed only with --resume, and the
report is written from the study. Fast: no Keras."""

import pytest

from shared import tune_space, tune_study
from shared.tune_study import Outcome

SPACE = ["train.learning_rate=loguniform(1e-4,1e-1)", "model.width_multiplier=choice(1,2)",
         "train.batch_size=int(16,18)"]
GRID = ["train.batch_size=int(16,17)", "model.width_multiplier=choice(1,2)"]


def quadratic(job, beat):
    beat()
    lr = job.params.get("train.learning_rate", 0.01)
    value = 1.0 - (lr - 0.01) ** 2 - 0.01 * job.params["train.batch_size"] + 0.05 * job.params[
        "model.width_multiplier"]
    return Outcome("complete", value, attrs={"seconds": 0.01, "train_value": value + 0.01})


def study_for(tmp_path, sampler, params, trials):
    optuna = pytest.importorskip("optuna")
    from tasks.classification import TASK

    space = tune_space.check_against_config(tune_space.parse_space(None, params),
                                            lambda: TASK.make_config("smoke", []))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = tune_study.make_storage(url)
    identity = {"task": "classification", "preset": "smoke", "metric": "val_accuracy",
                "space": tune_space.describe(space), "overrides": []}
    study, _ = tune_study.open_study(storage, url, "s", "maximize", identity, False,
                                     tune_study.make_sampler(sampler, 0, trials),
                                     tune_study.make_pruner("median", 4))
    if sampler == "grid":
        for point in tune_space.grid_points(space)[:trials]:
            study.enqueue_trial(point)
    return optuna, study, storage, space


@pytest.mark.parametrize("sampler", ["grid", "random", "tpe", "gp"])
def test_each_sampler_runs_its_trials(tmp_path, sampler):
    if sampler == "gp" and not tune_study.gp_available():
        pytest.skip("GP sampler needs torch")
    params = GRID if sampler == "grid" else SPACE
    trials = 4
    optuna, study, storage, space = study_for(tmp_path, sampler, params, trials)
    outcomes = tune_study.work(study, storage, tune_space.distributions(space), trials, tmp_path / ".lock",
                               False, quadratic, log=lambda line: None)
    assert len(outcomes) == trials
    done = study.get_trials(deepcopy=False)
    assert [t.number for t in done] == list(range(trials))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in done)
    for t in done:
        assert 1e-4 <= t.params.get("train.learning_rate", 1e-3) <= 1e-1
        assert t.params["model.width_multiplier"] in (1, 2)
    if sampler == "grid":  # every point once
        seen = {(t.params["train.batch_size"], t.params["model.width_multiplier"]) for t in done}
        assert seen == {(16, 1), (16, 2), (17, 1), (17, 2)}
    # a second loop finds the study full
    assert tune_study.work(study, storage, tune_space.distributions(space), trials, tmp_path / ".lock",
                           False, quadratic, log=lambda line: None) == []


def test_orphaned_trial_is_claimed_only_with_resume(tmp_path):
    optuna, study, storage, space = study_for(tmp_path, "random", SPACE, 2)
    trial = study.ask(tune_space.distributions(space))  # a trial whose worker died:
    storage.set_trial_system_attr(trial._trial_id, "kts_owner",
                                  {"host": __import__("socket").gethostname(), "pid": 2**22 + 7, "heartbeat": 0})
    distributions = tune_space.distributions(space)
    outcomes = tune_study.work(study, storage, distributions, 2, tmp_path / ".lock", False, quadratic,
                               log=lambda line: None)
    assert len(outcomes) == 1  # without --resume: one new trial; the orphan stays RUNNING
    assert study.trials[0].state == optuna.trial.TrialState.RUNNING
    resumed = []
    tune_study.work(study, storage, distributions, 2, tmp_path / ".lock", True,
                    lambda job, beat: resumed.append(job) or quadratic(job, beat), log=lambda line: None)
    assert [(job.number, job.resume) for job in resumed] == [(0, True)]
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2


def test_config_error_stops_the_study(tmp_path):
    _, study, storage, space = study_for(tmp_path, "random", SPACE, 3)
    with pytest.raises(tune_study.ConfigError, match="no validation split"):
        tune_study.work(study, storage, tune_space.distributions(space), 3, tmp_path / ".lock", False,
                        lambda job, beat: Outcome("error", message="val_accuracy missing: no validation split"),
                        log=lambda line: None)
    assert len(study.trials) == 1


def test_report_from_a_study(tmp_path):
    from shared import tune_report

    _, study, storage, space = study_for(tmp_path, "random", SPACE, 4)
    tune_study.work(study, storage, tune_space.distributions(space), 4, tmp_path / ".lock", False, quadratic,
                    log=lambda line: None)
    settings = {"task": "classification", "study": "s", "study_dir": str(tmp_path), "preset": "smoke",
                "sampler": "random", "pruner": "median", "metric": "val_accuracy", "direction": "maximize",
                "test_key": "accuracy", "space": tune_space.describe(space),
                "reports_dir": str(tmp_path / "reports")}
    rows = tune_report.rows_of(study)
    best = max(rows, key=lambda r: r["value"])
    report_dir = tune_report.write_report(study, settings, rows, best, 0.9, "line", "kts ...")
    for name in ("index.html", "report.json", "trials.json", "history.png", "parallel_coordinates.png",
                 "pruned_vs_complete.png", "wall_time.png"):
        assert (report_dir / name).exists(), name
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "classification tune s" in index and "report/index.html" in index


@pytest.mark.parametrize("train, val, test, maximize, expected", [
    (0.99, 0.80, 0.79, True, "variance dominates"),
    (0.70, 0.69, 0.69, True, "bias dominates"),
    (0.95, 0.94, 0.80, True, "may have fit the validation split"),
    (0.10, 0.50, None, False, "variance dominates"),
])
def test_bias_variance_line(train, val, test, maximize, expected):
    from shared.tune_report import bias_variance

    assert expected in bias_variance(train, val, test, maximize, "m")


@pytest.mark.parametrize("name", tune_study.PRUNERS)
def test_each_pruner_answers_the_trial_reporter(name):
    optuna = pytest.importorskip("optuna")
    study = optuna.create_study(direction="maximize", pruner=tune_study.make_pruner(name, 6, 9))
    trial = study.ask()
    for step in range(3):
        trial.report(0.5, step)
        assert isinstance(trial.should_prune(), bool)
