"""``python app.py`` does the same as ``smtpmatch serve`` (arguments are passed through)."""

import sys

from bot.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["serve", *sys.argv[1:]]))
