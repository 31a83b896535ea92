"""Issue 17: large files through DVC, to a real S3 server (SeaweedFS, `scripts/s3.sh`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

import registry
from registry.errors import IntegrityError, ManifestError, NotFound
from registry.store.artifacts import parse_pointer
from tests.conftest import git

S3_URL = os.environ.get("REGISTRY_TEST_S3_URL")
BUCKET = os.environ.get("REGISTRY_TEST_S3_BUCKET", "registry-test")
needs_s3 = pytest.mark.skipif(not S3_URL, reason="no S3 server: set REGISTRY_TEST_S3_URL "
                              "(scripts/s3.sh starts one)")


def dvc(root: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, check=True,
                   capture_output=True, text=True)


@pytest.fixture
def dvc_repo(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test repository with DVC initialised and a 1 KB threshold (drag-net's weights,
    19 KB, go to DVC as a 50 MB file would)."""
    dvc(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "dvc init")
    monkeypatch.setenv("REGISTRY_DVC_THRESHOLD_BYTES", "1000")
    return repo


def s3_remote(root: Path, prefix: str) -> None:
    dvc(root, "remote", "add", "-d", "store", f"s3://{BUCKET}/{prefix}")
    dvc(root, "remote", "modify", "store", "endpointurl", str(S3_URL))
    git(root, "add", ".dvc/config")
    git(root, "commit", "-qm", "DVC remote")


def sample() -> torch.Tensor:
    return torch.tensor([[1.2, 0.47, 0.0042, 30.0]])


