"""TPM reservations of requests without max_tokens (the default of the openai package,
LangChain and LlamaIndex): a modest reservation, settled to the real usage after."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType

from providers.simulators.common import Fault
from router.config.schema import KeyConfig, Limits, MetaData, ModelConfig, ModelType
from router.state.limits import DEFAULT_RESERVE_OUTPUT_TOKENS, LocalLimiter, output_reservation
from tests.harness import Gateway


def test_four_concurrent_requests_without_max_tokens_pass_under_tpm_40000(gw: Gateway) -> None:
    sim = gw.sim("openai")
    # Each answer starts only after a moment, so that the four are admitted while all are in flight.
    sim.faults.extend(Fault(delay_first_byte=0.5, path="/v1/chat/completions") for _ in range(4))
    client = gw.client()

    def ask(i: int) -> int:
        raw = client.chat.completions.with_raw_response.create(
            model="limited-4o", messages=[{"role": "user", "content": f"hi {i}"}])
        return raw.http_response.status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(ask, range(4)))
    assert statuses == [200, 200, 200, 200]


def _model(limits: Limits | None, max_output: int = 16384) -> ModelConfig:
    return ModelConfig("m", ModelType.CHAT, ("/v1",), MetaData(128000, 0, max_output), (), limits=limits)


def test_the_reservation_is_the_narrowest_scope_setting_else_the_default() -> None:
    key = KeyConfig("k", b"", None, Limits(tpm=1000, reserve_output_tokens=300),
                    MappingProxyType({"m": Limits(reserve_output_tokens=200)}))
    plain = KeyConfig("p", b"", None, None)
    assert output_reservation(plain, _model(Limits(tpm=40000))) == DEFAULT_RESERVE_OUTPUT_TOKENS
    assert DEFAULT_RESERVE_OUTPUT_TOKENS < 16384 // 4
    assert output_reservation(plain, _model(Limits(tpm=9, reserve_output_tokens=64))) == 64
    assert output_reservation(key, _model(Limits(reserve_output_tokens=64))) == 200
    assert output_reservation(plain, _model(None, max_output=100)) == 100


async def test_an_answer_longer_than_its_reservation_is_charged_in_full() -> None:
    limiter = LocalLimiter()
    caller = KeyConfig("k", b"", None, Limits(tpm=10_000))
    model = _model(None)
    admission = await limiter.admit(caller, model, 1_000)
    await admission.settle(6_000)  # a stream that ran five times past its reservation
    after = await limiter.admit(caller, model, 1)
    assert int(after.headers["x-ratelimit-remaining-tokens"]) <= 10_000 - 6_000
