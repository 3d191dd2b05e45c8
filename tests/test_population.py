import pytest

from paradox_utils.population import assign_augmentations, base_specs, offspring_specs, retrain_for

COMMON = {"epochs": 1, "train_per_class": 20, "val_per_class": 5, "batch_size": 32}


def population(common=None, grid=None, parents=0, manipulations=None, finetune_common=None, groups=()):
    """Base networks and their offspring, as :func:`population.from_parameters` makes them
    from a profile's ``base_*`` and ``finetune_*`` settings."""
    bases = base_specs(common=common, grid=grid)
    return bases + offspring_specs(bases, parents=parents, manipulations=manipulations, common=finetune_common,
                                   groups=groups)


def test_profile_builds_lineage():
    specs = population(COMMON, {"lr": [1e-3, 5e-3], "batch_size": [32, 64]}, parents=2,
                       manipulations=[None, "all", "blur"])
    assert [s.net_id for s in specs[:4]] == ["b000", "b001", "b002", "b003"]
    assert len(specs) == 4 + 6 and specs[4].parent == "b000" and specs[4].net_id == "b000-ft-none"
    assert specs[5].config.manipulation == "all"
    with pytest.raises(ValueError, match="exceeds"):
        base_specs(grid={"lr": [1e-3]}, sample=3)


def test_fine_tune_groups_need_distinct_suffixes():
    with pytest.raises(ValueError, match="distinct 'suffix'"):
        population(grid={"lr": [1e-3]}, groups=[{"parents": 1, "manipulations": ["all"]},
                                               {"parents": 1, "manipulations": ["all"]}])


def test_a_network_id_is_a_plain_name():
    """A group's suffix becomes part of its offspring's ids, which name checkpoint files: one that
    makes a path is refused in one sentence, and so is a group that is not a mapping."""
    with pytest.raises(ValueError, match=r"^The network id 'b000-ft-all/\.\./x' should be a plain name \(letters, "
                                         r"digits, -, _ and \., not starting with \.\): it names the network's "
                                         r"checkpoint file, <id>\.safetensors \(.*\)\.$"):
        population(grid={"lr": [1e-3]}, groups=[{"parents": 1, "manipulations": ["all"], "suffix": "/../x"}])
    with pytest.raises(ValueError, match=r"^Each of finetune_groups should be a mapping of parents, .*, got 3\.$"):
        population(grid={"lr": [1e-3]}, groups=[3])


def test_retrain_for_splits_the_named_networks_between_the_chapters():
    specs = population(COMMON, {"lr": [1e-3, 2e-3]}, parents=2, manipulations=["all", None])
    assert retrain_for(specs, ["b000"], "base") == ["b000"]
    assert retrain_for(specs, ["b000"], "finetune") == ["b000-ft-all", "b000-ft-none"]  # the base is not trained twice
    assert retrain_for(specs, ["b001-ft-none"], "base") == []  # chapter 1 has nothing to retrain
    assert retrain_for(specs, ["b001-ft-none"], "finetune") == ["b001-ft-none"]
    assert retrain_for(specs, ["stale", "b000"], "base") == ["b000", "stale"]  # the word is resolved later
    assert retrain_for(specs, ["stale"], "finetune") == ["stale"]


def test_assigning_augmentations():
    parents = [f"b{i:03d}" for i in range(10)]
    every = assign_augmentations(parents, [None, "all"])
    assert every == {p: [None, "all"] for p in parents}
    drawn = assign_augmentations(parents, [None, "all", "blur", "gamma"], per_parent=2, total=23, seed=3)
    assert sorted(len(v) for v in drawn.values()) == [2] * 7 + [3] * 3
    assert all(len(set(map(str, v))) == len(v) for v in drawn.values())  # never twice for one parent
    assert drawn == assign_augmentations(parents, [None, "all", "blur", "gamma"], per_parent=2, total=23, seed=3)
    assert drawn != assign_augmentations(parents, [None, "all", "blur", "gamma"], per_parent=2, total=23, seed=4)
    with pytest.raises(ValueError, match="cannot be drawn"):
        assign_augmentations(parents, [None, "all"], per_parent=2, total=25)


def test_base_replicates_repeat_each_combination_with_its_own_seed():
    specs = base_specs(grid={"lr": [0.1, 0.2]}, replicates=2)
    assert [(s.net_id, s.config.lr, s.config.seed) for s in specs] == [
        ("b000", 0.1, 0), ("b001", 0.1, 1), ("b002", 0.2, 2), ("b003", 0.2, 3)]
    first, second = (s.config.to_dict() for s in specs[:2])
    assert {k for k in first if first[k] != second[k]} == {"seed"}  # replicates differ only in their seed
    with pytest.raises(ValueError, match="base_replicates must be a whole number"):
        base_specs(grid={"lr": [0.1]}, replicates=0)
