"""Numbers from the operator's pool (issue 18): `admin add-numbers --pool` loads it,
SearchAvailablePhoneNumbers finds numbers by area code, state and city, toll-free prefix,
country and type (paginated), CreatePhoneNumberOrder moves them into the inventory with AWS's
order and per-number statuses (a number not in the pool fails alone), GetPhoneNumberOrder,
ListPhoneNumberOrders (paginated), ListSupportedPhoneNumberCountries and BatchDeletePhoneNumber; AWS's rules for
search filters and product types are answered BadRequest naming the field. Runs on SQLite and
PostgreSQL."""

from __future__ import annotations

import subprocess

import pytest
from botocore.exceptions import ClientError

SEATTLE = ["+12065550100", "+12065550101", "+12065550102"]
PORTLAND = "+15035550100"
TOLL_FREE = ["+18005550100", "+18885550100"]
LONDON = "+442079460000"


def load_pool(server):
    server.admin("add-numbers", "--pool", "--state", "WA", "--city", "Seattle", *SEATTLE)
    server.admin("add-numbers", "--pool", "--state", "or", PORTLAND)
    server.admin("add-numbers", "--pool", *TOLL_FREE, LONDON)


def search(voice, **kw):
    return voice.search_available_phone_numbers(**kw)["E164PhoneNumbers"]


def error_of(exc):
    e = exc.value.response["Error"]
    return e["Code"], e["Message"]


def test_search_then_order_moves_numbers_into_the_inventory(server):
    voice = server.voice
    load_pool(server)

    assert search(voice, AreaCode="206") == SEATTLE
    first = voice.search_available_phone_numbers(AreaCode="206", MaxResults=2)
    assert first["E164PhoneNumbers"] == SEATTLE[:2]
    rest = voice.search_available_phone_numbers(AreaCode="206", MaxResults=2,
                                                NextToken=first["NextToken"])
    assert rest["E164PhoneNumbers"] == SEATTLE[2:]
    assert "NextToken" not in rest
    assert search(voice, State="wa", City="seattle") == SEATTLE
    assert search(voice, State="OR") == [PORTLAND]
    assert search(voice, TollFreePrefix="888") == ["+18885550100"]
    assert search(voice, State="WA", PhoneNumberType="TollFree") == []
    assert search(voice, Country="GB", PhoneNumberType="Local") == [LONDON]
    assert search(voice, Country="GB", PhoneNumberType="TollFree") == []

    countries = voice.list_supported_phone_number_countries(ProductType="VoiceConnector")
    assert countries["PhoneNumberCountries"] == [
        {"CountryCode": "US", "SupportedPhoneNumberTypes": ["Local", "TollFree"]}]
    dial_in = voice.list_supported_phone_number_countries(ProductType="SipMediaApplicationDialIn")
    assert [c["CountryCode"] for c in dial_in["PhoneNumberCountries"]] == ["GB", "US"]

    missing = "+12065559999"
    order = voice.create_phone_number_order(
        ProductType="VoiceConnector", E164PhoneNumbers=[SEATTLE[0], SEATTLE[1], missing],
        Name="front desk")["PhoneNumberOrder"]
    assert order["Status"] == "Partial"
    assert order["OrderType"] == "New"
    assert order["ProductType"] == "VoiceConnector"
    assert {n["E164PhoneNumber"]: n["Status"] for n in order["OrderedPhoneNumbers"]} == {
        SEATTLE[0]: "Acquired", SEATTLE[1]: "Acquired", missing: "Failed"}

    # The numbers left the pool and are the account's now.
    assert search(voice, AreaCode="206") == [SEATTLE[2]]
    pn = voice.get_phone_number(PhoneNumberId=SEATTLE[0])["PhoneNumber"]
    assert pn["ProductType"] == "VoiceConnector"
    assert pn["Name"] == "front desk"
    assert pn["Status"] == "Unassigned"
    assert pn["Country"] == "US"
    listed = [n["E164PhoneNumber"] for n in voice.list_phone_numbers()["PhoneNumbers"]]
    assert SEATTLE[0] in listed and SEATTLE[2] not in listed
    with pytest.raises(ClientError) as e:
        voice.get_phone_number(PhoneNumberId=missing)
    assert error_of(e)[0] == "NotFoundException"

    # An ordered number works like any other: associate it with a voice connector.
    vc = voice.create_voice_connector(Name="pbx", RequireEncryption=True)["VoiceConnector"]
    errors = voice.associate_phone_numbers_with_voice_connector(
        VoiceConnectorId=vc["VoiceConnectorId"], E164PhoneNumbers=[SEATTLE[0]])
    assert errors["PhoneNumberErrors"] == []

    # Ordered twice: the second order gets nothing.
    again = voice.create_phone_number_order(
        ProductType="VoiceConnector", E164PhoneNumbers=[SEATTLE[0]])["PhoneNumberOrder"]
    assert again["Status"] == "Failed"
    assert again["OrderedPhoneNumbers"] == [{"E164PhoneNumber": SEATTLE[0], "Status": "Failed"}]
    free = voice.create_phone_number_order(
        ProductType="SipMediaApplicationDialIn",
        E164PhoneNumbers=[TOLL_FREE[1], LONDON])["PhoneNumberOrder"]
    assert free["Status"] == "Successful"
    assert voice.get_phone_number(PhoneNumberId=TOLL_FREE[1])["PhoneNumber"]["Type"] == "TollFree"
    assert voice.get_phone_number(PhoneNumberId=LONDON)["PhoneNumber"]["ProductType"] == \
        "SipMediaApplicationDialIn"

    got = voice.get_phone_number_order(PhoneNumberOrderId=order["PhoneNumberOrderId"])
    assert got["PhoneNumberOrder"] == order

    ids, token = [], None
    for _ in range(10):
        kw = {"MaxResults": 1} | ({"NextToken": token} if token else {})
        page = voice.list_phone_number_orders(**kw)
        ids += [o["PhoneNumberOrderId"] for o in page["PhoneNumberOrders"]]
        token = page.get("NextToken")
        if not token:
            break
    assert ids == [order["PhoneNumberOrderId"], again["PhoneNumberOrderId"],
                   free["PhoneNumberOrderId"]]
    server.assert_healthy()


