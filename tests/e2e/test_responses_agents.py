"""The OpenAI Agents SDK (its Responses model) running a two-tool agent through the gateway
on models the gateway translates the Responses API for."""

from __future__ import annotations

import asyncio

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

from tests.harness import KEY_A, Gateway, table_dict


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@function_tool
def get_time(city: str) -> str:
    """The local time in a city."""
    return f"noon in {city}"


@pytest.mark.parametrize("model", ["claude-3-5-sonnet", "gemini-1.5-pro"])
def test_a_two_tool_agent_runs(model: str) -> None:
    set_tracing_disabled(True)  # no traces sent to OpenAI
    with Gateway(table_dict()) as gw:
        async def run() -> tuple[str, list[str]]:
            client = openai.AsyncOpenAI(api_key=KEY_A, base_url=gw.url(), max_retries=0)
            agent = Agent(name="helper", instructions="Use the tools.", tools=[get_weather, get_time],
                          model=OpenAIResponsesModel(model=model, openai_client=client))
            result = await Runner.run(agent, "Call get_weather and get_time for Paris.")
            await client.close()
            outputs = [str(item.output) for item in result.new_items if item.type == "tool_call_output_item"]
            return str(result.final_output), outputs

        final, outputs = asyncio.run(run())
    # The simulators choose the calls and their arguments: what matters is that the agent's
    # tools ran on the calls that came back, and the model answered after their outputs.
    assert outputs and all(out.startswith(("sunny in ", "noon in ")) for out in outputs)
    assert any(out in final for out in outputs)
