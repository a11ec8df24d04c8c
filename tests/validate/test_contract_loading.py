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


PROFILED = """\
schema_type: polars_dataframe
columns:
  age:
    dtype: Int64
    nullable: true
    metadata:
      owner: crm-team
      profile: {null_fraction: 0.0, expected_range: {min_value: 0, max_value: 120}}
  plan:
    dtype: String
    metadata:
      profile: {domain: [basic, pro], min_domain_mass: 0.99}
metadata:
  profile: {rows: 10, duplicate_fraction: 0.0, max_duplicate_fraction: 0.05}
"""


def test_load_contract_reads_a_profile_beside_the_users_own_metadata():
    from appliance.validate.contracts import load_profile

    assert list(load_contract(PROFILED).columns) == ["age", "plan"]
    profile = load_profile(PROFILED)
    assert profile.columns["age"].expected_range == (0, 120)
    assert profile.columns["plan"].domain == ("basic", "pro")
    assert profile.frame.max_duplicate_fraction == 0.05


@pytest.mark.parametrize(("old", "new", "names"), [
    ("null_fraction: 0.0,", "null_fracton: 0.0,", "null_fracton"),
    ("null_fraction: 0.0,", "null_fraction: 1.5,", "'null_fraction' must be a number from 0 to 1"),
    ("null_fraction: 0.0,", "null_fraction: yes,", "'null_fraction' must be a number from 0 to 1"),
    ("min_value: 0, max_value: 120", "min_value: 200, max_value: 120", "min_value above max_value"),
    ("min_value: 0, max_value: 120", "min_value: .nan, max_value: 120", "finite numbers"),
    ("min_value: 0, max_value: 120", "low: 0", "expected_range"),
    ("domain: [basic, pro]", "domain: basic", "list of strings"),
    ("domain: [basic, pro]", "domain: [1, 2]", "list of strings"),
    ("max_duplicate_fraction: 0.05", "max_duplicates: 0.05", "max_duplicates"),
    ("  profile: {rows: 10,", "  profile: [10]\n  mine: {rows: 10,", "'metadata.profile' must be a mapping"),
    ("      owner: crm-team\n      profile", "      - owner\n      - profile", "'metadata' must be a mapping"),
])
def test_load_contract_refuses_a_bad_profile_naming_the_column(old, new, names):
    text = PROFILED.replace(old, new, 1)
    assert text != PROFILED
    with pytest.raises(ContractInvalid) as caught:
        load_contract(text)
    assert names in caught.value.message


def test_load_contract_refuses_a_domain_on_a_numeric_column_and_a_range_on_text():
    domain_on_int = PROFILED.replace("expected_range: {min_value: 0, max_value: 120}", "domain: [a]")
    with pytest.raises(ContractInvalid, match="column 'age': a profile 'domain' is for String"):
        load_contract(domain_on_int)
    range_on_text = PROFILED.replace("domain: [basic, pro]", "expected_range: {min_value: 0}")
    with pytest.raises(ContractInvalid, match="column 'plan': a profile range is for numeric"):
        load_contract(range_on_text)
