"""Telling a message that is not in English (bot/languages.py, bot.nlu.LanguageClassifier): precision on
English comes first.

English here is the way shoppers type (typos, slang, no punctuation, foreign names and loanwords); the
foreign messages are written the way people chat in those languages, accents often dropped.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List

import pytest
import yaml
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.languages import ANSWERED_LANGUAGES, detect_language, language_name, words_of, yes_or_no
from bot.nlu import LanguageClassifier
from bot.settings import PROJECT_ROOT

SHOPPERS_ENGLISH = [
    "ok", "k", "okk", "merci", "ciao", "gracias", "danke", "hallo", "yes", "no", "nope", "ya", "si",
    "oui", "thx", "ty!!", "lol", "hi", "hiii", "heyy", "yo", "sup", "gm", "👍", "😂😂", "???", "...",
    "100", "#1042", "K7PM-Q2ZX", "N3864PAC8J", "alice.moreau@example.com",
    "how many pts do i hav", "wat tier am i lol", "gimme my rewards fam", "whats my balance rn",
    "hw do i redeem my pionts", "cn i get free shiping", "wheres my ordr??", "my order hasnt come yet wtf",
    "i want 2 return the chair its wobbly", "do u ship to canada", "u guys ship to mexico?",
    "yo whats good", "pls help", "plz talk to a human", "i wanna speak to a real person",
    "this bot is useless get me a person", "refund my money now", "cancel my order pls",
    "show me floor lamps", "cheaper?", "any in oak", "the second one", "no i meant the lamp",
    "standing desk under 400", "got anything in walnut", "oslo sofa", "bergen chair in charcoal",
    "i love the cafe vibe of ur store", "do you deliver to montreal", "shipping to sao paulo?",
    "my name is jose and i want my points", "hi its francois, what tier am i",
    "is the walnut sideboard available in quebec", "i need a chaise longue", "can i get a futon",
    "looking for something for my pied a terre", "hosting a soiree need chairs", "do u have a kilim rug",
    "my friend gave me code K7QM2XDA9P", "link my account", "my code is k7pm q2zx",
    "i followed u on insta as @ann.home", "can i send u a pic", "i'd like to leave a review",
    "the lamp was 5 stars", "meh 3/5", "it was ok i guess", "great service tbh", "terrible delivery",
    "what perks do i get", "how long till i can get it", "so what discount do i get",
    "whats the cheapest reward", "when do my points expire", "how much is a point worth",
    "stop messaging me", "unsubscribe", "delete my data", "forget me", "subscribe me to deals",
    "whats my balance and also do u ship to canada", "how r u", "are you a bot", "r u real",
    "bye", "cya", "thanks a lot", "ty so much", "gracias amigo", "merci buddy", "ciao for now",
    "ola", "aloha", "namaste", "shalom", "bon appetit", "the chair is a bit meh tbh",
    "i ordered the ember floor lamp el dorado edition", "do you sell la-z-boy stuff", "ship to la?",
    "is it in stock at the santa fe store", "my sister in koln wants a sofa", "my husband jurgen wants his tier",
    "deja vu, i asked this already", "the velvet is so bougie", "do u have a matching etagere",
    "what about a credenza", "need a new duvet cover", "i want a fiesta vibe for my patio",
    "mi casa su casa lol do u have outdoor chairs", "sofa", "mesa", "lampe", "tapis",
]

FOREIGN = {
    "fr": [
        "bonjour", "bonsoir", "je voudrais retourner ma chaise", "ou est ma commande",
        "combien de points j'ai", "jai pas recu mon colis", "c'est quoi mon niveau",
        "vous livrez en belgique ?", "je veux parler a quelqu'un svp", "merci beaucoup",
        "est-ce que je peux payer en plusieurs fois", "le canapé est arrivé cassé",
    ],
    "es": [
        "hola", "buenos dias", "¿cuántos puntos tengo?", "quiero devolver una silla",
        "donde esta mi pedido", "necesito hablar con alguien", "hacen envios a chile?",
        "la lampara llego rota", "cuanto cuesta el envio", "muchas gracias", "quiero cambiar mis puntos",
    ],
    "de": [
        "guten tag", "guten morgen", "wo ist meine bestellung", "ich möchte den stuhl zurückgeben",
        "wie viele punkte habe ich", "kann ich mit jemandem sprechen", "liefert ihr nach österreich",
        "der tisch ist kaputt angekommen", "was kostet die lieferung", "vielen dank",
    ],
    "it": [
        "buongiorno", "dov'è il mio ordine", "vorrei restituire la sedia", "quanti punti ho",
        "posso parlare con qualcuno", "spedite in svizzera?", "la lampada è arrivata rotta",
        "quanto costa la spedizione", "grazie mille", "qual è il mio livello",
    ],
    "pt": [
        "bom dia", "boa tarde", "olá", "cadê meu pedido", "quero devolver a cadeira", "quantos pontos eu tenho",
        "posso falar com alguém", "vocês entregam em portugal?", "a mesa chegou quebrada",
        "quanto custa o frete", "muito obrigado",
    ],
    "nl": [
        "goedemorgen", "waar is mijn bestelling", "ik wil de stoel terugsturen", "hoeveel punten heb ik",
        "kan ik met iemand praten", "leveren jullie in belgie", "de lamp is kapot aangekomen",
        "wat kost de verzending", "dank je wel", "wat is mijn niveau",
    ],
}


@pytest.mark.parametrize("text", SHOPPERS_ENGLISH)
def test_shoppers_english_is_not_taken_for_another_language(text: str) -> None:
    assert detect_language(text) is None


@pytest.mark.parametrize("code,text", [(code, text) for code, texts in FOREIGN.items() for text in texts])
def test_messages_in_the_answered_languages_are_recognised(code: str, text: str) -> None:
    found = detect_language(text)
    assert found is not None and found.language == code, found
    assert found.answered and found.name == ANSWERED_LANGUAGES[code]


def test_other_scripts_are_foreign_and_named() -> None:
    russian = detect_language("здравствуйте, где мой заказ?")
    assert russian is not None and russian.language == "ru" and russian.name == "Russian"
    assert not russian.answered
    chinese = detect_language("我的订单在哪里")
    assert chinese is not None and chinese.name == "Chinese"
    # A name or an emoji in another script inside English is still English.
    assert detect_language("my friend 李 referred me, do i get points") is None


def test_words_keep_apostrophes_and_drop_links_and_handles() -> None:
    assert words_of("J’ai une question: https://x.example/a?b=c @ann.home") == ["j'ai", "une", "question"]
    assert language_name("fr") == "French" and language_name("xx") == "xx" and language_name(None) is None


def _nlu_texts(path: Path) -> List[str]:
    texts: List[str] = []
    for block in (yaml.safe_load(path.read_text()) or {}).get("nlu") or []:
        for line in str(block.get("examples") or "").splitlines():
            line = line.strip()
            if line.startswith("- "):
                texts.append(re.sub(r"\[([^\]]*)\](\([^)]*\)|\{[^}]*\})", r"\1", line[2:]))
    return texts


def _strings(node: object) -> List[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [text for item in node for text in _strings(item)]
    if isinstance(node, dict):
        return [text for key, value in node.items() if key != "version" for text in _strings(value)]
    return []


def test_no_english_training_example_is_foreign() -> None:
    """Every training example is English except greetings in other languages taught as greetings."""
    paths = sorted((PROJECT_ROOT / "data" / "nlu").glob("*.yml")) + [PROJECT_ROOT / "data/faq/questions.yml"]
    texts = [text for path in paths for text in _nlu_texts(path)]
    assert len(texts) > 2000
    flagged = {text for text in texts if detect_language(text)}
    assert flagged <= {"hola", "bonjour"}, flagged


def test_held_out_english_stays_english_and_foreign_is_recognised() -> None:
    """Checked against the held-out messages (read only, never trained on: tests/nlu/heldout/README.md)."""
    heldout = PROJECT_ROOT / "tests" / "nlu" / "heldout"
    english = [text for name in ("in_scope.yml", "off_topic.yml", "multi_request.yml")
               for text in _strings(yaml.safe_load((heldout / name).read_text()))]
    languages = yaml.safe_load((heldout / "languages.yml").read_text())["languages"]
    english += languages.pop("en")
    assert len(english) > 1000
    flagged = [text for text in english if detect_language(text)]
    assert flagged == []
    foreign = [(code, text) for code, texts in languages.items() for text in texts]
    right = [text for code, text in foreign if getattr(detect_language(text), "language", None) == code]
    assert len(right) >= 0.95 * len(foreign), set(text for _, text in foreign) - set(right)


@pytest.mark.parametrize("text, answer", [
    ("oui", True), ("Oui merci", True), ("ja bitte", True), ("sí, por favor", True), ("Sim, por favor", True),
    ("Ja, graag", True), ("si", True), ("non merci", False), ("Nein, danke", False), ("não obrigado", False),
    ("nee", False), ("No, gracias", False),
    # sentences, English, courtesy alone and mixed answers are left to the model
    ("no quiero", None), ("yes", None), ("ok", None), ("merci", None), ("oui non", None),
    ("ja ich will meine punkte", None), ("", None),
])
def test_a_typed_yes_or_no_in_another_language(text: str, answer: object) -> None:
    assert yes_or_no(text) is answer


def _parsed(text: str, intent: str = "check_tier", confidence: float = 0.93) -> Message:
    message = Message(data={TEXT: text})
    message.set(INTENT, {"name": intent, "confidence": confidence}, add_to_output=True)
    message.set(INTENT_RANKING_KEY, [{"name": intent, "confidence": confidence},
                                      {"name": "faq", "confidence": 0.04}], add_to_output=True)
    message.set(ENTITIES, [{"entity": "product_type", "value": "table", "start": 0, "end": 4}],
                add_to_output=True)
    return message


def test_the_component_makes_a_foreign_message_other_language_with_its_language() -> None:
    """The Spanish return request the English model read as a tier question (issue 14)."""
    [message] = LanguageClassifier.create({}, None, None, None).process([_parsed("quiero devolver la mesa que compré")])
    assert message.get(INTENT) == {"name": "other_language", "confidence": 1.0}
    assert [r["name"] for r in message.get(INTENT_RANKING_KEY)] == ["other_language", "check_tier", "faq"]
    [entity] = message.get(ENTITIES)
    assert (entity["entity"], entity["value"], entity["extractor"]) == ("language", "es", "LanguageClassifier")
    assert message.as_dict(only_output_properties=True)["entities"] == [entity]


def test_the_component_turns_a_typed_yes_or_no_into_affirm_or_deny_and_leaves_english_alone() -> None:
    yes, no, english = LanguageClassifier().process(
        [_parsed("oui, volontiers", "greet"), _parsed("nein danke", "nlu_fallback"), _parsed("whats my tier m8")])
    assert yes.get(INTENT)["name"] == "affirm" and no.get(INTENT)["name"] == "deny"
    assert english.get(INTENT) == {"name": "check_tier", "confidence": 0.93}
    assert english.get(ENTITIES)[0]["entity"] == "product_type"
