"""codes.py: every code has English and Chinese text; codes never change with the locale; an unknown
locale falls back to English; codes.py is the only place a code number is written."""

import re

import pytest
from vmsnapshot import codes, freezeproto, guardian

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("code", sorted(codes.TABLE))
def test_every_code_speaks_english_and_chinese(code):
    lang, en = codes.message(code, "detail-x", "en-us")
    assert lang == "en-US" and "detail-x" in en and not CJK.search(en)
    lang, zh = codes.message(code, "detail-x", "zh-cn")
    assert lang == "zh-CN" and "detail-x" in zh and CJK.search(zh)
    name = codes.name_of(code)
    assert en.endswith("StatusCode.%s," % name) and zh.endswith("StatusCode.%s," % name)


@pytest.mark.parametrize("locale", ["fr-fr", "de", None, "", "xx-YY"])
def test_unknown_locales_fall_back_to_english(locale):
    assert codes.message(codes.SNAPSHOT_FAILED_NO_NETWORK, "d", locale)[0] == "en-US"


@pytest.mark.parametrize("locale", ["zh-cn", "ZH-CN", "zh_CN", "zh-Hans", "zh"])
def test_chinese_locale_spellings(locale):
    assert codes.lang_for(locale) == "zh-CN"


def test_unknown_code_still_has_a_message_and_a_health_state():
    lang, text = codes.message(556, "remote server error", "zh-cn")
    assert "556" in text and codes.health_of(556) in (codes.GREEN, codes.YELLOW, codes.RED)


def test_every_named_code_is_in_the_table():
    named = [
        v
        for k, v in vars(codes).items()
        if k.isupper() and isinstance(v, int) and not k.startswith(("CONSISTENCY_", "GREEN", "YELLOW", "RED"))
    ]
    assert named and all(code in codes.TABLE for code in named)


def test_the_freeze_engine_uses_the_codes_of_codes_py():
    assert (
        (
            freezeproto.CODE_FREEZE_FAILED,
            freezeproto.CODE_FREEZE_TIMEOUT,
            freezeproto.CODE_OPEN_FAILED,
            freezeproto.CODE_INCONSISTENT,
        )
        == (codes.FREEZE_FAILED, codes.FREEZE_TIMEOUT, codes.UNABLE_TO_OPEN_MOUNT, codes.ERROR)
        == (121, 122, 123, 2)
    )
    assert (guardian.CODE_FREEZE_FAILED, guardian.CODE_FREEZE_TIMEOUT, guardian.CODE_OPEN_FAILED) == (121, 122, 123)


@pytest.mark.parametrize("code", sorted(codes.TABLE))
def test_health_states_are_the_three_known_ones(code):
    assert codes.health_of(code) in (codes.GREEN, codes.YELLOW, codes.RED)
