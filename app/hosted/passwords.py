"""The password policy of hosted mode: long enough, not common, not trivial, not the user's name.

NIST SP 800-63B's advice, without composition rules: at least :data:`MIN_LENGTH` characters, and
refused when the password (ignoring case, and digits or punctuation around a word) is on a list of
the most common passwords, repeats a few characters (``aaaaaaaa``, ``abababab``), is a run of the
alphabet, the digits or a keyboard row (``12345678``, ``qwertyui``), or contains the user's name or
the application's. :func:`problem` says what is wrong, for the user.
"""
from __future__ import annotations

import re

__all__ = ["MIN_LENGTH", "MAX_LENGTH", "COMMON", "problem"]

MIN_LENGTH = 8
MAX_LENGTH = 1024

#: The most common passwords of public breach lists (lower case; a word with digits or punctuation added
#: around it counts as the word).
COMMON = frozenset(["password", "passw0rd", "p@ssword", "p@ssw0rd", "pass1234", "password1", "password12",
                    "password123", "passwort", "motdepasse", "contrasena", "123456", "1234567", "12345678", "123456789",
                    "1234567890", "0123456789", "987654321", "9876543210", "111111", "11111111", "000000", "00000000",
                    "123123", "123123123", "121212", "112233", "654321", "666666", "696969", "777777", "888888",
                    "987654", "123321", "159753", "147258369", "1q2w3e4r", "1q2w3e4r5t", "1qaz2wsx", "qwerty",
                    "qwerty123", "qwertyui", "qwertyuiop", "asdfgh", "asdfghjk", "asdfghjkl", "zxcvbnm", "zxcvbnm123",
                    "qazwsx", "qweasd", "qweasdzxc", "azerty", "azertyuiop", "abc123", "abcd1234", "abcdef", "abcdefg",
                    "abcdefgh", "a1b2c3d4", "aa123456", "iloveyou", "iloveyou1", "letmein", "letmein1", "welcome",
                    "welcome1", "welcome123", "admin", "admin123", "administrator", "root", "toor", "changeme",
                    "changeit", "default", "secret", "secret123", "master", "monkey", "dragon", "football", "baseball",
                    "basketball", "soccer", "hockey", "superman", "batman", "spiderman", "starwars", "pokemon",
                    "princess", "sunshine", "shadow", "michael", "jennifer", "jordan", "hunter", "hunter2", "killer",
                    "trustno1", "whatever", "freedom", "ninja", "mustang", "access", "flower", "hello", "hello123",
                    "hellohello", "charlie", "donald", "loveme", "lovely", "jessica", "ashley", "daniel", "thomas",
                    "robert", "matthew", "andrew", "joshua", "george", "pepper", "ginger", "cookie", "cheese", "summer",
                    "winter", "spring", "autumn", "computer", "internet", "google", "samsung", "apple", "microsoft",
                    "login", "guest", "test", "test123", "testing", "tester", "temp", "temppass", "user", "username",
                    "qwerty1", "zaq12wsx", "zaq1zaq1", "1234qwer", "q1w2e3r4", "q1w2e3r4t5", "passpass", "mypassword",
                    "yourpassword", "nopassword", "newpassword", "oldpassword", "blahblah", "asdf1234", "asdfasdf",
                    "qwerqwer", "abcabc", "monkey123", "dragon123", "master123", "football1", "baseball1", "princess1",
                    "sunshine1", "iloveyou2", "123qwe", "123abc", "1234abcd", "letmeinnow", "opensesame", "starwars1",
                    "whatever1", "pa55word", "pa55w0rd", "passw0rd1", "secure", "security", "7777777", "5555555",
                    "55555555", "44444444", "33333333", "22222222", "99999999", "88888888", "12341234", "11223344",
                    "123654", "123456a", "123456789a", "a123456", "a12345678", "qwerty12", "qwerty1234", "1qazxsw2",
                    "zxcvbn", "147258", "159357", "741852963", "789456123", "789456", "456789"])

_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "1234567890", "qwertzuiop", "azertyuiop", "yxcvbnm",
                  "1qaz2wsx3edc4rfv", "qazwsxedcrfv", "abcdefghijklmnopqrstuvwxyz")
_APP_NAMES = ("rnnvis",)


def _core(password: str) -> str:
    """The password in lower case without the digits and punctuation around its letters.

    ``Password123!`` -> ``password``.
    """
    low = password.lower()
    stripped = re.sub(r"^[^a-z]+|[^a-z]+$", "", low)
    return stripped or low


def _is_run(text: str) -> bool:
    """Whether ``text`` steps through characters by a constant -1, 0 or +1 (``abcdef``, ``87654321``, ``zzzz``)."""
    if len(text) < 3:
        return False
    steps = {ord(b) - ord(a) for a, b in zip(text, text[1:])}
    return len(steps) == 1 and steps <= {-1, 0, 1}


def _on_a_row(text: str) -> bool:
    """Whether ``text`` is a stretch of a keyboard row or of the alphabet, either way round (``qwertyui``)."""
    return any(text in row or text in row[::-1] for row in _KEYBOARD_ROWS)


def problem(password: str, name: str | None = None) -> str | None:
    """What is wrong with ``password`` for user ``name``, as a message for them; None if it is fine."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        return f"the password needs at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"the password is longer than {MAX_LENGTH} characters"
    low = password.lower()
    if low in COMMON or _core(password) in COMMON or low.rstrip("0123456789!?.*#@$%&_-") in COMMON:
        return ("that password is one of the most common ones; choose a less guessable one "
                "(a few unrelated words work well)")
    if len(set(low)) < 5:
        return "that password repeats a few characters; use at least 5 different characters"
    compact = re.sub(r"[^a-z0-9]", "", low)
    if _is_run(low) or _on_a_row(low) or (len(compact) >= MIN_LENGTH - 2 and (_is_run(compact) or _on_a_row(compact))):
        return "that password is a run of the keyboard, the alphabet or the digits; choose a less guessable one"
    for word in ((name or "").lower(), *_APP_NAMES):
        if len(word) >= 3 and word in low:
            return "the password must not contain your user name or the application's name"
    return None
