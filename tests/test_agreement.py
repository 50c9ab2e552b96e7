"""Agreement statistics pinned against hand-computed values (each worked out in a comment)."""

from __future__ import annotations

import math

import pytest

from r1tune.agreement import AgreementInputError, cohen_kappa, fleiss_kappa, krippendorff_alpha, majority


def test_cohen_kappa_by_hand() -> None:
    # a = 1 1 2 2, b = 1 2 2 2 over categories {1, 2}: observed agreement p_o = 3/4.
    # marginals a: (1/2, 1/2), b: (1/4, 3/4) -> p_e = 1/2*1/4 + 1/2*3/4 = 1/2; kappa = (3/4-1/2)/(1-1/2) = 1/2
    assert cohen_kappa([1, 1, 2, 2], [1, 2, 2, 2], [1, 2]) == pytest.approx(0.5)
    assert cohen_kappa([1, 2, 3], [1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)


def test_quadratic_kappa_credits_near_misses() -> None:
    # Categories 1..3, a = 1 2 3, b = 2 2 3. Weights w = ((i-j)/2)^2: 0, 1/4 (off by one), 1 (off by two).
    # Observed (each pair 1/3): only (1,2) disagrees -> sum w*O = 1/4 * 1/3 = 1/12.
    # Marginals a: 1/3 each; b: (0, 2/3, 1/3). Expected E = a_i * b_j; sum w*E = 1/3 * sum_i sum_j w_ij b_j
    #   row i=1: 0*0 + 1/4*2/3 + 1*1/3 = 1/2; i=2: 1/4*0 + 0 + 1/4*1/3 = 1/12; i=3: 1*0 + 1/4*2/3 + 0 = 1/6
    #   -> 1/3 * (1/2 + 1/12 + 1/6) = 1/3 * 3/4 = 1/4; kappa_w = 1 - (1/12)/(1/4) = 2/3
    assert cohen_kappa([1, 2, 3], [2, 2, 3], [1, 2, 3], weights="quadratic") == pytest.approx(2 / 3)
    # Unweighted on the same data: p_o = 2/3, p_e = 1/3*0 + 1/3*2/3 + 1/3*1/3 = 1/3 -> (2/3-1/3)/(2/3) = 1/2
    assert cohen_kappa([1, 2, 3], [2, 2, 3], [1, 2, 3]) == pytest.approx(0.5)


def test_fleiss_kappa_by_hand() -> None:
    # 3 items x 3 raters, categories {1, 2}: counts per item (3,0), (0,3), (2,1).
    # P_i = (sum n_ij^2 - 3) / (3*2): (9-3)/6 = 1, 1, (4+1-3)/6 = 1/3 -> P_bar = 7/9
    # p_j = (3+0+2)/9 = 5/9, (0+3+1)/9 = 4/9 -> P_e = 25/81 + 16/81 = 41/81
    # kappa = (7/9 - 41/81) / (1 - 41/81) = (63/81 - 41/81) / (40/81) = 22/40 = 0.55
    assert fleiss_kappa([[1, 1, 1], [2, 2, 2], [1, 1, 2]], [1, 2]) == pytest.approx(0.55)


def test_kappa_bad_inputs_are_explained() -> None:
    with pytest.raises(AgreementInputError, match="equal, non-empty"):
        cohen_kappa([1, 2], [1], [1, 2])
    with pytest.raises(AgreementInputError, match="same number"):
        fleiss_kappa([[1, 2], [1]], [1, 2])
    assert math.isnan(cohen_kappa([3, 3], [3, 3], [1, 2, 3]))  # chance agreement is total: undefined


def test_krippendorff_alpha_nominal_by_hand() -> None:
    # units (a,a), (a,b), (b,b): n = 6 pairable values. Observed: only unit 2 disagrees, its 2 ordered pairs
    # each cost 1, divided by (m-1)=1 -> D_o = 2/6. Expected: values a,a,a,b,b,b; ordered pairs of different
    # values 3*3*2 = 18 over 6*5 = 30 -> D_e = 18/30. alpha = 1 - (2/6)/(18/30) = 1 - 5/9 = 4/9
    assert krippendorff_alpha([["a", "a"], ["a", "b"], ["b", "b"]]) == pytest.approx(4 / 9)
    # a unit with one value is not pairable and changes nothing; three annotators on one unit work too
    assert krippendorff_alpha([["a", "a"], ["a", "b"], ["b", "b"], ["c"]]) == pytest.approx(4 / 9)
    assert krippendorff_alpha([["x", "x", "x"], ["y", "y", "y"]]) == pytest.approx(1.0)


def test_krippendorff_alpha_with_a_text_distance() -> None:
    # distance 0 within units, 1 across: perfect agreement however the texts are worded
    def distance(a: str, b: str) -> float:
        return 0.0 if a[0] == b[0] else 1.0

    assert krippendorff_alpha([["apple", "avocado"], ["banana", "blueberry"]], distance) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha([["a", "a"], ["a", "a"]]))  # nothing to disagree about
    with pytest.raises(AgreementInputError, match="two or more values"):
        krippendorff_alpha([["a"], ["b"]])


def test_majority_and_its_share() -> None:
    assert majority(["refund", "billing", "refund"]) == ("refund", pytest.approx(2 / 3))
    assert majority(["a", "b"]) == ("a", 0.5)  # a tie goes to the first seen
