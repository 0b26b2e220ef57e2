from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sanitizer.config import SanitizerConfig
from sanitizer.contract import DataContract
from sanitizer.errors import ConfigError
from sanitizer.expectations import generate_suite, load_suite, save_suite, validate


@pytest.fixture(scope="module")
def suite(reference: pd.DataFrame, config: SanitizerConfig) -> dict:
    contract = DataContract.from_reference(reference, config)
    return generate_suite(reference, contract, name="demo")


def test_generated_suite_covers_the_contract(suite: dict, reference: pd.DataFrame) -> None:
    types = [e["type"] for e in suite["expectations"]]
    assert types[0] == "expect_table_columns_to_match_set"
    assert types.count("expect_column_values_to_not_be_null") == reference.shape[1]
    ranges = {
        (e["kwargs"]["column"], e["meta"].get("hard", False)): e["kwargs"]
        for e in suite["expectations"]
        if e["type"].endswith("between")
    }
    lo, hi = reference["x0"].min(), reference["x0"].max()
    assert ranges["x0", False]["min_value"] == pytest.approx(lo - 0.25 * (hi - lo))
    assert ranges["x0", False]["mostly"] == 0.99  # a stray tail value is the outliers' to judge
    assert ranges["x0", True]["max_value"] == pytest.approx(hi + 2 * (hi - lo))
    assert "mostly" not in ranges["x0", True]  # nothing may lie that far out
    sets = {
        e["kwargs"]["column"]: e["kwargs"]["value_set"]
        for e in suite["expectations"]
        if e["type"].endswith("in_set")
    }
    assert sets["region"] == ["east", "north", "south", "west"]
    assert sets["label"] == [0, 1]
    json.dumps(suite, allow_nan=False)  # plain JSON


def test_sparse_integer_tails_get_a_range_that_clean_batches_pass(config) -> None:
    """A pixel-like column: 0 in ~95% of rows, rare values up to 16 (digits)."""
    rng = np.random.default_rng(5)

    def pixels(n: int, seed: int) -> pd.DataFrame:
        r = np.random.default_rng(seed)
        values = np.where(r.random(n) < 0.95, 0, r.geometric(0.25, n).clip(1, 16))
        return pd.DataFrame({"x0": values, "label": r.integers(0, 2, n)})

    reference = pixels(900, 0)
    contract = DataContract.from_reference(reference, config.__class__(label_column="label"))
    suite = generate_suite(reference, contract, name="pixels")
    (bounds,) = [
        e["kwargs"]
        for e in suite["expectations"]
        if e["type"].endswith("between") and not e["meta"].get("hard")
    ]
    hi = reference["x0"].max()
    assert bounds["max_value"] > hi + 0.25 * hi  # the tail's own spread, not only 25%
    failed = sum(
        not all(o.success for o in validate(pixels(200, seed), suite))
        for seed in rng.integers(1, 2**31, size=40)
    )
    assert failed <= 1


def _zip_codes(n: int, seed: int) -> pd.DataFrame:
    """A zip-code-like column: 500 codes, Zipf-distributed, most of them rare."""
    r = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, 501) ** 1.1
    codes = r.choice(500, n, p=weights / weights.sum())
    return pd.DataFrame({"zip": [f"z{c:03d}" for c in codes], "label": r.integers(0, 2, n)})


