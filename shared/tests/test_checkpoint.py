import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from marginkit.shared import latest_checkpoint, load_checkpoint, save_checkpoint, skip_seen_batches
from marginkit.shared.checkpoint import list_checkpoints, resume_position


def test_round_trip_restores_weights_optimizer_config_and_step(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    path = save_checkpoint(
        tmp_path,
        step=5,
        tensors={"model": model.state_dict()},
        config={"lr": 0.1, "out": tmp_path},
        extra={"epoch": 1},
        objects={"optimizer": optimizer.state_dict()},
    )
    assert path.name == "checkpoint-00000005"
    state = load_checkpoint(tmp_path)
    assert state.step == 5
    assert state.config == {"lr": 0.1, "out": str(tmp_path)}
    assert state.extra == {"epoch": 1}
    assert torch.equal(state.tensors["model"]["weight"], model.weight)
    restored = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=0.1)
    restored.load_state_dict(state.objects["optimizer"])
    assert torch.equal(
        restored.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"]
    )


def test_keep_last_deletes_older_checkpoints(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, {"w": {"x": torch.full((1,), float(step))}}, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "checkpoint-00000003",
        "checkpoint-00000004",
    ]


def test_saving_same_step_twice_replaces_it(tmp_path):
    save_checkpoint(tmp_path, 1, {"w": {"x": torch.zeros(1)}})
    save_checkpoint(tmp_path, 1, {"w": {"x": torch.ones(1)}})
    assert load_checkpoint(tmp_path).tensors["w"]["x"].item() == 1.0


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        load_checkpoint(tmp_path)


def test_unstorable_config_value_names_it(tmp_path):
    with pytest.raises(TypeError, match="cannot be stored"):
        save_checkpoint(tmp_path, 1, {"w": {"x": torch.zeros(1)}}, config={"f": object()})
    assert latest_checkpoint(tmp_path) is None


_WRITER = textwrap.dedent(
    """
    import sys, time, torch
    from marginkit.shared import save_checkpoint

    class Stall:
        # Pickling this blocks, so the parent can kill the process mid-write.
        def __reduce__(self):
            print("writing", flush=True)
            time.sleep(60)
            return (int, (0,))

    root = sys.argv[1]
    save_checkpoint(root, 1, {"model": {"w": torch.arange(4.0)}})
    save_checkpoint(root, 2, {"model": {"w": torch.zeros(1_000_000)}}, objects={"s": Stall()})
    """
)


def test_kill_mid_write_leaves_previous_checkpoint_as_latest(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "writing"
        # The step-2 safetensors file is on disk already; kill before the folder is renamed.
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert any(p.name.startswith(".checkpoint-00000002.tmp-") for p in tmp_path.iterdir())
    latest = latest_checkpoint(tmp_path)
    assert latest is not None and latest.name == "checkpoint-00000001"
    state = load_checkpoint(tmp_path)
    assert state.step == 1
    assert torch.equal(state.tensors["model"]["w"], torch.arange(4.0))

    # The next save of the resumed run removes the half-written folder.
    save_checkpoint(tmp_path, 2, {"model": {"w": torch.ones(1)}})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-00000001",
        "checkpoint-00000002",
    ]
    assert json.loads((tmp_path / "checkpoint-00000002" / "state.json").read_text())["step"] == 2


def _epoch_batches(epoch, seen=0):
    generator = torch.Generator().manual_seed(100 + epoch)
    loader = torch.utils.data.DataLoader(
        torch.arange(20), batch_size=4, shuffle=True, generator=generator
    )
    return [batch.tolist() for batch in skip_seen_batches(loader, seen)]


def test_resume_skips_exactly_the_batches_already_seen():
    uninterrupted = _epoch_batches(epoch=1)
    epoch, seen = resume_position(step=5 + 3, batches_per_epoch=5)
    assert (epoch, seen) == (1, 3)
    resumed = _epoch_batches(epoch, seen)
    assert resumed == uninterrupted[3:]
    assert len(resumed) == 2


def test_skip_seen_batches_on_plain_iterables():
    assert list(skip_seen_batches(iter(range(6)), 4)) == [4, 5]
    with pytest.raises(ValueError, match="num_seen"):
        skip_seen_batches([1], -1)


def test_write_text_atomic_replaces_whole_file_and_cleans_up_on_failure(tmp_path):
    from marginkit.shared import write_text_atomic

    target = tmp_path / "sub" / "out.txt"
    write_text_atomic(target, "first\n")
    write_text_atomic(target, "second\n")
    assert target.read_text() == "second\n"

    with pytest.raises(TypeError):
        write_text_atomic(target, 123)  # not text: nothing is written
    assert target.read_text() == "second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]
