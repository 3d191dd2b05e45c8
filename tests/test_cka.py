"""Linear CKA: the Gram and feature forms agree, and the probes reach a network's stage outputs."""

import numpy as np
import pytest
import torch

from paradox_utils import models
from paradox_utils import similarity as S


@pytest.mark.slow
def test_cka_probes_the_keras_resnet50_at_its_stage_outputs():
    """The default probes of the Keras ResNet50: each stage's last block (after its
    addition and ReLU) and the pooled features fc1000 reads."""
    torch.manual_seed(11)
    nets = [models.build("resnet50_keras", num_classes=10, init="glorot_uniform").eval() for _ in range(2)]
    images = torch.rand(6, 3, 32, 32)
    acts = S.probe_activations(nets[0], images)
    assert list(acts) == ["res2c_relu", "res3d_relu", "res4f_relu", "res5c_relu", "pool"]
    assert acts["res2c_relu"].shape == (6, 256 * 8 * 8) and acts["pool"].shape == (6, 2048)
    assert (acts["res5c_relu"] >= 0).all()  # after the block's ReLU
    with torch.no_grad():
        pooled = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(
            acts["res5c_relu"].view(6, 2048, 1, 1), 1), 1)
    torch.testing.assert_close(acts["pool"], pooled)
    mean, per_layer = S.cka_matrix(nets, images, progress=False)
    assert set(per_layer) == set(acts) and mean.shape == (2, 2)
    np.testing.assert_allclose(np.diag(mean), 1.0)


@pytest.mark.slow
def test_cka_gram_form_equals_feature_form():
    torch.manual_seed(6)
    nets = [models.build("resnet20").eval() for _ in range(3)]
    images = torch.rand(40, 3, 32, 32)
    mean, per_layer = S.cka_matrix(nets, images, progress=False)
    acts = [S.probe_activations(n, images) for n in nets]
    assert set(per_layer) == {"layer1", "layer2", "layer3", "pool"}
    for layer in ("layer3", "pool"):  # the feature form needs p × p matrices: the narrow layers only
        matrix = per_layer[layer]
        for i in range(3):
            for j in range(3):
                assert matrix[i, j] == pytest.approx(S.linear_cka(acts[i][layer], acts[j][layer]), abs=1e-9)
    np.testing.assert_allclose(np.diag(mean), 1.0)
    x = torch.randn(50, 8, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
    assert S.linear_cka(x, x @ q * 3) == pytest.approx(1.0)  # invariant to rotation and scale


@pytest.mark.slow  # three ResNet20 forward passes per manipulation: seconds
def test_distorted_cka_is_cka_on_the_distorted_probes():
    """Each manipulation's matrix is cka_matrix on the probes distorted at probe_level (the
    literal twin), its diagonal 1; the level is the middle non-identity one."""
    from paradox_utils import cka, distortions

    torch.manual_seed(3)
    nets = [models.build("resnet20").eval() for _ in range(3)]
    images = torch.rand(8, 3, 32, 32)
    found = cka.distorted_cka(nets, images, ["contrast", "gaussian"], seed=2, progress=False)
    assert cka.probe_level("contrast") == 0.30 and cka.probe_level("blur") == 1.0
    assert cka.probe_level("gaussian") == 0.05
    for name, matrix in found.items():
        literal, _ = S.cka_matrix(nets, distortions.apply(images, name, cka.probe_level(name), seed=2), progress=False)
        np.testing.assert_allclose(matrix, literal)
        np.testing.assert_allclose(np.diag(matrix), 1.0)
    clean, _ = S.cka_matrix(nets, images, progress=False)
    assert not np.allclose(found["contrast"], clean)
