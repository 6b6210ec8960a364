"""The reference service's API guide, run as written with the stock `openai` package:
only `base_url` and `api_key` differ. Upstreams are the bundled simulators."""

from __future__ import annotations

import base64

from tests.harness import KEY_A, Gateway

GUIDE_MODELS_V2 = {"gpt-4o", "gpt-4o-mini", "Llama-3.1-70B-Instruct", "jina-embeddings-v2-base-de",
                   "whisper-large-v3", "claude-3-5-sonnet", "gemini-1.5-pro", "text-embedding-004"}


def test_list_models_with_meta_data(gateway: Gateway) -> None:
    client = gateway.client()
    models = client.models.list()
    assert {m.id for m in models.data} == GUIDE_MODELS_V2
    llama = next(m for m in models.data if m.id == "Llama-3.1-70B-Instruct")
    assert llama.meta_data == {"max_sequence_length": 131072, "hidden_size": 0, "max_output_length": 8192}
    assert llama.object == "model"
    jina = client.models.retrieve("jina-embeddings-v2-base-de")
    assert jina.meta_data["hidden_size"] == 768
    assert "simulator" in jina.owned_by


def test_models_are_per_endpoint_and_per_key(gateway: Gateway) -> None:
    vision = {m.id for m in gateway.client(endpoint="/vision").models.list().data}
    assert vision == {"llava-v1.6-vicuna-13b"}
    team_b = {m.id for m in gateway.client(key="sk-team-b-test").models.list().data}
    assert team_b == {"Llama-3.1-70B-Instruct"}


def test_chat_completion_not_streamed(gateway: Gateway) -> None:
    sim = gateway.sim("openai-compatible")
    before = len(sim.received)
    response = gateway.client().chat.completions.create(
        model="Llama-3.1-70B-Instruct",
        messages=[{"role": "system", "content": "You are a helpful assistant named Llama-3."},
                  {"role": "user", "content": "What is Open Telekom Cloud?"}],
        temperature=0.1, max_tokens=256, stream=False)
    assert response.model == "Llama-3.1-70B-Instruct"
    assert "Open Telekom Cloud" in response.choices[0].message.content
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens > 0
    received = sim.received[before]
    assert received.path == "/v1/chat/completions"
    sent = received.json()
    assert sent["model"] == "meta-llama/Llama-3.1-70B-Instruct"
    assert sent["temperature"] == 0.1 and sent["max_tokens"] == 256
    assert sent["messages"][0] == {"role": "system", "content": "You are a helpful assistant named Llama-3."}


def test_chat_completion_streamed(gateway: Gateway) -> None:
    stream = gateway.client().chat.completions.create(
        model="Llama-3.1-70B-Instruct",
        messages=[{"role": "system", "content": "You are a helpful assistant named Llama-3."},
                  {"role": "user", "content": "What is Open Telekom Cloud?"}],
        temperature=0.1, max_tokens=256, stream=True)
    pieces, finish, chunks = [], None, []
    for chunk in stream:
        chunks.append(chunk)
        if chunk.choices:
            if chunk.choices[0].delta.content is not None:
                pieces.append(chunk.choices[0].delta.content)
            finish = chunk.choices[0].finish_reason or finish
    assert "Open Telekom Cloud" in "".join(pieces)
    assert finish == "stop"
    assert all(c.model == "Llama-3.1-70B-Instruct" for c in chunks)
    # The client did not ask for usage: the usage chunk the gateway asked for is left out.
    assert all(c.usage is None for c in chunks)


def test_stream_usage_when_asked(gateway: Gateway) -> None:
    sim = gateway.sim("openai")
    before = len(sim.received)
    stream = gateway.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello there"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert sim.received[before].json()["stream_options"] == {"include_usage": True}
    assert sim.received[before].headers["Authorization"] == "Bearer sk-upstream-secret-test"


def test_completions_streamed_and_not(gateway: Gateway) -> None:
    client = gateway.client()
    completion = client.completions.create(model="Llama-3.1-70B-Instruct",
                                           prompt="What is Python programming language?",
                                           stream=False, temperature=0.2, max_tokens=128)
    assert completion.object == "text_completion"
    assert "Python" in completion.choices[0].text
    assert completion.model == "Llama-3.1-70B-Instruct"
    text = "".join(chunk.choices[0].text for chunk in client.completions.create(
        model="Llama-3.1-70B-Instruct", prompt="What is Python programming language?", stream=True,
        temperature=0.2, max_tokens=128) if chunk.choices and chunk.choices[0].text is not None)
    assert "Python" in text


