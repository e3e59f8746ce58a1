import pytest
import torch
from torch import nn

from itemchest_utils import (CheckpointMismatchError, NonFiniteLossError, TensorBatches, fit,
                             save_checkpoint, History)


def regression_problem(seed=0):
    torch.manual_seed(seed)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def train_step(batch):
        xb, yb = batch
        loss = ((model(xb).squeeze(1) - yb) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss, "weight_norm": model.weight.norm()}

    return model, optimizer, train_step, TensorBatches(x, y, batch_size=16, seed=1)


def test_fit_learns_and_records_history():
    model, optimizer, train_step, batches = regression_problem()
    history = fit(train_step, batches, steps=200, state={"model": model, "optimizer": optimizer})
    assert history.steps == list(range(200))
    assert set(history.metrics) == {"loss", "weight_norm"}
    assert history["loss"][-1] < 0.01 * history["loss"][0]
    assert history.images_seen == 200 * 16
    assert history.wall_time > 0 and history.images_per_second > 0


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    path = tmp_path / "run.pt"
    straight_model, straight_opt, straight_step, batches = regression_problem()
    fit(straight_step, batches, steps=60, state={"model": straight_model, "optimizer": straight_opt})

    model, optimizer, train_step, batches = regression_problem()
    first = fit(train_step, batches, steps=25, state={"model": model, "optimizer": optimizer}, checkpoint=path)
    assert first.steps[-1] == 24
    model, optimizer, train_step, batches = regression_problem(seed=0)  # a fresh process, same setup
    with torch.no_grad():
        model.weight.zero_()  # proves the weights come from the checkpoint
    resumed = fit(train_step, batches, steps=60, state={"model": model, "optimizer": optimizer}, checkpoint=path)
    assert resumed.resumed_from == 25
    assert resumed.steps == list(range(60))
    assert torch.allclose(model.weight, straight_model.weight, atol=1e-6)


def test_finished_run_trains_no_further(tmp_path, capsys):
    path = tmp_path / "run.pt"
    model, optimizer, train_step, batches = regression_problem()
    fit(train_step, batches, steps=10, state={"model": model}, checkpoint=path)
    history = fit(train_step, batches, steps=10, state={"model": model}, checkpoint=path)
    assert len(history.steps) == 10
    assert "nothing to do" in capsys.readouterr().out


def test_nan_loss_stops_with_step_and_last_finite_values(tmp_path):
    path = tmp_path / "run.pt"
    model = nn.Linear(1, 1)
    losses = iter([1.0, 0.5, float("nan"), 0.1])

    def train_step(batch):
        return {"loss": next(losses)}

    batches = TensorBatches(torch.zeros(8, 1), batch_size=2)
    with pytest.raises(NonFiniteLossError, match=r"nan at step 2 \(last finite values at step 1: loss=0.5\)"):
        fit(train_step, batches, steps=4, state={"model": model}, checkpoint=path, checkpoint_every=1)
    # the good checkpoint from step 2 (two finished steps) is kept, not overwritten by the bad step
    assert torch.load(path, weights_only=True)["step"] == 2


def test_checkpoint_for_another_config_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    model = nn.Linear(2, 1)
    save_checkpoint(path, 5, {"model": model}, History(), {"hidden": 10})
    batches = TensorBatches(torch.zeros(4, 2), batch_size=2)
    with pytest.raises(CheckpointMismatchError, match="hidden"):
        fit(lambda b: {"loss": 0.0}, batches, steps=8, state={"model": model}, checkpoint=path,
            config={"hidden": 20})


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "run.pt"
    path.write_bytes(b"not a checkpoint")
    batches = TensorBatches(torch.zeros(4, 2), batch_size=2)
    with pytest.raises(CheckpointMismatchError, match="Delete it"):
        fit(lambda b: {"loss": 0.0}, batches, steps=2, state={"model": nn.Linear(2, 1)}, checkpoint=path)


def test_train_step_must_report_a_loss():
    batches = TensorBatches(torch.zeros(4, 2), batch_size=2)
    with pytest.raises(KeyError, match="loss"):
        fit(lambda b: {"error": 1.0}, batches, steps=2, state={})
