import ast
import json
import re
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

import paradox_utils
from paradox_utils import checkpoints, models


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    net = models.build("resnet20").eval()
    net.bn1.running_mean.uniform_()  # make buffers non-trivial
    meta = checkpoints.save(tmp_path / "n1", net, "resnet20", 10, config={"lr": 1e-3}, parent=None)
    return tmp_path / "n1", net, meta


def test_round_trip_is_bit_identical(saved):
    path, net, meta = saved
    loaded, loaded_meta = checkpoints.load(path, arch="resnet20")
    for key, value in net.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), loaded(x))
    assert loaded_meta["config"] == {"lr": 1e-3} and loaded_meta["sha256"] == meta["sha256"]
    assert not list(path.parent.glob("*.tmp"))  # atomic writes leave nothing behind


@pytest.mark.slow
def test_resnet50_keras_round_trip(tmp_path):
    """The Keras ResNet50 saves and loads under its Keras layer names, bit for bit (conv
    biases and BatchNorm statistics included), and is refused as torchvision's resnet50."""
    torch.manual_seed(1)
    net = models.build("resnet50_keras", num_classes=10, init="glorot_uniform").eval()
    with torch.no_grad():
        net.res3c_branch2c.bias.normal_()
        net.bn3c_branch2c.running_var.uniform_(0.5, 2)
    checkpoints.save(tmp_path / "k", net, "resnet50_keras", 10)
    loaded, meta = checkpoints.load(tmp_path / "k", arch="resnet50_keras")
    assert type(loaded) is models.ResNet50Keras and meta["num_classes"] == 10
    state = loaded.state_dict()
    assert list(state) == list(net.state_dict()) and "res3c_branch2c.bias" in state
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    with pytest.raises(checkpoints.CheckpointError, match="is a resnet50_keras, not a resnet50"):
        checkpoints.load(tmp_path / "k", arch="resnet50")


def test_refuses_another_architecture(saved):
    path, _, _ = saved
    with pytest.raises(checkpoints.CheckpointError, match="is a resnet20, not a resnet50"):
        checkpoints.load(path, arch="resnet50")


def test_refuses_corrupt_file(saved):
    path, _, _ = saved
    tensors = path.with_suffix(".safetensors")
    blob = bytearray(tensors.read_bytes())
    blob[-100] ^= 0xFF
    tensors.write_bytes(bytes(blob))
    with pytest.raises(checkpoints.CheckpointError, match="corrupt"):
        checkpoints.load(path)


def test_refuses_missing_sidecar_and_bad_json(saved):
    path, _, _ = saved
    sidecar = path.with_suffix(".json")
    sidecar.write_text("{not json")
    with pytest.raises(checkpoints.CheckpointError, match="not valid JSON"):
        checkpoints.load(path)
    sidecar.unlink()
    with pytest.raises(checkpoints.CheckpointError, match="sidecar .* is missing"):
        checkpoints.load(path)


def test_refuses_weights_that_do_not_fit(tmp_path):
    net50_path = tmp_path / "fake50"
    checkpoints.save(net50_path, models.build("resnet20"), "resnet20", 10)
    fake = json.loads(net50_path.with_suffix(".json").read_text())
    fake["arch"], fake["num_classes"] = "resnet50", 1000
    net50_path.with_suffix(".json").write_text(json.dumps(fake))
    with pytest.raises(checkpoints.CheckpointError, match="does not fit a resnet50"):
        checkpoints.load(net50_path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_refuses_weights_that_are_not_finite(saved, value):
    """A checkpoint whose hash matches but whose weights hold NaN or ±inf (a network that
    diverged, saved before training refused that) never reaches a model: one sentence naming
    the file and the first such tensor, a CheckpointError as a corrupt file's is."""
    path, net, _ = saved
    state = net.state_dict()
    state["layer1.1.conv1.weight"][0, 0, 0, 0] = value
    checkpoints.save(path, state, "resnet20", 10)
    file = re.escape(str(path.with_suffix(".safetensors")))
    message = (rf"^Checkpoint {file}: layer1\.1\.conv1\.weight holds non-finite values \(NaN or ±inf\), so these "
               r"weights cannot be analysed or trained on: train the network again without diverging \(a lower lr\), "
               r"or import it from finite weights\.$")
    for read in (checkpoints.load, checkpoints.load_state):
        with pytest.raises(checkpoints.NonFiniteWeights, match=message) as refused:
            read(path)
        assert isinstance(refused.value, checkpoints.CheckpointError)
    state["layer1.1.conv1.weight"][0, 0, 0, 0] = 0.0
    checkpoints.save(path, state, "resnet20", 10, extra_tensors={"opt/0/exp_avg": torch.tensor([value])})
    with pytest.raises(checkpoints.NonFiniteWeights, match=r": extra/opt/0/exp_avg holds non-finite"):
        checkpoints.load_state(path)  # a resume's optimiser state is read through the same check


# ------------------------------------------------------------------ no unpickling in the package
# Any reference to one of these (a call, an alias, a base class, getattr(module, "name")) counts.
UNPICKLERS = {f"{module}.{name}" for module in ("pickle", "_pickle", "pickle5", "dill", "cloudpickle")
              for name in ("load", "loads", "Unpickler", "_load", "_loads", "_Unpickler")}
UNPICKLERS |= {"joblib.load", "pandas.read_pickle", "pandas.io.pickle.read_pickle", "shelve.open",
               "shelve.Shelf", "shelve.DbfilenameShelf"}
# Safe only when called with the right argument: torch.load(..., weights_only=True) and
# numpy.load without allow_pickle (or allow_pickle=False).
CONDITIONAL = {"torch.load", "torch.serialization.load", "numpy.load"}
# The one reviewed call: torchvision's CIFAR-10 batches are pickles, unpickled only after
# each file's md5 matched torchvision's published list. (file in paradox_utils, function, call)
ALLOWED = {("data.py", "_decode_batches", "pickle.load")}


class Finding(NamedTuple):
    file: str
    function: str  # enclosing qualified name, "<module>" at top level
    line: int
    what: str

    def __str__(self):
        return f"{self.file}:{self.line} in {self.function}: {self.what}"


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted name for every import in the file (function-local ones too)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.AST, names: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return names.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, names)
        return f"{base}.{node.attr}" if base else None
    return None


