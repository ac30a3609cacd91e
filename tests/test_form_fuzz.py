"""Any form body, whatever its keys, is read into fields or refused with a 400 — never an exception."""

from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from mock_server.domain.errors import ValidationError
from mock_server.http.spec import form_to_dict, vendor_contract

SCHEMA = vendor_contract().operations["saveTimingParam"].bodies["application/x-www-form-urlencoded"].schema
KEY_PART = st.one_of(
    st.sampled_from(["modelVarReq", "mapParam", "modelId", "name", "value", "0", "1", "x"]),
    st.text(alphabet="[].0a", max_size=4),
)
KEYS = st.lists(KEY_PART, min_size=1, max_size=5).map("".join) | st.text(alphabet="[].0ab", max_size=8)


@given(st.lists(st.tuples(KEYS, st.text(max_size=5)), max_size=8))
def test_form_keys_never_crash_the_reader(pairs: list[tuple[str, str]]) -> None:
    try:
        fields = form_to_dict(MultiDict(pairs), SCHEMA)
    except ValidationError:
        return
    assert isinstance(fields, dict)
    assert all(isinstance(k, str) for k in fields)


def test_form_keys_that_name_no_field_path_stay_plain_fields() -> None:
    fields = form_to_dict(MultiDict([("[", "1"), ("0.a", "2"), ("modelVarReq[0].modelId", "md1")]), SCHEMA)
    assert fields["["] == "1" and fields["0.a"] == "2"
    assert fields["modelVarReq"] == [{"modelId": "md1"}]
