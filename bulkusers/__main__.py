"""Allow ``python -m bulkusers``."""

from __future__ import annotations

from bulkusers.cli import main

if __name__ == "__main__":
    main()
