"""``detect_language``: the 13 languages, short questions, Malay vs Indonesian, the hints."""

from __future__ import annotations

import pytest

from sealion_agents.qa.language import LANGUAGES, detect_language, normalize_code


def code(text: str, **hints: object) -> str:
    return detect_language(text, **hints).code  # type: ignore[arg-type]


# -- the trials from the issue, and their Indonesian counterparts --------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bilakah Songkran disambut?", "ms"),
        ("Sabaraha lami pakansi?", "su"),
        ("Piro suwene cuti taunan?", "jv"),
        ("Kapan Songkran dirayakan?", "id"),
        ("Berapa lama liburan tahunan?", "id"),
        ("Bisa cuti berapa hari setahun?", "id"),
    ],
)
def test_issue_trials(text: str, expected: str) -> None:
    assert code(text) == expected


# -- one full question per language (every script) ----------------------------------------

FULL = {
    "en": "According to the passage, why did the government close the old railway station?",
    "id": "Menurut laporan tersebut, mengapa pemerintah menutup stasiun kereta yang lama?",
    "ms": "Menurut laporan itu, mengapakah kerajaan menutup stesen kereta api yang lama?",
    "tl": "Ayon sa ulat, bakit isinara ng pamahalaan ang lumang istasyon ng tren?",
    "vi": "Theo báo cáo, tại sao chính phủ đóng cửa nhà ga xe lửa cũ?",
    "th": "ตามรายงาน ทำไมรัฐบาลจึงปิดสถานีรถไฟเก่า",
    "lo": "ຕາມບົດລາຍງານ, ເປັນຫຍັງລັດຖະບານຈຶ່ງປິດສະຖານີລົດໄຟເກົ່າ?",
    "km": "យោងតាមរបាយការណ៍ ហេតុអ្វីបានជារដ្ឋាភិបាលបិទស្ថានីយ៍រថភ្លើងចាស់?",
    "my": "အစီရင်ခံစာအရ အစိုးရက ဘာကြောင့် ရထားဘူတာဟောင်းကို ပိတ်ခဲ့သလဲ။",
    "ta": "அறிக்கையின்படி, அரசாங்கம் பழைய ரயில் நிலையத்தை ஏன் மூடியது?",
    "zh": "根据报告，政府为什么关闭了旧火车站？",
    "jv": "Miturut laporan kasebut, kenapa pamarentah nutup stasiun sepur sing lawas?",
    "su": "Numutkeun laporan éta, naha pamaréntah nutup stasion karéta api anu kolot?",
}


@pytest.mark.parametrize("lang", sorted(FULL))
def test_one_full_question_per_language(lang: str) -> None:
    assert code(FULL[lang]) == lang


def test_traditional_chinese_and_a_latin_name_in_another_script() -> None:
    assert code("辦公室電話是多少？") == "zh"
    assert code("อะไรคือ ASUS Eee PC") == "th"
    assert code("Xavier Zayat ແມ່ນໃຜ?") == "lo"
    assert code("តើ ASUS Eee PC ជាអ្វី?") == "km"


# -- short questions: never English for text that is not English --------------------------

SHORT = {
    "en": ["How much is the fee?", "Is parking free?"],
    "id": ["Bisakah saya bekerja dari rumah?", "Apakah parkirnya gratis?"],
    "ms": ["Bolehkah saya bekerja dari rumah?", "Adakah tempat letak kereta percuma?"],
    "tl": ["Magkano ang bayad?", "Libre ba ang paradahan?"],
    "vi": ["Phí đăng ký bao nhiêu?", "Khi nào trả lương?"],
    "jv": ["Sapa sing nyetujoni cuti?", "Piye carane ngganti sandi?"],
    "su": ["Saha nu nyatujuan cuti?", "Kumaha carana ngaganti sandi?"],
    "th": ["ค่าสมัครเท่าไร"],
    "zh": ["停车免费吗？"],
}


@pytest.mark.parametrize(
    ("lang", "text"), [(lang, text) for lang, texts in SHORT.items() for text in texts]
)
def test_short_questions(lang: str, text: str) -> None:
    assert len(text.split()) < 6
    assert code(text) == lang