def _safe_call(dotted: str, call: ast.Call) -> bool:
    keywords = {k.arg: k.value for k in call.keywords}
    if None in keywords:  # **kwargs: cannot be verified
        return False
    if dotted == "numpy.load":
        flag = keywords.get("allow_pickle", call.args[2] if len(call.args) > 2 else None)
        return flag is None or (isinstance(flag, ast.Constant) and flag.value is False)
    flag = keywords.get("weights_only")
    return isinstance(flag, ast.Constant) and flag.value is True


def unpickling_calls(path: Path, name: str | None = None) -> list[Finding]:
    """Every place in the Python file ``path`` that can unpickle, by enclosing function."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = _aliases(tree)
    found: list[Finding] = []

    def visit(node: ast.AST, scope: str, calls: dict[int, ast.Call]) -> None:
        if isinstance(node, ast.Call):
            calls[id(node.func)] = node
            if isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) >= 2:
                module, attr = _dotted(node.args[0], names), node.args[1]
                if module and isinstance(attr, ast.Constant) and isinstance(attr.value, str):
                    dotted = f"{module}.{attr.value}"
                    if dotted in UNPICKLERS | CONDITIONAL:
                        found.append(Finding(name or path.name, scope, node.lineno, f"getattr -> {dotted}"))
        if isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
            dotted = _dotted(node, names)
            if dotted in UNPICKLERS or (dotted in CONDITIONAL
                                        and not (id(node) in calls and _safe_call(dotted, calls[id(node)]))):
                found.append(Finding(name or path.name, scope, node.lineno, dotted))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            scope = node.name if scope == "<module>" else f"{scope}.{node.name}"
        for child in ast.iter_child_nodes(node):
            visit(child, scope, calls)

    visit(tree, "<module>", {})
    return found


def unreviewed(package: Path) -> tuple[list[Finding], list[Finding]]:
    """(findings not on the allow-list, findings on it) over every .py file under ``package``."""
    findings = [f for file in sorted(package.rglob("*.py"))
                for f in unpickling_calls(file, file.relative_to(package).as_posix())]
    allowed = [f for f in findings if (f.file, f.function, f.what) in ALLOWED]
    return [f for f in findings if f not in allowed], allowed


def test_no_pickle_in_the_package():
    bad, allowed = unreviewed(Path(paradox_utils.__file__).parent)
    assert not bad, "unpickling outside the reviewed allow-list:\n" + "\n".join(map(str, bad))
    # the allow-list holds exactly the reviewed call, once: a second call there, or a stale entry, fails
    assert sorted((f.file, f.function, f.what) for f in allowed) == sorted(ALLOWED), allowed


@pytest.mark.parametrize("source", [
    "import pickle\ndef f(x):\n    return pickle.loads(x)\n",
    "from pickle import loads as undo\nundo(b'')\n",
    "import pickle as p\nclass U(p.Unpickler):\n    pass\n",
    "import pickle\nread = getattr(pickle, 'load')\n",
    "import numpy as np\nnp.load('f.npy', allow_pickle=True)\n",
    "import numpy\nnumpy.load('f.npy', None, True)\n",
    "import torch\ntorch.load('f.pt')\n",
    "import torch\ntorch.load('f.pt', weights_only=False)\n",
    "import torch\ntorch.load('f.pt', **options)\n",
    "from torch import load\nload('f.pt', map_location='cpu')\n",
    "import torch\nreader = torch.load\n",
    "import pandas as pd\npd.read_pickle('t.pkl')\n",
    "import dill\ndill.loads(b'')\n",
    "import cloudpickle\ncloudpickle.loads(b'')\n",
    "import joblib\njoblib.load('m.joblib')\n",
    "def g():\n    import _pickle\n    return _pickle.Unpickler\n",
])
def test_checker_catches_planted_unpickling(tmp_path, source):
    planted = tmp_path / "planted.py"
    planted.write_text(source)
    assert len(unpickling_calls(planted)) == 1, source


@pytest.mark.parametrize("source", [
    "import torch\ntorch.load('f.pt', weights_only=True)\n",
    "import numpy as np\nnp.load('f.npy')\nnp.load('f.npy', allow_pickle=False)\n",
    "import json, pickle\njson.loads('{}')\npickle.dumps(1)\n",
    "from safetensors.torch import load_file\nload_file('x.safetensors')\n",
])
def test_checker_passes_safe_loading(tmp_path, source):
    planted = tmp_path / "fine.py"
    planted.write_text(source)
    assert unpickling_calls(planted) == []


def test_allow_list_is_by_file_and_function(tmp_path):
    (tmp_path / "data.py").write_text("import pickle\n\ndef _decode_batches(h):\n    return pickle.load(h)\n\n"
                                      "def other(h):\n    return pickle.load(h)\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.py").write_text("import pickle\ndef _decode_batches(h):\n    return pickle.load(h)\n")
    bad, allowed = unreviewed(tmp_path)
    assert [(f.file, f.function) for f in allowed] == [("data.py", "_decode_batches")]
    assert sorted((f.file, f.function, f.line) for f in bad) == [("data.py", "other", 7),
                                                                 ("sub/data.py", "_decode_batches", 3)]
