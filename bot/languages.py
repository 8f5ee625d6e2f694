"""Which language a shopper's message is in, when it is clearly not English.

The assistant understands English only; a message in another language must get an answer in that
language (actions/languages.py), not the intent the English model guesses for it. A wrong "this is
French" on an English message is much worse than a missed one (the shopper who wrote English is told
the bot does not understand them), so the decision leans on English:

- py3langid (langid.py's model, inside its wheel: nothing is downloaded) scores the text's character
  n-grams, restricted to English and the languages we answer in. On its own it is unreliable on chat-sized
  messages ("gimme my rewards fam" comes out French), so it only decides between languages;
- the evidence is words: each language's function words and everyday shop words that are not also English
  words, against English function words, shop words and chat slang. A message is foreign when another
  language's words clearly outnumber English ones; names of people, places and products ("josé", "zürich",
  "oslo sofa") are evidence for nothing;
- a message of one or two words counts only when it is a greeting or request no English speaker would type
  ("hola", "bonjour", "guten tag"), not "ok", "merci", "ciao" or "gracias", which English speakers use too;
- a message mostly in a script other than Latin (Cyrillic, Greek, Arabic, Hebrew, CJK, Devanagari, Thai...)
  is foreign whatever its words; py3langid names its language from its whole model.

detect_language() is pure and fast (well under a millisecond a message); bot/nlu.py calls it in the NLU
pipeline.
"""
from __future__ import annotations

import copy
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, FrozenSet, Iterable, List, Optional, Tuple

ENGLISH = "en"
# The languages the assistant answers in (actions/languages.py has the texts), with their English names.
ANSWERED_LANGUAGES: Dict[str, str] = {
    "fr": "French", "es": "Spanish", "de": "German", "it": "Italian", "pt": "Portuguese", "nl": "Dutch",
}
# Languages named when a message in another script is detected (py3langid's codes).
OTHER_LANGUAGE_NAMES: Dict[str, str] = {
    "ru": "Russian", "uk": "Ukrainian", "bg": "Bulgarian", "el": "Greek", "ar": "Arabic", "fa": "Persian",
    "he": "Hebrew", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "hi": "Hindi", "th": "Thai",
    "ur": "Urdu", "bn": "Bengali", "ta": "Tamil", "sr": "Serbian", "mk": "Macedonian", "ka": "Georgian",
    "hy": "Armenian", "am": "Amharic",
}

# A foreign language is said when its words outnumber English ones by this much (and are at least two).
MIN_FOREIGN_WORDS = 2
# One foreign word is enough in a message of this many words with no English word, when py3langid gives
# that language at least this share of its (restricted) probability.
MIN_SENTENCE_WORDS = 3
MIN_MODEL_SHARE = 0.9
# Below this share of letters in the Latin script, a message is in another script.
MIN_LATIN_SHARE = 0.5


def language_name(code: Optional[str]) -> Optional[str]:
    """English name of a language code ("fr" → "French"); the code itself for one we do not name."""
    if not code:
        return None
    return ANSWERED_LANGUAGES.get(code) or OTHER_LANGUAGE_NAMES.get(code) or code


# --- evidence ------------------------------------------------------------------------------------------
# Word lists are lower case and written without accents too where shoppers drop them ("ou est", "cuanto").
# A word that is also English, or common in English shop talk (a, in, is, die, was, sofa, no, me, son, come,
# pasta, fiesta, cafe), is left out: it would say nothing.

def _words(text: str) -> FrozenSet[str]:
    return frozenset(text.split())


ENGLISH_WORDS = _words("""
    i im i'm my mine myself you youre you're your yours u ur yall he she it its it's we our us they them their
    the this that these those there here what whats what's which who whom whose when where why how
    are were be been being am isnt isn't arent aren't wasnt wasn't do does did doing done dont don't
    doesnt doesn't didnt didn't have has had havent haven't hasnt hasn't can cant can't could couldnt couldn't
    would wouldnt wouldn't wont won't should shouldnt shouldn't shall may might must need needs want
    wants wanted wanna gonna gotta gimme lemme get gets got getting give given make made let lets let's take
    tell show know think see find check send use try go going coming looking look buy bought pay paid
    to of and or but for with without from by about into onto over under after before than then if not
    yet just only too very much many more most less some any all every each other another same such
    yes yeah yep yup nope nah ok okay sure please pls plz thanks thank thx ty hi hey hello hiya yo sup
    lol lmao omg btw idk tbh rn ngl asap fam bro dude guys
    one two three first last next still already again now today tomorrow yesterday week month ago soon
    ever never always sometimes really actually maybe kinda sorta like love hate good great nice bad
    cool awesome please help order orders ordered points point pts balance tier rewards reward redeem
    shipping ship ships delivery deliver delivered arrive arrived return returns refund track tracking
    account link code discount price cheap cheaper cheapest expensive stock size color colour wood
    at up out off down back away home store shop shopping online website
    i'd i'll i've you'll you've you'd we're we've they're that's there's where's who's how's
    """)