def test_open_category_sets_let_clean_batches_bring_new_codes() -> None:
    """A long-tailed category column (singletons in the reference) gets a value set
    that holds for most of a batch: clean batches bring 3–6% codes the reference
    never showed and pass; a column of new codes still fails."""
    reference = _zip_codes(3000, 0)
    config = SanitizerConfig(label_column="label", categorical_columns=("zip",))
    suite = generate_suite(reference, DataContract.from_reference(reference, config), name="zip")
    sets = {e["kwargs"]["column"]: e for e in suite["expectations"] if e["type"].endswith("in_set")}
    share = float((reference["zip"].value_counts() == 1).sum()) / len(reference)
    assert sets["zip"]["meta"]["unseen_share"] == pytest.approx(share) and share > 0.02
    assert 0.5 < sets["zip"]["kwargs"]["mostly"] < 1.0 - 2 * share
    assert "mostly" not in sets["label"]["kwargs"]  # a label is never open
    seen = set(reference["zip"])
    for seed in range(1, 21):
        batch = _zip_codes(200, seed)
        assert not batch["zip"].isin(seen).all()  # new codes in every batch
        assert all(o.success for o in validate(batch, suite)), seed
    garbage = _zip_codes(200, 99)
    garbage.loc[:59, "zip"] = [f"new{i}" for i in range(60)]
    failed = {o.label: o for o in validate(garbage, suite) if not o.success}
    assert set(failed) == {"expect_column_values_to_be_in_set(zip)"}
    assert len(failed["expect_column_values_to_be_in_set(zip)"].unexpected_rows) >= 60


def test_closed_category_sets_and_labels_admit_no_new_value() -> None:
    """Every category seen more than once in the reference: the set is closed, one new
    value fails the batch. A class seen once is still a closed label set."""
    r = np.random.default_rng(3)
    reference = pd.DataFrame(
        {"plan": r.choice(["basic", "plus", "pro"], 1000), "label": r.integers(0, 2, 1000)}
    )
    reference.loc[0, "label"] = 2  # a class seen once
    config = SanitizerConfig(label_column="label")
    suite = generate_suite(reference, DataContract.from_reference(reference, config), name="closed")
    sets = {e["kwargs"]["column"]: e for e in suite["expectations"] if e["type"].endswith("in_set")}
    assert "mostly" not in sets["plan"]["kwargs"] and not sets["plan"]["meta"]
    assert "mostly" not in sets["label"]["kwargs"] and sets["label"]["kwargs"]["value_set"] == [
        0,
        1,
        2,
    ]
    batch = reference.iloc[1:201].reset_index(drop=True)
    assert all(o.success for o in validate(batch, suite))
    batch.loc[7, "plan"] = "platinum"
    failed = [o for o in validate(batch, suite) if not o.success]
    assert [(o.label, o.unexpected_rows) for o in failed] == [
        ("expect_column_values_to_be_in_set(plan)", (7,))
    ]


def _suite_and_hard_ranges(reference: pd.DataFrame) -> tuple[dict, dict[str, dict]]:
    """The suite generated for ``reference`` (label column "label") and its hard
    (no-exception) ranges by column."""
    config = SanitizerConfig(label_column="label")
    suite = generate_suite(reference, DataContract.from_reference(reference, config), name="t")
    hard = {
        e["kwargs"]["column"]: e["kwargs"]
        for e in suite["expectations"]
        if e["type"].endswith("between") and e["meta"].get("hard")
    }
    return suite, hard


def test_heavy_tails_get_a_hard_range_that_large_clean_batches_pass() -> None:
    """A Pareto column (index 1.5): one clean row in 9,000 lies beyond three times the
    reference's range, so 2,000-row batches failed the hard range about one time in
    five. Its upper tail now reaches the 1-in-10^9 value of Hill's estimate; a normal
    column keeps the plain rule, and a broken record still fails."""
    from sanitizer.expectations import tail_reach

    def rows(n: int, seed: int) -> pd.DataFrame:
        r = np.random.default_rng(seed)
        return pd.DataFrame(
            {"amount": r.pareto(1.5, n), "z": r.normal(size=n), "label": r.integers(0, 2, n)}
        )

    reference = rows(3000, 0)
    suite, hard = _suite_and_hard_ranges(reference)
    z_lo, z_hi = reference["z"].min(), reference["z"].max()
    assert hard["z"]["min_value"] == pytest.approx(z_lo - 2 * (z_hi - z_lo))
    assert hard["z"]["max_value"] == pytest.approx(z_hi + 2 * (z_hi - z_lo))
    # beyond the true 1-in-10^7 value of the Pareto tail, (1 + x)^-1.5 = 1e-7
    assert hard["amount"]["max_value"] > 1e7 ** (1 / 1.5)
    assert tail_reach(reference["z"].to_numpy()) == (np.median(reference["z"]),) * 2
    failed = [
        seed
        for seed in range(1, 31)
        if not all(o.success for o in validate(rows(2000, seed), suite))
    ]
    assert failed == []
    broken = rows(200, 99)
    broken.loc[[4, 9], "amount"] = [-1e4, 1e12]
    outcomes = [o for o in validate(broken, suite) if not o.success]
    assert [o.unexpected_rows for o in outcomes] == [(4, 9)]