@pytest.mark.parametrize("kw,field", [
    ({}, "AreaCode, City, State or TollFreePrefix"),
    ({"City": "Seattle"}, "State"),
    ({"Country": "GB"}, "PhoneNumberType"),
    ({"Country": "GB", "PhoneNumberType": "Local", "AreaCode": "207"}, "AreaCode"),
    ({"TollFreePrefix": "800", "State": "WA"}, "TollFreePrefix"),
    ({"TollFreePrefix": "800", "PhoneNumberType": "Local"}, "PhoneNumberType"),
    ({"TollFreePrefix": "801"}, "TollFreePrefix"),
    ({"AreaCode": "2O6"}, "AreaCode"),
    ({"AreaCode": "206", "NextToken": "garbage"}, "NextToken"),
    ({"Country": "usa", "PhoneNumberType": "Local"}, "Country"),
])
def test_search_filters_follow_aws_rules(start_module_server, kw, field):
    voice = start_module_server("sqlite", ["--api-rate-limit", "0"]).voice
    with pytest.raises(ClientError) as e:
        voice.search_available_phone_numbers(**kw)
    code, message = error_of(e)
    assert code == "BadRequestException", message
    assert field in message, message


def test_order_errors_name_the_field(server):
    voice = server.voice
    load_pool(server)
    with pytest.raises(ClientError) as e:
        voice.create_phone_number_order(ProductType="VoiceConnector",
                                        E164PhoneNumbers=[SEATTLE[2], LONDON])
    code, message = error_of(e)
    assert code == "BadRequestException" and "SipMediaApplicationDialIn" in message, message
    # Nothing was ordered: the US number is still in the pool.
    assert SEATTLE[2] in search(voice, AreaCode="206")
    with pytest.raises(ClientError) as e:
        voice.create_phone_number_order(ProductType="VoiceConnector", E164PhoneNumbers=[])
    assert error_of(e)[0] == "BadRequestException"
    with pytest.raises(ClientError) as e:
        voice.create_phone_number_order(ProductType="VoiceConnector",
                                        E164PhoneNumbers=[f"+1206555{i:04d}" for i in range(101)])
    code, message = error_of(e)
    assert code == "BadRequestException" and "at most 100" in message, message
    with pytest.raises(ClientError) as e:
        voice.get_phone_number_order(PhoneNumberOrderId="0f0f0f0f-0000-4000-8000-000000000000")
    assert error_of(e)[0] == "NotFoundException"
    with pytest.raises(ClientError) as e:
        voice.get_phone_number_order(PhoneNumberOrderId="not-a-guid")
    code, message = error_of(e)
    assert code == "BadRequestException" and "PhoneNumberOrderId" in message, message

    # The pool loader: a number already in the inventory is not pooled again; bad input is
    # refused naming the flag.
    server.admin("add-numbers", "+12065550199")
    out = server.admin("add-numbers", "--pool", "+12065550199").stdout
    assert "already" in out, out
    assert search(voice, AreaCode="206") == SEATTLE
    # Pooled first, then put straight into the inventory: an order for it fails that number.
    server.admin("add-numbers", SEATTLE[0])
    order = voice.create_phone_number_order(ProductType="VoiceConnector",
                                            E164PhoneNumbers=[SEATTLE[0], SEATTLE[1]])["PhoneNumberOrder"]
    assert order["Status"] == "Partial", order
    assert order["OrderedPhoneNumbers"][0] == {"E164PhoneNumber": SEATTLE[0], "Status": "Failed"}
    assert search(voice, AreaCode="206") == SEATTLE[2:]
    with pytest.raises(subprocess.CalledProcessError) as bad:
        server.admin("add-numbers", "--pool", "--state", "Washington", "+12065550198")
    assert "--state" in bad.value.stderr, bad.value.stderr
    server.assert_healthy()


