"""How a message names many ids: the first ten, then how many more."""

from paradox_utils import names


def test_listed_names_ten_then_counts_the_rest():
    assert names.listed(["b000"]) == "b000"
    assert names.listed([f"b{i:03d}" for i in range(names.LISTED)]) == ", ".join(f"b{i:03d}" for i in range(10))
    many = names.listed([f"b{i:03d}" for i in range(329)])
    assert many.startswith("b000, b001") and many.endswith("b009 and 319 more") and "b010" not in many
    assert names.listed([("a", "b"), 3]) == "('a', 'b'), 3"  # any id, shown with str
