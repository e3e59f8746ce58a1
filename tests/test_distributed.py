"""Data-parallel training under torchrun: two CPU processes (gloo) must train as one process on the whole batch.

Each test launches ``python -m torch.distributed.run --nproc_per_node=2`` on the worker script below, which rank 0
answers through a file; the single-process reference runs the same functions here, in the test's own process."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from itemchest_utils import BatchNotSplittable, fit, shard_batch

WORKER = textwrap.dedent('''
    import os
    import sys

    import torch
    import torch.distributed as dist
    from torch import nn

    from itemchest_utils import BatchNotSplittable, TensorBatches, TrainingInterrupted, fit

    STEPS = 12
    BATCH_SIZES = []   # what each train_step received: a rank's slice, not the whole batch


    def regression(batch_size=16):
        """SGD with momentum and a gradient clip that bites: the clip must see the global batch's gradient."""
        torch.manual_seed(0)
        x = torch.randn(64, 3)
        y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1
        model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

        def train_step(batch):
            xb, yb = batch
            BATCH_SIZES.append(len(xb))
            loss = ((model(xb).squeeze(1) - yb) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            norm = nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            optimizer.step()
            return {"loss": loss, "gradient_norm": norm}

        state = {"model": model, "optimizer": optimizer}
        return state, train_step, TensorBatches(x, y, batch_size=batch_size, seed=1)


    def adversarial():
        """Two players, two Adam optimizers, a gradient penalty (double backward); fixed latents, so no RNG."""
        torch.manual_seed(0)
        real = torch.randn(64, 4) * 0.5 + 1
        latents = torch.randn(64, 2)
        generator = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 4))
        critic = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        optimizer_g = torch.optim.Adam(generator.parameters(), lr=0.01, betas=(0.5, 0.9))
        optimizer_d = torch.optim.Adam(critic.parameters(), lr=0.01, betas=(0.5, 0.9))

        def train_step(batch):
            x, z = batch
            fake = generator(z).detach()
            between = ((x + fake) / 2).requires_grad_(True)
            (slope,) = torch.autograd.grad(critic(between).sum(), between, create_graph=True)
            penalty = ((slope.norm(dim=1) - 1) ** 2).mean()
            loss_d = critic(fake).mean() - critic(x).mean() + 10 * penalty
            optimizer_d.zero_grad()
            loss_d.backward()
            optimizer_d.step()
            loss_g = -critic(generator(z)).mean()
            optimizer_g.zero_grad()
            loss_g.backward()
            optimizer_g.step()
            return {"loss_d": loss_d, "loss_g": loss_g}

        state = {"generator": generator, "critic": critic, "optimizer_g": optimizer_g, "optimizer_d": optimizer_d}
        return state, train_step, TensorBatches(real, latents, batch_size=16, seed=2)


    def noisy():
        """Dropout and noise drawn inside the step: what a resumed run must draw again, rank by rank."""
        torch.manual_seed(0)
        x = torch.randn(64, 3)
        y = x @ torch.tensor([1.0, -2.0, 0.5])
        model = nn.Sequential(nn.Linear(3, 16), nn.Dropout(0.2), nn.Linear(16, 1))
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

        def train_step(batch):
            xb, yb = batch
            loss = ((model(xb).squeeze(1) - yb - 0.1 * torch.randn_like(yb)) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return {"loss": loss}

        state = {"model": model, "optimizer": optimizer}
        return state, train_step, TensorBatches(x, y, batch_size=16, seed=3)


    def flat(state):
        return torch.cat([p.detach().flatten() for obj in state.values() if isinstance(obj, nn.Module)
                          for p in obj.parameters()])


    def train_noisy(path, stop_after=None):
        state, train_step, batches = noisy()
        if stop_after:
            os.environ["ITEMCHEST_STOP_AFTER"] = str(stop_after)
        try:
            history = fit(train_step, batches, steps=20, state=state, checkpoint=path, checkpoint_every=5)
        except TrainingInterrupted:
            return None
        finally:
            os.environ.pop("ITEMCHEST_STOP_AFTER", None)
        return {"parameters": flat(state), "loss": history["loss"]}


    def main(mode, folder):
        answer = {}
        if mode == "train":
            for name, problem in [("regression", regression), ("adversarial", adversarial)]:
                state, train_step, batches = problem()
                history = fit(train_step, batches, steps=STEPS, state=state)
                answer[name] = {"parameters": flat(state), "metrics": history.metrics,
                                "images_seen": history.images_seen}
            answer["rank_batch_sizes"] = sorted(set(BATCH_SIZES))
            answer["straight"] = train_noisy(os.path.join(folder, "straight.pt"))
            own_noise = torch.rand(4)   # after fit: the ranks' streams must differ
            noises = [torch.zeros(4) for _ in range(dist.get_world_size())]
            dist.all_gather(noises, own_noise)
            answer["ranks_draw_alike"] = bool(torch.equal(noises[0], noises[1]))
            train_noisy(os.path.join(folder, "resumed.pt"), stop_after=8)
            state, train_step, _ = regression()
            try:
                fit(train_step, regression(batch_size=15)[2], steps=2, state=state)
            except BatchNotSplittable as error:
                answer["error"] = str(error)
            torch.manual_seed(0)
            normalised = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
            optimizer = torch.optim.SGD(normalised.parameters(), lr=0.1)

            def normalised_step(x):
                loss = normalised(x).pow(2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                return {"loss": loss}

            fit(normalised_step, TensorBatches(torch.randn(32, 3), batch_size=8), steps=3,
                state={"model": normalised, "optimizer": optimizer})
            answer["batch_norm_kept"] = type(normalised[1]) is nn.BatchNorm1d
        else:
            answer["resumed"] = train_noisy(os.path.join(folder, "resumed.pt"))
        if dist.get_rank() == 0:
            torch.save(answer, os.path.join(folder, f"{mode}.pt"))


    if __name__ == "__main__":
        main(sys.argv[1], sys.argv[2])
''')


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """Both launches (train, then resume in fresh processes), once for the module: each costs seconds."""
    folder = tmp_path_factory.mktemp("ranks")
    script = folder / "worker.py"
    script.write_text(WORKER)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "ITEMCHEST_PROGRESS": "off",
                   "ITEMCHEST_OUTPUTS": str(folder / "outputs")}
    environment.pop("ITEMCHEST_STOP_AFTER", None)
    outputs = {}
    for mode in ["train", "resume"]:
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                               str(script), mode, str(folder)], env=environment, capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, f"torchrun {mode} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        outputs[mode] = done.stdout
    spec = importlib.util.spec_from_file_location("worker", script)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    return {"worker": worker, "stdout": outputs, **torch.load(folder / "train.pt", weights_only=False),
            **torch.load(folder / "resume.pt", weights_only=False)}


@pytest.mark.parametrize("problem", ["regression", "adversarial"])
def test_two_ranks_train_as_one_process_on_the_whole_batch(launched, problem):
    state, train_step, batches = getattr(launched["worker"], problem)()
    history = fit(train_step, batches, steps=launched["worker"].STEPS, state=state)
    ranks = launched[problem]
    difference = (ranks["parameters"] - launched["worker"].flat(state)).abs().max().item()
    print(f"{problem}: largest parameter difference, 2 ranks vs 1 process: {difference:.2e}")
    assert difference < 1e-5
    for name, values in history.metrics.items():   # the history is the global batch's
        assert ranks["metrics"][name] == pytest.approx(values, rel=1e-5, abs=1e-6), name
    assert ranks["images_seen"] == history.images_seen == launched["worker"].STEPS * 16
    assert launched["rank_batch_sizes"] == [8], "each rank must train on its half of the batch of 16"


def test_a_stopped_two_rank_run_resumes_exactly(launched):
    straight, resumed = launched["straight"], launched["resumed"]
    difference = (straight["parameters"] - resumed["parameters"]).abs().max().item()
    print(f"resume: largest parameter difference, resumed vs uninterrupted: {difference:.2e}")
    assert difference < 1e-6
    assert resumed["loss"] == pytest.approx(straight["loss"], rel=1e-6)
    assert not launched["ranks_draw_alike"], "every rank drew the same noise"


def test_a_batch_that_does_not_divide_says_what_batch_size_to_use(launched):
    assert "15 examples does not divide among 2 processes" in launched["error"]
    assert "multiple of 2 (e.g. 14 or 16)" in launched["error"]


def test_batch_norm_on_cpu_keeps_per_rank_statistics_and_says_so(launched):
    assert "BatchNorm: each of the 2 processes normalises with its own slice" in launched["stdout"]["train"]
    assert launched["batch_norm_kept"]


def test_shard_batch_slices_every_tensor_of_a_nested_batch():
    a, b, c = torch.arange(8), torch.arange(16).view(8, 2), torch.arange(4)
    shard = shard_batch(((a, b), {"c": c}), ranks=2, index=1)
    assert torch.equal(shard[0][0], a[4:]) and torch.equal(shard[0][1], b[4:]) and torch.equal(shard[1]["c"], c[2:])
    assert shard_batch(a, ranks=1, index=0) is a
    with pytest.raises(BatchNotSplittable, match="returned a str"):
        shard_batch("images", ranks=2, index=0)
    with pytest.raises(BatchNotSplittable, match="multiple of 4 .e.g. 4 or 8."):
        shard_batch(torch.zeros(6), ranks=4, index=0)
