"""Product quizzes: definitions in data/quizzes/*.yml (definition.py), the engine that walks the answers,
scores the catalog and explains its picks (engine.py), and typed answers read as options (answers.py). No
Rasa, no database: the conversation builds ProductRecords from the store and calls these pure functions;
bot.quiz.runs keeps a shopper's run in the store."""
from bot.quiz.answers import match_option, match_options
from bot.quiz.definition import (
    CatalogVocabulary, EmailCapture, Option, Question, Quiz, Rules, load_quiz, load_quizzes, parse_quiz,
)
from bot.quiz.engine import AnswerError, ProductIndex, ProductRecord, QuizPath, Recommendation, Result, recommend, walk

__all__ = [
    "AnswerError", "CatalogVocabulary", "EmailCapture", "Option", "ProductIndex", "ProductRecord", "Question", "Quiz",
    "QuizPath", "Recommendation", "Result", "Rules", "load_quiz", "load_quizzes", "match_option", "match_options",
    "parse_quiz", "recommend", "walk",
]