def test_malay_and_indonesian_told_apart_by_their_own_words() -> None:
    assert code("Berapakah yuran pendaftaran?") == "ms"
    assert code("Berapa biaya pendaftarannya?") == "id"
    assert code("Adakah haiwan peliharaan dibenarkan?") == "ms"
    assert code("Apakah hewan peliharaan diizinkan?") == "id"
    assert code("Di manakah pejabat utama syarikat ini terletak?") == "ms"
    assert code("Di mana kantor pusat perusahaan ini?") == "id"


# -- hints ------------------------------------------------------------------------------


def test_configured_languages_restrict_the_choice() -> None:
    # Indonesian text at a Malay-only deployment is answered in Malay, its closest language
    assert code("Kapan Songkran dirayakan?", languages=["ms", "en"]) == "ms"
    assert code("Kapan Songkran dirayakan?", languages=["id", "ms"]) == "id"
    # codes are normalized (region subtags, ISO 639-2/3); unknown ones are ignored
    assert code("Ano ang patakaran sa bakasyon?", languages=["fil", "en-US", "xx"]) == "tl"
    # nothing allowed fits the text: the default
    assert code("ค่าสมัครเท่าไร", languages=["ms", "id"], default="ms") == "ms"
    # no supported language configured: no restriction
    assert code("ค่าสมัครเท่าไร", languages=["xx"]) == "th"


def test_history_decides_a_one_word_question() -> None:
    word = "Songkran?"
    assert code(word, history=["Bilakah cuti umum Hari Raya disambut tahun ini?"]) == "ms"
    assert code(word, history=["Kapan libur Lebaran dirayakan tahun ini?"]) == "id"
    assert code(word, history=["Iraha pakansi lebaran taun ieu?"]) == "su"


def test_history_decides_an_ambiguous_malay_or_indonesian_question() -> None:
    question = "Berapa lama cuti tahunan?"  # the same words in Malay and Indonesian
    assert code(question, history=["Bolehkah saya memohon cuti sakit tanpa sijil doktor?"]) == "ms"
    assert code(question, history=["Apakah saya bisa mengajukan cuti tanpa surat dokter?"]) == "id"


def test_history_does_not_override_a_clear_question() -> None:
    english = ["What is the refund policy for cancelled bookings?"]
    assert code("Bilakah Songkran disambut?", history=english) == "ms"
    assert code("Sabaraha lami pakansi?", history=english) == "su"
    malay = ["Bilakah gaji dibayar setiap bulan?"]
    assert code("How long is maternity leave?", history=malay) == "en"
    assert code("ค่าสมัครเท่าไร", history=malay) == "th"


def test_documents_decide_an_ambiguous_question() -> None:
    malay_doc = (
        "Kakitangan layak mendapat cuti tahunan selama 14 hari. Permohonan hendaklah "
        "dihantar kepada pengurus sekurang-kurangnya seminggu lebih awal, dan cuti yang "
        "tidak digunakan boleh dibawa ke tahun berikutnya."
    )
    indonesian_doc = (
        "Karyawan berhak mendapat cuti tahunan selama 12 hari. Pengajuan harus dikirim "
        "kepada atasan paling lambat seminggu sebelumnya, dan cuti yang tidak dipakai "
        "bisa dibawa ke tahun berikutnya."
    )
    assert code("Berapa lama cuti tahunan?", context=malay_doc) == "ms"
    assert code("Berapa lama cuti tahunan?", context=indonesian_doc) == "id"


def test_history_accepts_only_text() -> None:
    assert code("Songkran?", history=[None, 3, "Bilakah cuti umum disambut?"]) == "ms"


# -- odd input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "   ", "\n\t", "???", "12345", "🙂🙂", "----", "\x00\x01", "$$$ 100 %%%"],
)
def test_no_letters_returns_the_default(text: str) -> None:
    assert code(text) == "en"
    assert code(text, default="ms") == "ms"
    assert code(text, default="th", history=["Bilakah?"], context="Dokumen.") == "th"


def test_unsupported_languages_and_scripts_return_the_default() -> None:
    assert code("이 문서는 무엇에 관한 것입니까?", default="id") == "id"  # Korean
    assert code("この書類は何についてですか？", default="id") == "id"  # Japanese
    assert code("Wie lange dauert der Jahresurlaub?", default="vi") == "vi"  # German
    assert code("ما هي سياسة الاسترداد؟", default="tl") == "tl"  # Arabic


