"""Project defaults for Rasa's own CLI, applied when the project's Python starts (.venv's rapport.pth).

`rasa test` looks for test stories under "." by default (rasa.shared.constants.DEFAULT_E2E_TESTS_PATH):
from this repository's root that walk takes in .venv — where Rasa's own starter project ships
stories — and Rasa's training cache, whose JSON files crash its format guessing. Test stories live in
tests/, so that is where plain `rasa test` looks. Nothing else of Rasa is changed.
"""
import rasa.shared.constants

rasa.shared.constants.DEFAULT_E2E_TESTS_PATH = "tests"
