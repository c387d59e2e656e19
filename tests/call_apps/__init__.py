"""TwiML apps written the way teams write them, for the call emulator's tests: with Twilio's
helper library (`helper_library.py`), as hand-written XML (`hand_written.py`), and an ACH flow
with a custom `<Prompt>` for every step (`ach_prompts.py`). Plus `scripted`, a tiny app whose
answers a test writes inline."""