FOREIGN_WORDS: Dict[str, FrozenSet[str]] = {
    "fr": _words("""
        je j'ai jai de la en j'aimerais jaimerais tu il elle nous vous ils elles on? le les des du au aux un une
        mon ma mes ton ta tes sa ses notre votre vos leur leurs ce cet cette ces qui que quoi quel quelle
        quels quelles lequel laquelle est c'est cest sont suis es sommes etes êtes ai avez avons ont
        et ou où mais donc car avec pour dans sur sans chez pas ne n'ai n'est plus tres très bien deja
        déjà encore aussi toujours jamais comment combien pourquoi quand oui merci bonjour bonsoir salut
        svp stp s'il sil vous plait plaît voudrais veux voulez peux pouvez puis puis-je dois faire fait
        commande commandé commandée livraison livrer livrez colis reçu recu remboursement rembourser
        retourner retour échanger echanger chaise canapé canape lampe fauteuil tapis prix frais
        cher chère moins beaucoup parler quelqu'un quelquun conseiller aide besoin avoir être etre
        d'un d'une l'on qu'il qu'est quest est-ce estce
        """),
    "es": _words("""
        yo tú tu él ella de la en muchas muchos mucho hasta luego nosotros ustedes usted ellos ellas
        mi mis tus su sus nuestro nuestra el los las
        una unos unas del al lo que qué quien quién cual cuál cuales cuáles como cómo cuanto cuánto
        cuanta cuánta cuantos cuántos cuantas cuántas donde dónde cuando cuándo porque por qué para
        con sin sobre pero muy más mas tambien también ya todavía todavia aun aún hay es está esta estoy
        están estan soy son tengo tiene tienen tienes quiero quiere quisiera necesito puedo puede pueden
        podría podria hacer hago hacen hace haces gracias hola buenos buenas dias días tardes noches adiós adios
        favor pedido pedidos envío envio enviar envían envian devolver devolución devolucion reembolso
        silla mesa lámpara lampara sillón sillon alfombra precio puntos nivel ayuda hablar persona
        llegó llego roto rota compré compre mío mio cuenta descuento
        """),
    "de": _words("""
        ich du er sie es wir ihr mein meine meinen meinem meiner dein deine sein seine unser unsere euer
        der das den dem des ein eine einen einem einer kein keine nicht nichts und oder aber mit ohne
        für fur von zu zum zur bei nach aus auf über uber unter ist sind bin bist hab habe hast hat haben
        habt kann kannst können konnen möchte mochte möchten will willst wollen muss müssen musste soll
        wie was? wo wann warum wer welche welcher welches wieviel wie viele viel viele noch schon auch
        sehr bitte danke hallo guten tag morgen abend tschüss tschuss gibt es? bestellung bestellt
        versand lieferung liefern geliefert zurück zuruck zurückschicken rücksendung rucksendung
        rückerstattung geld punkte stuhl tisch lampe teppich preis kosten kostet sprechen mitarbeiter
        hilfe ja nein gerne vielen dank
        """),
    "it": _words("""
        io tu lui lei noi voi loro il lo gli la le un uno di da una un' mio mia miei mie tuo tua suo sua
        nostro vostro del della dei degli delle al alla ai agli alle dal dalla nel nella sul sulla
        che chi cosa quale quali come? quanto quanta quanti quante dove quando perché perche
        con senza per ma anche ancora già gia molto più piu non è e' sono sei siamo ho hai ha abbiamo
        avete hanno posso puoi può puo possiamo potete vorrei voglio vuole devo fare fatto
        grazie ciao buongiorno buonasera arrivederci prego per? favore ordine ordinato spedizione
        spedire spedite spedisci spedito consegna consegnate restituire reso rimborso sedia tavolo tavolino
        lampada divano tappeto
        prezzo punti livello aiuto parlare persona operatore arrivato rotto danneggiato sì si
        dov'è dov c'è ce qual è l'ordine
        """),
    "pt": _words("""
        eu você voce de em vocês voces ele ela nós nos eles elas meu minha meus minhas seu sua seus suas
        o os as um uma uns umas do da dos das no na nos nas ao aos pelo pela que quê qual quais como
        quanto quanta quantos quantas onde quando porque por quê para com sem sobre mas muito mais
        também tambem já ja ainda não nao é está esta estou estão estao sou são tenho tem têm temos
        quero queria preciso posso pode podem fazer obrigado obrigada olá ola oi bom boa dia tarde
        noite tchau favor pedido pedidos encomenda entrega entregar envio frete devolver devolução
        devolucao reembolso cadeira mesa luminária luminaria tapete sofá preço preco pontos nível
        nivel ajuda falar pessoa atendente chegou quebrado quebrada comprei cadê cade tudo
        """),
    "nl": _words("""
        ik jij je u hij zij ze wij we jullie mijn mijn jouw uw zijn haar ons onze hun de het een
        geen niet en of maar met zonder voor van naar bij uit op aan over onder is? ben bent zijn
        heb hebt heeft hebben kan kun kunnen wil wilt willen moet moeten mag zou zal wat waar wanneer
        waarom wie welke hoe hoeveel veel nog al ook zeer heel graag alstublieft alsjeblieft dank
        bedankt hallo hoi goedemorgen goedemiddag goedenavond dag? doei bestelling besteld verzending
        levering leveren geleverd terug retour retourneren terugsturen geld punten stoel tafel lamp?
        kleed prijs kost kosten praten medewerker hulp ja nee er dit dat deze die? daar hier
        """),
}

