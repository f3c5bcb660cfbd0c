"""The one backend contract, honoured by every backend, and batches through LangChain.

Every backend (GGUF in-process, vLLM in-process, vLLM's server with and without its reasoning
parser, llama-cpp-python's server) is a ``ChatBackend``: it names its model, knows its context
window, counts tokens with the model's own tokenizer (never LangChain's GPT-2 fallback), and
the sampling options reach its engine as given. ``batch`` goes through LangChain's machinery
(max_concurrency, rate limiter, cache, callbacks) and stays one engine call per round on vLLM.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage
from langchain_core.rate_limiters import InMemoryRateLimiter
from langchain_core.runnables import ConfigurableField

from sealion_agents import ChatSeaLion, TokenizerUnavailableError
from sealion_agents import testing as tm
from sealion_agents.backends.base import ChatBackend, GenerationRequest
from sealion_agents.backends.llamacpp import LlamaCppBackend
from sealion_agents.backends.openai import OpenAIBackend
from sealion_agents.backends.vllm import VLLMBackend
from sealion_agents.messages import to_template_messages
from sealion_agents.options import GenerationOptions
from tests.conftest import LLAMA_TEST_KWARGS, LLAMACPP_TEST_KEY
from tests.test_chat_gguf import QUESTION, expected, split_of
from tests.test_vllm_backend import CountingLLM

pytestmark = pytest.mark.timeout(300)

TEXTS = [
    "Where does the Merlion stand?",
    "เมืองหลวงของประเทศไทยคือกรุงเทพมหานคร",
    "Berapa lama cuti tahunan untuk pekerja separuh masa?",
    "新加坡的国花是什么？",
]
BACKENDS = ["gguf", "vllm", "server-vllm", "server-vllm-r1", "server-llamacpp"]


@pytest.fixture(params=BACKENDS)
def any_backend(request: pytest.FixtureRequest) -> ChatBackend:
    kind = str(request.param)
    if kind == "gguf":
        return request.getfixturevalue("gguf_backends")["writes"]
    if kind == "vllm":
        return request.getfixturevalue("vllm_backends")["writes"]
    if kind == "server-llamacpp":
        server = request.getfixturevalue("llamacpp_server")
        return OpenAIBackend(
            server.base_url,
            model="writes-on",
            thinking_off_model="writes-off",
            api_key=LLAMACPP_TEST_KEY,
            context_window=1024,  # its API does not report n_ctx: the user names it
        )
    server = request.getfixturevalue("vllm_servers")[kind.removeprefix("server-")]
    return OpenAIBackend(server.base_url, model="sealion-tiny")


def test_every_backend_honours_the_contract(any_backend: ChatBackend) -> None:
    assert isinstance(any_backend, ChatBackend)
    llm = ChatSeaLion(backend=any_backend)
    for text in TEXTS:
        assert llm.get_num_tokens(text) == len(tm.encode(text)), text  # the model's tokenizer
    assert llm.context_window in (512, 1024, 4096)
    assert llm.model_name
    llm.load()


def test_window_is_the_servers(vllm_servers: dict[str, Any]) -> None:
    backend = OpenAIBackend(vllm_servers["vllm"].base_url, model="sealion-tiny")
    assert backend.context_window == 1024  # vLLM's max_model_len, from /v1/models


def test_server_without_a_window_says_what_to_pass(llamacpp_server: Any) -> None:
    backend = OpenAIBackend(llamacpp_server.base_url, model="writes-on", api_key=LLAMACPP_TEST_KEY)
    assert backend.count_tokens("Hello there") == len(tm.encode("Hello there"))
    with pytest.raises(TokenizerUnavailableError, match="pass context_window=<tokens>"):
        _ = backend.context_window


class _ChatOnly(http.server.BaseHTTPRequestHandler):
    """A hosted API stand-in: lists its model, has no tokenize endpoint."""

    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"data": [{"id": "sealion"}]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def chat_only_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ChatOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_server_without_tokenize_needs_a_named_tokenizer(
    chat_only_url: str, tiny_gguf_paths: dict[str, Path]
) -> None:
    bare = ChatSeaLion.from_openai(chat_only_url, model="sealion")
    with pytest.raises(TokenizerUnavailableError) as error:
        bare.get_num_tokens("Hello")
    assert "tokenizer=" in str(error.value) and "context_window=" in str(error.value)
    with pytest.raises(TokenizerUnavailableError, match="context_window="):
        _ = bare.context_window
    folder = ChatSeaLion.from_openai(
        chat_only_url, model="sealion", tokenizer=tm.tiny_hf_folder("writes"), context_window=8192
    )
    gguf = ChatSeaLion.from_openai(
        chat_only_url, model="sealion", tokenizer=tiny_gguf_paths["writes"], context_window=8192
    )
    for text in TEXTS:
        assert folder.get_num_tokens(text) == gguf.get_num_tokens(text) == len(tm.encode(text))
    assert folder.context_window == 8192
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ChatSeaLion.from_openai(chat_only_url, model="sealion", tokenizer="/no/such/folder")


def test_missing_model_is_found_by_load(chat_only_url: str) -> None:
    from sealion_agents import ServerModelNotFoundError

    with pytest.raises(ServerModelNotFoundError, match="does not serve 'other'"):
        ChatSeaLion.from_openai(chat_only_url, model="other").load()


# -- sampling options reach each engine as given ---------------------------------------------

SAMPLING = {"temperature": 0.3, "top_p": 0.8, "top_k": 7, "seed": 11, "max_tokens": 40}


def test_the_longest_token_is_read_from_the_gguf(gguf_backends: dict[str, LlamaCppBackend]) -> None:
    """Llama 3's longest token is 128 spaces: the bound the server refuses long prompts by."""
    backend = gguf_backends["writes"]
    assert backend.longest_token_bytes == 128
    assert backend.count_tokens(" " * 128) == 1  # one token, so no smaller bound is sound