def test_embeddings_of_five_texts(gateway: Gateway) -> None:
    texts = ["I am Batman and I'm rich", "I am Spiderman", "I am Ironman and I'm a bilionaire", "I am Flash",
             "I am the president of USA"]
    embeddings = gateway.client().embeddings.create(input=texts, model="jina-embeddings-v2-base-de")
    assert len(embeddings.data) == 5
    assert len(embeddings.data[0].embedding) == 768  # the model's meta_data.hidden_size
    assert embeddings.usage.prompt_tokens == embeddings.usage.total_tokens > 0
    assert embeddings.model == "jina-embeddings-v2-base-de"


def test_function_calling_example(gateway: Gateway) -> None:
    tools = [{"type": "function", "function": {
        "name": "get_current_weather", "description": "Get the current weather",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
            "format": {"type": "string", "enum": ["celsius", "fahrenheit"],
                       "description": "The temperature unit to use. Infer this from the users location."}},
            "required": ["location", "format"]}}}]
    messages: list = [
        {"role": "system", "content": "Don't make assumptions about what values to plug into functions. "
                                      "Ask for clarification if a user request is ambiguous."},
        {"role": "user", "content": "What's the weather like today in Hamburg"}]
    sim = gateway.sim("azure")
    before = len(sim.received)
    response = gateway.client().chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
    message = response.choices[0].message
    assert response.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls[0].function.name == "get_current_weather"
    assert '"format":"celsius"' in message.tool_calls[0].function.arguments
    received = sim.received[before]
    assert received.path == "/openai/deployments/gpt-4o-deployment/chat/completions"
    assert received.query == {"api-version": "2024-10-21"}
    assert received.headers["api-key"] == "azure-secret-test"
    assert "Authorization" not in received.headers
    messages.append(message)
    messages.append({"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "12 degrees, rain"})
    answer = gateway.client().chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
    assert "12 degrees" in answer.choices[0].message.content


def _vision(gateway: Gateway, url: str, stream: bool) -> str:
    response = gateway.client(endpoint="/vision").chat.completions.create(
        model="llava-v1.6-vicuna-13b",
        messages=[{"role": "system", "content": [{"type": "text", "text": "You are an helpful AI assistant."}]},
                  {"role": "user", "content": [{"type": "text", "text": "What’s in this image?"},
                                               {"type": "image_url", "image_url": {"url": url}}]}],
        max_tokens=300, stream=stream, temperature=0.01)
    if not stream:
        return response.choices[0].message.content
    return "".join(c.choices[0].delta.content for c in response if c.choices and c.choices[0].delta.content)


def test_vision_with_https_url_and_data_uri(gateway: Gateway) -> None:
    sim = gateway.sim("openai-compatible")
    url = ("https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/Gfp-wisconsin-madison-the-nature-boardwalk.jpg/"
           "2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg")
    assert "[an image]" in _vision(gateway, url, stream=True)
    assert sim.received[-1].json()["messages"][1]["content"][1]["image_url"]["url"] == url
    jpeg = base64.b64encode(b"\xff\xd8\xff\xe0fake-jpeg-bytes").decode()
    assert "[an image]" in _vision(gateway, f"data:image/jpeg;base64,{jpeg}", stream=False)


def test_transcription_of_a_wav_file(gateway: Gateway, tmp_path) -> None:
    wav = tmp_path / "hello.wav"
    wav.write_bytes(_tiny_wav())
    with wav.open("rb") as audio:
        transcript = gateway.client().audio.transcriptions.create(model="whisper-large-v3", file=audio)
    assert "hello.wav" in transcript.text
    received = gateway.sim("openai-compatible").received[-1]
    assert received.path == "/v1/audio/transcriptions"
    assert received.json()["model"] == "openai/whisper-large-v3"
    with wav.open("rb") as audio:
        text = gateway.client().audio.transcriptions.create(model="whisper-large-v3", file=audio,
                                                            response_format="text")
    assert "simulated transcription" in text


def _tiny_wav() -> bytes:
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 1600)
    return buffer.getvalue()


def test_key_is_never_in_the_log(gateway: Gateway, caplog) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="llm_router"):
        gateway.client().chat.completions.create(model="gpt-4o-mini",
                                                 messages=[{"role": "user", "content": "secret prompt text"}])
    text = "\n".join(str(r.__dict__) for r in caplog.records)
    assert KEY_A not in text and "secret prompt text" not in text