def test_odd_text_never_raises() -> None:
    for text in ["a", "x" * 50_000, "Ab" * 3000, "İSTANBUL?", "ÀÉÎÕÜ", "SABARAHA LAMI PAKANSI?"]:
        assert detect_language(text).code in LANGUAGES


def test_all_capitals() -> None:
    assert code("BILAKAH SONGKRAN DISAMBUT?") == "ms"
    assert code("WHEN IS THE OFFICE CLOSED?") == "en"


def test_normalize_code() -> None:
    assert normalize_code("zh-TW") == "zh"
    assert normalize_code("fil") == "tl"
    assert normalize_code("EN_us") == "en"
    assert normalize_code("zsm") == "ms"
    assert normalize_code("fr") is None


def test_a_thousand_calls_run() -> None:
    texts = [text for texts in SHORT.values() for text in texts] + list(FULL.values())
    alone = [detect_language(text).code for text in texts]
    for i in range(1000):  # new text each time (no cache); a number does not move the language
        assert detect_language(texts[i % len(texts)] + f" {i}").code == alone[i % len(texts)]


def test_history_decides_a_name_alone() -> None:
    for name in ["Netflix?", "Songkran", "Hari Raya Aidilfitri?"]:
        assert code(name, history=["Bilakah cuti umum disambut tahun ini?"]) == "ms"
        assert code(name, history=["Sabaraha lami pakansi taun ieu?"]) == "su"


# -- context evidence: Malay or Indonesian when the question leaves it open -----------------

AMBIGUOUS = "Siapa yang menyetujui cuti tahunan?"  # the same words in Malay and Indonesian
MALAY_DOC = (
    "Kakitangan layak menerima cuti tahunan selama empat belas hari. Permohonan hendaklah "
    "dihantar kepada pengurus sekurang-kurangnya seminggu lebih awal."
)
INDONESIAN_DOC = (
    "Karyawan berhak atas cuti tahunan selama dua belas hari kerja. Permohonan diajukan "
    "melalui atasan langsung paling lambat tujuh hari sebelumnya, dan sisa cuti dapat "
    "dipakai tahun berikutnya."
)


def test_the_deployments_language_reads_an_ambiguous_question() -> None:
    for question in [AMBIGUOUS, "Berapa lama cuti tahunan?", "Apakah syarat cuti tahunan?"]:
        assert code(question, default="ms") == "ms"
        assert code(question, default="id") == "id"


def test_the_deployments_language_does_not_override_a_clear_question() -> None:
    assert code("Bilakah gaji dibayar?", default="id") == "ms"
    assert code("Kapan gaji dibayarkan?", default="ms") == "id"
    assert code("ค่าสมัครเท่าไร", default="id") == "th"
    assert code("How long is annual leave?", default="ms") == "en"


def test_documents_read_an_ambiguous_question_in_their_language() -> None:
    assert code(AMBIGUOUS, context=MALAY_DOC) == "ms"
    assert code(AMBIGUOUS, context=INDONESIAN_DOC) == "id"


def test_documents_do_not_override_a_clear_question() -> None:
    assert code("Bilakah gaji dibayar?", context=INDONESIAN_DOC) == "ms"
    assert code("Kapan gaji dibayarkan?", context=MALAY_DOC) == "id"
    assert code("ค่าสมัครเท่าไร", context=INDONESIAN_DOC) == "th"
    assert code("How long is annual leave?", context=MALAY_DOC) == "en"


def test_the_conversation_comes_before_the_deployments_language() -> None:
    malay = ["Bolehkah saya memohon cuti sakit tanpa sijil doktor?"]
    indonesian = ["Apakah saya bisa mengajukan cuti tanpa surat dokter?"]
    assert code(AMBIGUOUS, history=malay, default="id") == "ms"
    assert code(AMBIGUOUS, history=indonesian, default="ms") == "id"
    assert code("Bilakah gaji dibayar?", history=indonesian) == "ms"  # a clear question stays


def test_words_both_languages_use_are_no_evidence_for_malay() -> None:
    # "pelajar" (student), "negeri" (luar negeri) and "sebenarnya" are everyday Indonesian
    assert code("Sebenarnya para pelajar di luar negeri membutuhkan apa?") == "id"