# Greetings and requests that say the language on their own, in a message of one or two words.
OWN_WORDS: Dict[str, FrozenSet[str]] = {
    "fr": _words("bonjour bonsoir svp coucou"),
    "es": _words("hola buenos buenas holaa"),
    "de": _words("guten servus tschüss moin"),
    "it": _words("buongiorno buonasera salve"),
    "pt": _words("olá bom boa obrigada"),
    "nl": _words("goedemorgen goedemiddag goedenavond doei"),
}
# Two-word phrases that do the same ("guten tag", "bom dia").
OWN_PHRASES: Dict[str, FrozenSet[str]] = {
    "fr": frozenset({"s'il vous", "bonne journée", "bonne journee", "merci beaucoup"}),
    "es": frozenset({"buenos dias", "buenos días", "buenas tardes", "buenas noches", "muchas gracias"}),
    "de": frozenset({"guten tag", "guten morgen", "guten abend", "vielen dank", "danke schön", "danke schon"}),
    "it": frozenset({"grazie mille", "buona giornata", "buona sera"}),
    "pt": frozenset({"bom dia", "boa tarde", "boa noite", "muito obrigado", "muito obrigada", "tudo bem"}),
    "nl": frozenset({"dank je", "dank u", "goede dag", "tot ziens"}),
}
# Punctuation no English message opens with.
_SPANISH_OPENERS = ("¿", "¡")

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*['’]?", re.UNICODE)
_NOISE = re.compile(r"https?://\S+|www\.\S+|\S+@\S+|[@#][\w.]+", re.UNICODE)


# Words of English and of the other languages alike: evidence for neither.
SHARED_WORDS = _words("a an in me no so on is was will also come fine die hat per son use men ok")


def _clean_lists() -> None:
    # "word?" in a list marks a word left out on purpose (it is also English or too short to say anything);
    # keeping it visible in the list says it was considered.
    for code, words in list(FOREIGN_WORDS.items()):
        kept = frozenset(word for word in words if not word.endswith("?"))
        FOREIGN_WORDS[code] = kept - ENGLISH_WORDS - SHARED_WORDS


_clean_lists()


@dataclass(frozen=True)
class Detection:
    """A message found not to be in English: its language code and why (for logs and tests)."""

    language: str
    reason: str

    @property
    def name(self) -> str:
        return language_name(self.language) or self.language

    @property
    def answered(self) -> bool:
        """Whether the assistant has texts in this language (else it answers in English)."""
        return self.language in ANSWERED_LANGUAGES


def words_of(text: str) -> List[str]:
    """The message's words, lower case, apostrophes kept inside them ("j'ai", "don't", "dov'è")."""
    text = unicodedata.normalize("NFC", _NOISE.sub(" ", text)).lower().replace("’", "'")
    return [word.strip("'") for word in _WORD.findall(text) if word.strip("'")]


def _script_share(text: str) -> Tuple[int, int]:
    """(letters in the Latin script, all letters)."""
    latin = letters = 0
    for char in text:
        if char.isalpha():
            letters += 1
            if "LATIN" in unicodedata.name(char, ""):
                latin += 1
    return latin, letters


def _evidence(words: Iterable[str]) -> Tuple[int, Dict[str, int]]:
    """(English words, each other language's words) among the message's words.

    A word counts for the languages that have it as typed; only when none has it, for those that have it
    without its accents: "cómo" is Spanish, not Portuguese "como", but a "cafe" typed without accents
    still finds "café".
    """
    english = 0
    foreign = {code: 0 for code in FOREIGN_WORDS}
    for word in words:
        bare = _strip_accents(word)
        if word in ENGLISH_WORDS or bare in ENGLISH_WORDS:
            english += 1
            continue
        found = [code for code, markers in FOREIGN_WORDS.items() if word in markers]
        if not found and bare != word:
            found = [code for code, markers in FOREIGN_WORDS.items() if bare in markers]
        for code in found:
            foreign[code] += 1
    return english, foreign


def _strip_accents(word: str) -> str:
    return "".join(char for char in unicodedata.normalize("NFD", word) if not unicodedata.combining(char))


def _own_words_language(words: List[str]) -> Optional[str]:
    """The language of a one- or two-word message made of its own greetings or phrases, if any."""
    phrase = " ".join(words)
    for code in ANSWERED_LANGUAGES:
        if phrase in OWN_PHRASES[code] or (words and all(
            word in OWN_WORDS[code] or word in FOREIGN_WORDS[code] for word in words
        ) and any(word in OWN_WORDS[code] for word in words)):
            return code
    return None


def detect_language(text: str) -> Optional[Detection]:
    """The message's language when it is clearly not English; None for English or when it cannot be told."""
    if not isinstance(text, str) or not text.strip():
        return None
    latin, letters = _script_share(_NOISE.sub(" ", text))
    if letters >= 2 and latin < MIN_LATIN_SHARE * letters:
        code = _identifier(restricted=False).classify(text)[0]
        return Detection(code if code != ENGLISH else "und", "script")
    words = words_of(text)
    if not words:
        return None
    if len(words) <= 2:
        code = _own_words_language(words)
        if code is not None:
            return Detection(code, "greeting")
    english, foreign = _evidence(words)
    if text.lstrip().startswith(_SPANISH_OPENERS) and english == 0:
        foreign["es"] += MIN_FOREIGN_WORDS
    best = max(foreign.values())
    if best == 0 or best <= english:
        return None
    candidates = [code for code, count in foreign.items() if count == best]
    # The character model decides between languages that share words ("que", "de", "com"); among the
    # candidates only, so a message never lands on a language its words do not point to.
    ranked = _all_probabilities(_identifier(restricted=True), " ".join(words))
    language = max(candidates, key=lambda code: ranked.get(code, 0.0))
    if best >= MIN_FOREIGN_WORDS:
        return Detection(language, "words")
    # One word of the language and none of English: the character model must agree, on a real sentence.
    if english == 0 and len(words) >= MIN_SENTENCE_WORDS and ranked.get(language, 0.0) >= MIN_MODEL_SHARE:
        return Detection(language, "words and characters")
    return None


def load_identifier() -> None:
    """Load py3langid's model now (0.3-1 s) rather than during the first shopper's turn that needs it; the
    NLU component calls this when the Rasa model is loaded."""
    _identifier(restricted=True)


@lru_cache(maxsize=2)
def _identifier(restricted: bool):
    """py3langid's model, all 97 languages or restricted to English and the answered languages (one load:
    the restricted one is a copy with its own arrays, set_languages leaves the original's alone)."""
    if restricted:
        identifier = copy.copy(_identifier(restricted=False))
        identifier.set_languages([ENGLISH, *ANSWERED_LANGUAGES])
        return identifier
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_pickled_model(MODEL_FILE, norm_probs=True)


def _all_probabilities(identifier, text: str) -> Dict[str, float]:
    return {code: float(score) for code, score in identifier.rank(text)}


# --- yes and no ----------------------------------------------------------------------------------------
# A shopper offered a person in their language answers in it ("oui", "ja bitte", "não obrigado"); the
# buttons send /affirm and /deny, a typed answer needs these. Courtesy words may come with the answer.
_YES = _words("oui ouais ouaip volontiers d'accord sí si claro vale dale ja jawohl gerne genau sì certo "
              "certamente sim claro graag prima")
_NO = _words("no non nein não nao nee neen")
_COURTESY = _words("merci svp stp gracias por favor danke bitte schön schon grazie per favore obrigado "
                   "obrigada dank je u wel bedankt alstublieft alsjeblieft s'il vous plaît plait")


def yes_or_no(text: str) -> Optional[bool]:
    """True for a yes, False for a no typed in one of the answered languages; None for anything else.

    Only short answers made of those words (and courtesy words) count: "no quiero" is a sentence, not a no.
    "no" alone is a no in English too; "yes" and "ok" are left to the trained model.
    """
    if not isinstance(text, str):
        return None
    words = words_of(text)
    if not words or len(words) > 4 or not all(word in _YES or word in _NO or word in _COURTESY for word in words):
        return None
    yes = any(word in _YES for word in words)
    no = any(word in _NO for word in words)
    if yes == no:
        return None
    return yes
