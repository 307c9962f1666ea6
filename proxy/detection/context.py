"""Judge a user turn against the system prompt of the same request.

Many prompt injections are attacks only relative to the application's instructions: "what is
the password?" is harmless unless the system prompt holds a password it must not reveal. This
module reads the system and developer slots of a request once (``analyze``, cached by text, so
an application that sends the same system prompt on every request pays for it once), extracts
what they protect, and scores each scanned slot against it (``hits``):

- ``secret_value``: a quoted value of the system prompt (or an e-mail / long number in it) appears
  in the user turn;
- ``protected_secret``: the system prompt restricts and names a kind of secret (password, secret
  key, passphrase ...) and the user turn names that kind too, in any of the 17 languages of the
  vocabulary (not necessarily the system prompt's language);
- ``protected_personal``: the same for personal data (address, e-mail, date of birth, phone,
  residence, balance, "personal information" ...), when the turn also points at the person (a
  name from the system prompt, or "the user" in any of the 17 languages);
- ``protected_entity``: a capitalised name of a system prompt that protects personal data is
  named in the user turn;
- ``forbidden_topic``: the user turn shares a content word (a character bigram for scripts
  without spaces; boilerplate such as "user", "topic", "discuss" excluded) with a restriction
  sentence of the system prompt ("never discuss X"); ``forbidden_topic_strong``: two or more;
- ``disclosure_request``: one of the three above plus a request to tell / give / share / reveal /
  confirm / spell / write out ("what is ...", "a poem about ...") in any of the 17 languages;
- ``rule_change``: a restrictive system prompt and a user turn with a rule-change cue: a strong one
  ("maintenance mode", "you are now", "new instructions" ...) alone, or a weak one ("instead",
  "pretend", "forget it" ...) or an injection technique (a bribe, claimed authority, "write a
  poem about ...") together with another context hit; 17 languages;
- ``wrapped_request``: a turn that already asks for what the prompt protects or rules out, wrapped
  in a technique that works in any language: a made-up question-and-answer transcript (few-shot /
  many-shot priming), a run of one repeated token, or a flood of unrelated questions around the
  one that matters. Read from the shape of the text, not its words.

The vocabularies are data (``vocab:`` in rules/context.yaml); the rules with their severities are
``context:`` rules in the same file, combined into the anomaly score like every other rule.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import regex

from .. import precompiled, yamlfast
from ..policy.sources import Reader, read_plain
from .lexicon import Lexicon, edge as _edge, hangul as _hangul
from .normalize import decode_segments, normalize, words as _words

KINDS = ("secret_value", "protected_secret", "protected_personal", "protected_entity",
         "forbidden_topic", "forbidden_topic_strong", "rule_change", "disclosure_request",
         "wrapped_request")
CONTEXT_ROLES = ("system", "developer")
VOCAB_FILE = "context.yaml"
# Shared content units (words, or bigrams without spaces) that make a turn "about" a ruled-out topic.
TOPIC_MIN_SHARED = 1
TOPIC_STRONG_SHARED = 2

_QUOTED = regex.compile(
    r"(?:(?<![\w])['\"‘“«„「『]|(?<![\w])')\s*([^'\"‘’“”«»„「」『』\n]{3,40}?)\s*['\"’”»“」』](?!\w)")
# A prompt that asks the user for a value ("if the user says the password, reply 'Access Granted'"):
# its quoted values are answers it expects, and a turn that is just such a value is the application
# working, not an attack on it.
_EXPECTS_INPUT = regex.compile(
    r"\b(?:if|when|once|unless|whenever|only if)\b[^.!?\n]{0,40}\b(?:user|they|someone|anyone|"
    r"input|person|visitor|caller|player)\b[^.!?\n]{0,30}\b(?:says?|said|enters?|entered|types?|"
    r"typed|provides?|provided|gives?|inputs?|writes?|submits?|sends?|knows?|guess(?:es)?|"
    r"guessed|matches|match|is correct|correctly|uses?|supplies|replies|responds?)\b"
    r"|\baccess granted\b|\b(?:correct|right)\s+(?:password|passcode|access code|code|answer)\b")
EXPECTED_EXTRA_WORDS = 4      # "the password is X", "X please": at most this many other words
_EMAIL = regex.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NUMBER = regex.compile(r"\d(?:[\d\s().-]{2,18})\d")
_CAPITAL_WORD = regex.compile(r"(?<![.!?:]\s)(?<!^)\b\p{Lu}\p{Ll}{2,}\b")
# Sentences end at . ! ? ; (and their CJK / Devanagari forms), but not at the dots of an e-mail
# address, a host name or a decimal number.
_SENTENCES = regex.compile(r"(?:[^.!?;。！？;\n।]|\.(?=[\w@]))+")

_LATIN = regex.compile(r"\p{Latin}")
# Shapes of the request-wrapping techniques (``wrapped_request``). A transcript marker is a
# one-letter label or the word for "question" / "answer" (17 languages) before a colon, at the
# start of the text or after a space or a sentence end: "Q: ... A: ... Q:", "P: ... R:",
# "В: ... О:", "प्रश्न: ... उत्तर:", "问：... 答：".
_TURN_MARK = regex.compile(
    r"(?:^|(?<=[\s.?!。？؟।]))(\p{L}|hỏi|đáp|trả lời|tanong|sagot|soru|cevap|frage|antwort|"
    r"pregunta|respuesta|pergunta|resposta|domanda|risposta|question|réponse|answer|вопрос|ответ|"
    r"pertanyaan|jawaban|سؤال|جواب|प्रश्न|उत्तर|সওয়াল|প্রশ্ন|উত্তর|问题|問題|回答|质问|質問|"
    r"질문|답변|คำถาม|คำตอบ|ถาม|ตอบ)\s?[:：]")
TRANSCRIPT_MIN_MARKS = 3          # question, answer, question: the answer to copy is primed
_REPEATED_TOKEN = regex.compile(r"(?<!\w)(\w{2,})(?:\s+\1(?!\w)){5,}")
_QUESTION_END = regex.compile(r"[?？؟]")
OVERLOAD_MIN_QUESTIONS = 4


def wrapped(text: str) -> bool:
    """The turn has the shape of a request-wrapping technique: a made-up Q/A transcript (at
    least question, answer, question, with two different labels), a token repeated six times in a
    row, or four or more questions."""
    marks = [m.group(1) for m in _TURN_MARK.finditer(text)]
    if len(marks) >= TRANSCRIPT_MIN_MARKS and len(set(marks)) >= 2:
        return True
    if len(_QUESTION_END.findall(text)) >= OVERLOAD_MIN_QUESTIONS:
        return True
    return _REPEATED_TOKEN.search(text) is not None
_VIETNAMESE = regex.compile(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]")
# Turkish negates in a verb suffix: "paylaşmayın", "tartışmamalısınız", "açıklamayınız".
_TR_NEGATIVE = regex.compile(r"\w{2,}(?:mayın|meyin|mayınız|meyiniz|mamalısın|memelisin|mamalısınız|memelisiniz|mamalı|memeli)\b")
_IDENTIFIER = regex.compile(r"[a-z_]+")
# Turkish-only letters: a Turkish text's Latin words are compared on 5-letter prefixes (suffixes
# pile up: "şifreyi", "şifrenizi"), as are Cyrillic words (case endings).
_TR_LETTERS = frozenset("ığş")
# Morse code: runs of dot/dash groups (translations keep them); decoded into an extra view.
_MORSE_RUN = re.compile(r"(?:[.\-·•]{1,7}[ /|]+){5,}[.\-·•]{1,7}")
_MORSE = {".-": "a", "-...": "b", "-.-.": "c", "-..": "d", ".": "e", "..-.": "f", "--.": "g",
          "....": "h", "..": "i", ".---": "j", "-.-": "k", ".-..": "l", "--": "m", "-.": "n",
          "---": "o", ".--.": "p", "--.-": "q", ".-.": "r", "...": "s", "-": "t", "..-": "u",
          "...-": "v", ".--": "w", "-..-": "x", "-.--": "y", "--..": "z"}
# Pig latin: "ethay" -> "the", "ivelay" -> "live"; counted only with two or more such words.
_PIG = re.compile(r"\b([a-z]{1,12}?)([b-df-hj-np-tv-z]{1,3})ay\b")
_PIG_COMMON = frozenset("""today away okay display essay monday tuesday wednesday thursday friday
saturday sunday always anyway holiday birthday delay relay replay array decay dismay portray
betray midday halfway highway subway gateway runway doorway railway hallway pathway yesterday
mayday heyday""".split())
_NO_SPACE_RUN = regex.compile(r"[\p{Han}\p{Katakana}ー]{2,}")
_THAI_RUN = regex.compile(r"\p{Thai}{4,}")
_NGRAM_WORD = regex.compile(r"[\p{Han}\p{Katakana}ー]+|\p{Thai}+")
_HANGUL_WORD = regex.compile(r"\p{Hangul}{2,}")
# Korean particles stripped from a word's end; predicate endings make a word a non-topic.
_KO_PARTICLES = ("입니다", "이다", "이야", "에서", "으로", "은", "는", "이", "가", "을", "를", "의", "에",
                 "로", "와", "과", "도", "만")
_KO_PREDICATE = ("다", "요", "오", "까", "죠")
_LONG_WORD_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")
# Words of these scripts are handled as character n-grams (Han, Kana, Thai) or Korean words.
_NO_SPACE_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "THAI", "HANGUL", "KATAKANA-HIRAGANA")
# Boilerplate of system prompts and questions (English + the Romance/Germanic words that survive
# machine translation); content words must be rarer than these to count as a topic.
_STOP = frozenset("""
about above after again against always answer answers assistant because before being below
between chatbot could discuss discussion doing during every focus follow forum further give
having helpful information instructions keep maintain never other provide question questions
regarding related respond response should subject subjects their there these those through topic
topics under until users which while would your yours please explain tell
sujet sujets toujours jamais questions utilisateur utilisateurs réponse répondre discuter votre
vous êtes comme dans pour cette leurs autres temas tema nunca usuario usuarios respuesta
responder discutir sobre siempre preguntas argomenti argomento sempre utente utenti risposta
rispondere discutere sempre perguntas usuário usuários resposta responder discutir sobre sempre
themen thema immer niemals benutzer antwort antworten diskutieren fragen über
пользователь пользователя пользователей пользователям чат-бот вопросы вопросов ответ ответы
обсуждать обсуждайте никогда всегда темы темой помощник
pengguna chatbot pertanyaan jawaban membahas diskusikan topik selalu tidak pernah
gumagamit tanong sagot talakayin paksa palagi kailanman
kullanıcı kullanıcının kullanıcılar sohbet sorular cevap tartışma konular konuları asla
người dùng trò chuyện câu hỏi trả lời thảo luận chủ đề không bao giờ luôn luôn
المستخدم المستخدمين الدردشة الأسئلة الإجابة مناقشة المواضيع موضوع دائما أبدا
उपयोगकर्ता चैटबॉट प्रश्न प्रश्नों उत्तर चर्चा विषय विषयों हमेशा कभी
ব্যবহারকারী চ্যাটবট প্রশ্ন উত্তর আলোচনা বিষয় সবসময় কখনও
करो करें करना करने करते करता करती कीजिए दो दें देना देने दीजिए बताओ बताएं बताइए होना होता होती
होते सकते सकता सकती चाहिए रहा रही रहे गया गयी किया जाता जाती जाए वाले वाली लिए साथ बारे कुछ
कोई किसी सभी इस उस यह वह अपने अपना अपनी मेरे मेरा मेरी आपके आपका आपकी हमेशा
করুন করো করা করতে করে দিন দাও দেওয়া বলুন বলো হবে হয় হতে পারেন পারে উচিত জন্য সঙ্গে সম্পর্কে
কিছু কোনো সব এই সেই আপনার আমার তোমার
""".split())
# Han/Katakana bigrams too common to be a topic: function words, "provide", "question", "user" ...
_CJK_STOP = frozenset("""
提供 需要 什么 可以 如何 怎么 我们 你们 他们 用户 问题 回答 讨论 任何 关于 这个 那个 这些 那些
信息 内容 因为 所以 但是 如果 或者 以及 进行 使用 帮助 请问 一个 没有 不是 就是 还是 已经 应该
必须 能够 时候 现在 情况 方面 相关 有关 主题 话题 聊天 机器 助手 系统 说明 解释 告诉 知道 了解
为了 通过 对于 根据 以下 以上 其他 所有 每个 自己 问答 用戶 問題 討論 資訊 內容 幫助 說明 解釋
質問 回答 情報 内容 関連 話題 場合 必要 使用 説明 以下 全て 他人 利用 方法 理由 対応 確認
ユーザー チャット ボット システム アシスタント
""".split())


@dataclass(frozen=True, slots=True)
class Vocab:
    restriction: Lexicon          # restriction / scope / exception / honesty markers of a sentence
    user: Lexicon                 # secret, personal, override, override_weak, subject, disclose
    words: frozenset[str]         # every vocabulary word: not a topic word
    cjk_split: Any = None         # vocabulary words in Han/Katakana/Thai: cut out before n-grams


@dataclass(frozen=True, slots=True)
class SystemContext:
    restrictive: bool
    values: tuple[Any, ...]                   # compiled patterns of protected literal values
    protects_secret: bool
    protects_personal: bool
    entities: frozenset[str]
    topic_units: frozenset[str]
    scope_units: frozenset[str] = frozenset()   # words of "only ..." sentences: allowed, not forbidden
    # Inflected names: "Марии" is "Мария", "মারিয়ার" and "Marias" a name plus an ending.
    entity_prefixes: tuple[str, ...] = ()
    turkish: bool = False                      # Latin words compared on 5-letter prefixes
    expected: tuple[Any, ...] = ()             # values the prompt asks users for (_EXPECTS_INPUT)

    @property
    def empty(self) -> bool:
        return not (self.restrictive or self.values)


def load_vocab(rules_dir: str, read: Reader = read_plain) -> Vocab | None:
    path = Path(rules_dir) / VOCAB_FILE
    if not path.is_file():
        return None
    # an edited vocabulary is built again (hot reload), an unchanged one reused
    return _load_vocab(str(path), read(str(path)))


@functools.lru_cache(maxsize=8)
def _load_vocab(name: str, raw: bytes) -> Vocab:
    # Building the lexicons normalises every term (~0.2 s): a new process loads the result
    # from the compiled-rules cache on disk (proxy/precompiled.py) when the file is unchanged.
    return precompiled.load_or_build("vocab", name.encode() + b"\0" + raw, lambda: _build_vocab(raw))


def _build_vocab(raw: bytes) -> Vocab:
    doc = yamlfast.safe_load(raw.decode("utf-8")) or {}
    v = doc.get("vocab") or {}
    markers = ("restriction", "scope", "except", "honesty", "reveal")
    keys = markers + ("secret", "personal", "override", "override_weak", "technique", "subject",
                      "disclose", "decode", "cipher")
    lists = {k: [str(x) for x in v.get(k) or ()] for k in keys}
    words = frozenset(t for k in lists.values() for p in k for t in _words(normalize(p)))
    scope = set(lists["scope"])
    cjk = sorted({w for w in (normalize(p).rstrip("*") for k in lists.values() for p in k)
                  if len(w) >= 2 and _NGRAM_WORD.fullmatch(w)} | _CJK_STOP, key=len, reverse=True)
    return Vocab(Lexicon({"restriction": [w for w in lists["restriction"] if w not in scope],
                          **{k: lists[k] for k in markers[1:]}}),
                 Lexicon({k: lists[k] for k in keys[len(markers):]}), words,
                 regex.compile("|".join(map(regex.escape, cjk))) if cjk else None)


_AR_PREFIXES = ("وال", "بال", "كال", "فال", "لل", "ال")
_AR_SUFFIXES = ("ات", "ها", "ية", "ة", "ه")


def _arabic_stem(w: str) -> str:
    """Light stemming: the article and attached conjunctions/prepositions, a few endings."""
    for p in _AR_PREFIXES:
        if w.startswith(p) and len(w) - len(p) >= 3:
            w = w[len(p):]
            break
    for x in _AR_SUFFIXES:
        if w.endswith(x) and len(w) - len(x) >= 3:
            return w[:-len(x)]
    return w


@functools.lru_cache(maxsize=4096)
def _script(ch: str) -> str:
    return unicodedata.name(ch, "").split(" ")[0]


_FINAL_VOWELS = frozenset("aeio")


def _latin_stem(w: str, length: int) -> str:
    """A crude stem: a plural -s and then a final vowel dropped ("recipes", "recettes", "ricette"
    and "ricetta" are "recip", "recett", "ricett"), then a prefix."""
    if len(w) > 5 and w[-1] == "s" and w[-2] != "s":
        w = w[:-1]
    if len(w) > 5 and w[-1] in _FINAL_VOWELS:
        w = w[:-1]
    return w[:length]


def _units(text: str, vocab: Vocab, words: list[str] | None = None,
           turkish: bool = False) -> set[str]:
    """Content units of normalized text: long words, or character bigrams where no spaces.
    ``turkish``: the other side of the comparison is Turkish, so Latin words get its 5-letter
    prefixes even when this text has none of the Turkish-only letters."""
    exclude = vocab.words
    if words is None:
        words = _words(text)
    # Rich suffixing morphology (Russian cases, Turkish agglutination): 5-letter prefixes.
    latin_prefix = 5 if turkish or _TR_LETTERS.intersection(text) else 7
    if text.isascii():       # the common case, and the cheap one: Latin words only
        return {_latin_stem(w, latin_prefix) for w in words
                if len(w) >= 5 and w not in exclude and w not in _STOP and not w.isdigit()}
    out: set[str] = set()
    for run in _NO_SPACE_RUN.findall(text):
        # Vocabulary and function words are cut out first: "不要提供" must not leave "要提".
        for part in (vocab.cjk_split.split(run) if vocab.cjk_split is not None else (run,)):
            out.update(part[i:i + 2] for i in range(len(part) - 1))
    for run in _THAI_RUN.findall(text):            # Thai: no spaces, ~a syllable per 3-4 chars
        for part in (vocab.cjk_split.split(run) if vocab.cjk_split is not None else (run,)):
            out.update(part[i:i + 4] for i in range(len(part) - 3))
    for w in _HANGUL_WORD.findall(text):
        for p in _KO_PARTICLES:
            if w.endswith(p) and len(w) > len(p) + 1:
                w = w[:-len(p)]
                break
        if len(w) >= 2 and not w.endswith(_KO_PREDICATE) and w not in exclude and w not in _STOP:
            out.add(w)
    short: list[str | None] = []
    for w in words:
        script = "LATIN" if w.isascii() else _script(w[0])
        if w.isdigit() or script in _NO_SPACE_SCRIPTS:
            short.append(None)
            continue
        long_script = script in _LONG_WORD_SCRIPTS
        short.append(w if long_script and len(w) <= 4 else None)
        if w in exclude or w in _STOP:
            continue
        if script == "ARABIC":
            w = _arabic_stem(w)
        if len(w) >= (5 if long_script else 3):
            out.add((w[:5] if script == "CYRILLIC" else _latin_stem(w, latin_prefix))
                    if long_script else w)
    # Vietnamese is written in short syllables: pairs of adjacent syllables, one of which carries
    # a Vietnamese-only letter (so "or any" in English or French "de la" are not units).
    for a, b in zip(short, short[1:]):
        if a and b and len(a) + len(b) >= 5 and a not in exclude and b not in exclude \
                and _VIETNAMESE.search(a + b):
            out.add(a + " " + b)
    return out


def _names_data(sentence: str, vocab: Vocab) -> bool:
    """A rule about personal data or secrets ("do not ask children for their name, address or
    school"): CTX-3002/3003 judge what it protects; its other words are no forbidden topic."""
    return bool(vocab.user.scan(sentence, _words(sentence)) & {"personal", "secret"})


@functools.lru_cache(maxsize=512)
def analyze(system_text: str, vocab: Vocab) -> SystemContext:
    norm = normalize(system_text)
    restrictive = False
    topic_sentences, scope_sentences, other_sentences = [], [], []
    for s in _SENTENCES.findall(norm):
        marks = vocab.restriction.scan(s, _words(s))
        prohibits = "restriction" in marks or bool(_TR_NEGATIVE.search(s))
        restrictive |= prohibits or "scope" in marks
        # "Only answer questions about cooking": the words of a scope sentence are what the user
        # may ask about, and "never discuss anything other than cooking" says the same. "Don't
        # make up prices" restricts how to answer, not what.
        if prohibits and not marks & {"except", "honesty", "reveal"} and not _names_data(s, vocab):
            topic_sentences.append(s)
        elif marks & {"scope", "except"}:
            scope_sentences.append(s)
        elif not prohibits:
            other_sentences.append(s)
    # Quoted values; a quoted lowercase ASCII word is a key or identifier ({"name": ...}).
    values = {normalize(q).strip() for q in (m.group(1).strip() for m in _QUOTED.finditer(system_text))
              if len(q) >= 3 and not q.isdigit() and not _IDENTIFIER.fullmatch(q)}
    values |= {m.group(0).casefold() for m in _EMAIL.finditer(system_text)}
    values |= {m.group(0) for m in _NUMBER.finditer(system_text)
               if sum(c.isdigit() for c in m.group(0)) >= 4}
    values = {v for v in values if v}
    pats = tuple(regex.compile(("\\b" if _edge(v[0]) else "") + regex.escape(v)
                               + ("\\b" if _edge(v[-1]) else ""), regex.V1) for v in sorted(values))
    kinds = vocab.user.scan(norm, _words(norm))
    protects_secret = restrictive and "secret" in kinds
    protects_personal = restrictive and "personal" in kinds
    # A prompt that protects personal data: its names (capitalised words) and, for scripts without
    # capitals, every content unit of the whole prompt (the names, places and values it holds).
    # The prompt's rules are not its data ("不要提供法律建议" names no one), where the prompt tells
    # them apart: Thai, written without sentence stops, is one sentence.
    other_units = {u for s in other_sentences for u in _units(s, vocab)}
    entities = frozenset(
        {w.casefold() for w in _CAPITAL_WORD.findall(system_text) if w.casefold() not in _STOP}
        | {u for u in (other_units if other_sentences else _units(norm, vocab))
           if not _LATIN.search(u)}) \
        if protects_personal else frozenset()
    topic: set[str] = set()
    for s in topic_sentences:
        topic |= _units(s, vocab)
    # Words the prompt also uses to describe the job ("help with invoices and usage ... do not
    # reveal other organizations' usage") are the application's domain, not a forbidden topic.
    scope = {u for s in scope_sentences for u in _units(s, vocab)}
    topic -= scope | other_units
    prefixes = tuple(sorted({(e[:-1] if _script(e[0]) == "CYRILLIC" else e) for e in entities
                             if len(e) >= 4 and _edge(e[0])}))
    expected = pats if _EXPECTS_INPUT.search(norm) else ()
    return SystemContext(restrictive, pats, protects_secret, protects_personal, entities,
                         frozenset(topic), frozenset(scope), prefixes,
                         bool(_TR_LETTERS.intersection(norm)), expected)


def is_expected_answer(ctx: SystemContext, user_normalized: str) -> bool:
    """The turn is a value the prompt asks users for, with at most a few words around it."""
    for p in ctx.expected:
        rest, n = p.subn(" ", user_normalized)
        if n and len(_words(rest)) <= EXPECTED_EXTRA_WORDS:
            return True
    return False


def build(texts: Iterable[str], vocab: Vocab | None) -> SystemContext | None:
    """The request's system context from its system/developer slot texts (None: nothing to use)."""
    if vocab is None:
        return None
    joined = "\n".join(t for t in texts if t)
    if not joined.strip():
        return None
    ctx = analyze(joined, vocab)
    return None if ctx.empty else ctx


def _morse(text: str) -> list[str]:
    out = []
    for m in _MORSE_RUN.finditer(text):
        words = regex.split(r"\s*[/|]\s*|\s{2,}", m.group(0).strip())
        out.append(" ".join("".join(_MORSE.get(c.replace("·", ".").replace("•", "."), "")
                                    for c in w.split()) for w in words))
    return out


def hidden_views(text: str) -> tuple[list[str], bool]:
    """Plain text hidden in a (normalized) user turn, and whether an encoded payload is there.

    Hex, binary, URL-escaped and hinted rot13 segments (``normalize.decode_segments``; base64 is
    case-sensitive and does not survive normalization), Morse code runs and pig latin words."""
    parts = decode_segments(text)
    payload = bool(parts)
    if text.count("-") >= 5 or text.count("·") >= 5:
        got = [m for m in _morse(text) if len(m.replace(" ", "")) >= 4]
        payload |= bool(got)
        parts += got
    if text.count("ay") >= 2:
        pig = [b + a for a, b in _PIG.findall(text) if a + b + "ay" not in _PIG_COMMON]
        if len(pig) >= 2:
            parts.append(" ".join(pig))
    return parts, payload


_AR_CLITICS = ("ب", "ل", "و", "ف", "ك")
_NAME_ENDING = 3        # "Maria" + "s", "Мари" + "ей", "মারিয়া" + "র": short endings only


def _inflected_name(words: list[str], prefixes: tuple[str, ...]) -> bool:
    """A word that is a name of the prompt plus a short ending (or an Arabic clitic in front)."""
    if not prefixes:
        return False
    for w in words:
        if len(w) < 4:
            continue
        if w[0] in _AR_CLITICS and len(w) > 4:
            w = w[1:]
        if w.startswith(prefixes):
            for p in prefixes:
                if w.startswith(p) and len(w) - len(p) <= _NAME_ENDING:
                    return True
    return False


def _shared_count(text: str, shared: set[str]) -> int:
    """How many shared topic words: a word of a language written without spaces gives several
    overlapping character n-grams ("รหัสผ่าน" four 4-grams), which count once per stretch of the
    turn they cover, not once each."""
    if not shared:
        return 0
    grams = [u for u in shared if not _edge(u[0]) and not _hangul(u[0])]
    if not grams:
        return len(shared)
    spans = sorted((m.start(), m.start() + len(u)) for u in grams
                   for m in regex.finditer(regex.escape(u), text, overlapped=True))
    stretches, end = 0, -1
    for a, b in spans:
        if a > end:
            stretches += 1
        end = max(end, b)
    return len(shared) - len(grams) + stretches


def hits(ctx: SystemContext, vocab: Vocab, user_normalized: str) -> set[str]:
    """Context kinds the (normalized) user text triggers against the system context."""
    out: set[str] = set()
    if ctx.expected and is_expected_answer(ctx, user_normalized):
        return out
    text = user_normalized
    # Encoded text (hex, binary, Morse, rot13, pig latin) is judged together with the plain text.
    hidden, payload = hidden_views(text)
    if hidden:
        text = text + "\n" + "\n".join(normalize(h) for h in hidden)
    toks = _words(text)
    lex = vocab.user.scan(text, toks)
    found = [p for p in ctx.values if p.search(text)]
    if found:
        out.add("secret_value")
    if ctx.protects_secret and "secret" in lex:
        out.add("protected_secret")
    units: set[str] | None = None
    if ctx.protects_personal:
        # A name inside a value already counted ("priya" in priya.n@example.co.uk) is no second hit.
        named_text = text
        for p in found:
            named_text = p.sub(" ", named_text)
        named_toks = toks if named_text is text else _words(named_text)
        if ctx.entities:
            units = _units(named_text, vocab, named_toks, ctx.turkish)
        named = bool(ctx.entities) and (any(w in ctx.entities for w in named_toks)
                                        or bool(ctx.entities & units)
                                        or _inflected_name(named_toks, ctx.entity_prefixes))
        if named:
            out.add("protected_entity")
        # The kind of data alone ("personal data", "address") is common in ordinary requests;
        # it counts when the turn also points at the person: a name from the prompt or "the user".
        if "personal" in lex and (named or "subject" in lex):
            out.add("protected_personal")
    if out & {"secret_value", "protected_secret", "protected_personal"} and "disclose" in lex:
        out.add("disclosure_request")
    if ctx.restrictive:
        if found and units is not None:
            units = None
        if ctx.topic_units and units is None:
            units = _units(text, vocab, toks, ctx.turkish)
        if ctx.scope_units and units is None:
            units = _units(text, vocab, toks, ctx.turkish)
        shared = _shared_count(text, ctx.topic_units & units) if ctx.topic_units else 0
        if shared >= TOPIC_MIN_SHARED:
            out.add("forbidden_topic")
        if shared >= TOPIC_STRONG_SHARED:
            out.add("forbidden_topic_strong")
        # Strong cues count alone; weak ones only when the turn touches what is protected.
        # Related: another hit, a kind of data the prompt protects named without the person, or a
        # word of what the prompt confines the assistant to ("only sort ascending" / "actually,
        # sort them descending instead").
        related = bool(out) or (ctx.protects_personal and "personal" in lex) \
            or bool(ctx.scope_units and ctx.scope_units & units)
        if "override" in lex or (related and ("override_weak" in lex or "technique" in lex)):
            out.add("rule_change")
        # Token smuggling: a request to decode a payload (Morse, hex, binary, rot13, Caesar ...)
        # against a restrictive prompt routes around its rules (rule_change) and asks to write out
        # hidden text (disclosure_request).
        if "decode" in lex and (payload or "cipher" in lex):
            out.update(("rule_change", "disclosure_request"))
    if out & {"secret_value", "protected_secret", "protected_personal", "forbidden_topic"} \
            and wrapped(user_normalized):
        out.add("wrapped_request")
    return out


def pair_kinds(system: str, user: str, vocab: Vocab | None) -> set[str]:
    """Context kinds a (system prompt, user turn) pair triggers: rule cases and tests."""
    ctx = build([system], vocab)
    return hits(ctx, vocab, normalize(user)) if ctx is not None else set()
