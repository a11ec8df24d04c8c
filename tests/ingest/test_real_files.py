"""Files as R, Excel and pandas write them: dialects, missing values, dates, categories.

Each file is written the way its tool writes it (pandas files by pandas itself;
R's and Excel's by their documented output: R's ``write.csv`` quotes strings
and the row-names header and writes ``NA``; Excel's "CSV UTF-8" writes a BOM
and CRLF line ends, with ``;`` and a decimal comma in a European locale).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from appliance.ingest.dialect import Dialect, sniff
from appliance.ingest.parse import ParseLimits, ParseResult, parse_file
from appliance.validate.contracts import infer_contract


def parse(src: Path, tmp_path: Path, limits: ParseLimits, *, fmt: str = "csv",
          contract: str | None = None, out: str = "version") -> tuple[ParseResult, Path]:
    dst = tmp_path / "out" / f"{out}.parquet"
    result = parse_file(src, dst, fmt=fmt, dataset="demo", contract_yaml=contract,
                        contract_version=1 if contract else None, limits=limits)
    return result, dst


def dtypes(result: ParseResult) -> dict[str, str]:
    return {c["name"]: c["dtype"] for c in result.columns}


# -- dialects ---------------------------------------------------------------------------


EXCEL_EU = "Name;Preis;Menge\r\nÄpfel;1,5;3\r\nBirnen;2,25;4\r\nKiwi;-0,75;5\r\n"
DIALECT_FILES = {
    "excel-eu-semicolon-decimal-comma": EXCEL_EU.encode("utf-8-sig"),
    "excel-csv-utf8-bom-crlf": "Name,Price,Qty\r\nÄpfel,1.5,3\r\nBirnen,2.25,4\r\nKiwi,-0.75,5\r\n"
                               .encode("utf-8-sig"),
    "tab": b"Name\tPrice\tQty\nApples, red\t1.5\t3\nPears\t2.25\t4\nKiwi\t-0.75\t5\n",
    "pipe": b"Name|Price|Qty\nApples; red|1.5|3\nPears|2.25|4\nKiwi|-0.75|5\n",
    "single-quotes": b"Name,Price,Qty\n'Apples, red',1.5,3\nPears,2.25,4\nKiwi,-0.75,5\n",
}


@pytest.mark.parametrize("kind", sorted(DIALECT_FILES))
def test_parse_dialect_file_reads_three_typed_columns(
    kind: str, tmp_path: Path, limits: ParseLimits
) -> None:
    src = tmp_path / "f.csv"
    src.write_bytes(DIALECT_FILES[kind])
    result, dst = parse(src, tmp_path, limits)
    assert result.ok, result.message
    assert list(dtypes(result).values()) == ["String", "Float64", "Int64"]
    df = pl.read_parquet(dst)
    assert df.get_column(df.columns[1]).to_list() == [1.5, 2.25, -0.75]
    assert df.get_column(df.columns[2]).to_list() == [3, 4, 5]
    assert not any(n.startswith("\ufeff") or n.endswith("\r") for n in df.columns)
    assert all(not v.endswith("\r") for v in df.get_column(df.columns[0]).to_list())


@pytest.mark.parametrize(("text", "dialect"), [
    ("a,b\n1,2\n", Dialect(",")),
    ("a;b\n1,5;2\n", Dialect(";", decimal_comma=True)),
    ("a;b\n1.5;2\n", Dialect(";")),
    ("a;b\n1,5;2.5\n", Dialect(";")),              # a decimal point anywhere: no decimal comma
    ("a\tb\n1\t2\n", Dialect("\t")),
    ("a|b\n1|2\n", Dialect("|")),
    ("id,tags\n1,a;b\n2,c;d\n", Dialect(",")),      # a ';' inside values does not win
    ("x\n1\n2\n", Dialect(",")),                    # one column
    ("a,b\n'x, y',2\n'z, w',3\n", Dialect(",", "'")),
    ("a,b\n1,2\n3,4,5\n6,7\n", Dialect(",")),       # ragged: still ',', for the error message
])
def test_sniff_picks_separator_quote_and_decimal_mark(text: str, dialect: Dialect) -> None:
    assert sniff(text)[0] == dialect


@pytest.mark.parametrize(("data", "words"), [
    (b"a,b\n1,2\n3,4,5,6,7,8\n6,7\n", "line 3: ragged row with 6 fields where the header has 2"),
    (b"a,b\n1,2,\n3,4\n", "line 2: ragged row with 3 fields where the header has 2"),
    (b"a,b,c\n1,2,3\n4\n6,7,8\n", "line 3: ragged row with 1 field where the header has 3"),
    (b"a;b;c\n1;2;3\n4;5\n", "line 3: ragged row with 2 fields where the header has 3"),
    (b'a,b\n1,"x,y",3\n2,z\n', "line 2: ragged row with 3 fields where the header has 2"),
])
def test_parse_ragged_row_message_counts_fields_exactly_and_names_what_was_tried(
    data: bytes, words: str, tmp_path: Path, limits: ParseLimits
) -> None:
    src = tmp_path / "ragged.csv"
    src.write_bytes(data)
    result, _ = parse(src, tmp_path, limits)
    assert (result.ok, result.reason) == (False, "malformed")
    assert words in result.message
    assert "read as UTF-8" in result.message
    assert "separators tried: ',', ';', tab, '|'" in result.message


def test_parse_latin1_file_names_the_encodings_tried(tmp_path: Path, limits: ParseLimits) -> None:
    src = tmp_path / "latin1.csv"
    src.write_bytes("name;city\n1;Zürich\n".encode("cp1252"))
    result, _ = parse(src, tmp_path, limits)
    assert result.reason == "encoding"
    assert "encodings tried: UTF-8, with or without a BOM" in result.message
    assert '"CSV UTF-8"' in result.message


# -- missing values ---------------------------------------------------------------------


R_WRITE_CSV = (
    '"","x","n","y","d"\n'
    '"1",1.5,1,"a","2024-01-02"\n'
    '"2",NA,NA,NA,NA\n'
    '"3",2,3,"b","2024-01-04"\n'
)


def test_parse_r_write_csv_keeps_numbers_numeric_and_names_the_row_names(
    tmp_path: Path, limits: ParseLimits
) -> None:
    src = tmp_path / "r.csv"
    src.write_text(R_WRITE_CSV)
    result, dst = parse(src, tmp_path, limits)
    assert result.ok, result.message
    assert dtypes(result) == {"row_names": "Int64", "x": "Float64", "n": "Int64",
                              "y": "String", "d": "Date"}
    df = pl.read_parquet(dst)
    assert df.row(1) == (2, None, None, None, None)
    assert df.get_column("d").to_list()[2] == dt.date(2024, 1, 4)


def test_parse_pandas_to_csv_with_missing_values_reads_nulls(
    tmp_path: Path, limits: ParseLimits
) -> None:
    frame = pd.DataFrame({
        "a": [1.5, np.nan, 3.0],
        "b": ["x", None, "z"],
        "n": pd.array([1, None, 3], dtype="Int64"),
    })
    empty, nan = tmp_path / "empty.csv", tmp_path / "nan.csv"
    frame.to_csv(empty)                   # the index, and missing values as empty fields
    frame.to_csv(nan, na_rep="NaN", index=False)
    for src in (empty, nan):
        result, dst = parse(src, tmp_path, limits, out=src.stem)
        assert result.ok, result.message
        df = pl.read_parquet(dst)
        assert df.get_column("a").to_list() == [1.5, None, 3.0], src.name
        assert df.get_column("b").to_list() == ["x", None, "z"], src.name
        assert df.get_column("n").to_list() == [1, None, 3], src.name
        assert dtypes(result)["n"] == "Int64"
    assert dtypes(parse(empty, tmp_path, limits, out="again")[0])["row_names"] == "Int64"


@pytest.mark.parametrize("token", ["NA", "N/A", "n/a", "#N/A", "NaN", "nan", "null", "NULL",
                                   "None", "<NA>", ""])
def test_parse_missing_value_token_past_the_inferred_rows_keeps_the_column_numeric(
    token: str, tmp_path: Path, limits: ParseLimits
) -> None:
    src = tmp_path / "late.csv"
    src.write_text("id,x\n" + "".join(f"{i},{i}\n" for i in range(500)) + f"500,{token}\n")
    result, dst = parse(src, tmp_path, limits)
    assert result.ok, result.message
    assert dtypes(result) == {"id": "Int64", "x": "Int64"}
    assert pl.read_parquet(dst).get_column("x").null_count() == 1


@pytest.mark.parametrize("late, dtype", [("1.25", "Float64"), ("7", "Int64")])
def test_parse_series_that_starts_after_the_inferred_rows_stays_numeric(
    late: str, dtype: str, tmp_path: Path, limits: ParseLimits
) -> None:
    # matplotlib's Stocks.csv: a ticker listed later is NA for its first hundreds of rows
    src = tmp_path / "late_series.csv"
    src.write_text("id,x,note\n" + "".join(f"{i},NA,a\n" for i in range(300))
                   + "".join(f"{i},{late},b\n" for i in range(300, 320)))
    result, dst = parse(src, tmp_path, limits)
    assert result.ok, result.message
    assert dtypes(result) == {"id": "Int64", "x": dtype, "note": "String"}
    assert pl.read_parquet(dst).get_column("x").null_count() == 300


def test_parse_text_that_starts_after_the_inferred_rows_stays_text(
    tmp_path: Path, limits: ParseLimits
) -> None:
    src = tmp_path / "late_text.csv"
    src.write_text("id,x\n" + "".join(f"{i},\n" for i in range(300)) + "300,7\n301,seven\n")
    result, _ = parse(src, tmp_path, limits)
    assert result.ok, result.message
    assert dtypes(result)["x"] == "String"


def test_parse_na_in_a_later_file_reads_to_the_contract_types(
    tmp_path: Path, limits: ParseLimits
) -> None:
    first = tmp_path / "first.csv"
    first.write_text(R_WRITE_CSV)
    contract = parse(first, tmp_path, limits, out="first")[0].contract_yaml
    later = tmp_path / "later.csv"
    # NA moves to another row: the same null rate as the first file, so no tolerance fires
    later.write_text(R_WRITE_CSV.replace('"2",NA,NA,NA,NA', '"2",4.5,5,"c","2024-01-03"')
                     .replace('"3",2,3,"b","2024-01-04"', '"3",NA,2,NA,"2024-02-01"'))
    result, _ = parse(later, tmp_path, limits, contract=contract, out="later")
    assert result.ok, result.message
    assert result.report is not None and result.report["passed"], result.report
    assert dtypes(result) == {"row_names": "Int64", "x": "Float64", "n": "Int64",
                              "y": "String", "d": "Date"}


def test_parse_jsonl_token_strings_are_null_and_numbers_stay_numbers(
    tmp_path: Path, limits: ParseLimits
) -> None:
    src = tmp_path / "r.jsonl"
    src.write_text('{"x": 1, "s": "a", "k": "007"}\n{"x": "NA", "s": "NA", "k": "NA"}\n'
                   '{"x": 2.5, "s": "b", "k": "x"}\n')
    result, dst = parse(src, tmp_path, limits, fmt="jsonl")
    assert result.ok, result.message
    df = pl.read_parquet(dst)
    assert df.get_column("x").to_list() == [1.0, None, 2.5]
    assert df.get_column("s").to_list() == ["a", None, "b"]
    assert df.get_column("k").to_list() == ["007", None, "x"]


# -- dates -------------------------------------------------------------------------------


@pytest.mark.parametrize(("first", "later", "dtype"), [
    (["2024-01-02", "2024-02-03"], ["2025-12-31", "NA"], "Date"),
    (["2024-01-02 10:00:00", "2024-01-02 11:30:00"], ["2025-01-01 00:00:00"],
     "Datetime(time_unit='us', time_zone=None)"),
    (["2024-01-02T10:00:00", "2024-01-02T11:30:00"], ["2025-01-01T00:00:00"],
     "Datetime(time_unit='us', time_zone=None)"),
    (["2024-01-02 10:00", "2024-01-02 11:30"], ["2025-01-01 00:00"],
     "Datetime(time_unit='us', time_zone=None)"),
    (["2024-01-02T10:00:00.5", "2024-01-02T11:30:00.25"], ["2025-01-01T00:00:00.125"],
     "Datetime(time_unit='us', time_zone=None)"),
    (["2024-01-02T10:00:00Z", "2024-01-02T11:30:00Z"], ["2025-01-01T00:00:00Z"],
     "Datetime(time_unit='us', time_zone='UTC')"),
    (["2024-01-02T10:00:00+02:00", "2024-01-02T11:30:00+01:00"], ["2025-01-01T00:00:00-05:00"],
     "Datetime(time_unit='us', time_zone='UTC')"),
])
def test_parse_iso_dates_give_a_temporal_dtype_that_later_files_keep(
    first: list[str], later: list[str], dtype: str, tmp_path: Path, limits: ParseLimits
) -> None:
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    one.write_text("id,when\n" + "".join(f"{i},{v}\n" for i, v in enumerate(first)))
    two.write_text("id,when\n" + "".join(f"{i},{v}\n" for i, v in enumerate(later)))
    result, _ = parse(one, tmp_path, limits, out="one")
    assert result.ok, result.message
    assert dtypes(result)["when"] == dtype
    assert f"dtype: {dtype}" in (result.contract_yaml or "")
    again, _ = parse(two, tmp_path, limits, contract=result.contract_yaml, out="two")
    assert again.ok, again.message
    assert dtypes(again)["when"] == dtype


@pytest.mark.parametrize("values", [
    ["01/02/2024", "03/04/2024"],          # day or month first? not ISO: text
    ["2024-01-02", "soon"],
    ["2024-01-02", "2024-02-30"],
    ["2024-01-02", "2024-01-02 10:00:00"],
])
def test_parse_values_that_are_not_all_iso_dates_stay_text(
    values: list[str], tmp_path: Path, limits: ParseLimits
) -> None:
    src = tmp_path / "dates.csv"
    src.write_text("when\n" + "\n".join(values) + "\n")
    result, _ = parse(src, tmp_path, limits)
    assert result.ok, result.message
    assert dtypes(result)["when"] == "String"


# -- categories ---------------------------------------------------------------------------


def _pandas_category_parquet(path: Path) -> Path:
    frame = pd.DataFrame({"x": [0.5, 1.5, 2.5] * 20, "n": list(range(60)),
                          "color": pd.Categorical(["red", "green", "blue"] * 20)})
    frame.to_parquet(path)
    return path


def test_parse_pandas_category_parquet_reads_as_string(tmp_path: Path, limits: ParseLimits) -> None:
    result, dst = parse(_pandas_category_parquet(tmp_path / "cat.parquet"), tmp_path, limits,
                        fmt="parquet")
    assert result.ok, result.message
    assert dtypes(result)["color"] == "String"
    assert "dtype: String" in (result.contract_yaml or "")
    assert pl.read_parquet(dst).schema["color"] == pl.String


def test_parse_dictionary_parquet_matches_a_string_contract(
    tmp_path: Path, limits: ParseLimits
) -> None:
    csv = tmp_path / "first.csv"
    csv.write_text("x,n,color\n" + "".join(f"{0.5 + i % 3},{i},{['red', 'green', 'blue'][i % 3]}\n"
                                           for i in range(60)))
    contract = parse(csv, tmp_path, limits, out="first")[0].contract_yaml
    assert contract is not None and "dtype: String" in contract
    arrow = tmp_path / "dict.parquet"
    pq.write_table(pa.table({
        "x": pa.array([0.5, 1.5, 2.5] * 20), "n": pa.array(range(60), pa.int64()),
        "color": pa.array(["red", "green", "blue"] * 20).dictionary_encode()}), arrow)
    for src in (arrow, _pandas_category_parquet(tmp_path / "cat.parquet")):
        result, _ = parse(src, tmp_path, limits, fmt="parquet", contract=contract, out=src.stem)
        assert result.ok, result.message
        assert result.report is not None and result.report["passed"], result.report


def test_infer_contract_of_a_categorical_frame_read_back_is_string() -> None:
    # what the parser hands inference: never a Categorical, so never a Categorical contract
    from appliance.ingest.cells import dictionaries_as_strings

    frame = pl.DataFrame({"c": ["a", "b"]}, schema={"c": pl.Categorical()})
    assert "dtype: String" in infer_contract(dictionaries_as_strings(frame), dataset="d")


def test_scratch_duckdb_never_fetches_an_extension() -> None:
    """Air gap: the parser child's DuckDB must not install extensions from the internet."""
    from appliance.ingest.scratch import scratch_duckdb

    con = scratch_duckdb()
    try:
        setting = con.execute(
            "SELECT value FROM duckdb_settings() WHERE name = 'autoinstall_known_extensions'"
        ).fetchone()
    finally:
        con.close()
    assert setting is not None and setting[0] == "false"
