"""Status codes and their messages: every code has English and Chinese text; codes never change with
the locale; an unknown locale falls back to English (issue 9)."""

import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "extension"))

from vmsnapshot import codes  # noqa: E402

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
