"""RD table schema, loading errors and the set-level conventions of allocate/."""

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from allocate import RD_COLUMNS, BadTableError, cap_from_bpp, load_rd_table, validate_rd_table
from allocate.metrics import aggregate_psnr, sse_cap, weighted_msssim
from allocate.table import total_pixels


def good_table() -> pd.DataFrame:
    return pd.DataFrame({
        "image": ["a", "a", "b"], "candidate": ["q1", "q2", "q1"], "family": ["f", "f", "f"],
        "bytes": [10, 20, 15], "pixels": [100, 100, 50], "sse": [30.0, 10.0, 5.0], "msssim": [0.9, 0.95, 0.97],
        "width": [10, 10, 5], "enc_s": [0.1, 0.2, 0.3],
    })


def write(tmp_path, df: pd.DataFrame, name: str = "rd.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def test_load_types_columns_and_keeps_extras(tmp_path):
    df = load_rd_table(write(tmp_path, good_table()))
    assert list(df.columns[: len(RD_COLUMNS)]) == RD_COLUMNS
    assert df["bytes"].dtype == np.int64 and df["pixels"].dtype == np.int64
    assert df["sse"].dtype == float and df["image"].tolist() == ["a", "a", "b"]
    assert df["enc_s"].tolist() == [0.1, 0.2, 0.3]


def test_image_names_stay_text(tmp_path):
    df = good_table().assign(image=["001", "001", "NA"])
    assert load_rd_table(write(tmp_path, df))["image"].tolist() == ["001", "001", "NA"]


@pytest.mark.parametrize(
    "change, phrase",
    [
        (lambda d: d.drop(columns=["sse", "msssim"]), "missing column(s) sse, msssim"),
        (lambda d: d.assign(sse=[1.0, np.nan, 2.0]), "column 'sse' has NaN at row 2"),
        (lambda d: d.assign(msssim=[0.9, np.inf, 0.9]), "column 'msssim' has inf at row 2"),
        (lambda d: d.assign(bytes=[10, -1, 3]), "column 'bytes' has a negative value at row 2"),
        (lambda d: d.assign(bytes=[10, 2.5, 3]), "column 'bytes' must hold integers, got 2.5"),
        (lambda d: d.assign(sse=["1", "x", "2"]), "column 'sse' is not a number"),
        (lambda d: d.assign(pixels=[100, 99, 50]), "image 'a' has differing pixels"),
        (lambda d: d.assign(candidate=["q1", "q1", "q1"]), "duplicated (image, candidate) ('a', 'q1')"),
        (lambda d: d.assign(msssim=[0.9, 1.5, 0.9]), "column 'msssim' exceeds 1"),
        (lambda d: d.assign(pixels=[0, 0, 50]), "column 'pixels' is 0"),
        (lambda d: d.iloc[:0], "the RD table is empty"),
    ],
)
def test_bad_tables_name_file_and_problem_in_one_line(tmp_path, change, phrase):
    path = write(tmp_path, change(good_table()))
    with pytest.raises(BadTableError) as err:
        load_rd_table(path)
    message = str(err.value)
    assert message.startswith(str(path)) and phrase in message and "\n" not in message


def test_validate_in_memory_names_the_source():
    with pytest.raises(BadTableError, match=r"^pipeline grid: column 'sse' has a negative value"):
        validate_rd_table(good_table().assign(sse=[1.0, -2.0, 3.0]), "pipeline grid")


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(BadTableError, match="no such file"):
        load_rd_table(tmp_path / "absent.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(BadTableError, match="empty.csv: not a readable CSV"):
        load_rd_table(tmp_path / "empty.csv")


def test_cap_from_bpp_is_exact_rational():
    kodak = 24 * 768 * 512
    assert 0.15 * kodak / 8 != 176947.2  # the float route is off; the exact one is not
    assert cap_from_bpp(0.15, kodak) == 176947
    assert cap_from_bpp("0.15", kodak) == 176947
    assert cap_from_bpp(Fraction(3, 20), kodak) == 176947
    assert cap_from_bpp(0.3, 10) == 0  # floor(0.375)
    assert cap_from_bpp(8, 3) == 3
    with pytest.raises(ValueError):
        cap_from_bpp(-0.1, 10)


def test_set_conventions():
    # one MSE over all RGB values: (100 + 300) / (3 · (10 + 30))
    assert aggregate_psnr(400.0, 40) == pytest.approx(10 * np.log10(255**2 / (400 / 120)))
    assert aggregate_psnr(0.0, 40) == np.inf
    assert aggregate_psnr(sse_cap(40.0, 1234), 1234) == pytest.approx(40.0)
    assert weighted_msssim(np.array([0.9, 0.99]), np.array([100, 300])) == pytest.approx((90 + 297) / 400)
    assert total_pixels(good_table()) == 150


def test_unmeasured_msssim_serves_an_sse_budget_and_is_refused_where_it_is_read(tmp_path):
    from allocate import solve_budget, solve_transparent

    df = load_rd_table(write(tmp_path, good_table().assign(msssim=[0.9, np.nan, 0.97])))
    assert np.isnan(df["msssim"].iat[1])
    chosen = solve_budget(df, cap_bytes=35).chosen
    assert chosen["candidate"].tolist() == ["q2", "q1"]  # the SSE optimum, MS-SSIM unread
    for solve in (lambda: solve_budget(df, 35, objective="msssim"), lambda: solve_transparent(df, 20.0, 0.5)):
        with pytest.raises(BadTableError, match=r"no MS-SSIM measured at row 2 \(image 'a', candidate 'q2'\)"):
            solve()
