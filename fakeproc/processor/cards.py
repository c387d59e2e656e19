"""Card and bank account facts: Luhn, brands, ABA routing checksums, test numbers, masking."""

from __future__ import annotations

import re

# The TEST-mode numbers of the Generic Pay Connector page, with the brand that page gives them.
# The Diners Club card (3065…) is outside the <Pay> prefix rules and fails Luhn; the table wins.
TEST_CARDS = {
    "4111111111111111": "visa",
    "5555555555554444": "mastercard",
    "378282246310005": "amex",
    "6011111111111117": "discover",
    "3065930009020004": "diners-club",
    "3566002020360505": "jcb",
    "6200000000000005": "unionpay",
    "6771798021000008": "maestro",
}
TEST_BANK_ACCOUNTS = frozenset({"12345678", "123456789"})

# (brand, prefixes, allowed lengths), most specific first. Lengths follow the validCardTypes
# table of the <Pay> page, except Visa: the page says 13, 15, 19 yet its own test card has 16.
_BRAND_RULES: tuple[tuple[str, tuple[str, ...], range], ...] = (
    ("amex", ("34", "37"), range(15, 16)),
    ("enroute", ("2014", "2149"), range(15, 16)),
    ("visa", ("4",), range(13, 20)),
    ("mastercard", tuple(str(p) for p in range(51, 56)), range(16, 17)),
    ("mastercard", tuple(str(p) for p in range(2221, 2721)), range(16, 17)),
    ("discover", ("6011", "64", "65"), range(16, 20)),
    ("unionpay", ("62", "81"), range(16, 20)),
    ("jcb", tuple(str(p) for p in range(3528, 3590)), range(16, 20)),
    ("diners-club", ("36",), range(14, 20)),
    ("diners-club", ("300", "301", "302", "303", "304", "3095", "38", "39"), range(16, 20)),
    ("maestro", ("50", "56", "57", "58", "6"), range(12, 20)),
)

BRANDS = tuple(sorted({rule[0] for rule in _BRAND_RULES} | set(TEST_CARDS.values())))

_DIGITS = re.compile(r"[0-9]+")
# Runs of 12-19 digits look like card numbers wherever they turn up (a description, a
# parameter, an unknown field): they are masked before anything is stored or logged.
_PAN_LIKE = re.compile(r"(?<![0-9])[0-9]{12,19}(?![0-9])")


def is_digits(value: str) -> bool:
    return bool(_DIGITS.fullmatch(value))


def luhn_valid(number: str) -> bool:
    """True when `number` is all digits and its Luhn checksum holds."""
    if not is_digits(number):
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def card_brand(number: str) -> str | None:
    """The brand of a card number, as <Pay>'s validCardTypes names it (plus unionpay)."""
    if number in TEST_CARDS:
        return TEST_CARDS[number]
    if not is_digits(number):
        return None
    for brand, prefixes, lengths in _BRAND_RULES:
        if len(number) in lengths and number.startswith(prefixes):
            return brand
    return None


def card_types(number: str) -> tuple[str, ...]:
    """Every card type whose length and prefix rules (the `<Pay>` page's validCardTypes
    table, plus unionpay) a number meets; a number may meet several (6011…: discover and
    maestro)."""
    if not is_digits(number):
        return ()
    return tuple(dict.fromkeys(brand for brand, prefixes, lengths in _BRAND_RULES
                               if len(number) in lengths and number.startswith(prefixes)))


def aba_routing_valid(number: str) -> bool:
    """True for a 9-digit routing number whose 3-7-1 weighted checksum holds."""
    if len(number) != 9 or not is_digits(number):
        return False
    weights = (3, 7, 1) * 3
    return sum(int(d) * w for d, w in zip(number, weights)) % 10 == 0


def last_digits(number: str, count: int) -> str:
    return number[-count:] if len(number) >= count else number


def mask(number: str, visible: int) -> str:
    """All but the last `visible` characters replaced by `*`."""
    shown = last_digits(number, visible) if visible else ""
    return "*" * (len(number) - len(shown)) + shown


def redact_pans(text: str) -> str:
    """Mask every card-number-like run of digits in free text, keeping its last four."""
    return _PAN_LIKE.sub(lambda m: mask(m.group(), 4), text)


# In free text a number stands alone: digits glued to letters are part of an identifier (a
# hex id such as a Twilio CallSid holds runs of digits), not a card or an account.
_ALONE_PAN = re.compile(r"(?<![0-9A-Za-z])[0-9]{12,19}(?![0-9A-Za-z])")
# A card number typed in groups ("4111 1111 1111 1111", "3782-822463-10005"): 12-19 digits.
_GROUPED = re.compile(r"(?<![0-9A-Za-z])[0-9]{4}(?:[ -][0-9]{2,7}){2,4}(?![0-9A-Za-z])")
# Runs of 8-11 digits look like bank account numbers.
_ACCOUNT_LIKE = re.compile(r"(?<![0-9A-Za-z])[0-9]{8,11}(?![0-9A-Za-z])")
# A security code named as one: "cvv 123", "CVC: 1234", "security code 0123".
_NAMED_CVV = re.compile(r"(?i)\b(?:cvv2?|cvc2?|csc|cid|security code)[^0-9a-z]{0,3}"
                        r"(?P<code>[0-9]{3,4})(?![0-9])")


def redact_numbers(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Free text as it may be stored or logged: numbers standing alone that look like a card
    (12-19 digits, or typed in groups) keep their last four, like an account (8-11 digits)
    their last two, a code named as a CVV is masked, and so is any of `secrets` (the request's
    own card, CVV or account number) wherever it stands alone among digits."""
    text = _ALONE_PAN.sub(lambda m: mask(m.group(), 4), text)
    text = _GROUPED.sub(lambda m: _mask_digits(m.group(), 4)
                        if 12 <= sum(c.isdigit() for c in m.group()) <= 19 else m.group(), text)
    text = _ACCOUNT_LIKE.sub(lambda m: mask(m.group(), 2), text)
    text = _NAMED_CVV.sub(lambda m: m.group()[:m.start("code") - m.start()]
                          + "*" * len(m.group("code")), text)
    for secret in secrets:
        if len(secret) >= 3 and is_digits(secret) and secret in text:
            text = re.sub(f"(?<![0-9]){secret}(?![0-9])", "*" * len(secret), text)
    return text


def _mask_digits(text: str, visible: int) -> str:
    """Every digit but the last `visible` replaced by `*`; separators stay."""
    digits = sum(char.isdigit() for char in text)
    out, seen = [], 0
    for char in text:
        if char.isdigit():
            seen += 1
            char = char if seen > digits - visible else "*"
        out.append(char)
    return "".join(out)
