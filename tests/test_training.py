import pytest
import torch
from torch import nn

from itemchest_utils import (CheckpointMismatchError, History, NonFiniteLossError, TensorBatches, TrainingInterrupted,
                             code_fingerprint, fit, load_trained, pick_config, run_checkpoint, save_checkpoint)


def regression_problem(seed=0):
    """A model with dropout (randomness in every step) trained by Adam (state in the optimizer)."""
    data = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=data)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1
    torch.manual_seed(seed)  # the model's initialisation
    model = nn.Sequential(nn.Linear(3, 16), nn.Dropout(0.2), nn.Linear(16, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

    def train_step(batch):
        xb, yb = batch
        loss = ((model(xb).squeeze(1) - yb) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss, "weight_norm": model[0].weight.norm()}

    return model, optimizer, train_step, TensorBatches(x, y, batch_size=16, seed=1)


def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_fit_learns_and_records_history():
    model, optimizer, train_step, batches = regression_problem()
    history = fit(train_step, batches, steps=300, state={"model": model, "optimizer": optimizer})
    assert history.steps == list(range(300))
    assert set(history.metrics) == {"loss", "weight_norm"}
    assert history.final(20)["loss"] < 0.1 * history["loss"][0]
    assert history.images_seen == 300 * 16
    assert history.wall_time > 0 and history.images_per_second > 0


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    """Parameters, Adam's moments, the RNG (dropout masks) and the history must all come back."""
    path = tmp_path / "run.pt"
    straight_model, straight_opt, straight_step, batches = regression_problem()
    straight = fit(straight_step, batches, steps=60, state={"model": straight_model, "optimizer": straight_opt})

    model, optimizer, train_step, batches = regression_problem()
    first = fit(train_step, batches, steps=25, state={"model": model, "optimizer": optimizer}, checkpoint=path)
    assert first.steps[-1] == 24
    torch.manual_seed(123)  # a fresh process: the RNG is wherever it happens to be
    model, optimizer, train_step, batches = regression_problem(seed=5)
    torch.manual_seed(456)
    resumed = fit(train_step, batches, steps=60, state={"model": model, "optimizer": optimizer}, checkpoint=path)
    assert resumed.resumed_from == 25
    assert resumed.steps == list(range(60))
    assert resumed["loss"] == pytest.approx(straight["loss"], rel=1e-5)
    assert torch.allclose(flat(model), flat(straight_model), atol=1e-6)


def test_finished_run_prints_the_same_summary_when_resumed(tmp_path, capsys):
    model, optimizer, train_step, batches = regression_problem()
    state = {"model": model, "optimizer": optimizer}
    trained = fit(train_step, batches, steps=10, state=state, checkpoint=tmp_path / "run.pt", description="demo")
    first = capsys.readouterr().out
    again = fit(train_step, batches, steps=10, state=state, checkpoint=tmp_path / "run.pt", description="demo")
    assert len(again.steps) == 10 and again.wall_time == pytest.approx(trained.wall_time, rel=1e-6)
    assert capsys.readouterr().out == first
    assert first.startswith("demo: 10 steps in ") and "cpu (" in first and "mean of the last 10" in first


def test_summary_lines_fit_the_page_width():
    from itemchest_utils.training import SUMMARY_WIDTH, History

    names = [f"discriminator_loss_{k}" for k in range(8)]
    history = History(steps=list(range(50)), metrics={n: [1.2345678] * 50 for n in names}, wall_time=12.0,
                      images_seen=800, device="cpu (2 threads)", description="a long run description")
    lines = history.summary().splitlines()
    assert len(lines) > 2 and all(len(line) <= SUMMARY_WIDTH for line in lines[1:])
    assert all(name in history.summary() for name in names)


def test_nan_in_any_value_names_it_and_keeps_the_last_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    model = nn.Linear(1, 1)
    values = iter([(1.0, 2.0), (0.5, 2.5), (0.4, float("inf")), (0.1, 1.0)])

    def train_step(batch):
        reconstruction, kl = next(values)
        return {"reconstruction": torch.tensor(reconstruction), "kl": kl}

    batches = TensorBatches(torch.zeros(8, 1), batch_size=2)
    with pytest.raises(NonFiniteLossError,
                       match=r"kl became inf at step 2 \(last finite values at step 1: reconstruction=0.5, kl=2.5\)"):
        fit(train_step, batches, steps=4, state={"model": model}, checkpoint=path, checkpoint_every=1)
    assert torch.load(path, weights_only=True)["step"] == 2  # the good checkpoint is not overwritten


def test_values_are_read_in_batches_but_the_failing_step_is_named(tmp_path):
    losses = [1.0] * 13 + [float("nan")] + [1.0] * 6

    def train_step(batch, it=iter(losses)):
        return {"loss": torch.tensor(next(it))}

    with pytest.raises(NonFiniteLossError, match="at step 13"):
        fit(train_step, TensorBatches(torch.zeros(8, 1), batch_size=2), steps=20, state={}, log_every=10)


def test_run_name_derives_the_checkpoint_from_page_and_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("ITEMCHEST_CHECKPOINTS", str(tmp_path))
    monkeypatch.setenv("ITEMCHEST_PROFILE", "smoke")
    assert run_checkpoint("ddpm/main") == tmp_path / "ddpm" / "smoke-main.pt"
    with pytest.raises(ValueError, match="page/name"):
        run_checkpoint("ddpm")
    model, optimizer, train_step, batches = regression_problem()
    fit(train_step, batches, steps=4, state={"model": model, "optimizer": optimizer}, run="demo/main")
    assert (tmp_path / "demo" / "smoke-main.pt").exists()


def test_checkpoint_for_another_config_is_refused_even_when_it_saved_none(tmp_path):
    path = tmp_path / "run.pt"
    model = nn.Linear(2, 1)
    batches = TensorBatches(torch.zeros(4, 2), batch_size=2)
    save_checkpoint(path, 5, {"model": model}, History(), {"hidden": 10})
    with pytest.raises(CheckpointMismatchError, match=r"hidden: 10 → 20.*Delete run.pt"):
        fit(lambda b: {"loss": 0.0}, batches, steps=8, state={"model": model}, checkpoint=path,
            config={"hidden": 20})
    save_checkpoint(path, 5, {"model": model}, History(), {})
    with pytest.raises(CheckpointMismatchError, match=r"hidden: '\(unset\)' → 20"):
        fit(lambda b: {"loss": 0.0}, batches, steps=8, state={"model": model}, checkpoint=path,
            config={"hidden": 20})


def test_gates_do_not_enter_the_run_identity(tmp_path):
    def settings(gate):
        return pick_config(smoke=dict(steps=4), book=dict(steps=4), full=dict(steps=4), profile="smoke",
                           gates=dict(smoke=dict(margin=gate), book=dict(margin=gate), full=dict(margin=gate)))

    model, optimizer, train_step, batches = regression_problem()
    state = {"model": model, "optimizer": optimizer}
    fit(train_step, batches, steps=4, state=state, checkpoint=tmp_path / "run.pt", config=settings(1.0))
    again = fit(train_step, batches, steps=4, state=state, checkpoint=tmp_path / "run.pt", config=settings(2.0))
    assert again.resumed_from == 4 and settings(2.0).gates.margin == 2.0


def test_checkpoint_trained_by_other_code_is_refused(tmp_path):
    class Model(nn.Module):
        def forward(self, x):
            return x * 2

    class Changed(nn.Module):
        def forward(self, x):
            return x * 3

    Changed.__qualname__ = Model.__qualname__
    path = tmp_path / "run.pt"
    batches = TensorBatches(torch.zeros(4, 2), batch_size=2)
    model = nn.Linear(2, 1)
    fit(lambda b: {"loss": 0.0}, batches, steps=2, state={"model": model}, checkpoint=path, code=[Model])
    fit(lambda b: {"loss": 0.0}, batches, steps=2, state={"model": model}, checkpoint=path, code=[Model])
    with pytest.raises(CheckpointMismatchError, match=r"trained by other code: .*Model changed"):
        fit(lambda b: {"loss": 0.0}, batches, steps=2, state={"model": model}, checkpoint=path, code=[Changed])


def test_fingerprint_ignores_comments_but_not_code(tmp_path):
    import importlib.util

    def load(name, source):
        (tmp_path / f"{name}.py").write_text(source)
        spec = importlib.util.spec_from_file_location(name, tmp_path / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.step

    plain = load("plain", "def step(x):\n    return x + 1\n")
    commented = load("commented", "def step(x):  # why\n\n    return x + 1  # because\n")
    changed = load("changed", "def step(x):\n    return x + 2\n")
    assert code_fingerprint([plain]) == code_fingerprint([commented]) != code_fingerprint([changed])


def test_periodic_recordings_survive_a_resume(tmp_path):
    path = tmp_path / "run.pt"

    def run(steps):
        model, optimizer, train_step, batches = regression_problem()

        def weight_snapshot(step):
            return {"norm": model[0].weight.norm().item(), "weights": model[0].weight.detach().clone()}

        return fit(train_step, batches, steps=steps, state={"model": model, "optimizer": optimizer},
                   checkpoint=path, checkpoint_every=10, every={10: weight_snapshot})

    run(20)
    resumed = run(40)
    steps, values = resumed.recorded("weight_snapshot")
    assert steps == [10, 20, 30, 40]
    assert all(isinstance(v["weights"], torch.Tensor) for v in values)
    path.unlink()
    straight = run(40)
    assert [v["norm"] for v in values] == pytest.approx([v["norm"] for v in straight.recorded("weight_snapshot")[1]])
    with pytest.raises(KeyError, match="weight_snapshot"):
        straight.recorded("frames")


def test_skip_training_takes_no_step(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ITEMCHEST_SKIP_TRAINING", "1")
    model, optimizer, train_step, batches = regression_problem()
    before = flat(model).clone()
    history = fit(train_step, batches, steps=50, state={"model": model, "optimizer": optimizer},
                  checkpoint=tmp_path / "run.pt")
    assert history.skipped and history.steps == [] and torch.equal(flat(model), before)
    again = fit(train_step, batches, steps=50, state={"model": model}, every={10: lambda step: step * 2})
    assert again.recorded("<lambda>") == ([0], [0])
    assert not (tmp_path / "run.pt").exists()
    assert "training skipped" in capsys.readouterr().out


def test_stop_after_interrupts_at_a_checkpoint_and_the_rerun_resumes(monkeypatch, tmp_path):
    straight_model, straight_opt, straight_step, batches = regression_problem()
    straight = fit(straight_step, batches, steps=40, state={"model": straight_model, "optimizer": straight_opt})
    monkeypatch.setenv("ITEMCHEST_STOP_AFTER", "13")
    model, optimizer, train_step, batches = regression_problem()
    with pytest.raises(TrainingInterrupted, match="stopped after step 13 of 40.*Run again without"):
        fit(train_step, batches, steps=40, state={"model": model, "optimizer": optimizer},
            checkpoint=tmp_path / "run.pt", checkpoint_every=10)
    assert torch.load(tmp_path / "run.pt", weights_only=False)["step"] == 13
    monkeypatch.delenv("ITEMCHEST_STOP_AFTER")
    model, optimizer, train_step, batches = regression_problem(seed=7)
    resumed = fit(train_step, batches, steps=40, state={"model": model, "optimizer": optimizer},
                  checkpoint=tmp_path / "run.pt", checkpoint_every=10)
    assert resumed.resumed_from == 13 and resumed.steps == list(range(40))
    assert resumed["loss"] == pytest.approx(straight["loss"], rel=1e-5)
    assert torch.allclose(flat(model), flat(straight_model), atol=1e-6)


def test_stop_after_needs_a_checkpoint_and_a_step_count(monkeypatch):
    model, optimizer, train_step, batches = regression_problem()
    monkeypatch.setenv("ITEMCHEST_STOP_AFTER", "5")
    with pytest.raises(ValueError, match="no checkpoint to resume from"):
        fit(train_step, batches, steps=10, state={"model": model})
    monkeypatch.setenv("ITEMCHEST_STOP_AFTER", "half")
    with pytest.raises(ValueError, match="positive step count"):
        fit(train_step, batches, steps=10, state={"model": model})


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "run.pt"
    path.write_bytes(b"not a checkpoint")
    batches = TensorBatches(torch.zeros(4, 2), batch_size=2)
    with pytest.raises(CheckpointMismatchError, match="Delete it"):
        fit(lambda b: {"loss": 0.0}, batches, steps=2, state={"model": nn.Linear(2, 1)}, checkpoint=path)


def test_bad_arguments_are_clear_errors():
    batches = TensorBatches(torch.zeros(4, 2), batch_size=2)
    with pytest.raises(ValueError, match="shape"):
        fit(lambda b: {"loss": torch.zeros(3)}, batches, steps=2, state={})
    with pytest.raises(ValueError, match="positive"):
        fit(lambda b: {"loss": 0.0}, batches, steps=2, state={}, every={0: print})


def test_another_page_loads_a_finished_run_and_checks_shared_code(tmp_path, monkeypatch):
    monkeypatch.setenv("ITEMCHEST_CHECKPOINTS", str(tmp_path))
    monkeypatch.setenv("ITEMCHEST_PROFILE", "smoke")
    with pytest.raises(FileNotFoundError, match="Run the demo page first"):
        load_trained("demo/main")
    model, optimizer, train_step, batches = regression_problem()
    fit(train_step, batches, steps=6, state={"model": model, "optimizer": optimizer}, run="demo/main",
        config={"width": 16}, code=[regression_problem])
    trained = load_trained("demo/main", code=[regression_problem])
    assert trained.config == {"width": 16} and trained.history.steps == list(range(6))
    restored = nn.Sequential(nn.Linear(3, 16), nn.Dropout(0.2), nn.Linear(16, 1))
    restored.load_state_dict(trained.state["model"])
    assert torch.equal(flat(restored), flat(model))

    def regression_problem_changed():
        return None

    regression_problem_changed.__qualname__ = "regression_problem"
    with pytest.raises(CheckpointMismatchError, match="regression_problem differ"):
        load_trained("demo/main", code=[regression_problem_changed])


def test_a_module_is_fingerprinted_whole(tmp_path):
    import importlib.util

    def load(name, helper_body):
        (tmp_path / f"{name}.py").write_text(f"def helper(x):\n    return {helper_body}\n\n\nclass Net:\n"
                                             "    def forward(self, x):\n        return helper(x)\n")
        spec = importlib.util.spec_from_file_location(name, tmp_path / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    first, second = load("first", "x + 1"), load("second", "x + 2")
    assert code_fingerprint([first.Net]) == code_fingerprint([second.Net])  # the class alone misses the helper
    assert code_fingerprint([first])["first"] != code_fingerprint([second])["second"]
