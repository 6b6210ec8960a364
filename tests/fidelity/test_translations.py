"""`POST {ep}/audio/translations` like audio/transcriptions: speech-to-text models on
OpenAI-family upstreams, the stock openai client's multipart upload."""

from __future__ import annotations

import io

import openai
import pytest

from tests.harness import Gateway

AUDIO = b"RIFF" + bytes(64_000)
# The openai package marks `audio.translations.create` deprecated (OpenAI's newer models
# translate by chat); the endpoint is still in OpenAI's API and in the contract.
pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")


def test_a_translation_reaches_the_upstream_translations_route(gw: Gateway) -> None:
    since = len(gw.sim("openai").received)
    answer = gw.client().audio.translations.create(model="whisper-large-v3", file=("talk.wav", io.BytesIO(AUDIO)))
    assert "English translation of talk.wav" in answer.text
    sent = gw.sim("openai").received[since:]
    assert [r.path for r in sent] == ["/v1/audio/translations"]
    assert sent[0].json()["model"] == "openai/whisper-large-v3"  # the upstream model, the file by name


def test_a_translation_as_text_and_verbose_json(gw: Gateway) -> None:
    text = gw.client().audio.translations.create(model="whisper-large-v3", file=("a.mp3", io.BytesIO(AUDIO)),
                                                 response_format="text")
    assert isinstance(text, str) and "English translation" in text
    raw = gw.client().audio.translations.with_raw_response.create(
        model="whisper-large-v3", file=("a.mp3", io.BytesIO(AUDIO)), response_format="verbose_json")
    assert raw.http_response.json()["task"] == "translate"


def test_a_chat_model_is_told_to_use_chat_completions(gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().audio.translations.create(model="gpt-4o-mini", file=("a.wav", io.BytesIO(AUDIO)))
    assert caught.value.code == "wrong_endpoint"
