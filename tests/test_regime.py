"""Where a run stands against the paper: the sentence and its admonition, computed."""

import pandas as pd
import pytest

from paradox_utils.regime import regime, regime_of


def test_under_trained_run_is_outside_the_papers_regime():
    box = regime("resnet20", [0.55, 0.58, 0.61], unrelated=[0.136, 0.137], chance=0.135, chance_p99=0.141)
    assert not box.inside and box.kind == "warning"
    assert "outside the paper's regime" in box.text and "under-trained" in box.text
    assert "0.580 on average (0.550–0.610)" in box.text and "the paper's ResNet20 reached 0.88–0.92" in box.text
    assert "no more alike than random ones" in box.text  # 0.1365 ≤ p99 0.141
    assert 'class="admonition warning"' in box._repr_html_()


def test_trained_run_is_inside_and_says_so():
    box = regime("resnet20", [0.86, 0.89], unrelated=[0.2, 0.25], chance=0.135, chance_p99=0.141)
    assert box.inside and box.kind == "note" and "in the paper's regime" in box.text
    assert "no more alike" not in box.text and "under-trained" not in box.text
    assert 'class="admonition note"' in box._repr_html_()
    assert regime("resnet50", [0.70]).inside and not regime("resnet50", [0.40]).inside
    other = regime("torchvision:vgg11", [0.9])  # an imported network the paper never trained
    assert not other.inside and "the paper studied no torchvision:vgg11" in other.text
    with pytest.raises(ValueError, match="at least one network"):
        regime("resnet20", [float("nan")])


def test_regime_from_a_runs_tables_uses_base_networks_only():
    catalog = pd.DataFrame({"net_id": ["b000", "b001", "b000-ft-all"], "kind": ["base", "base", "finetune"],
                            "arch": "resnet20"})
    accuracy = pd.DataFrame({"net_id": ["b000", "b001", "b000-ft-all"], "manipulation": "contrast", "level": 1.0,
                             "accuracy": [0.9, 0.88, 0.1]})
    pairs = pd.DataFrame({"relation": ["unrelated", "parent-child"], "similarity_paper": [0.3, 0.99]})
    chance = pd.DataFrame({"mean": [0.135], "p99": [0.141]}, index=pd.Index(["paper"], name="method"))
    box = regime_of(catalog, accuracy, pairs, chance)
    assert box.inside and "2 base networks" in box.text and "similarity 0.300" in box.text
    assert "against 0.135, 99th percentile 0.141" in box.text
    assert "intrinsic similarity" not in regime_of(catalog, accuracy).text  # chapter 3: no similarity yet


def test_a_run_at_the_papers_accuracy_with_random_like_kernels_is_not_called_the_papers():
    box = regime("resnet20", [0.86, 0.89], unrelated=[0.136, 0.137], chance=0.135, chance_p99=0.141)
    assert "unlike the paper's its unrelated networks' kernels are no more alike than random" in box.text
    assert "as the paper's did" not in box.text


def test_the_design_beyond_accuracy_is_named_from_the_configs():
    import json

    def config(seed, lr=0.1, epochs=2):
        return json.dumps({"optimiser": "sgd", "schedule": "onecycle", "epochs": epochs, "lr": lr, "seed": seed})

    catalog = pd.DataFrame({"net_id": ["b000", "b001", "b002", "b000-ft-all"], "kind": ["base"] * 3 + ["finetune"],
                            "arch": "resnet20", "parent": [None, None, None, "b000"],
                            "config": [config(0), config(1), config(2, lr=0.2), config(9, epochs=1)]})
    from paradox_utils.regime import design_text

    text = design_text(catalog)
    assert text == ("Beyond accuracy, its design differs from the paper's: 3 bases trained 2 epochs with sgd (onecycle "
                    "schedule), against 104 trained about 200 epochs with Adam; 1 offspring of 1 parents (1–1 each), "
                    "against 225 of 104 parents; seed replicates of 1 recipe.")
    accuracy = pd.DataFrame({"net_id": ["b000", "b001", "b002"], "manipulation": "contrast", "level": 1.0,
                             "accuracy": [0.6, 0.6, 0.6]})
    assert text in regime_of(catalog, accuracy).text
