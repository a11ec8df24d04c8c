"""Loading contract YAML: only valid pandera polars schemas, only safe YAML."""

from __future__ import annotations

import pytest

from appliance.errors import ContractInvalid
from appliance.validate.contracts import contract_columns, infer_contract, load_contract

GOOD = """\
schema_type: polars_dataframe
api: polars
columns:
  age:
    dtype: Int64
    in_range: {min_value: 0, max_value: 120}
  when:
    dtype: Datetime(time_unit='us', time_zone='UTC')
    nullable: true
strict: true
"""


def test_load_contract_reads_a_hand_written_schema():
    schema = load_contract(GOOD)
    assert list(schema.columns) == ["age", "when"]
    assert schema.columns["when"].nullable is True


def test_contract_columns_lists_polars_dtype_strings():
    assert contract_columns(GOOD) == {"age": "Int64", "when": "Datetime(time_unit='us', time_zone='UTC')"}


def test_contract_columns_follows_an_inferred_contract(first_file):
    columns = contract_columns(infer_contract(first_file, dataset="people"))
    assert columns == {name: str(dtype) for name, dtype in first_file.schema.items()}


@pytest.mark.parametrize("text", ["columns: [unclosed", "a: b: c", "\tcolumns:\n\t- x"])
def test_load_contract_refuses_garbage(text):
    with pytest.raises(ContractInvalid) as err:
        load_contract(text)
    assert "YAML" in err.value.message or "schema" in err.value.message
    assert err.value.detail


@pytest.mark.parametrize("text", ["", "42", "- a\n- b\n", "name: people\n", "columns: [a, b]\n"])
def test_load_contract_refuses_yaml_that_is_not_a_schema(text):
    with pytest.raises(ContractInvalid, match="not a schema"):
        load_contract(text)


def test_load_contract_refuses_python_object_tag(tmp_path):
    marker = tmp_path / "pwned"
    text = f"columns: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(ContractInvalid, match="not valid YAML") as err:
        load_contract(text)
    assert "python/object" in str(err.value.detail)
    assert not marker.exists()


def test_load_contract_refuses_unknown_dtype():
    with pytest.raises(ContractInvalid, match="column 'age': unknown dtype 'Integer64bit'") as err:
        load_contract(GOOD.replace("dtype: Int64", "dtype: Integer64bit"))
    assert err.value.detail["column"] == "age"
    assert "TypeError" in err.value.detail["error"]


def test_load_contract_refuses_dtype_that_is_code():
    with pytest.raises(ContractInvalid):
        load_contract(GOOD.replace("dtype: Int64", "dtype: __import__('os').system('true')"))


def test_load_contract_refuses_misspelt_column_key():
    with pytest.raises(ContractInvalid, match="nulable"):
        load_contract(GOOD.replace("nullable: true", "nulable: true"))


def test_load_contract_refuses_unknown_check_name():
    text = GOOD.replace("in_range:", "__init__:")
    with pytest.raises(ContractInvalid, match="__init__"):
        load_contract(text)


def test_load_contract_refuses_bad_check_arguments():
    with pytest.raises(ContractInvalid, match="column 'age'"):
        load_contract(GOOD.replace("{min_value: 0, max_value: 120}", "{lowest: 0}"))


def test_load_contract_refuses_a_pandas_schema():
    with pytest.raises(ContractInvalid, match="pandas_dataframe"):
        load_contract(GOOD.replace("polars_dataframe", "pandas_dataframe"))


def test_load_contract_refuses_an_alias_bomb():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = "\n".join(lines) + "\ncolumns:\n  x:\n    dtype: String\n    isin: *a8\n"
    with pytest.raises(ContractInvalid, match="too large"):
        load_contract(text)