def test_a_large_file_is_kept_by_dvc_not_git(dvc_repo: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    reg = registry.open(dvc_repo)
    with caplog.at_level("WARNING", logger="registry.store"):
        result = reg.register(dvc_repo / "modules" / "drag-net")
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "modules/drag-net/weights.safetensors" in messages and "tracked with DVC" in messages
    assert "no default DVC remote" in messages
    files = git(dvc_repo, "ls-tree", "-r", "--name-only", result.commit, "modules/drag-net")
    assert "modules/drag-net/weights.safetensors.dvc" in files.split()
    assert "modules/drag-net/weights.safetensors" not in files.split()
    out = reg.load("drag-net@1.0.0")(sample())
    assert torch.isfinite(out).all()
    clone = dvc_repo.parent / "clone"
    git(dvc_repo.parent, "clone", "-q", str(dvc_repo), str(clone))
    with pytest.raises(NotFound, match="not in this checkout's DVC cache, and the DVC remote "
                       r"\(none is configured\) does not hold it"):
        registry.open(clone).load("drag-net@1.0.0")


def test_evaluation_data_goes_with_weights_over_the_threshold(
        dvc_repo: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # test.npz (81 KB) is over 50 KB; the weights (18 KB, over COMPANION_BYTES) go with it
    monkeypatch.setenv("REGISTRY_DVC_THRESHOLD_BYTES", "50000")
    reg = registry.open(dvc_repo)
    with caplog.at_level("WARNING", logger="registry.store"):
        result = reg.register(dvc_repo / "modules" / "drag-net")
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "test.npz (0.1 MB, over 0.05 MB)" in messages
    assert "weights.safetensors (0.0 MB, beside a file over 0.05 MB)" in messages
    files = git(dvc_repo, "ls-tree", "-r", "--name-only", result.commit,
                "modules/drag-net").split()
    assert sorted(f.rsplit("/", 1)[1] for f in files) == [
        ".gitignore", "module.yaml", "test.npz.dvc", "weights.safetensors.dvc"]
    assert torch.isfinite(reg.load("drag-net@1.0.0")(sample())).all()
    assert reg.evaluate("drag-net@1.0.0")["r2"] > 0.99  # the evaluation data read from DVC


def test_small_modules_stay_in_git(dvc_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_DVC_THRESHOLD_BYTES", "100000")
    result = registry.open(dvc_repo).register(dvc_repo / "modules" / "drag-net")
    files = git(dvc_repo, "ls-tree", "-r", "--name-only", result.commit, "modules/drag-net")
    assert not [f for f in files.split() if f.endswith(".dvc")]


def test_an_altered_cache_object_is_refused(dvc_repo: Path) -> None:
    reg = registry.open(dvc_repo)
    reg.register(dvc_repo / "modules" / "drag-net")
    pointer = parse_pointer((dvc_repo / "modules/drag-net/weights.safetensors.dvc").read_text(),
                            source="x")
    cached = dvc_repo / ".dvc/cache/files/md5" / pointer.md5[:2] / pointer.md5[2:]
    data = bytearray(cached.read_bytes())
    data[-1] ^= 0xFF
    cached.chmod(0o644)
    cached.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match the md5 of its DVC pointer"):
        registry.open(dvc_repo).load("drag-net@1.0.0")


def test_a_bad_pointer_names_the_file_and_field() -> None:
    good = "outs:\n- md5: " + "a" * 32 + "\n  size: 10\n  path: w.safetensors\n"
    assert parse_pointer(good, source="p.dvc").size == 10
    for text, field in (("outs: []\n", "outs"), (good.replace("a" * 32, "zz"), "outs[0].md5"),
                        (good.replace("10", "-1"), "outs[0].size"),
                        (good.replace("w.safetensors", "../w"), "outs[0].path"),
                        (good.replace("10", str(10 ** 12)), "outs[0].size")):
        with pytest.raises(ManifestError, match="^" + re.escape(f"p.dvc: {field}")):
            parse_pointer(text, source="p.dvc")


@needs_s3
def test_weights_pushed_to_s3_load_in_a_fresh_clone_and_tampering_is_refused(
        dvc_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "registry")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "registry")
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    s3_remote(dvc_repo, prefix)
    reg = registry.open(dvc_repo)
    with caplog.at_level("WARNING", logger="registry.store"):
        reg.register(dvc_repo / "modules" / "drag-net")
    assert "pushed to remote `store`" in " ".join(r.getMessage() for r in caplog.records)
    expected = reg.load("drag-net@1.0.0")(sample())

    clone = tmp_path / "elsewhere"
    git(tmp_path, "clone", "-q", str(dvc_repo), str(clone))
    assert not (clone / "modules/drag-net/weights.safetensors").exists()
    fresh = registry.open(clone)
    assert torch.equal(fresh.load("drag-net@1.0.0")(sample()), expected)
    # The gate in the fresh clone: the working tree lacks the weights; `dvc pull` fills them.
    report = fresh.check(all_modules=True)
    assert report.passed, report.to_markdown()
    assert (clone / "modules/drag-net/weights.safetensors").is_file()
    # The file the server streams is the same bytes, through the same read.
    data = fresh.resolve("drag-net@1.0.0").read("weights.safetensors")
    assert data == (dvc_repo / "modules/drag-net/weights.safetensors").read_bytes()

    fs = s3fs.S3FileSystem(key="registry", secret="registry",
                           client_kwargs={"endpoint_url": S3_URL, "region_name": "us-east-1"})
    md5 = parse_pointer((dvc_repo / "modules/drag-net/weights.safetensors.dvc").read_text(),
                        source="x").md5
    stored = f"{BUCKET}/{prefix}/files/md5/{md5[:2]}/{md5[2:]}"
    assert stored in fs.find(f"{BUCKET}/{prefix}")  # and the evaluation data beside it
    blob = bytearray(fs.cat(stored))
    blob[-1] ^= 0xFF
    fs.pipe(stored, bytes(blob))
    other = tmp_path / "third"
    git(tmp_path, "clone", "-q", str(dvc_repo), str(other))
    with pytest.raises(IntegrityError, match="altered; refused"):
        registry.open(other).load("drag-net@1.0.0")


def test_a_registration_that_fails_after_dvc_took_the_files_puts_them_back(
        dvc_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from registry.errors import RegistryError
    from registry.store import artifacts

    folder = dvc_repo / "modules" / "drag-net"
    weights = (folder / "weights.safetensors").read_bytes()
    index = git(dvc_repo, "ls-files", "--stage", "--", "modules/drag-net")
    status = git(dvc_repo, "status", "--porcelain", "--ignored", "--", "modules")
    calls: list[list[str]] = []

    def unreachable(root: Path, where: Path) -> str:
        calls.append(sorted(p.name for p in where.glob("*.dvc")))  # tracked by now
        raise RegistryError("modules/drag-net: pushing its DVC-tracked files failed")

    monkeypatch.setattr(artifacts, "push", unreachable)
    with pytest.raises(RegistryError, match="pushing its DVC-tracked files failed"):
        registry.open(dvc_repo).register(folder)
    assert calls == [["test.npz.dvc", "weights.safetensors.dvc"]]
    assert not list(folder.glob("*.dvc")) and not (folder / ".gitignore").exists()
    assert git(dvc_repo, "ls-files", "--stage", "--", "modules/drag-net") == index
    assert git(dvc_repo, "status", "--porcelain", "--ignored", "--", "modules") == status
    assert (folder / "weights.safetensors").read_bytes() == weights
    assert not git(dvc_repo, "tag", "--list")
    monkeypatch.undo()
    monkeypatch.setenv("REGISTRY_DVC_THRESHOLD_BYTES", "1000")
    result = registry.open(dvc_repo).register(folder)  # and a second try goes through
    assert "modules/drag-net/weights.safetensors.dvc" in git(
        dvc_repo, "ls-tree", "-r", "--name-only", result.commit, "modules/drag-net").split()
