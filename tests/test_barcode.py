"""GTIN parsing: every retail form, check digits, UPC-E, in-store variable-measure codes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import ean

import shelfwise
from shelfwise.barcode.gtin import base_code, expand_upce, in_store_code, parse_barcode

digits = st.text(alphabet="0123456789", min_size=1, max_size=13)


def with_check(body: str) -> str:
    return body + ean.calc_check_digit(body)


@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_upca_and_its_ean13_form_normalise_to_the_same_key(body: str) -> None:
    upca = with_check(body)
    assert shelfwise.normalize_gtin(upca) == shelfwise.normalize_gtin("0" + upca)
    assert shelfwise.normalize_gtin(upca) == shelfwise.normalize_gtin("00" + upca)  # GTIN-14


@given(
    st.sampled_from([7, 11, 12, 13]).flatmap(
        lambda n: st.text("0123456789", min_size=n, max_size=n)
    )
)
def test_every_valid_gtin_normalises_to_14_digits_and_back(body: str) -> None:
    code = with_check(body)
    key = shelfwise.normalize_gtin(code)
    assert len(key) == 14 and key.endswith(code) and set(key[: 14 - len(code)]) <= {"0"}


@given(
    st.sampled_from([7, 11, 12, 13]).flatmap(
        lambda n: st.text("0123456789", min_size=n, max_size=n)
    ),
    st.integers(1, 9),
)
def test_any_single_wrong_check_digit_is_reported_as_check_digit(body: str, delta: int) -> None:
    good = with_check(body)
    bad = good[:-1] + str((int(good[-1]) + delta) % 10)
    with pytest.raises(shelfwise.InvalidBarcode) as caught:
        shelfwise.normalize_gtin(bad)
    assert caught.value.reason == "check_digit"
    assert f"expected {good[-1]}" in str(caught.value)


@given(st.text(max_size=20))
def test_parser_never_crashes_only_raises_invalid_barcode(text: str) -> None:
    try:
        parsed = parse_barcode(text)
    except shelfwise.InvalidBarcode as exc:
        assert exc.reason in {"empty", "characters", "length", "check_digit"}
    else:
        assert len(parsed.gtin) == 14 and parsed.gtin.isdigit()


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("12ab5", "characters"),
        ("12345", "length"),
        ("０３６０００２９１４５２", "characters"),
    ],
)
def test_malformed_codes_say_what_is_wrong(code: str, reason: str) -> None:
    with pytest.raises(shelfwise.InvalidBarcode) as caught:
        shelfwise.parse_barcode(code)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("upce", "upca"),
    [
        # One example per zero-suppression rule (last digit 0-2, 3, 4, 5-9).
        ("01234505", "012000003455"),
        ("04252614", "042100005264"),
        ("01234531", "012300000451"),  # last digit 3
        ("01234543", "012340000053"),  # last digit 4
        ("01234558", "012345000058"),  # last digit 5
    ],
)
def test_upce_expands_by_the_gs1_zero_suppression_rules(upce: str, upca: str) -> None:
    assert expand_upce(upce) == upca
    ean.validate(upca)  # the expansion is a valid UPC-A by stdnum


@given(st.sampled_from("01"), st.text("0123456789", min_size=6, max_size=6))
def test_upce_expansion_always_gives_a_valid_upca_with_the_same_check_digit(
    ns: str, six: str
) -> None:
    upca = expand_upce(ns + six)
    ean.validate(upca)
    assert expand_upce(ns + six + upca[-1]) == upca
    with pytest.raises(shelfwise.InvalidBarcode):
        expand_upce(ns + six + str((int(upca[-1]) + 1) % 10))


def test_eight_digit_code_is_ean8_unless_only_upce_fits() -> None:
    assert parse_barcode("96385074").form == "EAN-8"
    assert parse_barcode("04252614").form == "UPC-E"  # wrong as EAN-8, right as UPC-E
    assert parse_barcode("04252614", symbology="UPC-E").gtin == "00042100005264"


@given(
    st.sampled_from(["23", "24", "25", "26", "27", "28", "29"]),
    st.text("0123456789", min_size=5, max_size=5),
    st.integers(0, 99_999),
)
def test_price_embedded_codes_carry_the_price_and_share_one_base_code(
    prefix: str, ref: str, cents: int
) -> None:
    code = in_store_code(prefix, ref, cents)
    parsed = parse_barcode(code)
    assert parsed.kind == "variable_price"
    assert parsed.price == cents / 100
    assert parsed.item_reference == ref
    assert parsed.lookup_gtin == base_code(in_store_code(prefix, ref, 1)).zfill(14)


def test_weight_embedded_codes_carry_grams() -> None:
    parsed = parse_barcode(in_store_code("21", "00042", 1250))
    assert (parsed.kind, parsed.weight_g, parsed.price) == ("variable_weight", 1250, None)


def test_prefix_20_is_a_fixed_in_store_item() -> None:
    parsed = parse_barcode(in_store_code("20", "12345", 0))
    assert parsed.kind == "in_store" and parsed.lookup_gtin == parsed.gtin


def test_ordinary_gtins_are_not_in_store_codes() -> None:
    assert parse_barcode("036000291452").kind == "gtin"
    assert not parse_barcode("036000291452").in_store


def test_decoding_a_non_image_is_a_typed_error() -> None:
    pytest.importorskip("zxingcpp")
    with pytest.raises(shelfwise.InvalidBarcode):
        shelfwise.decode_image(b"definitely not a png")


@pytest.mark.parametrize(
    "fields",
    [
        {"item_start": 2, "item_length": 6, "value_start": 7, "value_length": 5},  # overlap
        {"item_start": 1, "item_length": 5, "value_start": 7, "value_length": 5},  # eats prefix
        {"item_start": 2, "item_length": 5, "value_start": 8, "value_length": 5},  # eats check
        {"item_start": 2, "item_length": 0, "value_start": 7, "value_length": 5},  # empty item
    ],
)
def test_impossible_in_store_layouts_are_refused_with_a_typed_error(fields: dict[str, int]) -> None:
    from shelfwise import InStoreLayout

    with pytest.raises(shelfwise.InvalidInput):
        InStoreLayout(**fields)