def test_sparse_tails_of_small_references_get_a_hard_range_that_clean_batches_pass() -> None:
    """A count that is 0 in 97% of rows shows 15–20 non-zero values in a 600-row
    reference: too few for Hill's estimate, so the hard range was three times the
    reference's max, which 1,000-row clean batches exceeded about one time in eight.
    The sparse tail now counts as just heavy; a rare flag keeps its plain hard range,
    and a unit error still fails."""
    from sanitizer.expectations import tail_reach

    def rows(n: int, seed: int) -> pd.DataFrame:
        r = np.random.default_rng(seed)
        count = np.where(r.random(n) < 0.03, np.round(np.exp(r.normal(size=n)), 1), 0.0)
        flag = (r.random(n) < 0.01).astype(float)
        return pd.DataFrame({"count": count, "flag": flag, "label": r.integers(0, 2, n)})

    reference = rows(600, 0)
    suite, hard = _suite_and_hard_ranges(reference)
    top = reference["count"].max()
    assert hard["count"]["max_value"] > 20 * top
    assert hard["flag"]["max_value"] == pytest.approx(3.0)  # 1 + twice the range
    assert tail_reach(reference["flag"].to_numpy()) == (0.0, 0.0)
    beyond = [seed for seed in range(1, 41) if rows(1000, seed)["count"].max() > 3 * top]
    assert len(beyond) >= 3  # what the plain hard range failed
    failed = [
        seed
        for seed in range(1, 41)
        if not all(o.success for o in validate(rows(1000, seed), suite))
    ]
    assert failed == []
    broken = rows(200, 99)
    broken.loc[4, "count"] = 1000.0 * top  # a unit error
    broken.loc[9, "flag"] = 7.0
    outcomes = [o for o in validate(broken, suite) if not o.success]
    assert sorted(o.unexpected_rows for o in outcomes) == [(4,), (9,)]


def test_unseen_share_is_the_share_of_singletons() -> None:
    from sanitizer.expectations import unseen_share

    assert unseen_share(pd.Series(["a", "a", "b", "c", "c", "d"])) == pytest.approx(2 / 6)
    assert unseen_share(pd.Series(["a", "a", "b", "b"])) == 0.0
    assert unseen_share(pd.Series([], dtype=object)) == 0.0


def test_small_references_heavy_tails_and_constant_columns_keep_clean_batches_passing(
    config,
) -> None:
    """A 300-row reference of a log-normal column (clean batches reach twice its max) and
    a column that is constant in the reference but not in the population."""
    rng = np.random.default_rng(8)

    def rows(n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "area": rng.lognormal(4, 0.8, n),
                "edge": np.where(rng.random(n) < 0.997, 0.0, rng.integers(1, 9, n)),
                "label": rng.integers(0, 2, n),
            }
        )

    reference = rows(300).assign(edge=0.0)
    contract = DataContract.from_reference(reference, config.__class__(label_column="label"))
    suite = generate_suite(reference, contract, name="tails")
    assert not any(
        e["kwargs"].get("column") == "edge"
        for e in suite["expectations"][1:]
        if e["type"].endswith("between")
    )
    failed = sum(not all(o.success for o in validate(rows(100), suite)) for _ in range(40))
    assert failed <= 1
    broken = rows(100)
    broken.loc[7, "area"] = -5.0e6  # a broken record: the hard range has no exceptions
    outcomes = [o for o in validate(broken, suite) if not o.success]
    assert [o.unexpected_rows for o in outcomes] == [(7,)]


def test_clean_batches_pass_generated_suite(suite: dict, parts: tuple) -> None:
    for batch in parts[1:]:
        assert all(o.success for o in validate(batch, suite))