def test_sampling_reaches_llama_cpp(gguf_backends: dict[str, LlamaCppBackend]) -> None:
    backend = gguf_backends["writes"]
    llama = backend.llama
    seen: list[dict[str, Any]] = []
    seeds: list[int] = []
    real_generate, real_seed = llama.generate, llama.set_seed

    def generate(tokens: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real_generate(tokens, **kwargs)

    def set_seed(seed: int) -> None:
        seeds.append(seed)
        real_seed(seed)

    llama.generate, llama.set_seed = generate, set_seed
    try:
        ChatSeaLion(backend=backend, **SAMPLING).invoke(QUESTION)
        ChatSeaLion(backend=backend).invoke(QUESTION)  # SEA-LION's defaults
    finally:
        del llama.generate, llama.set_seed
    assert (seen[0]["temp"], seen[0]["top_p"], seen[0]["top_k"], seeds[0]) == (0.3, 0.8, 7, 11)
    assert (seen[1]["temp"], seen[1]["top_p"], seen[1]["top_k"]) == (0.6, 0.95, 40)


def test_sampling_reaches_vllm(vllm_backends: dict[str, VLLMBackend]) -> None:
    backend = vllm_backends["writes"]
    request = GenerationRequest(to_template_messages(QUESTION), GenerationOptions(**SAMPLING))
    params = backend._prepare(backend.llm, request)[2]
    given = (params.temperature, params.top_p, params.top_k, params.seed, params.max_tokens)
    assert given == (0.3, 0.8, 7, 11, 40)
    default = backend._prepare(backend.llm, GenerationRequest(to_template_messages(QUESTION)))[2]
    assert (default.temperature, default.top_p) == (0.6, 0.95)
    no_limit = GenerationRequest(to_template_messages(QUESTION), GenerationOptions(top_k=0))
    assert backend._prepare(backend.llm, no_limit)[2].top_k in (0, -1)  # vLLM's "no limit"


def test_sampling_reaches_the_server(vllm_servers: dict[str, Any]) -> None:
    sent: list[dict[str, Any]] = []

    def record(request: httpx.Request) -> None:
        if request.url.path.endswith("/chat/completions"):
            sent.append(json.loads(request.content))

    backend = OpenAIBackend(vllm_servers["vllm"].base_url, model="sealion-tiny")
    backend._client = httpx.Client(event_hooks={"request": [record]})
    reply = ChatSeaLion(backend=backend, **SAMPLING).invoke(QUESTION)
    assert reply.content  # the server took every option
    body = sent[-1]
    assert {k: body[k] for k in SAMPLING} == SAMPLING
    # "sealion-tiny" names no SEA-LION model and the template is the server's: every switch
    assert body["chat_template_kwargs"] == {"thinking_mode": "on", "enable_thinking": True}
    named = OpenAIBackend(
        vllm_servers["vllm"].base_url, model="sealion-tiny", profile="llama-sea-lion-v3.5-r"
    )
    named._client = httpx.Client(event_hooks={"request": [record]})
    assert ChatSeaLion(backend=named, **SAMPLING).invoke(QUESTION).content == reply.content
    assert sent[-1]["chat_template_kwargs"] == {"thinking_mode": "on"}


def test_per_call_options_are_validated(gguf_backends: dict[str, Any]) -> None:
    llm = ChatSeaLion(backend=gguf_backends["writes"])
    with pytest.raises(ValueError, match="temperature"):
        llm.invoke(QUESTION, temperature=-1)
    with pytest.raises(ValueError, match="max_thinking_tokens"):
        llm.invoke(QUESTION, max_thinking_tokens=0)


# -- leaving a stream early stops the generation -------------------------------------------


@pytest.fixture(scope="module")
def endless(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model that never ends: "\\n\\n" -> tick -> tock -> tick ..."""
    a, b = tm.encode(" tick")[0], tm.encode(" tock")[0]
    path = tmp_path_factory.mktemp("endless") / "endless.gguf"
    return tm.build_gguf(
        path, chains=[[tm.NEWLINES_ID, a, b, a]], chat_template=tm.TEMPLATES["writes"]
    )


async def test_leaving_astream_stops_llama_cpp(endless: Path) -> None:
    llm = ChatSeaLion.from_gguf(endless, n_ctx=4096, llama_kwargs=LLAMA_TEST_KWARGS)
    llama = llm.backend.llama
    produced = [0]
    closed = threading.Event()
    real = llama.generate

    def counting(tokens: Any, **kwargs: Any) -> Any:
        try:
            for token in real(tokens, **kwargs):
                produced[0] += 1
                yield token
        finally:
            closed.set()  # the engine's token loop was closed (or ran out)

    llama.generate = counting
    try:
        async for _chunk in llm.astream("Go on forever", max_tokens=4000):
            break
        assert await asyncio.to_thread(closed.wait, 60)  # leaving closes the engine's loop...
        after_leaving = produced[0]
        assert after_leaving < 1000  # ...far below max_tokens
        reply = await asyncio.wait_for(llm.ainvoke("Again", max_tokens=5), 30)
        assert reply.usage_metadata["output_tokens"] == 5
        assert produced[0] == after_leaving + 5  # nothing of the left stream ran on
    finally:
        del llama.generate
        llm.close()


async def test_leaving_astream_stops_vllm(
    tmp_path_factory: pytest.TempPathFactory, vllm_engine: Any
) -> None:
    llm = ChatSeaLion(backend=VLLMBackend(llm=vllm_engine), thinking=False)
    engine = vllm_engine.llm_engine
    async for _chunk in llm.astream(QUESTION, max_tokens=400):
        break
    deadline = time.monotonic() + 60  # a bound on a hang; the engine aborts at once
    while engine.get_num_unfinished_requests() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert engine.get_num_unfinished_requests() == 0


# -- batch: LangChain's machinery, one engine call per round ---------------------------------


def test_one_batch_mixes_thinking_modes_in_one_engine_call(vllm_engine: Any) -> None:
    counting = CountingLLM(vllm_engine)
    llm = ChatSeaLion(backend=VLLMBackend(llm=counting)).configurable_fields(
        thinking=ConfigurableField(id="thinking")
    )
    modes = [True, False, True, False]
    configs: list[Any] = [{"configurable": {"thinking": mode}} for mode in modes]
    results = llm.batch([QUESTION] * 4, config=configs)
    assert counting.calls == [("generate", 4)]
    assert [split_of(r) for r in results] == [expected(mode) for mode in modes]


async def test_one_abatch_mixes_thinking_modes_in_one_engine_call(vllm_engine: Any) -> None:
    counting = CountingLLM(vllm_engine)
    llm = ChatSeaLion(backend=VLLMBackend(llm=counting)).configurable_fields(
        thinking=ConfigurableField(id="thinking")
    )
    configs: list[Any] = [{"configurable": {"thinking": m}} for m in (False, True, False)]
    results = await llm.abatch([QUESTION] * 3, config=configs)
    assert counting.calls == [("generate", 3)]
    assert [split_of(r) for r in results] == [expected(m) for m in (False, True, False)]


def test_batch_max_concurrency_sets_the_round_size(vllm_engine: Any) -> None:
    counting = CountingLLM(vllm_engine)
    llm = ChatSeaLion(backend=VLLMBackend(llm=counting))
    results = llm.batch([QUESTION] * 6, config={"max_concurrency": 2})
    assert counting.calls == [("generate", 2)] * 3
    assert [split_of(r) for r in results] == [expected(True)] * 6


def test_batch_uses_the_cache(vllm_engine: Any) -> None:
    counting = CountingLLM(vllm_engine)
    llm = ChatSeaLion(backend=VLLMBackend(llm=counting), cache=InMemoryCache(), temperature=0)
    first = llm.batch([[HumanMessage("one")], [HumanMessage("two")]])
    again = llm.batch([[HumanMessage("one")], [HumanMessage("two")], [HumanMessage("three")]])
    assert counting.calls == [("generate", 2), ("generate", 1)]  # only "three" was generated
    assert [r.content for r in again[:2]] == [r.content for r in first]


def test_batch_waits_for_the_rate_limiter(vllm_engine: Any) -> None:
    counting = CountingLLM(vllm_engine)
    limiter = InMemoryRateLimiter(
        requests_per_second=4, check_every_n_seconds=0.01, max_bucket_size=1
    )
    llm = ChatSeaLion(backend=VLLMBackend(llm=counting), rate_limiter=limiter)
    start = time.monotonic()
    results = llm.batch([QUESTION] * 3)
    assert time.monotonic() - start >= 0.4  # three requests at four per second
    assert sum(n for _, n in counting.calls) == 3
    assert [split_of(r) for r in results] == [expected(True)] * 3


class _Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.tokens = 0

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.events.append("start")

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens += 1

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.events.append("end")


def test_batch_callbacks_fire_per_input(vllm_engine: Any) -> None:
    counting = CountingLLM(vllm_engine)
    llm = ChatSeaLion(backend=VLLMBackend(llm=counting), streaming=True)
    recorder = _Recorder()
    results = llm.batch([QUESTION] * 3, config={"callbacks": [recorder]})
    assert counting.calls == [("generate", 3)]
    assert sorted(recorder.events) == ["end"] * 3 + ["start"] * 3
    assert recorder.tokens >= 3 * 2  # streaming callbacks see each input's pieces
    assert [split_of(r) for r in results] == [expected(True)] * 3