def test_batch_delete_moves_numbers_to_the_deletion_queue(server):
    voice = server.voice
    load_pool(server)
    voice.create_phone_number_order(ProductType="VoiceConnector", E164PhoneNumbers=SEATTLE)
    vc = voice.create_voice_connector(Name="pbx", RequireEncryption=True)["VoiceConnector"]
    voice.associate_phone_numbers_with_voice_connector(
        VoiceConnectorId=vc["VoiceConnectorId"], E164PhoneNumbers=[SEATTLE[2]])
    out = voice.batch_delete_phone_number(PhoneNumberIds=[SEATTLE[0], SEATTLE[1], SEATTLE[2], "+12065559999"])
    errors = {e["PhoneNumberId"]: e for e in out["PhoneNumberErrors"]}
    assert set(errors) == {SEATTLE[2], "+12065559999"}, errors
    assert errors[SEATTLE[2]]["ErrorCode"] == "BadRequest" and "disassociate" in errors[SEATTLE[2]]["ErrorMessage"]
    assert errors["+12065559999"]["ErrorCode"] == "NotFound"
    for n in SEATTLE[:2]:
        assert voice.get_phone_number(PhoneNumberId=n)["PhoneNumber"]["Status"] == "DeleteInProgress"
    assert voice.get_phone_number(PhoneNumberId=SEATTLE[2])["PhoneNumber"]["Status"] == "Assigned"
    with pytest.raises(ClientError) as e:
        voice.batch_delete_phone_number(PhoneNumberIds=[f"+1206555{i:04d}" for i in range(101)])
    code, message = error_of(e)
    assert code == "BadRequestException" and "at most 100" in message, message
    server.assert_healthy()