def test_failures_name_rows(suite: dict, clean_batch: pd.DataFrame) -> None:
    bad = clean_batch.copy()
    bad.loc[[3, 17], "x1"] = 1e9
    bad.loc[8, "plan"] = "<script>"
    failed = {o.label: o for o in validate(bad, suite) if not o.success}
    assert set(failed) == {
        "expect_column_values_to_be_between(x1)",
        "expect_column_values_to_be_in_set(plan)",
    }
    assert failed["expect_column_values_to_be_between(x1)"].unexpected_rows == (3, 17)
    assert failed["expect_column_values_to_be_in_set(plan)"].unexpected_rows == (8,)


def test_only_failed_expectations_are_revalidated_for_row_detail(
    suite: dict, clean_batch: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clean batch costs one BOOLEAN_ONLY pass; a failure adds a COMPLETE pass of
    the failed expectations only, whose rows match a single COMPLETE validation. GX
    loads (and fingerprints) the frame once either way."""
    import pandas.util

    from sanitizer import expectations

    calls: list[tuple[str, int]] = []
    hashed: list[int] = []
    real_run, real_hash = expectations._gx_run, pandas.util.hash_pandas_object

    def spy(validator: object, gx_suite: object, result_format: str) -> list:
        calls.append((result_format, len(gx_suite.expectations)))  # type: ignore[attr-defined]
        return real_run(validator, gx_suite, result_format)

    def hash_spy(obj: pd.DataFrame, *args: object, **kwargs: object) -> pd.Series:
        hashed.append(len(obj))
        return real_hash(obj, *args, **kwargs)

    monkeypatch.setattr(expectations, "_gx_run", spy)
    monkeypatch.setattr(pandas.util, "hash_pandas_object", hash_spy)
    assert all(o.success for o in validate(clean_batch, suite))
    assert calls == [("BOOLEAN_ONLY", len(suite["expectations"]))]
    assert hashed == [len(clean_batch)]
    bad = clean_batch.copy()
    bad.loc[[5, 9], "x0"] = np.nan
    calls.clear()
    hashed.clear()
    outcomes = validate(bad, suite)
    assert calls == [("BOOLEAN_ONLY", len(suite["expectations"])), ("COMPLETE", 1)]
    assert hashed == [len(bad)]
    gx_suite, _ = expectations._build_suite(suite)
    with expectations._gx_batch(expectations._for_gx(bad)) as validator:
        complete = real_run(validator, gx_suite, "COMPLETE")
    for outcome, res in zip(outcomes, complete, strict=True):
        assert outcome.success == res.success
        if not outcome.success:
            assert outcome.unexpected_rows == tuple(res.result["unexpected_index_list"]) == (5, 9)
        else:
            assert outcome.unexpected_rows == ()


def test_save_load_round_trip(tmp_path: Path, suite: dict) -> None:
    save_suite(suite, tmp_path / "s.json")
    assert load_suite(tmp_path / "s.json") == suite


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a readable JSON suite"),
        ('{"name": "x"}', "'expectations' list"),
        ('{"expectations": [{"kwargs": {}}]}', "has no 'type'"),
    ],
)
def test_bad_suite_files(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "s.json").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_suite(tmp_path / "s.json")


def test_unknown_or_invalid_expectations_are_config_errors(clean_batch: pd.DataFrame) -> None:
    bogus = {"name": "b", "expectations": [{"type": "expect_the_moon", "kwargs": {}}]}
    with pytest.raises(ConfigError, match="unknown type 'expect_the_moon'"):
        validate(clean_batch, bogus)
    bad_kwargs = {
        "name": "b",
        "expectations": [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "x0", "min_value": "a"},
            }
        ],
    }
    with pytest.raises(ConfigError, match="suite expectation 0"):
        validate(clean_batch, bad_kwargs)


def test_validation_prints_nothing(
    suite: dict, clean_batch: pd.DataFrame, capfd: pytest.CaptureFixture[str]
) -> None:
    validate(clean_batch.assign(x0=np.where(clean_batch.index == 1, 1e9, clean_batch["x0"])), suite)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
